//! `GET /api/ip-cameras/frame/{id}`: the newest JPEG through the TTL cache, ETag/304, and
//! long-poll (`after=<etag>&wait_ms=N`) for scripts that follow a camera. Also the query
//! parameters and camera lookup shared with the MJPEG route.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;

use super::{json_error, ApiError, WebState};
use crate::hub::{Camera, Encoded, FrameError, Hub, Tier};

/// Longest long-poll wait a client may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Query parameters of the frame and stream routes. Unknown ones (cache busters such as `t=`,
/// go2rtc's `src=`) are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameParams {
    pub quality: u8,
    pub max_width: Option<u32>,
    pub max_fps: Option<f64>,
    pub after: Option<String>,
    pub wait: Duration,
}

fn bad(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

fn shown(v: &str) -> String {
    v.chars().take(32).collect()
}

impl FrameParams {
    pub fn parse(q: &HashMap<String, String>, default_quality: u8) -> Result<Self, ApiError> {
        let quality = match q.get("quality") {
            None => default_quality,
            Some(v) => match v.trim().parse::<u8>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    return Err(bad(
                        "bad_quality",
                        format!(
                            "quality must be an integer from 1 to 100, got {:?}",
                            shown(v)
                        ),
                    ))
                }
            },
        };
        let max_width = match q.get("max_width") {
            None => None,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(bad(
                        "bad_parameter",
                        format!("max_width must be a positive integer, got {:?}", shown(v)),
                    ))
                }
            },
        };
        let max_fps = match q.get("max_fps") {
            None => None,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(f) if f.is_finite() && f > 0.0 && f <= 240.0 => Some(f),
                _ => {
                    return Err(bad(
                        "bad_parameter",
                        format!(
                            "max_fps must be a number in 0 < x <= 240, got {:?}",
                            shown(v)
                        ),
                    ))
                }
            },
        };
        let wait = match q.get("wait_ms") {
            None => Duration::ZERO,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(ms) if Duration::from_millis(ms) <= MAX_WAIT => Duration::from_millis(ms),
                _ => {
                    return Err(bad(
                        "bad_parameter",
                        format!(
                            "wait_ms must be an integer from 0 to {}, got {:?}",
                            MAX_WAIT.as_millis(),
                            shown(v)
                        ),
                    ))
                }
            },
        };
        let after = q
            .get("after")
            .map(|a| a.trim().trim_matches('"').to_string());
        Ok(Self {
            quality,
            max_width,
            max_fps,
            after,
            wait,
        })
    }
}

/// The camera with `id`, or the JSON error for it.
pub fn lookup(hub: &Hub, id: &str) -> Result<Arc<Camera>, ApiError> {
    let cam = hub.get(id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_camera",
            format!(
                "no camera with id {:?}",
                id.chars().take(64).collect::<String>()
            ),
        )
    })?;
    if !cam.config().enabled {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "camera_disabled",
            "this camera is disabled",
        ));
    }
    Ok(cam)
}

/// The camera, parameters and tier a frame or stream request asks for.
pub fn resolve_request(
    hub: &Hub,
    id: &str,
    query: &HashMap<String, String>,
) -> Result<(Arc<Camera>, FrameParams, Tier), ApiError> {
    let cam = lookup(hub, id)?;
    let p = FrameParams::parse(query, hub.default_quality())?;
    let tier = Tier {
        quality: p.quality,
        scale: crate::ws::scale_for_width(cam.status_width(), p.max_width),
    };
    Ok((cam, p, tier))
}

/// The JSON answer for a frame that cannot be had.
pub fn frame_error(cam: &Camera, e: FrameError) -> Response {
    match e {
        FrameError::NoFrameYet { retry_after_s } => {
            let mut res = json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_frame_yet",
                format!(
                    "camera {} has no frame yet (state: {:?})",
                    cam.id(),
                    cam.state()
                )
                .to_lowercase(),
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            res
        }
        e => {
            tracing::warn!(camera = %cam.id(), error = %e, "encode failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encode_failed",
                "the frame could not be encoded",
            )
        }
    }
}

