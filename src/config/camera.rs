//! One camera of the configuration file: its fields with their documented defaults, its
//! sub stream, and the checks of one camera alone (uniqueness is the file's, in `config`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::obs::redact::redact_url;

/// One entry of `cameras`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Unique, URL-safe id: 1 to 64 of `A-Z a-z 0-9 _ -`, starting with a letter or digit. Required.
    pub id: String,
    /// Display name. Default: the id.
    #[serde(default)]
    pub name: Option<String>,
    /// Anything FFmpeg opens: `rtsp://`, `http://` (MJPEG), a file, `/dev/videoN`, or
    /// `lavfi:<filtergraph>` for a synthetic source. Required.
    pub url: String,
    /// Whether camwall runs this camera. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// FFmpeg input options (`-option value` of the ffmpeg CLI), e.g. `{"rtsp_transport": "udp"}`.
    /// Default: none; camwall sets `rtsp_transport=tcp` for RTSP unless given here.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Time allowed to open the source before giving up. Default 10000.
    #[serde(default = "default_open_timeout_ms")]
    pub open_timeout_ms: u64,
    /// A source that sends no packet for this long is treated as lost. Default 5000.
    #[serde(default = "default_stall_timeout_ms")]
    pub stall_timeout_ms: u64,
    /// Cap on frames per second taken from the source (extra frames are dropped after decode).
    /// Default: no cap.
    #[serde(default)]
    pub max_fps: Option<f64>,
    /// How long a snapshot keeps a network H.264/H.265 camera's decoder running after it.
    /// Default 10000.
    #[serde(default = "default_decode_linger_ms")]
    pub decode_linger_ms: u64,
    /// A second, smaller stream of the same camera (the "sub stream" most IP cameras offer),
    /// for thumbnails. Opened only while used. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<SubStreamConfig>,
    /// Which reader ingests an RTSP camera: `auto` (retina, camwall's async RTSP client) or
    /// `ffmpeg` (FFmpeg's, for a camera retina cannot read). Other sources always use FFmpeg.
    /// Default `auto`.
    #[serde(default, skip_serializing_if = "Ingest::is_auto")]
    pub ingest: Ingest,
    /// Whether this camera's last minutes are kept on disk (`server.replay`). Default: kept
    /// for cameras that send H.264/H.265; `false` leaves the camera out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<bool>,
}

/// A camera's `ingest` setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ingest {
    #[default]
    Auto,
    Ffmpeg,
}

impl Ingest {
    fn is_auto(&self) -> bool {
        *self == Self::Auto
    }
}

/// What reads a camera's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// retina, on the camera's task: RTSP.
    Retina,
    /// FFmpeg, on a thread of the session's own.
    Ffmpeg,
}

impl Reader {
    pub fn name(self) -> &'static str {
        match self {
            Self::Retina => "retina",
            Self::Ffmpeg => "ffmpeg",
        }
    }
}

/// A camera's second source: the same fields and rules as the main one.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubStreamConfig {
    pub url: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// The id suffix of a camera's sub stream where an id must be unique (logs, threads,
/// metric labels): `.` is not allowed in camera ids, so it names no other camera.
pub const SUB_SUFFIX: &str = ".sub";

/// The camera a stream id belongs to: `door` for `door` and for its sub stream `door.sub`.
pub fn camera_of_stream(stream: &str) -> &str {
    stream.strip_suffix(SUB_SUFFIX).unwrap_or(stream)
}

fn default_true() -> bool {
    true
}
fn default_open_timeout_ms() -> u64 {
    10_000
}
fn default_stall_timeout_ms() -> u64 {
    5_000
}
fn default_decode_linger_ms() -> u64 {
    10_000
}

impl CameraConfig {
    /// Whether `other` differs from this one in the display name at most: such a change is
    /// applied live, without reopening the source.
    pub fn same_except_name(&self, other: &CameraConfig) -> bool {
        let mut renamed = other.clone();
        renamed.name = self.name.clone();
        *self == renamed
    }

