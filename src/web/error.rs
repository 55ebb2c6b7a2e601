//! The one place where errors become HTTP answers: JSON `{"error": code, "message": text}`
//! (plus `field` for a bad request body) with the matching status, for domain errors
//! (parameters, frames, camera changes) and for warp's rejections.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::access::auth::NotJson;
use crate::access::guard::Refused;
use crate::access::host::MisdirectedHost;
use crate::control::ChangeError;
use crate::hub::{Camera, FrameError};
use crate::ingest::probe::ProbeCause;
use crate::media::tier::ParamError;

/// An error on its way to becoming a JSON answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The offending field of a request body, when there is one.
    pub field: Option<String>,
    /// Seconds for a `Retry-After` header.
    pub retry_after_s: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after_s: None,
        }
    }

    pub fn into_response(self) -> Response {
        let mut res = warp::reply::json(&Body {
            error: self.code,
            message: &self.message,
            field: self.field.as_deref(),
        })
        .into_response();
        *res.status_mut() = self.status;
        if let Some(s) = self.retry_after_s {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }

    /// Over a client cap: refused, nothing else disturbed.
    pub fn too_many_clients() -> Self {
        Self {
            retry_after_s: Some(5),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_clients",
                "too many streaming clients; try again later",
            )
        }
    }

    pub fn missing_src() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "missing_src",
            "src=<camera id> is required",
        )
    }

    pub fn unknown_camera(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_camera",
            format!(
                "no camera with id {:?}",
                id.chars().take(64).collect::<String>()
            ),
        )
    }

    /// A frame of `cam` that cannot be had.
    pub fn frame(cam: &Camera, e: FrameError) -> Self {
        match e {
            FrameError::NoFrameYet { retry_after_s } => Self {
                retry_after_s: Some(retry_after_s),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no_frame_yet",
                    format!(
                        "camera {} has no frame yet (state: {})",
                        cam.id(),
                        cam.state().name()
                    ),
                )
            },
            // A camera another cluster node ingests, and that node did not answer.
            FrameError::Remote(message) => Self {
                retry_after_s: Some(1),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "camera_unavailable",
                    message,
                )
            },
            e => {
                tracing::warn!(camera = %cam.id(), error = %e, "encode failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "encode_failed",
                    "the frame could not be encoded",
                )
            }
        }
    }
}

impl ApiError {
    /// A probe of a camera source that failed (`POST /api/ip-cameras/probe`): the plain cause
    /// in the code (`probe_unauthorized`, `probe_unreachable`, `probe_no_video`,
    /// `probe_failed`), the redacted error as the message, `field` the URL it concerns.
    pub fn probe(cause: ProbeCause, message: String, field: &str) -> Self {
        let code = match cause {
            ProbeCause::Unauthorized => "probe_unauthorized",
            ProbeCause::Unreachable => "probe_unreachable",
            ProbeCause::NoVideo => "probe_no_video",
            ProbeCause::Failed => "probe_failed",
        };
        Self {
            field: Some(field.to_string()),
            ..Self::new(StatusCode::BAD_GATEWAY, code, message)
        }
    }

    /// A path that names nothing.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such path")
    }

    /// A request body that is not JSON.
    pub fn bad_json(e: &serde_json::Error) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("the body is not JSON: {e}"),
        )
    }

    /// An `If-Match` that is not a camera revision.
    pub fn bad_if_match() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_if_match",
            "If-Match must be a camera revision as the API gives it, e.g. \"12\"",
        )
    }

    /// A query parameter outside what it may be (`message` says what it may be).
    pub fn bad_parameter(message: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_parameter", message)
    }

    /// A disabled camera serves no picture.
    pub fn camera_disabled() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "camera_disabled",
            "this camera is disabled",
        )
    }

    /// `/api/cluster` on a node that runs alone.
    pub fn not_clustered() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_clustered",
            "this camwall runs alone (no server.cluster in its config)",
        )
    }

    /// A WebSocket upgrade from another site's page (not camwall's origin nor
    /// `server.allowed_origins`).
    pub fn ws_bad_origin() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "bad_origin",
            "this origin may not open the WebSocket (see server.allowed_origins)",
        )
    }

    /// Every probe slot is taken: refused at once rather than queued.
    pub fn too_many_probes() -> Self {
        Self {
            retry_after_s: Some(2),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_probes",
                "other probes are running; try again in a moment",
            )
        }
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        let code = match e {
            ParamError::Quality(_) => "bad_quality",
            ParamError::MaxWidth(_) | ParamError::MaxFps(_) => "bad_parameter",
        };
        Self::new(StatusCode::BAD_REQUEST, code, e.to_string())
    }
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Invalid { field, message } => ApiError {
                message: format!("field `{field}`: {message}"),
                field: Some(field),
                ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_camera", "")
            },
            ChangeError::InvalidView { field, message } => ApiError {
                message: format!("field `{field}`: {message}"),
                field: Some(field),
                ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_view", "")
            },
            ChangeError::DuplicateView(_) => {
                ApiError::new(StatusCode::CONFLICT, "duplicate_id", e.to_string())
            }
            ChangeError::UnknownView(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_view", e.to_string())
            }
            ChangeError::InvalidUser { field, message } => ApiError {
                message: format!("field `{field}`: {message}"),
                field: Some(field),
                ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_user", "")
            },
            ChangeError::DuplicateUser(_) => {
                ApiError::new(StatusCode::CONFLICT, "duplicate_user", e.to_string())
            }
            ChangeError::UnknownUser(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_user", e.to_string())
            }
            ChangeError::Duplicate(_) => {
                ApiError::new(StatusCode::CONFLICT, "duplicate_id", e.to_string())
            }
            ChangeError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_camera", e.to_string())
            }
            ChangeError::Conflict(_) | ChangeError::UserConflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            ChangeError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster_unavailable",
                e.to_string(),
            ),
            ChangeError::ChangedOnDisk { .. } => {
                tracing::warn!(error = %e, "change refused");
                ApiError::new(
                    StatusCode::CONFLICT,
                    "config_changed_on_disk",
                    e.to_string(),
                )
            }
            ChangeError::Io { .. } => {
                tracing::error!(error = %e, "config write failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "config_write_failed",
                    e.to_string(),
                )
            }
        }
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Unauthorized => Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid token (Authorization: Bearer <token>, or ?token=) or a login \
                 (POST /api/login) is required",
            ),
            Refused::Forbidden => Self::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this token or user may watch but not change anything (an admin's is needed)",
            ),
            Refused::Scoped => Self::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this shows every camera: it needs an admin, or a viewer of every camera",
            ),
            Refused::CrossSite => Self::new(
                StatusCode::FORBIDDEN,
                "bad_origin",
                "changes are accepted only from camwall's own pages or server.allowed_origins",
            ),
            // A page on another site must not watch the cameras with this browser's access.
            Refused::SocketOrigin => Self::ws_bad_origin(),
            Refused::TooManyClients => Self::too_many_clients(),
        }
    }
}