pub fn etag_matches(if_none_match: Option<&str>, etag: &str) -> bool {
    let Some(h) = if_none_match else { return false };
    let bare = etag.trim_matches('"');
    h.split(',').map(str::trim).any(|t| {
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t.trim_matches('"') == bare
    })
}

pub async fn frame(
    id: String,
    query: HashMap<String, String>,
    if_none_match: Option<String>,
    peer: Option<std::net::SocketAddr>,
    s: WebState,
) -> Response {
    let (cam, p, tier) = match resolve_request(&s.hub, &id, &query) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let enc = match p.after.as_deref() {
        Some(after) if !p.wait.is_zero() => match newer_than(&cam, tier, after, p.wait).await {
            Ok(e) => e,
            Err(e) => return frame_error(&cam, e),
        },
        _ => match cam.jpeg(tier).await {
            Ok(e) => e,
            Err(e) => return frame_error(&cam, e),
        },
    };
    let known = if_none_match.as_deref().or(p.after.as_deref());
    let not_modified = etag_matches(known, &enc.etag);
    crate::metrics::polled(peer, (!not_modified).then_some(enc.jpeg.data.len()));
    jpeg_response(&enc, not_modified)
}

/// Waits up to `wait` for a frame whose tag differs from `after`; the current one if none came.
async fn newer_than(
    cam: &Camera,
    tier: Tier,
    after: &str,
    wait: Duration,
) -> Result<Encoded, FrameError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut frames = cam.subscribe();
    let mut enc = loop {
        match cam.jpeg(tier).await {
            Ok(e) => break e,
            // No frame yet: wait for the first one within the same budget.
            Err(FrameError::NoFrameYet { .. }) => {
                match tokio::time::timeout_at(deadline, frames.changed()).await {
                    Ok(Ok(())) => continue,
                    _ => return cam.jpeg(tier).await,
                }
            }
            Err(e) => return Err(e),
        }
    };
    while etag_matches(Some(after), &enc.etag) {
        match tokio::time::timeout_at(deadline, frames.changed()).await {
            Ok(Ok(())) => {
                let seq = frames.borrow_and_update().as_ref().map_or(0, |f| f.seq);
                enc = cam.jpeg_at_least(tier, seq).await?;
            }
            _ => break,
        }
    }
    Ok(enc)
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
    h.insert("x-capture-time", HeaderValue::from(enc.captured_unix_ms));
    h.insert("x-frame-width", HeaderValue::from(enc.jpeg.width));
    h.insert("x-frame-height", HeaderValue::from(enc.jpeg.height));
    h.insert(
        "x-jpeg-quality",
        HeaderValue::from(u16::from(enc.jpeg.quality)),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(
            "etag, x-frame-seq, x-capture-time, x-frame-width, x-frame-height, x-jpeg-quality",
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

    #[test]
    fn params() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let p = FrameParams::parse(&q(&[]), 85).unwrap();
        assert_eq!((p.quality, p.max_width, p.wait), (85, None, Duration::ZERO));
        let p = FrameParams::parse(
            &q(&[
                ("quality", "70"),
                ("max_width", "320"),
                ("after", "\"x\""),
                ("wait_ms", "500"),
                ("t", "1"),
            ]),
            85,
        )
        .unwrap();
        assert_eq!(
            (p.quality, p.max_width, p.after.as_deref()),
            (70, Some(320), Some("x"))
        );
        assert_eq!(p.wait, Duration::from_millis(500));
        for bad in [
            &[("quality", "0")][..],
            &[("quality", "abc")],
            &[("quality", "101")],
            &[("max_width", "0")],
            &[("max_fps", "-1")],
            &[("max_fps", "NaN")],
            &[("wait_ms", "999999")],
        ] {
            assert!(FrameParams::parse(&q(bad), 85).is_err(), "{bad:?}");
        }
    }
}