    /// The reader of this camera's source (its sub stream's follows the same setting).
    pub fn reader(&self) -> Reader {
        // rtsps:// (RTSP over TLS) is FFmpeg's: retina has no TLS.
        let rtsp = self
            .url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("rtsp://"));
        if rtsp && self.ingest == Ingest::Auto {
            Reader::Retina
        } else {
            Reader::Ffmpeg
        }
    }

    /// Display name: `name`, else the id.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    /// The sub stream as a source of its own: its URL and options, everything else (timeouts,
    /// rate cap, linger) the camera's; its id is the camera's plus [`SUB_SUFFIX`].
    pub fn sub_config(&self) -> Option<CameraConfig> {
        let sub = self.sub.as_ref()?;
        Some(CameraConfig {
            id: format!("{}{SUB_SUFFIX}", self.id),
            name: Some(format!("{} (sub)", self.display_name())),
            url: sub.url.clone(),
            options: sub.options.clone(),
            sub: None,
            ..self.clone()
        })
    }
}

/// Ids that would collide with API paths under `/api/ip-cameras/`.
pub const RESERVED_IDS: [&str; 4] = ["status", "initialize", "frame", "mjpeg"];

/// Whether `id` is safe in a URL path segment, a file name and a log line.
pub fn is_safe_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
}

/// Longest display name (camera or view), in characters: every open wall fetches the names.
pub const MAX_NAME_CHARS: usize = 200;

/// What is wrong with a display name (camera or view), if anything: empty, too long, or holding
/// control characters (NUL, line breaks...) or bidirectional controls (U+202A-202E,
/// U+2066-2069, U+200E, U+200F, U+061C) that make a name read as another in logs and pages.
pub fn name_problem(name: &str) -> Option<String> {
    let bidi = |c: char| {
        matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
            || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}')
    };
    if name.trim().is_empty() {
        return Some("must not be empty when given".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Some(format!("must be at most {MAX_NAME_CHARS} characters"));
    }
    name.chars().find(|c| c.is_control() || bidi(*c)).map(|c| {
        format!(
            "must not contain control or bidirectional control characters (found U+{:04X})",
            u32::from(c)
        )
    })
}

/// Checks one camera alone (not uniqueness). Returns (field, message) pairs.
pub fn validate_camera(cam: &CameraConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if RESERVED_IDS.contains(&cam.id.as_str()) {
        out.push((
            "id",
            format!("{:?} is reserved (it names an API path)", cam.id),
        ));
    } else if !is_safe_id(&cam.id) {
        out.push((
            "id",
            format!(
                "{:?} is not a safe id: use 1 to 64 of A-Z a-z 0-9 _ -, starting with a letter or digit",
                cam.id
            ),
        ));
    }
    check_source(&cam.url, &cam.options, "url", "options", &mut out);
    if let Some(sub) = &cam.sub {
        check_source(&sub.url, &sub.options, "sub.url", "sub.options", &mut out);
    }
    if let Some(problem) = cam.name.as_deref().and_then(name_problem) {
        out.push(("name", problem));
    }
    if let Some(fps) = cam.max_fps {
        if let Err(e) = crate::media::tier::check_max_fps(fps) {
            out.push(("max_fps", e.to_string()));
        }
    }
    if !(100..=600_000).contains(&cam.open_timeout_ms) {
        out.push(("open_timeout_ms", "must be between 100 and 600000".into()));
    }
    if !(100..=600_000).contains(&cam.stall_timeout_ms) {
        out.push(("stall_timeout_ms", "must be between 100 and 600000".into()));
    }
    if cam.decode_linger_ms > 600_000 {
        out.push(("decode_linger_ms", "must be between 0 and 600000".into()));
    }
    out
}

/// The rules of a source URL and its FFmpeg options (main and sub streams alike).
fn check_source(
    url: &str,
    options: &BTreeMap<String, String>,
    url_field: &'static str,
    options_field: &'static str,
    out: &mut Vec<(&'static str, String)>,
) {
    if url.trim().is_empty() {
        out.push((url_field, "must not be empty".into()));
    } else if url.starts_with("lavfi:") && url.len() == "lavfi:".len() {
        out.push((
            url_field,
            "lavfi: needs a filtergraph, e.g. lavfi:testsrc2".into(),
        ));
    } else if url.chars().any(|c| c.is_control()) {
        out.push((
            url_field,
            format!("{} contains control characters", redact_url(url)),
        ));
    }
    for key in options.keys() {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            out.push((
                options_field,
                format!("{key:?} is not an FFmpeg option name"),
            ));
        }
    }
}
