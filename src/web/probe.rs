//! `POST /api/ip-cameras/probe`: test a camera object before saving it. The source is opened
//! once on a thread of its own (FFmpeg blocks), at most [`MAX_PROBES`] at a time so that probes
//! cannot use up the server; the answer says what was found, with a snapshot, or why not.
//! A `sub` object with a `url` (a second stream of the same camera) is probed too, after the
//! main one, with its own options. Credentials are never echoed: the answer names no URL, and
//! a failure says only its plain cause (the target's own answer is logged at debug).

use std::sync::{Arc, OnceLock};

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use warp::http::StatusCode;
use warp::reply::Response;

use super::cameras::{parse_body, respond};
use super::error::ApiError;
use super::state::WebState;
use crate::config::{CameraConfig, SubStreamConfig};
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
            if !s.get("url").is_some_and(Value::is_string) {
                return Err(invalid("sub.url", "a sub stream needs a url"));
            }
            // The sub stream is probed with its own options, as the camera will open it.
            let sub: SubStreamConfig =
                serde_path_to_error::deserialize(Value::Object(s)).map_err(|e| {
                    let path = e.path().to_string();
                    let field = if path == "." {
                        "sub".into()
                    } else {
                        format!("sub.{path}")
                    };
                    invalid(&field, &e.inner().to_string())
                })?;
            let mut c = cam.clone();
            c.url = sub.url;
            c.options = sub.options;
            if let Some((field, message)) = crate::config::validate_camera(&c)
                .into_iter()
                .find(|(f, _)| matches!(*f, "url" | "options"))
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
    result.map_err(|e| {
        let cause = ProbeCause::of(&e);
        // What the target answered (an HTTP status, whether a file exists) is no business of
        // the one probing: the operator finds it at debug level.
        debug!(cause = cause.name(), error = %redact_url(&e.to_string()), "probe failed");
        let message = match cause {
            // Plain network words from `diagnose` (no such host, refused, nothing in time).
            ProbeCause::Unreachable => redact_url(&e.to_string()),
            ProbeCause::Unauthorized => "the source refused the credentials".to_string(),
            ProbeCause::NoVideo | ProbeCause::Failed => "not a camera source".to_string(),
        };
        (cause, message)
    })
}

fn found(p: &Probed) -> Value {
    let snapshot = base64::engine::general_purpose::STANDARD.encode(&p.jpeg);
    json!({
        "codec": p.codec,
        "width": p.width,
        "height": p.height,
        "fps": p.fps.map(|f| (f * 100.0).round() / 100.0),
        "audio": p.audio,
        "audio_codec": p.audio_track.as_ref().map(|a| &a.codec),
        "audio_sample_rate": p.audio_track.as_ref().map(|a| a.sample_rate),
        "audio_channels": p.audio_track.as_ref().map(|a| a.channels),
        "ingest": p.ingest,
        "snapshot": format!("data:image/jpeg;base64,{snapshot}"),
    })
}

pub async fn handle(body: Bytes, s: WebState) -> Response {
    let result = async {
        let mut body = parse_body(&body)?;
        // Probing a camera being edited: its secrets as shown stand for the stored ones.
        let id = body
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        s.manager
            .restore_secrets(&mut body, &id)
            .map_err(ApiError::from)?;
        let (cam, sub) = cameras_of(body)?;
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
