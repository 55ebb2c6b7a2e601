//! `GET /api/ip-cameras/mjpeg/{id}`: `multipart/x-mixed-replace` for `<img>`, VLC, ffmpeg and
//! home-automation MJPEG integrations, fed by the same per-tier fan-out as the WebSocket.
//!
//! The body stream is polled only when the connection can take more, so a slow reader lags
//! its broadcast receiver and skips to the newest frame: nothing queues per client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use warp::http::{header, HeaderValue};
use warp::reply::Response;

use super::frame::{frame_error, resolve_request};
use super::WebState;
use crate::hub::{Encoded, Tier};

/// Multipart boundary.
pub const BOUNDARY: &str = "camwallframe";
/// With no new frame for this long the last one is sent again, so that clients with read
/// timeouts (browsers, home-automation integrations) keep the stream open.
pub const KEEPALIVE_AFTER_IDLE: Duration = Duration::from_secs(10);

/// One multipart part: headers, the JPEG (shared, not copied), the closing CRLF.
fn part(e: &Encoded) -> [Bytes; 3] {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Frame-Seq: {}\r\nX-Capture-Time: {}\r\n\r\n",
        e.jpeg.data.len(),
        e.seq,
        e.captured_unix_ms
    );
    [
        Bytes::from(head),
        e.jpeg.data.clone(),
        Bytes::from_static(b"\r\n"),
    ]
}

struct StreamState {
    removed: tokio_util::sync::CancellationToken,
    /// This client's place under the caps, given back when the stream ends.
    _slot: crate::auth::ClientSlot,
    tier: Tier,
    frames: BroadcastStream<Arc<crate::fanout::Published>>,
    last: Option<Encoded>,
    first: bool,
    shutdown: tokio_util::sync::CancellationToken,
}

pub async fn mjpeg(
    id: String,
    query: HashMap<String, String>,
    peer: Option<std::net::SocketAddr>,
    s: WebState,
) -> Response {
    let (cam, p, tier) = match resolve_request(&s.hub, &id, &query) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let Some(slot) = s.limits.acquire(crate::auth::ClientKind::Mjpeg, peer) else {
        return super::too_many_clients();
    };
    // The newest frame goes out first, so players show a picture at once.
    let first = match cam.jpeg(tier).await {
        Ok(e) => e,
        Err(e) => return frame_error(&cam, e),
    };
    // The lane thins to `max_fps` before encoding.
    let lane = crate::fanout::Lane::new(tier, p.max_fps);
    let frames = BroadcastStream::new(crate::fanout::subscribe(&cam, lane));
    let state = StreamState {
        removed: cam.removed.clone(),
        _slot: slot,
        tier,
        frames,
        last: Some(first),
        first: true,
        shutdown: s.shutdown.clone(),
    };
    let body = futures_util::stream::unfold(state, next_part).flat_map(|parts| {
        futures_util::stream::iter(parts.map(Ok::<Bytes, std::convert::Infallible>))
    });
    let mut res = warp::Reply::into_response(warp::reply::stream(body));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("multipart/x-mixed-replace; boundary=camwallframe"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

async fn next_part(mut st: StreamState) -> Option<([Bytes; 3], StreamState)> {
    if st.first {
        st.first = false;
        let p = part(st.last.as_ref()?);
        return Some((p, st));
    }
    loop {
        let next = tokio::select! {
            _ = st.shutdown.cancelled() => return None,
            // The camera was removed: the stream ends.
            _ = st.removed.cancelled() => return None,
            n = tokio::time::timeout(KEEPALIVE_AFTER_IDLE, st.frames.next()) => n,
        };
        match next {
            // Idle camera: repeat the last frame as a keepalive.
            Err(_) => {
                let p = part(st.last.as_ref()?);
                return Some((p, st));
            }
            Ok(None) => return None,
            // Lagged: a newer frame is already waiting; take that one.
            Ok(Some(Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)))) => {
                crate::metrics::frames_skipped(crate::auth::ClientKind::Mjpeg, n);
                continue;
            }
            Ok(Some(Ok(published))) => {
                let e = &published.encoded;
                if st.last.as_ref().is_some_and(|l| l.seq >= e.seq) || published.tier != st.tier {
                    continue;
                }
                st.last = Some(e.clone());
                crate::metrics::frame_sent(crate::auth::ClientKind::Mjpeg, e.jpeg.data.len());
                return Some((part(e), st));
            }
        }
    }
}
