//! HTTP routes (warp 0.4): health, camera status, initialize, the pages, and the wiring of
//! the frame, MJPEG and WebSocket routes; the one place where errors become JSON answers.

mod cameras;
mod files;
mod frame;
mod mjpeg;

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::auth::Role;
use crate::hub::{CameraState, Hub};

/// What the routes share.
#[derive(Clone)]
pub struct WebState {
    pub hub: Arc<Hub>,
    pub public_dir: PathBuf,
    /// Fires at shutdown: long-lived connections (WebSocket) close themselves.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Runtime camera changes.
    pub manager: Arc<crate::control::Manager>,
    pub auth: Arc<crate::auth::Auth>,
    pub limits: Arc<crate::auth::ClientLimits>,
    pub allowed_origins: Arc<Vec<String>>,
}

/// An error on its way to becoming a JSON answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The offending field of a request body, when there is one.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn into_response(self) -> Response {
        let mut res = json_error(self.status, self.code, self.message.clone());
        if let Some(field) = self.field {
            let body =
                serde_json::json!({"error": self.code, "message": self.message, "field": field});
            res = warp::reply::json(&body).into_response();
            *res.status_mut() = self.status;
        }
        res
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
    let viewer = || crate::auth::require(state.auth.clone(), Role::Viewer);
    let peer = || {
        warp::ext::optional::<crate::server::PeerAddr>()
            .map(|p: Option<crate::server::PeerAddr>| p.map(|p| p.0))
    };
    let admin = || crate::auth::require(state.auth.clone(), Role::Admin);

    let health = warp::path!("health")
        .and(warp::get())
        .and(with_state.clone())
        .map(|s: WebState| health(&s));

    let status = warp::path!("api" / "ip-cameras" / "status")
        .and(warp::get())
        .and(viewer())
        .and(with_state.clone())
        .map(|s: WebState| json_ok(&status_body(&s.hub)));

    let initialize = warp::path!("api" / "ip-cameras" / "initialize")
        .and(warp::post())
        .and(admin())
        .and(with_state.clone())
        .map(|s: WebState| initialize(&s));

    let get = || warp::get().or(warp::head()).unify();
    let query = || warp::query::<HashMap<String, String>>();
    let frame = warp::path!("api" / "ip-cameras" / "frame" / String)
        .and(get())
        .and(viewer())
        .and(query())
        .and(warp::header::optional::<String>("if-none-match"))
        .and(peer())
        .and(with_state.clone())
        .then(frame::frame);
    // go2rtc's paths, so tools written for go2rtc work unchanged.
    let frame_alias = warp::path!("api" / "frame.jpeg")
        .and(get())
        .and(viewer())
        .and(query())
        .and(warp::header::optional::<String>("if-none-match"))
        .and(peer())
        .and(with_state.clone())
        .then(|q: HashMap<String, String>, inm, peer, s| async move {
            match q.get("src") {
                Some(id) => frame::frame(id.clone(), q, inm, peer, s).await,
                None => missing_src(),
            }
        });
    let mjpeg = warp::path!("api" / "ip-cameras" / "mjpeg" / String)
        .and(get())
        .and(viewer())
        .and(query())
        .and(peer())
        .and(with_state.clone())
        .then(mjpeg::mjpeg);
    let mjpeg_alias = warp::path!("api" / "stream.mjpeg")
        .and(get())
        .and(viewer())
        .and(query())
        .and(peer())
        .and(with_state.clone())
        .then(|q: HashMap<String, String>, peer, s| async move {
            match q.get("src") {
                Some(id) => mjpeg::mjpeg(id.clone(), q, peer, s).await,
                None => missing_src(),
            }
        });

    let body = || warp::body::content_length_limit(cameras::MAX_BODY).and(warp::body::bytes());
    let cams_list = warp::path!("api" / "ip-cameras")
        .and(warp::get())
        .and(viewer())
        .and(with_state.clone())
        .then(cameras::list);
    let cams_add = warp::path!("api" / "ip-cameras")
        .and(warp::post())
        .and(admin())
        .and(body())
        .and(with_state.clone())
        .then(cameras::add);
    let cams_get = warp::path!("api" / "ip-cameras" / String)
        .and(warp::get())
        .and(viewer())
        .and(with_state.clone())
        .then(cameras::get_one);
    let cams_put = warp::path!("api" / "ip-cameras" / String)
        .and(warp::put())
        .and(admin())
        .and(body())
        .and(with_state.clone())
        .then(cameras::replace);
    let cams_patch = warp::path!("api" / "ip-cameras" / String)
        .and(warp::patch())
        .and(admin())
        .and(body())
        .and(with_state.clone())
        .then(cameras::patch);
    let cams_delete = warp::path!("api" / "ip-cameras" / String)
        .and(warp::delete())
        .and(admin())
        .and(with_state.clone())
        .then(cameras::remove);
    let manage = cams_list
        .or(cams_add)
        .unify()
        .or(cams_get)
        .unify()
        .or(cams_put)
        .unify()
        .or(cams_patch)
        .unify()
        .or(cams_delete)
        .unify();

    let ws = warp::path!("ws")
        .and(viewer())
        .and(warp::ws())
        .and(peer())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("host"))
        .and(with_state.clone())
        .map(
            |ws: warp::ws::Ws,
             peer: Option<std::net::SocketAddr>,
             origin: Option<String>,
             host: Option<String>,
             s: WebState| {
                // A page on another site must not watch the cameras with this browser's access.
                if !crate::auth::origin_allowed(
                    origin.as_deref(),
                    host.as_deref(),
                    &s.allowed_origins,
                ) {
                    return json_error(
                        StatusCode::FORBIDDEN,
                        "bad_origin",
                        "this origin may not open the WebSocket (see server.allowed_origins)",
                    );
                }
                let Some(slot) = s.limits.acquire(crate::auth::ClientKind::WebSocket, peer) else {
                    return too_many_clients();
                };
                let peer = peer.map(|p| p.to_string()).unwrap_or_default();
                ws.max_message_size(crate::ws::MAX_WS_MESSAGE)
                    .max_frame_size(crate::ws::MAX_WS_MESSAGE)
                    .on_upgrade(move |socket| {
                        let events = s.manager.events();
                        async move {
                            crate::ws::serve(socket, s.hub, s.shutdown, events, peer).await;
                            drop(slot);
                        }
                    })
                    .into_response()
            },
        );

    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(viewer())
        .and(with_state.clone())
        .map(|s: WebState| {
            let mut r = Response::new(crate::metrics::render(&s.hub, &s.limits).into());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        });

    let files = {
        let root = state.public_dir.clone();
        warp::get()
            .and(warp::path::full())
            .and_then(move |p| files::serve(root.clone(), p))
    };

    health
        .or(metrics)
        .unify()
        .or(status)
        .unify()
        .or(initialize)
        .unify()
        .or(frame)
        .unify()
        .or(frame_alias)
        .unify()
        .or(mjpeg)
        .unify()
        .or(mjpeg_alias)
        .unify()
        .or(ws)
        .unify()
        .or(manage)
        .unify()
        .or(files)
        .unify()
        .recover(handle_rejection)
        .unify()
        .with(warp::log::custom(|info: warp::log::Info<'_>| {
            crate::metrics::observe_http(
                info.path(),
                info.method().as_str(),
                info.status().as_u16(),
                info.elapsed(),
            );
        }))
        .with(warp::trace::request())
}

