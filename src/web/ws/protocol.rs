//! The live wall's wire protocol (docs/PROTOCOL.md): client messages and their parsing, the
//! protocol's error type and its one mapping to `error` events, the server's JSON events, and
//! the binary frame message. Pure: no sockets, no clock, no hub.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::hub::streams::StreamReq;
use crate::hub::{CameraInfo, CameraState, Encoded, StreamKind};
use crate::link::share::Reason;
use crate::media::h26x::Codec;
use crate::media::tier::{self, ParamError, Qualities, Tier};

/// Protocol version announced in `hello`.
pub const PROTOCOL_VERSION: u32 = 4;
/// Wire format version of binary frame messages.
pub const FRAME_MESSAGE_VERSION: u8 = 1;
/// Control messages above this size get an `oversized` error (the socket stays open).
pub const MAX_CONTROL_MESSAGE: usize = 8 * 1024;
/// Messages above this size close the socket (tungstenite's limit: memory protection).
pub const MAX_WS_MESSAGE: usize = 64 * 1024;
/// Ids in one subscribe or unsubscribe message beyond this are ignored.
pub const MAX_IDS_PER_MESSAGE: usize = 1024;

/// `quality` in a subscribe message: `"auto"` or a fixed JPEG quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualityReq {
    Auto,
    Fixed(u8),
}

impl<'de> Deserialize<'de> for QualityReq {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bad = || serde::de::Error::custom("quality must be \"auto\" or 1..100");
        match Value::deserialize(d)? {
            Value::String(s) if s == "auto" => Ok(Self::Auto),
            Value::Number(n) => n
                .as_u64()
                .and_then(|q| tier::check_quality(q).ok())
                .map(Self::Fixed)
                .ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}

fn default_quality() -> QualityReq {
    QualityReq::Auto
}

/// Messages a client sends (JSON text).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    Subscribe {
        cameras: Vec<String>,
        #[serde(default = "default_quality")]
        quality: QualityReq,
        #[serde(default)]
        max_width: Option<u64>,
        #[serde(default)]
        max_fps: Option<f64>,
        /// Codec families the client's decoder takes (`"h264"`, `"h265"`); none: JPEG only.
        #[serde(default)]
        codecs: Vec<String>,
        /// `"auto"` (default), `"main"` or `"sub"`: which of the camera's streams.
        #[serde(default)]
        stream: Option<String>,
        /// Audio codecs the client's decoder takes (`"aac"`, `"opus"`, `"pcmu"`, `"pcma"`);
        /// none (the default): no audio (version 3).
        #[serde(default)]
        audio: Vec<String>,
        /// Replay from this instant (Unix ms) instead of live; absent or `null`: live
        /// (version 4).
        #[serde(default)]
        at: Option<u64>,
        /// Replay at 1, 2 or 4 times the camera's pace. Default 1.
        #[serde(default)]
        speed: Option<u8>,
    },
    Unsubscribe {
        cameras: Vec<String>,
    },
    /// The client drew frame `seq` of `camera`; `latency_ms` is capture to display as the
    /// client saw it (accepted from version-1 clients; the server does not judge by it).
    Ack {
        camera: String,
        seq: u64,
        #[serde(default)]
        latency_ms: Option<f64>,
    },
    /// A clock probe: the server answers `pong` with `t0` and its own time.
    Ping {
        #[serde(default)]
        t0: Option<f64>,
    },
    /// Activity events for these cameras too (`"*"`: all; empty: only subscribed ones).
    Activity {
        cameras: Vec<String>,
    },
    /// The client's decoder failed on `camera`'s video: serve it JPEG from now on.
    VideoError {
        camera: String,
        #[serde(default)]
        message: Option<String>,
    },
    /// How the page keeps up with `camera`: its decoder's backlog now (`queue`: chunks
    /// waiting, WebCodecs' `decodeQueueSize`, or JPEG frames waiting to be drawn) and the
    /// frames it dropped undrawn since its last report.
    Decoder {
        camera: String,
        #[serde(default)]
        queue: u32,
        #[serde(default)]
        dropped: u32,
    },
}

