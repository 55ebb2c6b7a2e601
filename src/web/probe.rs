//! `POST /api/ip-cameras/probe`: test a camera object before saving it. The source is opened
//! once on a thread of its own (FFmpeg blocks), at most [`MAX_PROBES`] at a time so that probes
//! cannot use up the server; the answer says what was found, with a snapshot, or why not.
//! A `sub` object with a `url` (a second stream of the same camera) is probed too, after the
//! main one. Credentials are never echoed: the answer names no URL.

use std::sync::{Arc, OnceLock};

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use warp::http::StatusCode;
use warp::reply::Response;

use super::cameras::{parse_body, respond};
use super::error::ApiError;
use super::state::WebState;
use crate::config::CameraConfig;
use crate::control::parse_camera;
use crate::ingest::probe::{probe, ProbeCause, Probed};
use crate::obs::redact::redact_url;

/// Probes running at once, server-wide.
pub const MAX_PROBES: usize = 2;

fn slots() -> Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS
        .get_or_init(|| Arc::new(Semaphore::new(MAX_PROBES)))
        .clone()
}

/// The camera the body describes: `id` may be left out (the probe comes before the camera has
/// one); `sub` is read from the JSON value, not from the camera's config type.
fn cameras_of(mut body: Value) -> Result<(CameraConfig, Option<CameraConfig>), ApiError> {
    let Some(o) = body.as_object_mut() else {
        return Err(crate::control::ChangeError::Invalid {
            field: "(body)".into(),
            message: "a probe takes a camera object".into(),
        }
        .into());
    };
    let sub = o.remove("sub");
    o.entry("id")
        .or_insert_with(|| Value::String("probe".into()));
    let cam = parse_camera(&body).map_err(ApiError::from)?;
    let sub = match sub {
        None | Some(Value::Null) => None,
        Some(Value::Object(s)) => {
            let Some(url) = s.get("url").and_then(Value::as_str) else {
                return Err(invalid("sub.url", "a sub stream needs a url"));
            };
            let mut c = cam.clone();
            c.url = url.to_string();
            if let Some((field, message)) = crate::config::validate_camera(&c)
                .into_iter()
                .find(|(f, _)| *f == "url")
            {
                return Err(invalid(&format!("sub.{field}"), &message));
            }
            Some(c)
        }
        Some(_) => return Err(invalid("sub", "must be an object with a url")),
    };
    Ok((cam, sub))
}

fn invalid(field: &str, message: &str) -> ApiError {
    crate::control::ChangeError::Invalid {
        field: field.into(),
        message: message.into(),
    }
    .into()
}

/// Runs one probe on its own thread; dropping the future (the client went away) or shutdown
/// cancels it.
async fn run(
    cam: CameraConfig,
    shutdown: &CancellationToken,
) -> Result<Probed, (ProbeCause, String)> {
    let token = shutdown.child_token();
    let _cancel_on_drop = token.clone().drop_guard();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("probe".into())
        .spawn(move || {
            let _ = tx.send(probe(&cam, &token));
        });
    let result = match spawned {
        Ok(_) => rx
            .await
            .unwrap_or(Err(crate::ingest::worker::SessionError::Panicked)),
        Err(e) => Err(crate::ingest::worker::SessionError::Spawn(e)),
    };
    result.map_err(|e| (ProbeCause::of(&e), redact_url(&e.to_string())))
}

fn found(p: &Probed) -> Value {
    let snapshot = base64::engine::general_purpose::STANDARD.encode(&p.jpeg);
    json!({
        "codec": p.codec,
        "width": p.width,
        "height": p.height,
        "fps": p.fps.map(|f| (f * 100.0).round() / 100.0),
        "audio": p.audio,
        "snapshot": format!("data:image/jpeg;base64,{snapshot}"),
    })
}

pub async fn handle(body: Bytes, s: WebState) -> Response {
    let result = async {
        let (cam, sub) = cameras_of(parse_body(&body)?)?;
        s.manager.check_probe(&cam).map_err(ApiError::from)?;
        if let Some(sub) = &sub {
            s.manager
                .check_probe(sub)
                .map_err(|e| match ApiError::from(e) {
                    mut e if e.field.as_deref() == Some("url") => {
                        e.field = Some("sub.url".into());
                        e
                    }
                    e => e,
                })?;
        }
        let Ok(_slot) = slots().try_acquire_owned() else {
            return Err(ApiError::too_many_probes());
        };
        let main = run(cam, &s.shutdown)
            .await
            .map_err(|(cause, msg)| ApiError::probe(cause, msg, "url"))?;
        let mut out = found(&main);
        if let Some(sub) = sub {
            out["sub"] = match run(sub, &s.shutdown).await {
                Ok(p) => found(&p),
                Err((cause, message)) => json!({
                    "error": ApiError::probe(cause, String::new(), "sub.url").code,
                    "cause": cause.name(),
                    "message": message,
                }),
            };
        }
        Ok(out)
    }
    .await;
    respond(result, StatusCode::OK)
}
