//! The HTTP server loop: accepts connections and serves the warp routes with hyper, with the
//! protections warp's own loop does not expose: a deadline for request headers (slowloris), a
//! bounded header buffer, and the peer address for per-IP caps.

use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The peer of a request, put in its extensions (read with `warp::ext::optional`).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Largest request head (request line and headers) a client may send.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Serves `filter` on `listener` until `cancel` fires, then waits for open connections to end
/// (the caller bounds that wait). `header_timeout` cuts clients that do not send a whole
/// request head in time; with `tls`, each connection first completes a TLS handshake within
/// `header_timeout` too.
pub async fn serve<F>(
    listener: TcpListener,
    filter: F,
    header_timeout: Duration,
    tls: Option<TlsAcceptor>,
    cancel: CancellationToken,
) where
    F: warp::Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: wait instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let svc = warp::service(filter.clone());
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                let mut svc = svc.clone();
                tower_service::Service::call(&mut svc, req)
            });
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(MAX_HEAD_BYTES);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let io = match super::tls::handshake(tcp, tls.as_ref(), header_timeout).await {
                Ok(io) => io,
                Err(e) => return debug!(%peer, error = %e, "TLS handshake failed"),
            };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
