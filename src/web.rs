//! HTTP routes (warp 0.4): health, camera status, initialize, JPEG frames, the pages; and the
//! one place where errors become JSON answers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::hub::{CameraState, FrameError, Hub, Tier};

/// What the routes share.
#[derive(Clone)]
pub struct WebState {
    pub hub: Arc<Hub>,
    pub public_dir: PathBuf,
    /// Fires at shutdown: long-lived connections (WebSocket) close themselves.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// An error on its way to becoming a JSON answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn into_response(self) -> Response {
        json_error(self.status, self.code, self.message)
    }
}

/// A JSON error answer: `{"error": code, "message": text}`.
pub fn json_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        error: &'a str,
        message: String,
    }
    let mut res = warp::reply::json(&Body {
        error: code,
        message: message.into(),
    })
    .into_response();
    *res.status_mut() = status;
    res
}

fn json_ok<T: Serialize>(value: &T) -> Response {
    let mut res = warp::reply::json(value).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// All routes, with JSON errors for everything that does not match.
pub fn routes(state: WebState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let with_state = {
        let s = state.clone();
        warp::any().map(move || s.clone())
    };

    let health = warp::path!("health")
        .and(warp::get())
        .and(with_state.clone())
        .map(|s: WebState| health(&s));

    let status = warp::path!("api" / "ip-cameras" / "status")
        .and(warp::get())
        .and(with_state.clone())
        .map(|s: WebState| json_ok(&status_body(&s.hub)));

    let initialize = warp::path!("api" / "ip-cameras" / "initialize")
        .and(warp::post())
        .and(with_state.clone())
        .map(|s: WebState| initialize(&s));

    let frame = warp::path!("api" / "ip-cameras" / "frame" / String)
        .and(warp::get().or(warp::head()).unify())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::optional::<String>("if-none-match"))
        .and(with_state.clone())
        .then(frame);

    let ws = warp::path!("ws")
        .and(warp::ws())
        .and(warp::addr::remote())
        .and(with_state.clone())
        .map(
            |ws: warp::ws::Ws, peer: Option<std::net::SocketAddr>, s: WebState| {
                let peer = peer.map(|p| p.to_string()).unwrap_or_default();
                ws.max_message_size(crate::ws::MAX_WS_MESSAGE)
                    .max_frame_size(crate::ws::MAX_WS_MESSAGE)
                    .on_upgrade(move |socket| crate::ws::serve(socket, s.hub, s.shutdown, peer))
                    .into_response()
            },
        );

    let index = warp::path::end()
        .and(warp::get())
        .and(warp::fs::file(state.public_dir.join("index.html")));
    let advanced = warp::path!("advanced_test")
        .and(warp::get())
        .and(warp::fs::file(state.public_dir.join("advanced_test.html")));
    let files = warp::get().and(warp::fs::dir(state.public_dir.clone()));

    health
        .or(status)
        .unify()
        .or(initialize)
        .unify()
        .or(frame)
        .unify()
        .or(ws)
        .unify()
        .or(index.or(advanced).or(files).map(Reply::into_response))
        .unify()
        .recover(handle_rejection)
        .unify()
        .with(warp::trace::request())
}

async fn handle_rejection(err: Rejection) -> Result<Response, Infallible> {
    Ok(if err.is_not_found() {
        json_error(StatusCode::NOT_FOUND, "not_found", "no such path")
    } else if err.find::<warp::reject::InvalidQuery>().is_some() {
        json_error(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "the query string is malformed",
        )
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take that method",
        )
    } else if err.find::<warp::reject::InvalidHeader>().is_some() {
        json_error(
            StatusCode::BAD_REQUEST,
            "bad_header",
            "a request header is malformed",
        )
    } else {
        tracing::debug!(?err, "unhandled rejection");
        json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the request was not understood",
        )
    })
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    uptime_s: u64,
    cameras: HealthCameras,
}

#[derive(Serialize)]
struct HealthCameras {
    total: usize,
    enabled: usize,
    streaming: usize,
}

