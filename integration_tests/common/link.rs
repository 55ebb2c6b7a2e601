//! TCP proxies that make a network path on loopback: a one-way delay each way and, optionally, a
//! rate cap behind a bounded router queue, so that camwall meets the backpressure of a real link.
//!
//! Per connection and direction, a chunk read from one side goes through three stages:
//!
//! 1. the router queue, bounded in bytes: while it is full the proxy stops reading, so TCP's own
//!    backpressure reaches the sender as at a real bottleneck;
//! 2. the serializer: at the capped rate a chunk of n bytes occupies the link for n*8/rate s;
//! 3. the delay: each chunk is delivered `one_way` after it left the serializer (not rate
//!    limited; it holds at most a bandwidth-delay product).
//!
//! Nothing is unbounded: the queue by its bytes, the delay stage by [`DELAY_SLOTS`] chunks, and
//! the socket to the sender by a small receive buffer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

/// The largest read: a chunk is the unit the serializer schedules, so small chunks keep the
/// pacing fine-grained (4 KiB is 33 ms at 1 Mbit/s, 1.6 ms at 20 Mbit/s).
pub const CHUNK: usize = 4096;

/// A router queue of a home or mobile uplink's order, in bytes.
pub const DEFAULT_QUEUE: usize = 96 * 1024;

/// At most this many chunks in the delay stage per direction (16 MiB of 4 KiB chunks: more than
/// any bandwidth-delay product a test uses, so it never caps the rate by itself).
const DELAY_SLOTS: usize = 4096;

/// The proxy's socket receive buffer (the kernel doubles it). Small and fixed: an autotuned one
/// grows to megabytes on loopback, a hidden queue in front of the router queue that a real
/// path's congestion window would never allow.
const RCVBUF: u32 = 16 * 1024;

/// The shape of a path: a rate cap the test may change mid-stream, a one-way delay, the router
/// queue in front of the cap. Clones share the rate.
#[derive(Clone, Debug)]
pub struct Shape {
    rate_bps: Arc<AtomicU64>,
    /// Delay of every byte in each direction.
    pub one_way: Duration,
    /// The router queue in front of the rate cap, in bytes (at least one [`CHUNK`]).
    pub queue_bytes: usize,
    /// Whether the client-to-server direction is capped too (it is always delayed). Off by
    /// default: a viewer sends only acknowledgements, and a real downlink is the narrow side.
    pub cap_upstream: bool,
}

impl Shape {
    /// A path of `rate_bps` bits per second (0 or `u64::MAX`: uncapped) and `one_way` delay
    /// each way, with a [`DEFAULT_QUEUE`] router queue.
    pub fn new(rate_bps: u64, one_way: Duration) -> Self {
        Self {
            rate_bps: Arc::new(AtomicU64::new(rate_bps)),
            one_way,
            queue_bytes: DEFAULT_QUEUE,
            cap_upstream: false,
        }
    }

    /// A long path with no rate cap: only the delay.
    pub fn delay_only(one_way: Duration) -> Self {
        Self::new(0, one_way)
    }

    pub fn with_queue(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes;
        self
    }

    pub fn capped_both_ways(mut self) -> Self {
        self.cap_upstream = true;
        self
    }

    /// Changes the cap of every connection of this shape; a chunk already on the link finishes
    /// at the old rate.
    pub fn set_rate(&self, rate_bps: u64) {
        self.rate_bps.store(rate_bps, Ordering::Relaxed);
    }

    /// The cap in bits per second, `None` when uncapped.
    pub fn rate(&self) -> Option<u64> {
        match self.rate_bps.load(Ordering::Relaxed) {
            0 | u64::MAX => None,
            r => Some(r),
        }
    }
}

/// Listens on 127.0.0.1 (a port it picks) and forwards each connection to `target` through a
/// path of `shape` (each connection its own queues; all share the rate setting). Lives as long
/// as the test's runtime.
pub async fn shaping_proxy(target: SocketAddr, shape: Shape) -> SocketAddr {
    let socket = TcpSocket::new_v4().expect("proxy socket");
    // Accepted sockets inherit it: the client-to-server direction is bounded the same way.
    socket
        .set_recv_buffer_size(RCVBUF)
        .expect("proxy SO_RCVBUF");
    socket
        .bind("127.0.0.1:0".parse().unwrap())
        .expect("bind proxy");
    let listener = socket.listen(64).expect("listen proxy");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = connect(target).await else {
                continue;
            };
            // Pacing is the proxy's: Nagle would add its own waits to a chunk's delivery.
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let down = shape.clone();
            tokio::spawn(shaped(sr, cw, Some(down.rate_bps.clone()), down));
            let up = shape.clone();
            let cap = up.cap_upstream.then(|| up.rate_bps.clone());
            tokio::spawn(shaped(cr, sw, cap, up));
        }
    });
    addr
}