/// Why a client message was refused; sent back as an `error` event, the socket stays open.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    #[error("control messages are limited to {MAX_CONTROL_MESSAGE} bytes")]
    Oversized,
    #[error("not JSON: {0}")]
    BadJson(String),
    #[error(
        "unknown message type {0:?}; expected subscribe, unsubscribe, ack, ping, activity, video_error or decoder"
    )]
    UnknownType(String),
    #[error("{0}")]
    BadMessage(String),
    #[error("{0}")]
    Param(#[from] ParamError),
    #[error("binary messages are not accepted; send JSON text")]
    Binary,
    #[error("no camera with id {0:?}")]
    UnknownCamera(String),
    /// A replay asked of an instant the camera's ring does not hold (or replay is off).
    #[error("{1}")]
    NotInReplay(String, String),
    /// A replay this node cannot take on now (as many decoding as it allows).
    #[error("{1}")]
    Busy(String, String),
}

impl ProtocolError {
    /// The event's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Oversized => "oversized",
            Self::BadJson(_) => "bad_json",
            Self::UnknownType(_) => "unknown_type",
            Self::BadMessage(_) | Self::Param(_) | Self::Binary => "bad_message",
            Self::UnknownCamera(_) => "unknown_camera",
            Self::NotInReplay(..) => "not_in_replay",
            Self::Busy(..) => "busy",
        }
    }

    /// The `error` event for this error (the only place errors become events).
    pub fn event(&self) -> Value {
        let mut v = json!({"type": "error", "code": self.code(), "message": self.to_string()});
        if let Self::UnknownCamera(id) | Self::NotInReplay(id, _) | Self::Busy(id, _) = self {
            v["camera"] = json!(id);
        }
        v
    }
}

/// A subscription request, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribeReq {
    pub cameras: Vec<String>,
    pub quality: QualityReq,
    pub max_width: Option<u32>,
    pub max_fps: Option<f64>,
    /// Video codec families the client decodes; empty: JPEG only (version-1 clients).
    pub codecs: Vec<Codec>,
    pub stream: StreamReq,
    /// Audio codecs the client decodes (`aac`, `opus`, `pcmu`, `pcma`); empty: no audio.
    pub audio: Vec<&'static str>,
    /// Replay from an instant (Unix ms) at a speed; `None`: live.
    pub replay: Option<(u64, u8)>,
}

/// A client message, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Subscribe(SubscribeReq),
    Unsubscribe(Vec<String>),
    Ack {
        camera: String,
        seq: u64,
        latency_ms: Option<f64>,
    },
    /// `t0`: the client's send time, echoed back as given.
    Ping {
        t0: Option<f64>,
    },
    Activity(Vec<String>),
    VideoError {
        camera: String,
        /// What the browser said, at most 200 characters (for the log).
        message: String,
    },
    Decoder {
        camera: String,
        queue: u32,
        dropped: u32,
    },
}

