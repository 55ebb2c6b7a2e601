//! The shared sessions: a JetStream KV bucket (key = the hex SHA-256 of a session cookie,
//! never the cookie; value = its user and times, `access::sessions::Shared`) that every node
//! watches into its own session table, so a login on one node is a session on all of them and
//! a logout on one ends it everywhere.
//!
//! A login is stored before it is answered; a node asked with a cookie it does not hold looks
//! it up at once (the watch may lag by milliseconds); uses refresh the entry at most once a
//! minute, queued without waiting ([`QUEUE`] at most; a full queue drops a refresh, which the
//! next use sends again); a logout waits for its place in the same queue, so it is written
//! after every refresh before it. A refresh names the revision this node last saw of the
//! entry: one that crosses a logout made elsewhere fails instead of bringing the session
//! back. Entries expire in the bucket at the longest session age.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::access::sessions::{Key, Sessions, Share, Shared, MAX_SESSIONS};
use crate::control::BoxFuture;

/// The sessions' bucket.
pub const SESSIONS_BUCKET: &str = "camwall_sessions";
/// Refreshes and logouts waiting to be written.
const QUEUE: usize = 1024;
/// How often the watch checks that the connection is still there.
const CHECK_EVERY: Duration = Duration::from_secs(1);

type Op = (Key, Option<Shared>);

/// This node's side of the shared table.
pub struct SharedSessions {
    store: Mutex<Option<kv::Store>>,
    queue: mpsc::Sender<Op>,
    /// The revision last seen of each entry (as many as the session table holds).
    revisions: Arc<Mutex<HashMap<Key, u64>>>,
    replicas: usize,
}

