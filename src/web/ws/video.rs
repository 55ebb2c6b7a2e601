//! One viewer's video of one camera: which access units it gets (never one whose reference it
//! missed), when it needs a new `video_config`, and the wire messages. Pure: the session feeds
//! it units and lags; no socket, no clock.

use base64::Engine;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};

use super::protocol::framed;
pub use super::protocol::VideoMode;
use crate::hub::video::{VideoConfig, VideoUnit};

/// Something a video viewer is to be sent, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoOut {
    Config(Value),
    Unit(Bytes),
}

/// One viewer's state for one camera's video.
#[derive(Debug, Clone)]
pub struct VideoSub {
    pub mode: VideoMode,
    /// The generation of the last `video_config` sent (0: none yet).
    config_generation: u64,
    /// Decoding can only resume at a keyframe (start, after a lag, after a mode change).
    need_key: bool,
    last_seq: u64,
}

impl VideoSub {
    pub fn new(mode: VideoMode) -> Self {
        Self {
            mode,
            config_generation: 0,
            need_key: true,
            last_seq: 0,
        }
    }

    /// The viewer fell behind the broadcast: the units it missed were references of what
    /// follows, so it waits for the next keyframe.
    pub fn lagged(&mut self) {
        self.need_key = true;
    }

    /// Switches mode; going to full resumes at the next keyframe.
    pub fn set_mode(&mut self, mode: VideoMode) {
        if mode != self.mode {
            self.mode = mode;
            self.need_key = true;
        }
    }

    /// What to send for `unit`: a `video_config` first when the parameters are new to this
    /// viewer, then the unit; nothing when the viewer waits for a keyframe or only takes
    /// keyframes.
    pub fn admit(&mut self, camera: &str, unit: &VideoUnit) -> Vec<VideoOut> {
        let mut out = Vec::new();
        if unit.seq <= self.last_seq {
            return out;
        }
        if self.need_key || self.mode == VideoMode::Keyframes {
            if !unit.key {
                return out;
            }
            self.need_key = false;
        }
        if unit.config.generation != self.config_generation {
            // New parameters apply from a keyframe on; a delta unit after a change cannot be
            // decoded with either configuration.
            if !unit.key {
                self.need_key = true;
                return out;
            }
            self.config_generation = unit.config.generation;
            out.push(VideoOut::Config(config_event(camera, &unit.config)));
        }
        self.last_seq = unit.seq;
        out.push(VideoOut::Unit(unit.wire(|u| unit_message(camera, u))));
        out
    }
}

/// `video_config`: what the browser's `VideoDecoder.configure()` takes.
pub fn config_event(camera: &str, config: &VideoConfig) -> Value {
    let p = &config.params;
    json!({
        "type": "video_config",
        "camera": camera,
        "codec": p.codec_string,
        "family": p.codec.name(),
        "width": p.width,
        "height": p.height,
        "format": "avcc",
        "description": base64::engine::general_purpose::STANDARD.encode(&p.description),
    })
}

#[derive(Serialize)]
struct UnitHeader<'a> {
    camera: &'a str,
    seq: u64,
    ts: u64,
    /// Presentation time on the camera's clock, microseconds: the WebCodecs chunk timestamp.
    pts: i64,
    kind: &'static str,
    key: bool,
    width: u32,
    height: u32,
}

/// The binary message of an access unit: the JPEG frames' framing, `kind: "video"`.
pub fn unit_message(camera: &str, unit: &VideoUnit) -> Bytes {
    let header = serde_json::to_vec(&UnitHeader {
        camera,
        seq: unit.seq,
        ts: unit.stamp.captured_unix_ms,
        pts: unit.stamp.pts_us,
        kind: "video",
        key: unit.key,
        width: unit.config.params.width,
        height: unit.config.params.height,
    })
    .unwrap_or_default();
    framed(&header, &unit.data)
}

#[cfg(test)]
#[path = "video_tests.rs"]
mod tests;