/// The whole answer to a plain HTTP request on the HTTPS port, written on the raw connection
/// before any TLS (no route runs there): `400` with one line of text, as nginx answers it.
pub fn plain_http_on_https_port() -> Vec<u8> {
    let text = "This port speaks HTTPS: use https:// instead of http://\n";
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
    .into_bytes()
}

/// Turns every rejection (no route, bad query, no token...) into a JSON answer.
///
/// A request tried against every route carries one rejection per route it did not match, so
/// the checks go from the most specific cause to the least: a body too large for the one route
/// that matched its path and method must not come out as "method not allowed" from the others.
pub async fn handle_rejection(err: Rejection) -> Result<Response, Infallible> {
    let e = if let Some(m) = err.find::<MisdirectedHost>() {
        ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected_host",
            format!(
                "Host {:?} is not a name of this server: IP addresses and localhost always work; \
                 add other names to server.allowed_hosts in the config file",
                m.host
            ),
        )
    } else if let Some(r) = err.find::<Refused>() {
        ApiError::from(*r)
    } else if err.find::<NotJson>().is_some() {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        )
    } else if err.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the request body is too large",
        )
    } else if err.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "send a Content-Length",
        )
    } else if err.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "the query string is malformed",
        )
    } else if err.find::<warp::reject::InvalidHeader>().is_some() {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_header",
            "a request header is malformed",
        )
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take that method",
        )
    } else if err.is_not_found() {
        ApiError::not_found()
    } else {
        tracing::debug!(?err, "unhandled rejection");
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the request was not understood",
        )
    };
    Ok(e.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_json_with_their_status() {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_camera", "field `url`: x");
        e.field = Some("url".into());
        let res = e.into_response();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let res = ApiError::too_many_clients().into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
        let res = ApiError::from(Refused::Unauthorized).into_response();
        assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let e = ApiError::from(ParamError::Quality("0".into()));
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "bad_quality"));
    }

    #[tokio::test]
    async fn a_foreign_host_is_421_naming_the_setting() {
        use warp::Filter;
        let allowed = std::sync::Arc::new(vec!["camwall.test".to_string()]);
        let routes = crate::access::host::check_host(allowed)
            .and(warp::any().map(|| "ok"))
            .recover(handle_rejection);
        let ask = |host: &'static str| {
            warp::test::request()
                .path("/")
                .header("host", host)
                .reply(&routes)
        };
        let res = ask("evil.example:8000").await;
        assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST);
        let body: serde_json::Value = serde_json::from_slice(res.body()).expect("JSON");
        assert_eq!(body["error"], "misdirected_host");
        assert!(body["message"]
            .as_str()
            .is_some_and(|m| m.contains("server.allowed_hosts")));
        for ok in ["camwall.test:8000", "127.0.0.1:8000", "localhost"] {
            assert_eq!(ask(ok).await.status(), StatusCode::OK, "{ok}");
        }
    }

    #[test]
    fn plain_http_on_the_https_port_is_one_line() {
        let answer = String::from_utf8(plain_http_on_https_port()).expect("text");
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        assert_eq!(body.lines().count(), 1);
        assert!(body.contains("https://"));
    }

    #[tokio::test]
    async fn a_too_large_body_is_413_whatever_other_routes_said() {
        use warp::Filter;
        // Like the router: other methods on the same path come first and reject with 405.
        let get = warp::path!("x").and(warp::get()).map(|| "get");
        let post = warp::path!("x")
            .and(warp::post())
            .and(warp::body::content_length_limit(16))
            .and(warp::body::bytes())
            .map(|_| "post");
        let delete = warp::path!("x").and(warp::delete()).map(|| "delete");
        let routes = get.or(post).or(delete).recover(handle_rejection);
        let res = warp::test::request()
            .method("POST")
            .path("/x")
            .body(vec![b'a'; 100])
            .reply(&routes)
            .await;
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let res = warp::test::request()
            .method("PUT")
            .path("/x")
            .reply(&routes)
            .await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
