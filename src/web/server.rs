//! The HTTP server loop: accepts connections and serves the warp routes with hyper, with the
//! protections warp's own loop does not expose: a deadline for request heads from accept on
//! (silent sockets, slowloris) and between keep-alive requests, a bounded header buffer, a cap
//! on connections per address, a send-stall deadline, and the client's address (behind trusted
//! proxies, the one they forward for) for per-IP caps. It decides nothing about routes.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::access::limits::ConnLimits;
use crate::access::proxy;

/// The client of a request, put in its extensions (the access guard reads it): the TCP peer,
/// or behind a trusted proxy the address it forwards for.
pub use crate::access::guard::PeerAddr;

/// Largest request head (request line and headers) a client may send.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A connection whose peer accepts no byte for this long while camwall has something to send
/// is closed: a stalled MJPEG reader (or any other) gives its client slot back instead of
/// holding it forever. The same span as the WebSocket's send timeout.
pub const SEND_STALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Pause after a failed accept (out of descriptors and the like): the error would repeat at
/// once, so retrying at full speed would only burn a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(75);
/// Most bytes a client's socket holds unsent before a send waits, until the live wall sizes it
/// to the link (`UnsentLimit`): a 720p JPEG or two (TCP_NOTSENT_LOWAT; bytes in flight are not
/// counted, so a long fast link still fills its window).
pub const NOTSENT_LOWAT: u32 = 128 * 1024;

/// The local address a request's connection arrived on, put in its extensions: the address
/// the client reached, which WebRTC announces as its candidate.
#[derive(Debug, Clone, Copy)]
pub struct LocalAddr(pub std::net::SocketAddr);

/// The accepted socket of a request, put in its extensions, so that the live wall can size the
/// bytes its socket holds unsent to the link's rate ([`UnsentLimit::set`]).
#[derive(Debug, Clone, Copy)]
pub struct SocketFd(std::os::fd::RawFd);

/// Sets how many bytes a live-wall connection's socket holds unsent before a send waits.
#[derive(Debug)]
pub struct UnsentLimit {
    fd: std::os::fd::RawFd,
    now: u32,
}

impl UnsentLimit {
    /// For the socket of `fd`. Only the connection that owns the socket may hold one, and only
    /// while it holds the socket (the WebSocket's own halves): the descriptor stays valid for
    /// that long.
    pub fn new(fd: SocketFd) -> Self {
        Self {
            fd: fd.0,
            now: NOTSENT_LOWAT,
        }
    }

    /// Sets the limit to `bytes` if it differs by more than a quarter from the one set.
    pub fn set(&mut self, bytes: u32) {
        if bytes.abs_diff(self.now) <= self.now / 4 {
            return;
        }
        // SAFETY: the descriptor is the socket of the connection this value belongs to, which
        // the caller holds open for as long as it holds this value (see `new`).
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        if socket2::SockRef::from(&fd)
            .set_tcp_notsent_lowat(bytes)
            .is_ok()
        {
            self.now = bytes;
        }
    }
}

/// How the server treats connections.
#[derive(Clone)]
pub struct ServeOptions {
    /// A request head must be complete this long after accept, or after the previous answer
    /// on a keep-alive connection; silent and slow clients are cut off.
    pub header_timeout: Duration,
    /// Most open connections from one peer address (trusted proxies are not capped: all of
    /// their clients share their address).
    pub max_connections_per_ip: usize,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed.
    pub trusted_proxies: Arc<Vec<IpAddr>>,
    /// See [`SEND_STALL_TIMEOUT`].
    pub send_stall_timeout: Duration,
    /// HTTPS: the handshake runs first, within `header_timeout`.
    pub tls: Option<TlsAcceptor>,
    /// ICE over TCP on this port: a connection whose first byte is 0 (an RFC 4571 frame of a
    /// STUN binding request; HTTP starts with a method's letter, TLS with 22) is handed over
    /// with its connection slot.
    pub ice_tcp: Option<IceTcpHandoff>,
}

/// Takes a connection that speaks ICE over TCP, its peer and its place under the caps.
pub type IceTcpHandoff = Arc<dyn Fn(TcpStream, SocketAddr, Box<dyn Send>) + Send + Sync>;

