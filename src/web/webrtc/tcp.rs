//! ICE over TCP (RFC 6544) for peers whose UDP is blocked: connections on the HTTP port whose
//! first byte says RFC 4571 framing (a 2-byte length, then a STUN binding request) are handed
//! over by the accept loop (`web::server`). The first frame's ufrag names the session; then
//! every frame goes to it like a datagram, and its packets come back framed on the same
//! connection. Bounded: connections (as many as sessions), the frame size, a first frame
//! within a deadline, the queue of frames to write, and a connection that stays silent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use str0m::net::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::debug;

use super::{stun, WebRtc};

/// The first frame must come within this long.
const FIRST_FRAME_WITHIN: Duration = Duration::from_secs(10);
/// A connection silent this long is closed (a browser checks consent every few seconds).
const SILENT_FOR: Duration = Duration::from_secs(30);
/// A write blocked this long means the peer is gone.
const WRITE_WITHIN: Duration = Duration::from_secs(10);
/// Frames longer than this are not ICE, DTLS or SRTP from a browser.
const MAX_FRAME: usize = 4096;
/// Frames queued for writing; beyond it packets are dropped, as on a full UDP path.
const WRITE_QUEUE: usize = 512;

async fn read_frame(rd: &mut tokio::net::tcp::OwnedReadHalf) -> Option<Vec<u8>> {
    let len = usize::from(rd.read_u16().await.ok()?);
    if len == 0 || len > MAX_FRAME {
        return None;
    }
    let mut buf = vec![0u8; len];
    rd.read_exact(&mut buf).await.ok()?;
    Some(buf)
}

/// Serves one ICE-TCP connection until it ends; `slot` is its place under the connection caps.
pub(super) async fn serve(
    rtc: Arc<WebRtc>,
    stream: TcpStream,
    peer: SocketAddr,
    slot: Box<dyn Send>,
) {
    let _slot = slot;
    if rtc.tcp_conns.len() >= rtc.options.max_sessions {
        return;
    }
    let (mut rd, mut wr) = stream.into_split();
    let Ok(Some(first)) = tokio::time::timeout(FIRST_FRAME_WITHIN, read_frame(&mut rd)).await
    else {
        return;
    };
    let Some(id) = stun::local_ufrag(&first).and_then(|u| rtc.by_ufrag.get(u).map(|id| id.clone()))
    else {
        debug!(%peer, "ICE-TCP connection for no session; closed");
        return;
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    rtc.tcp_conns.insert(peer, tx);
    let writer = tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            let mut framed = Vec::with_capacity(data.len() + 2);
            framed.extend_from_slice(&(data.len() as u16).to_be_bytes());
            framed.extend_from_slice(&data);
            match tokio::time::timeout(WRITE_WITHIN, wr.write_all(&framed)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
    });
    let mut frame = Some(first);
    while let Some(data) = frame.take() {
        if !rtc.deliver(&id, Protocol::Tcp, peer, Bytes::from(data)) {
            break;
        }
        frame = tokio::time::timeout(SILENT_FOR, read_frame(&mut rd))
            .await
            .ok()
            .flatten();
    }
    rtc.tcp_conns.remove(&peer);
    writer.abort();
}