fn health(s: &WebState) -> Response {
    let cams = s.hub.cameras();
    let streaming = cams
        .iter()
        .filter(|c| c.state() == CameraState::Streaming)
        .count();
    json_ok(&Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: s.hub.started_at.elapsed().as_secs(),
        cameras: HealthCameras {
            total: cams.len(),
            enabled: cams.iter().filter(|c| c.config.enabled).count(),
            streaming,
        },
    })
}

#[derive(Serialize)]
struct StatusBody {
    uptime_s: u64,
    cameras: Vec<crate::hub::CameraStatus>,
}

fn status_body(hub: &Hub) -> StatusBody {
    StatusBody {
        uptime_s: hub.started_at.elapsed().as_secs(),
        cameras: hub.cameras().iter().map(|c| c.status()).collect(),
    }
}

fn initialize(s: &WebState) -> Response {
    #[derive(Serialize)]
    struct Body {
        restarted: Vec<String>,
        #[serde(flatten)]
        status: StatusBody,
    }
    let mut restarted = Vec::new();
    for cam in s.hub.cameras() {
        // Only a camera waiting out a backoff is woken; one connecting or streaming is left
        // alone, so calling this twice changes nothing.
        if cam.state() == CameraState::Backoff {
            cam.kick.notify_one();
            restarted.push(cam.id().to_string());
        }
    }
    json_ok(&Body {
        restarted,
        status: status_body(&s.hub),
    })
}

/// Parses `quality` (1..100); other parameters (cache busters such as `t=`) are ignored.
fn parse_quality(q: &HashMap<String, String>, default: u8) -> Result<u8, ApiError> {
    match q.get("quality") {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u8>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_quality",
                format!(
                    "quality must be an integer from 1 to 100, got {:?}",
                    truncate(v, 32)
                ),
            )),
        },
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn etag_matches(if_none_match: Option<&str>, etag: &str) -> bool {
    let Some(h) = if_none_match else { return false };
    h.split(',').map(str::trim).any(|t| {
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t == etag
    })
}

async fn frame(
    id: String,
    query: HashMap<String, String>,
    if_none_match: Option<String>,
    s: WebState,
) -> Response {
    let Some(cam) = s.hub.get(&id) else {
        return json_error(
            StatusCode::NOT_FOUND,
            "unknown_camera",
            format!("no camera with id {:?}", truncate(&id, 64)),
        );
    };
    let quality = match parse_quality(&query, s.hub.default_quality()) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    if !cam.config.enabled {
        return json_error(
            StatusCode::NOT_FOUND,
            "camera_disabled",
            "this camera is disabled",
        );
    }
    let tier = Tier { quality, scale: 1 };
    let enc = match cam.jpeg(tier).await {
        Ok(e) => e,
        Err(FrameError::NoFrameYet { retry_after_s }) => {
            let mut res = json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_frame_yet",
                format!("camera {id} has no frame yet (state: {:?})", cam.state()).to_lowercase(),
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            return res;
        }
        Err(e) => {
            tracing::warn!(camera = %id, error = %e, "encode failed");
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encode_failed",
                "the frame could not be encoded",
            );
        }
    };
    let not_modified = etag_matches(if_none_match.as_deref(), &enc.etag);
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
        assert!(etag_matches(Some("\"b\", W/\"a\""), "\"a\""));
        assert!(etag_matches(Some("*"), "\"a\""));
        assert!(!etag_matches(Some("\"b\""), "\"a\""));
        assert!(!etag_matches(None, "\"a\""));
    }

    #[test]
    fn quality_parsing() {
        let q = |v: &str| HashMap::from([("quality".to_string(), v.to_string())]);
        assert_eq!(parse_quality(&HashMap::new(), 85).ok(), Some(85));
        assert_eq!(parse_quality(&q("70"), 85).ok(), Some(70));
        for bad in ["0", "101", "abc", "-5", ""] {
            assert!(parse_quality(&q(bad), 85).is_err(), "{bad}");
        }
    }
}
