//! A TCP proxy that makes a long link on loopback: every byte waits a fixed delay in each
//! direction before it goes on (no rate cap), as on a path to another continent. Bounded: at
//! most `QUEUED` chunks wait per direction; beyond that the reader stops reading, so TCP's
//! own backpressure reaches the sender as on a real path.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

const QUEUED: usize = 4096;

/// Listens on 127.0.0.1 (a port it picks) and forwards each connection to `target`, every
/// chunk delayed by `one_way` in each direction. Lives as long as the test's runtime.
pub async fn delay_proxy(target: SocketAddr, one_way: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(target).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(delayed(cr, sw, one_way));
            tokio::spawn(delayed(sr, cw, one_way));
        }
    });
    addr
}

/// Copies `from` to `to`, each chunk held until `delay` after it was read.
async fn delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUED);
    let writer = tokio::spawn(async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at + delay).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || tx.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// A WebSocket to the live wall of camwall at `base` (`http://127.0.0.1:PORT`), through a
/// [`delay_proxy`] of `one_way` each way.
pub async fn ws_over_long_link(base: &str, one_way: Duration) -> super::Ws {
    let target: SocketAddr = base.trim_start_matches("http://").parse().expect("address");
    let proxy = delay_proxy(target, one_way).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{proxy}/ws"))
        .await
        .expect("ws connect through the proxy");
    ws
}
