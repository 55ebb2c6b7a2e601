//! The replay routes: `GET /api/ip-cameras/{id}/replay` (what the ring holds), `GET
//! /api/ip-cameras/frame/{id}?at=<unix_ms>` (the picture at an instant; `frame` hands it
//! here) and `GET /api/ip-cameras/{id}/clip.mp4?from=&to=` (a span as fragmented MP4,
//! streamed while it is muxed).

use std::collections::HashMap;

use futures_util::StreamExt;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;

use super::error::ApiError;
use super::params::{lookup, FrameParams};
use super::state::WebState;
use super::status::json_ok;
use crate::access::guard::Principal;
use crate::replay::clip::MAX_SPAN_MS;
use crate::replay::read::ReadError;
use crate::replay::Replay;

/// The ring of a camera the asker may see, or the error to answer.
fn ring_of<'s>(s: &'s WebState, who: &Principal, id: &str) -> Result<&'s Replay, ApiError> {
    if !who.scope.allows(id) {
        return Err(ApiError::unknown_camera(id));
    }
    let cam = lookup(&s.hub, id)?;
    match &s.replay {
        Some(r) if cam.config().replay != Some(false) => Ok(r),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "replay_off",
            "replay is off for this camera (server.replay.minutes is 0, or the camera sets \"replay\": false)",
        )),
    }
}

fn not_in_replay() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_in_replay",
        "nothing recorded at that instant: see GET /api/ip-cameras/{id}/replay for the span kept",
    )
}

fn read_error(e: ReadError) -> ApiError {
    match e {
        ReadError::NotInReplay => not_in_replay(),
        ReadError::NotVideo => ApiError::new(StatusCode::BAD_REQUEST, "not_video", e.to_string()),
        ReadError::Busy => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()),
        e => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "replay_unreadable",
            e.to_string(),
        ),
    }
}

/// A Unix-ms instant parameter.
fn instant(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    q.get(name)
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                ApiError::bad_parameter(format!(
                    "{name} must be a time in milliseconds since the Unix epoch, got {:?}",
                    v.chars().take(32).collect::<String>()
                ))
            })
        })
        .transpose()
}

/// `GET /api/ip-cameras/{id}/replay` (asked of the camera's node in a cluster).
pub async fn span(id: String, who: Principal, s: WebState) -> Response {
    let ring = match ring_of(&s, &who, &id) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match ring.span_of(&id).await {
        Ok(span) => json_ok(&span),
        Err(e) => read_error(e).into_response(),
    }
}

/// `?at=` on the frame route: the recorded picture at or just before that instant.
pub async fn frame_at(
    id: &str,
    who: &Principal,
    q: &HashMap<String, String>,
    s: &WebState,
) -> Response {
    let ring = match ring_of(s, who, id) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let (at, p) = match (
        instant(q, "at"),
        FrameParams::parse(q, s.hub.qualities().best()),
    ) {
        (Ok(Some(at)), Ok(p)) => (at, p),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
        (Ok(None), _) => return ApiError::bad_parameter("at is required".into()).into_response(),
    };
    let Some(stream) = s.hub.stream(id) else {
        return ApiError::unknown_camera(id).into_response();
    };
    let tier = stream.tier(p.quality, p.max_width);
    match ring.picture_at(id, at, tier).await {
        Ok((jpeg, stamp)) => {
            let mut r = Response::new(jpeg.data.into());
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
            // An instant in the past never changes: caches may keep it.
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=3600"),
            );
            h.insert("x-frame-time", HeaderValue::from(stamp.captured_unix_ms));
            h.insert("x-pts", HeaderValue::from(stamp.pts_us));
            h.insert("x-frame-width", HeaderValue::from(jpeg.width));
            h.insert("x-frame-height", HeaderValue::from(jpeg.height));
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("x-frame-time, x-pts, x-frame-width, x-frame-height"),
            );
            r
        }
        Err(e) => read_error(e).into_response(),
    }
}

/// `GET /api/ip-cameras/{id}/clip.mp4?from=&to=`.
pub async fn clip(id: String, who: Principal, q: HashMap<String, String>, s: WebState) -> Response {
    let ring = match ring_of(&s, &who, &id) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let (from, to) = match (instant(&q, "from"), instant(&q, "to")) {
        (Ok(Some(f)), Ok(Some(t))) => (f, t),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
        _ => {
            return ApiError::bad_parameter("from and to are required (Unix ms)".into())
                .into_response()
        }
    };
    if to <= from || to - from > MAX_SPAN_MS {
        return ApiError::bad_parameter(format!(
            "to must be after from, by at most {} minutes",
            MAX_SPAN_MS / 60_000
        ))
        .into_response();
    }
    let (first, chunks) = match ring.clip(&id, from, to).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "as many clips as allowed are being made; try again shortly",
            )
            .into_response()
        }
        Err(e) => return read_error(e).into_response(),
    };
    let body = futures_util::stream::once(async { first })
        .chain(tokio_stream::wrappers::ReceiverStream::new(chunks))
        .map(Ok::<bytes::Bytes, std::convert::Infallible>);
    let mut res = warp::Reply::into_response(warp::reply::stream(body));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{id}-{from}.mp4\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}
