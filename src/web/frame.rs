//! `GET /api/ip-cameras/frame/{id}`: the newest JPEG through the TTL cache, ETag/304, and
//! long-poll (`after=<etag>&wait_ms=N`, counted under the client caps while it waits) for
//! scripts that follow a camera; `?at=<unix_ms>` answers from the replay ring (`replay`).

use std::collections::HashMap;

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;

use super::error::ApiError;
use super::params::resolve_request;
use super::state::WebState;
use crate::access::guard::Principal;
use crate::access::limits::ClientKind;
use crate::hub::{Encoded, Still};

use crate::hub::cache::etag_matches;

pub async fn frame(
    id: String,
    who: Principal,
    query: HashMap<String, String>,
    if_none_match: Option<String>,
    s: WebState,
) -> Response {
    let peer = who.peer;
    // A camera outside the asker's scope does not exist for them.
    if !who.scope.allows(&id) {
        return ApiError::unknown_camera(&id).into_response();
    }
    if query.contains_key("at") {
        return super::replay::frame_at(&id, &who, &query, &s).await;
    }
    let (stream, p, kind) = match resolve_request(&s.hub, &id, &query) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let tier = stream.tier(p.quality, p.max_width);
    let enc = match p.after.clone() {
        Some(after) if p.is_long_poll() => {
            // A long-poll holds its connection up to a minute: it takes a place under the caps
            // like a stream does.
            let _slot = match who.admit(ClientKind::LongPoll) {
                Ok(slot) => slot,
                Err(refused) => return ApiError::from(refused).into_response(),
            };
            stream
                .attach(Still {
                    tier,
                    after: Some((after, p.wait)),
                })
                .await
        }
        _ => stream.attach(Still { tier, after: None }).await,
    };
    let cam = &stream.camera;
    let enc = match enc {
        Ok(e) => e,
        Err(e) => return ApiError::frame(cam, e).into_response(),
    };
    let known = if_none_match.as_deref().or(p.after.as_deref());
    let not_modified = etag_matches(known, &enc.etag);
    crate::obs::metrics::polled(peer, (!not_modified).then_some(enc.jpeg.data.len()));
    let mut r = jpeg_response(&enc, not_modified);
    r.headers_mut().insert(
        "x-stream",
        warp::http::HeaderValue::from_static(stream_name(kind)),
    );
    r
}

/// `main` or `sub`, as headers name a stream.
pub fn stream_name(kind: crate::hub::StreamKind) -> &'static str {
    match kind {
        crate::hub::StreamKind::Main => "main",
        crate::hub::StreamKind::Sub => "sub",
    }
}

fn jpeg_response(enc: &Encoded, not_modified: bool) -> Response {
    let mut res = if not_modified {
        let mut r = Response::new(bytes::Bytes::new().into());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(enc.jpeg.data.clone().into());
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
        r
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&enc.etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-frame-seq", HeaderValue::from(enc.seq));
    h.insert(
        "x-capture-time",
        HeaderValue::from(enc.stamp.captured_unix_ms),
    );
    h.insert("x-pts", HeaderValue::from(enc.stamp.pts_us));
    h.insert("x-frame-width", HeaderValue::from(enc.jpeg.width));
    h.insert("x-frame-height", HeaderValue::from(enc.jpeg.height));
    h.insert(
        "x-jpeg-quality",
        HeaderValue::from(u16::from(enc.jpeg.quality)),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(
            "etag, x-frame-seq, x-capture-time, x-pts, x-frame-width, x-frame-height, x-jpeg-quality",
        ),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_matching() {
        assert!(etag_matches(Some("\"a\""), "\"a\""));
        assert!(etag_matches(Some("a"), "\"a\""));
        assert!(etag_matches(Some("\"b\", W/\"a\""), "\"a\""));
        assert!(etag_matches(Some("*"), "\"a\""));
        assert!(!etag_matches(Some("\"b\""), "\"a\""));
        assert!(!etag_matches(None, "\"a\""));
    }
}