/// A connection to `target` whose receive buffer is [`RCVBUF`] (see there).
async fn connect(target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(RCVBUF)?;
    socket.connect(target).await
}

/// Listens on 127.0.0.1 (a port it picks) and forwards each connection to `target`, every
/// chunk delayed by `one_way` in each direction, with no rate cap.
pub async fn delay_proxy(target: SocketAddr, one_way: Duration) -> SocketAddr {
    shaping_proxy(target, Shape::delay_only(one_way)).await
}

/// Copies `from` to `to` through the three stages (see the module's text): `rate` is the cap
/// (`None`: this direction is not capped), `shape` the delay and the queue.
async fn shaped(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    rate: Option<Arc<AtomicU64>>,
    shape: Shape,
) {
    let queue_bytes = shape.queue_bytes.max(CHUNK);
    // The router queue's free bytes: taken by the reader, given back as the serializer sends.
    let room = Semaphore::new(queue_bytes);
    // The byte count above is the queue's real bound; a chunk holds at least a byte, so this
    // many slots are never all taken.
    let (queue_tx, mut queue_rx) = mpsc::channel::<(Instant, Vec<u8>)>(queue_bytes);
    let (delay_tx, mut delay_rx) = mpsc::channel::<(Instant, Vec<u8>)>(DELAY_SLOTS);

    let reader = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            // Room for a whole chunk before reading: a full queue stops the reading, and the
            // sender's socket fills up behind it.
            let Ok(permit) = room.acquire_many(CHUNK as u32).await else {
                break;
            };
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // The chunk keeps its n bytes of room until the serializer has sent it.
            permit.forget();
            room.add_permits(CHUNK - n);
            if queue_tx
                .send((Instant::now(), buf[..n].to_vec()))
                .await
                .is_err()
            {
                break;
            }
        }
        drop(queue_tx);
    };

    let serializer = async {
        // When the link finishes sending what it was given so far.
        let mut free_at = Instant::now();
        while let Some((queued_at, chunk)) = queue_rx.recv().await {
            // On a virtual schedule (from when the chunk was queued and when the link came
            // free, not from when this task woke up), so timer slack does not lower the rate.
            let start = free_at.max(queued_at);
            let bps = rate
                .as_ref()
                .map(|r| r.load(Ordering::Relaxed))
                .filter(|&r| r != 0 && r != u64::MAX);
            free_at = match bps {
                Some(bps) => start + Duration::from_secs_f64(chunk.len() as f64 * 8.0 / bps as f64),
                None => start,
            };
            tokio::time::sleep_until(free_at).await;
            room.add_permits(chunk.len());
            if delay_tx
                .send((free_at + shape.one_way, chunk))
                .await
                .is_err()
            {
                break;
            }
        }
        // A reader waiting for room it will never get stops instead.
        room.close();
        drop(delay_tx);
    };

    let deliverer = async {
        while let Some((due, chunk)) = delay_rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        // Closing the receiver stops the serializer, and through it the reader.
        drop(delay_rx);
        let _ = to.shutdown().await;
    };

    tokio::join!(reader, serializer, deliverer);
}

/// A WebSocket to the live wall of camwall at `base` (`http://127.0.0.1:PORT`), through a
/// [`shaping_proxy`] of `shape`.
pub async fn ws_over_link(base: &str, shape: &Shape) -> super::Ws {
    let target: SocketAddr = base.trim_start_matches("http://").parse().expect("address");
    let proxy = shaping_proxy(target, shape.clone()).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{proxy}/ws"))
        .await
        .expect("ws connect through the proxy");
    ws
}

/// A WebSocket to the live wall of camwall at `base` (`http://127.0.0.1:PORT`), through a
/// [`delay_proxy`] of `one_way` each way.
pub async fn ws_over_long_link(base: &str, one_way: Duration) -> super::Ws {
    ws_over_link(base, &Shape::delay_only(one_way)).await
}
