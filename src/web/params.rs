//! Query parameters of the frame and stream routes and the camera they name: parsed with the
//! tier rules of `media::tier`, turned into the stream and parameters to serve.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::error::ApiError;
use crate::hub::streams::{self, StreamReq};
use crate::hub::{Camera, Hub, Stream, StreamKind};
use crate::media::tier;

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
    /// `stream=main|sub|auto`: which of the camera's streams (default: main).
    pub stream: StreamReq,
}

impl FrameParams {
    pub fn parse(q: &HashMap<String, String>, default_quality: u8) -> Result<Self, ApiError> {
        let quality = q
            .get("quality")
            .map_or(Ok(default_quality), |v| tier::parse_quality(v))?;
        let max_width = q
            .get("max_width")
            .map(|v| tier::parse_max_width(v))
            .transpose()?;
        let max_fps = q
            .get("max_fps")
            .map(|v| tier::parse_max_fps(v))
            .transpose()?;
        let wait = match q.get("wait_ms") {
            None => Duration::ZERO,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(ms) if Duration::from_millis(ms) <= MAX_WAIT => Duration::from_millis(ms),
                _ => {
                    return Err(ApiError::bad_parameter(format!(
                        "wait_ms must be an integer from 0 to {}, got {:?}",
                        MAX_WAIT.as_millis(),
                        v.chars().take(32).collect::<String>()
                    )))
                }
            },
        };
        let after = q
            .get("after")
            .map(|a| a.trim().trim_matches('"').to_string());
        let stream = match q.get("stream") {
            None => StreamReq::Main,
            Some(v) => StreamReq::parse(v.trim()).ok_or_else(|| {
                ApiError::bad_parameter(format!(
                    "stream must be main, sub or auto, got {:?}",
                    v.chars().take(16).collect::<String>()
                ))
            })?,
        };
        Ok(Self {
            quality,
            max_width,
            max_fps,
            after,
            wait,
            stream,
        })
    }

    /// A long-poll: holds the connection until a newer frame or `wait`.
    pub fn is_long_poll(&self) -> bool {
        self.after.is_some() && !self.wait.is_zero()
    }
}

/// The enabled camera with `id`, or the JSON error for it.
pub fn lookup(hub: &Hub, id: &str) -> Result<Arc<Camera>, ApiError> {
    let cam = hub.get(id).ok_or_else(|| ApiError::unknown_camera(id))?;
    if !cam.config().enabled {
        return Err(ApiError::camera_disabled());
    }
    Ok(cam)
}

/// The stream and parameters a frame or stream request asks for, and which stream serves it.
/// A sub stream that is closed is asked to open (it serves the next request) while the main
/// stream answers this one; a stream that is down is stood in for by the other one.
pub fn resolve_request(
    hub: &Hub,
    id: &str,
    query: &HashMap<String, String>,
) -> Result<(Stream, FrameParams, StreamKind), ApiError> {
    lookup(hub, id)?;
    let p = FrameParams::parse(query, hub.qualities().best())?;
    let choice = streams::choose(hub, id, p.stream, p.max_width)
        .ok_or_else(|| ApiError::unknown_camera(id))?;
    if choice.wants_sub {
        if let Some(sub) = hub.sub(id) {
            let linger = Duration::from_millis(sub.camera.config().decode_linger_ms);
            sub.camera
                .demand()
                .touch(tokio::time::Instant::now(), linger);
        }
    }
    Ok((choice.stream, p, choice.kind))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(!p.is_long_poll());
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
        assert!(p.is_long_poll());
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
