//! `GET /api/ip-cameras/mjpeg/{id}`: `multipart/x-mixed-replace` for `<img>`, VLC, ffmpeg and
//! home-automation MJPEG integrations, fed by the same per-tier fan-out as the WebSocket.
//!
//! The body stream is polled only when the connection can take more, so a slow reader lags
//! its broadcast receiver and skips to the newest frame: nothing queues per client. A reader
//! that takes nothing at all is disconnected by the server's send-stall deadline
//! (`server::SEND_STALL_TIMEOUT`), which drops this stream and gives its client slot back.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use warp::http::{header, HeaderValue};
use warp::reply::Response;

use super::error::ApiError;
use super::params::resolve_request;
use super::state::WebState;
use crate::access::guard::Principal;
use crate::access::limits::{ClientKind, ClientSlot, SESSION_CHECK_EVERY};
use crate::hub::{Encoded, LaneOutput, Pictures, Still};
use crate::media::tier::{LaneAsk, LaneQuality, Tier};

/// Multipart boundary.
pub const BOUNDARY: &str = "camwallframe";
/// The stream's content type; names [`BOUNDARY`] (a test checks they agree).
const CONTENT_TYPE: &str = "multipart/x-mixed-replace; boundary=camwallframe";
/// With no new frame for this long the last one is sent again, so that clients with read
/// timeouts (browsers, home-automation integrations) keep the stream open.
pub const KEEPALIVE_AFTER_IDLE: Duration = Duration::from_secs(10);

/// One multipart part: headers, the JPEG (shared, not copied), the closing CRLF.
fn part(e: &Encoded) -> [Bytes; 3] {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Frame-Seq: {}\r\nX-Capture-Time: {}\r\nX-Pts: {}\r\n\r\n",
        e.jpeg.data.len(),
        e.seq,
        e.stamp.captured_unix_ms,
        e.stamp.pts_us
    );
    [
        Bytes::from(head),
        e.jpeg.data.clone(),
        Bytes::from_static(b"\r\n"),
    ]
}

struct StreamState {
    removed: tokio_util::sync::CancellationToken,
    /// This client's place under the caps, given back when the stream ends; it carries the
    /// login session the stream ends with.
    slot: ClientSlot,
    /// When the session was last checked.
    checked: tokio::time::Instant,
    tier: Tier,
    frames: LaneOutput,
    last: Option<Encoded>,
    first: bool,
    shutdown: tokio_util::sync::CancellationToken,
}

pub async fn mjpeg(
    id: String,
    who: Principal,
    query: HashMap<String, String>,
    s: WebState,
) -> Response {
    // A camera outside the asker's scope does not exist for them.
    if !who.scope.allows(&id) {
        return ApiError::unknown_camera(&id).into_response();
    }
    let (stream, p, _) = match resolve_request(&s.hub, &id, &query) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let slot = match who.admit(ClientKind::Mjpeg) {
        Ok(slot) => slot,
        Err(refused) => return ApiError::from(refused).into_response(),
    };
    // A live lane: the quality snapped to a rung, thinned to `max_fps` before encoding; the
    // fan-out may serve a nearby lane when the camera has as many as it may.
    let ask = LaneAsk {
        quality: LaneQuality::Fixed(p.quality),
        max_width: p.max_width,
        max_fps: p.max_fps,
    };
    let want = stream.lane(&ask, tokio::time::Instant::now());
    let frames = stream.attach(Pictures(want));
    let tier = frames.lane().tier;
    let cam = &stream.camera;
    // The newest frame goes out first, so players show a picture at once.
    let first = match stream.attach(Still { tier, after: None }).await {
        Ok(e) => e,
        Err(e) => return ApiError::frame(cam, e).into_response(),
    };
    let state = StreamState {
        removed: cam.removed().clone(),
        slot,
        checked: tokio::time::Instant::now(),
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
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
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
        // A logout, an expiry or a change of the user ends the stream (keepalives come at
        // least every KEEPALIVE_AFTER_IDLE, so an idle camera is checked too).
        if st.checked.elapsed() >= SESSION_CHECK_EVERY {
            st.checked = tokio::time::Instant::now();
            if !st.slot.session_stands() {
                tracing::debug!("MJPEG stream: its session ended");
                return None;
            }
        }
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
                crate::obs::metrics::frames_skipped(ClientKind::Mjpeg.label(), n);
                continue;
            }
            Ok(Some(Ok(published))) => {
                let e = &published.encoded;
                if st.last.as_ref().is_some_and(|l| l.seq >= e.seq) || published.tier != st.tier {
                    continue;
                }
                st.last = Some(e.clone());
                crate::obs::metrics::frame_sent(ClientKind::Mjpeg.label(), e.jpeg.data.len());
                return Some((part(e), st));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_names_the_boundary() {
        assert!(CONTENT_TYPE.ends_with(&format!("boundary={BOUNDARY}")));
    }
}