fn key_name(key: &Key) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn key_of_name(name: &str) -> Option<Key> {
    if name.len() != 64 {
        return None;
    }
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(name.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(k)
}

impl SharedSessions {
    /// The share for `sessions` and the task that keeps them in step with the bucket; the
    /// task runs once NATS is connected ([`SharedSessions::run`]).
    pub fn new(replicas: usize) -> (Arc<Self>, mpsc::Receiver<Op>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let me = Arc::new(Self {
            store: Mutex::new(None),
            queue,
            revisions: Arc::new(Mutex::new(HashMap::new())),
            replicas,
        });
        (me, rx)
    }

    fn kv(&self) -> Option<kv::Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn revisions(&self) -> std::sync::MutexGuard<'_, HashMap<Key, u64>> {
        self.revisions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes revision `revision` of entry `key` (`None`: the entry is gone).
    fn saw(&self, key: Key, revision: Option<u64>) {
        saw(&self.revisions, key, revision);
    }

    /// Writes queued changes and takes in other nodes' until `cancel`.
    pub async fn run(
        self: Arc<Self>,
        client: async_nats::Client,
        sessions: Arc<Sessions>,
        mut queue: mpsc::Receiver<Op>,
        cancel: CancellationToken,
    ) {
        let mut js = jetstream::new(client.clone());
        js.set_timeout(super::REQUEST_TIMEOUT);
        loop {
            if client.connection_state() == async_nats::connection::State::Connected {
                if let Err(e) = self
                    .sync_and_watch(&js, &client, &sessions, &mut queue, &cancel)
                    .await
                {
                    debug!("cluster: session watch ended: {e}");
                }
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
        }
    }

    async fn sync_and_watch(
        &self,
        js: &jetstream::Context,
        client: &async_nats::Client,
        sessions: &Sessions,
        queue: &mut mpsc::Receiver<Op>,
        cancel: &CancellationToken,
    ) -> Result<(), async_nats::Error> {
        let kv = super::bucket(js, SESSIONS_BUCKET, sessions.max_age(), self.replicas).await?;
        *self.store.lock().unwrap_or_else(|e| e.into_inner()) = Some(kv.clone());
        // Every stored session, so that a node that starts (or comes back) knows them all.
        let mut newest = 0;
        let mut keys = kv.keys().await?;
        let mut names = Vec::new();
        while let Some(k) = keys.next().await {
            names.push(k?);
            if names.len() >= MAX_SESSIONS {
                break;
            }
        }
        for name in names {
            if let Some(e) = kv.entry(name.as_str()).await? {
                newest = newest.max(e.revision);
                self.take_in(sessions, &e);
            }
        }
        let mut watch = kv.watch_all_from_revision(newest + 1).await?;
        let mut check = tokio::time::interval(CHECK_EVERY);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(()),
                _ = check.tick() => {
                    if client.connection_state() != async_nats::connection::State::Connected {
                        return Err("NATS connection lost".into());
                    }
                }
                op = queue.recv() => match op {
                    None => return Ok(()),
                    Some((key, Some(s))) => {
                        let Some(base) = self.revisions().get(&key).copied() else { continue };
                        let value = Bytes::from(serde_json::to_vec(&s)?);
                        match kv.update(key_name(&key).as_str(), value, base).await {
                            Ok(rev) => self.saw(key, Some(rev)),
                            // Refreshed or ended elsewhere meanwhile: the watch brings it.
                            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    Some((key, None)) => {
                        self.saw(key, None);
                        kv.purge(key_name(&key).as_str()).await?;
                    }
                },
                entry = watch.next() => match entry {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(e)) => self.take_in(sessions, &e),
                }
            }
        }
    }
}

fn saw(revisions: &Mutex<HashMap<Key, u64>>, key: Key, revision: Option<u64>) {
    let mut r = revisions.lock().unwrap_or_else(|e| e.into_inner());
    match revision {
        Some(rev) => {
            // Bounded like the session table; a refresh of a forgotten entry is skipped.
            if r.len() >= MAX_SESSIONS && !r.contains_key(&key) {
                r.clear();
            }
            r.insert(key, rev);
        }
        None => {
            r.remove(&key);
        }
    }
}

impl SharedSessions {
    /// One entry of the bucket into this node's table: a session added or used elsewhere,
    /// or ended.
    fn take_in(&self, sessions: &Sessions, e: &kv::Entry) {
        let Some(key) = key_of_name(&e.key) else {
            return;
        };
        match e.operation {
            kv::Operation::Put => match serde_json::from_slice::<Shared>(&e.value) {
                Ok(s) => {
                    if sessions.import(key, &s, SystemTime::now()) {
                        self.saw(key, Some(e.revision));
                    }
                }
                Err(_) => warn!("cluster: a session entry is not a session; ignored"),
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                self.saw(key, None);
                sessions.forget(&key);
            }
        }
    }
}

impl Share for SharedSessions {
    fn store(&self, key: Key, session: Shared) -> BoxFuture<'static, ()> {
        let kv = self.kv();
        let revisions = self.revisions.clone();
        Box::pin(async move {
            let (Some(kv), Ok(value)) = (kv, serde_json::to_vec(&session)) else {
                warn!("cluster: a login could not be shared with the other nodes (no NATS)");
                return;
            };
            let name = key_name(&key);
            let put = kv.put(name.as_str(), Bytes::from(value));
            match tokio::time::timeout(super::REQUEST_TIMEOUT, put).await {
                Ok(Ok(rev)) => saw(&revisions, key, Some(rev)),
                // The login holds on this node; the others do not know it.
                _ => warn!("cluster: a login could not be shared with the other nodes now"),
            }
        })
    }

    fn refresh(&self, key: Key, session: Shared) {
        if self.queue.try_send((key, Some(session))).is_err() {
            debug!("cluster: session queue full; a refresh waits for the next use");
        }
    }

    fn remove(&self, key: Key) -> BoxFuture<'static, ()> {
        let queue = self.queue.clone();
        Box::pin(async move {
            // Bounded: without NATS the queue is not drained.
            let sent = tokio::time::timeout(super::REQUEST_TIMEOUT, queue.send((key, None)));
            if !matches!(sent.await, Ok(Ok(()))) {
                warn!("cluster: a logout could not be shared with the other nodes now");
            }
        })
    }

    fn fetch(&self, key: Key) -> BoxFuture<'static, Option<Shared>> {
        let kv = self.kv();
        Box::pin(async move {
            let kv = kv?;
            let get = kv.entry(key_name(&key));
            let entry = tokio::time::timeout(super::REQUEST_TIMEOUT, get)
                .await
                .ok()?
                .ok()??;
            (entry.operation == kv::Operation::Put)
                .then(|| serde_json::from_slice(&entry.value).ok())
                .flatten()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_go_to_kv_names_and_back() {
        let k = crate::access::sessions::key_of("a cookie");
        let name = key_name(&k);
        assert_eq!(name.len(), 64);
        assert!(name.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(key_of_name(&name), Some(k));
        assert_eq!(key_of_name("zz"), None);
        assert_eq!(key_of_name(&"g".repeat(64)), None);
    }
}