/// Over a client cap: refused, nothing else disturbed.
pub fn too_many_clients() -> Response {
    let mut res = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_clients",
        "too many streaming clients; try again later",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    res
}

fn missing_src() -> Response {
    json_error(
        StatusCode::BAD_REQUEST,
        "missing_src",
        "src=<camera id> is required",
    )
}

async fn handle_rejection(err: Rejection) -> Result<Response, Infallible> {
    Ok(if let Some(d) = err.find::<crate::auth::Denied>() {
        match d {
            crate::auth::Denied::Unauthorized => {
                let mut r = json_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "a valid token is required (Authorization: Bearer <token>, or ?token=)",
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
            crate::auth::Denied::Forbidden => json_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this token may watch but not change anything",
            ),
        }
    } else if err.is_not_found() {
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
    } else if err.find::<warp::reject::PayloadTooLarge>().is_some() {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the request body is too large",
        )
    } else if err.find::<warp::reject::LengthRequired>().is_some() {
        json_error(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "send a Content-Length",
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
            enabled: cams.iter().filter(|c| c.config().enabled).count(),
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
        if matches!(
            cam.state(),
            CameraState::Backoff | CameraState::Unauthorized
        ) {
            cam.kick.notify_one();
            restarted.push(cam.id().to_string());
        }
    }
    json_ok(&Body {
        restarted,
        status: status_body(&s.hub),
    })
}