/// Serves `filter` on `listener` until `cancel` fires, then waits for open connections to end
/// (the caller bounds that wait). With `opts.tls`, each connection first completes a TLS
/// handshake within the header deadline.
pub async fn serve<F>(
    listener: TcpListener,
    filter: F,
    opts: ServeOptions,
    cancel: CancellationToken,
) where
    F: warp::Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    // Open connections, so that shutdown can wait for them to finish their answers.
    let tracker = TaskTracker::new();
    let conns = ConnLimits::new(opts.max_connections_per_ip);
    // Failed accepts in a row: the first of a burst is logged, the rest only counted.
    let mut failures: u64 = 0;
    loop {
        let (tcp, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    if failures == 0 {
                        warn!(error = %e, "accept failed; retrying (further failures of this burst are not logged)");
                    }
                    failures += 1;
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        if failures > 0 {
            warn!(failures, "accepting connections again");
            failures = 0;
        }
        let trusted = opts.trusted_proxies.clone();
        let slot = if proxy_is_trusted(peer.ip(), &trusted) {
            None
        } else {
            match conns.acquire(peer.ip().to_canonical()) {
                Some(s) => Some(s),
                None => {
                    // Closed at once: dropping the socket is the whole answer.
                    debug!(%peer, "too many connections from this address; closed");
                    continue;
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        // Keep what waits unsent in the kernel short: without it a socket's send buffer grows
        // to megabytes (Linux autotunes it), which on a thin link is seconds of video queued
        // where latest-wins cannot replace it. With it, a send waits once this much is unsent,
        // so a slow client is seen at once (skips, send time) and gets the newest frame.
        let _ = socket2::SockRef::from(&tcp).set_tcp_notsent_lowat(NOTSENT_LOWAT);
        let fd = SocketFd(std::os::fd::AsRawFd::as_raw_fd(&tcp));
        let local = tcp.local_addr().ok().map(LocalAddr);
        let svc = warp::service(filter.clone());
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                let client = proxy::client_addr(peer, req.headers(), &trusted);
                req.extensions_mut().insert(PeerAddr(client));
                req.extensions_mut().insert(fd);
                if let Some(l) = local {
                    req.extensions_mut().insert(l);
                }
                let mut svc = svc.clone();
                tower_service::Service::call(&mut svc, req)
            });
        // hyper's HTTP/1 connection itself, not hyper-util's auto builder: the auto builder
        // first sniffs the protocol version, waiting for a first byte with no deadline, so a
        // silent socket stayed open forever. hyper's head deadline runs from accept, and again
        // while a keep-alive connection sits idle between requests.
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(opts.header_timeout)
            .max_buf_size(MAX_HEAD_BYTES);
        let io_limit = opts.send_stall_timeout;
        let tls = opts.tls.clone();
        let header_timeout = opts.header_timeout;
        let stop = cancel.clone();
        let ice_tcp = opts.ice_tcp.clone();
        tracker.spawn(async move {
            if let Some(ice) = ice_tcp {
                let mut first = [0u8; 1];
                match tokio::time::timeout(header_timeout, tcp.peek(&mut first)).await {
                    Ok(Ok(1)) if first[0] == 0 => return ice(tcp, peer, Box::new(slot)),
                    Ok(Ok(1)) => {}
                    // Silent past the head deadline, or gone: cut as the handshake or the
                    // request head would have been.
                    _ if tls.is_some() => {
                        let e = super::tls::handshake_timed_out();
                        return debug!(%peer, error = %e, "TLS handshake failed");
                    }
                    _ => return debug!(%peer, "nothing sent within the header deadline; closed"),
                }
            }
            let _slot = slot;
            let io = match super::tls::handshake(tcp, tls.as_ref(), header_timeout).await {
                Ok(io) => io,
                Err(e) => return debug!(%peer, error = %e, "TLS handshake failed"),
            };
            let io = StallGuard::new(io, io_limit);
            let conn = builder
                .serve_connection(TokioIo::new(io), svc)
                .with_upgrades();
            tokio::pin!(conn);
            let r = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    // Finish the answer in progress, take no new request.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = r {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

fn proxy_is_trusted(ip: IpAddr, trusted: &[IpAddr]) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|t| t.to_canonical() == ip)
}

/// A socket whose writes fail once the peer has accepted nothing for `limit` while a write
/// was waiting. Reads are untouched: a client may be quiet, but one that does not take what it
/// asked for holds memory and a client slot.
struct StallGuard<T> {
    inner: T,
    limit: Duration,
    /// Armed when a write first finds the socket full; reset by any progress.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<T> StallGuard<T> {
    fn new(inner: T, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: None,
            armed: false,
        }
    }

    fn watch<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if r.is_ready() {
            self.armed = false;
            return r;
        }
        let deadline = tokio::time::Instant::now() + self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            timer.as_mut().reset(deadline);
            self.armed = true;
        }
        if timer.as_mut().poll(cx).is_ready() {
            self.armed = false;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer accepted nothing within the send stall timeout",
            )));
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_takes_nothing_fails_the_write_after_the_limit() {
        // A pipe with room for 8 bytes that nobody reads.
        let (a, _b) = tokio::io::duplex(8);
        let mut g = StallGuard::new(a, Duration::from_secs(20));
        g.write_all(b"12345678").await.unwrap();
        let t0 = tokio::time::Instant::now();
        let e = g.write_all(b"more").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t0.elapsed() >= Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn progress_resets_the_deadline() {
        let (a, mut b) = tokio::io::duplex(4);
        let mut g = StallGuard::new(a, Duration::from_secs(20));
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut got = Vec::new();
            let mut buf = [0u8; 4];
            // Takes 4 bytes every 15 s: slow, never stalled for 20 s.
            while got.len() < 16 {
                tokio::time::sleep(Duration::from_secs(15)).await;
                let n = b.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        g.write_all(&[7u8; 16]).await.unwrap();
        assert_eq!(reader.await.unwrap(), vec![7u8; 16]);
    }
}