/// The families a client lists, known ones only (a newer client may list more), at most
/// once each.
fn families(names: &[String]) -> Vec<Codec> {
    let mut out = Vec::new();
    for n in names.iter().take(8) {
        let c = match n.as_str() {
            "h264" => Codec::H264,
            "h265" => Codec::H265,
            _ => continue,
        };
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The audio codecs a client lists, known ones only, at most once each.
fn audio_codecs(names: &[String]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for n in names.iter().take(8) {
        let Some(c) = ["aac", "opus", "pcmu", "pcma"].into_iter().find(|c| c == n) else {
            continue;
        };
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The ids of one message, each once (in first-seen order: a message naming one camera a
/// thousand times is one subscription and one `tier` event), at most [`MAX_IDS_PER_MESSAGE`].
fn capped(ids: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len().min(MAX_IDS_PER_MESSAGE));
    let mut out = Vec::with_capacity(ids.len().min(MAX_IDS_PER_MESSAGE));
    for id in ids {
        if out.len() == MAX_IDS_PER_MESSAGE {
            break;
        }
        if seen.insert(id.clone()) {
            out.push(id);
        }
    }
    out
}

/// Parses and checks one client text message (tier parameters by `media::tier`'s rules, the
/// same as over HTTP).
pub fn parse_client(text: &str) -> Result<Request, ProtocolError> {
    if text.len() > MAX_CONTROL_MESSAGE {
        return Err(ProtocolError::Oversized);
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| ProtocolError::BadJson(e.to_string()))?;
    let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
    if !matches!(
        kind,
        "subscribe" | "unsubscribe" | "ack" | "ping" | "video_error" | "activity" | "decoder"
    ) {
        return Err(ProtocolError::UnknownType(kind.chars().take(32).collect()));
    }
    let msg: ClientMsg =
        serde_json::from_value(value).map_err(|e| ProtocolError::BadMessage(e.to_string()))?;
    Ok(match msg {
        ClientMsg::Subscribe {
            cameras,
            quality,
            max_width,
            max_fps,
            codecs,
            stream,
            audio,
            at,
            speed,
        } => Request::Subscribe(SubscribeReq {
            replay: match (at, speed.unwrap_or(1)) {
                (None, _) => None,
                (Some(at), speed @ (1 | 2 | 4)) => Some((at, speed)),
                (Some(_), speed) => {
                    return Err(ProtocolError::BadMessage(format!(
                        "speed must be 1, 2 or 4, not {speed}"
                    )))
                }
            },
            cameras: capped(cameras),
            quality,
            max_width: max_width.map(tier::check_max_width).transpose()?,
            max_fps: max_fps.map(tier::check_max_fps).transpose()?,
            codecs: families(&codecs),
            audio: audio_codecs(&audio),
            stream: match stream.as_deref() {
                None => StreamReq::Auto,
                Some(s) => StreamReq::parse(s).ok_or_else(|| {
                    ProtocolError::BadMessage(format!(
                        "stream must be \"auto\", \"main\" or \"sub\", not {:?}",
                        s.chars().take(16).collect::<String>()
                    ))
                })?,
            },
        }),
        ClientMsg::Unsubscribe { cameras } => Request::Unsubscribe(capped(cameras)),
        ClientMsg::Activity { cameras } => Request::Activity(capped(cameras)),
        ClientMsg::Ack {
            camera,
            seq,
            latency_ms,
        } => Request::Ack {
            camera,
            seq,
            latency_ms: latency_ms.filter(|l| l.is_finite() && *l >= 0.0),
        },
        ClientMsg::Ping { t0 } => Request::Ping {
            t0: t0.filter(|t| t.is_finite()),
        },
        ClientMsg::VideoError { camera, message } => Request::VideoError {
            camera,
            message: message.unwrap_or_default().chars().take(200).collect(),
        },
        ClientMsg::Decoder {
            camera,
            queue,
            dropped,
        } => Request::Decoder {
            camera,
            queue,
            dropped,
        },
    })
}

/// `activity`: how much `camera`'s picture changes (0..1, two decimals).
pub fn activity(camera: &str, level: f32) -> Value {
    json!({"type": "activity", "camera": camera, "level": (f64::from(level) * 100.0).round() / 100.0})
}

/// `hello`: the protocol version, every camera, the tier rules the page may need, and the
/// server's clock (Unix ms) for a first estimate of the offset between the two clocks.
pub fn hello(cameras: &[CameraInfo], qualities: &Qualities, server_time_ms: u64) -> Value {
    json!({
        "type": "hello",
        "version": PROTOCOL_VERSION,
        "cameras": cameras,
        "quality_tiers": qualities.as_slice(),
        "scales": tier::SCALES,
        "server_time_ms": server_time_ms,
    })
}

/// `pong`: the answer to a `ping`, so that the client can estimate its clock's offset from the
/// server's (frame `ts` values are on the server's clock).
/// The server's estimate of the client's path (see `link`).
pub fn link(
    rtt: std::time::Duration,
    min_rtt: std::time::Duration,
    rate_bps: Option<f64>,
) -> Value {
    json!({
        "type": "link",
        "rtt_ms": rtt.as_millis() as u64,
        "min_rtt_ms": min_rtt.as_millis() as u64,
        "rate_kbps": rate_bps.map(|b| (b / 1000.0).round() as u64),
    })
}

pub fn pong(t0: Option<f64>, server_time_ms: u64) -> Value {
    json!({"type": "pong", "t0": t0, "server_time_ms": server_time_ms})
}

/// What a video viewer receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoMode {
    /// Every access unit.
    Full,
    /// Keyframes only: a slow link still sees a picture every GOP.
    Keyframes,
}

/// `tier`: what a subscription now receives.
#[derive(Debug, Serialize)]
pub struct TierEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub camera: &'a str,
    pub quality: u8,
    pub scale: u8,
    pub width: u32,
    pub max_fps: Option<f64>,
    pub auto: bool,
    pub level: usize,
    /// `"jpeg"`, or the video family (`"h264"`, `"h265"`) the client gets as is.
    pub codec: &'static str,
    /// For video: `"full"` or `"keyframes"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<VideoMode>,
    /// Which of the camera's streams serves it.
    pub stream: StreamKind,
    /// The stream the client would get is down: the other one stands in.
    pub fallback: bool,
    /// Why it is below its best rung: `"link"` (the link does not carry more) or `"viewer"`
    /// (the page's decoder fell behind).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// What the best rung costs (for video: the camera's own bitrate), kbit/s as measured.
    pub best_kbps: u64,
}

/// `state`: a watched camera's state changed.
pub fn state(camera: &str, state: CameraState, error: Option<String>) -> Value {
    json!({"type": "state", "camera": camera, "state": state, "error": error})
}

pub fn camera_added(info: &CameraInfo) -> Value {
    json!({"type": "camera_added", "camera": info})
}

pub fn camera_changed(info: &CameraInfo) -> Value {
    json!({"type": "camera_changed", "camera": info})
}

pub fn camera_removed(id: &str) -> Value {
    json!({"type": "camera_removed", "camera": id})
}

#[derive(Serialize)]
struct FrameHeader<'a> {
    camera: &'a str,
    seq: u64,
    ts: u64,
    /// Presentation time on the camera's clock, microseconds (protocol 3).
    pts: i64,
    kind: &'static str,
    quality: u8,
    scale: u8,
    width: u32,
    height: u32,
}

/// The binary message of a frame: `[version][u16 BE header length][JSON header][JPEG]`; the
/// JPEG starts with its SOI marker (FF D8).
pub fn frame_message(camera: &str, tier: Tier, e: &Encoded) -> Bytes {
    let header = serde_json::to_vec(&FrameHeader {
        camera,
        seq: e.seq,
        ts: e.stamp.captured_unix_ms,
        pts: e.stamp.pts_us,
        kind: "jpeg",
        quality: e.jpeg.quality,
        scale: tier.scale,
        width: e.jpeg.width,
        height: e.jpeg.height,
    })
    .unwrap_or_default();
    framed(&header, &e.jpeg.data)
}

/// The binary framing every frame message shares: `[version][u16 BE header length][JSON
/// header][payload]`.
pub fn framed(header: &[u8], payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(3 + header.len() + payload.len());
    buf.put_u8(FRAME_MESSAGE_VERSION);
    buf.put_u16(header.len() as u16);
    buf.put_slice(header);
    buf.put_slice(payload);
    buf.freeze()
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
