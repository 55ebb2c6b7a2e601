//! Keeping something in step with a KV bucket: read it whole, then watch it from the revision
//! after, and again after any break (NATS away, a watch error), so nothing is missed however
//! long the break. The camera list, the users and the sessions follow it.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// How often a watch checks that the connection is still there, and how soon a sync is tried
/// again after it ended.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Whether `client` is connected now.
pub fn connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

/// The error a watch ends with when the connection went.
pub fn lost() -> async_nats::Error {
    "NATS connection lost".into()
}

/// The bucket's last revision, asked of the server now: a watch from the one after it misses
/// nothing that changed after this call, whatever a read of the keys that follows finds.
pub async fn last_revision(
    js: &jetstream::Context,
    bucket: &str,
) -> Result<u64, async_nats::Error> {
    let mut stream = js.get_stream(format!("KV_{bucket}")).await?;
    Ok(stream.info().await?.state.last_sequence)
}

/// Runs `sync` (a whole read, then the watch) whenever `client` is connected, again after it
/// ends, until `cancel`; `what` names it in the line a break leaves.
pub async fn keep_in_step<F, Fut>(
    client: async_nats::Client,
    cancel: CancellationToken,
    what: &'static str,
    mut sync: F,
) where
    F: FnMut(jetstream::Context) -> Fut,
    Fut: Future<Output = Result<(), async_nats::Error>>,
{
    let mut js = jetstream::new(client.clone());
    js.set_timeout(super::REQUEST_TIMEOUT);
    loop {
        if connected(&client) {
            if let Err(e) = sync(js.clone()).await {
                debug!("cluster: {what} watch ended: {e}");
            }
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}
