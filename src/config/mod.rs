//! The configuration file (`config/cameras.json`): serde types, documented defaults and validation.
//!
//! Loading never stops at the first problem: a parse error names the file, line, column and the
//! JSON path of the field; validation errors name the camera id and the field, all of them at once.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod camera;
pub mod views;

pub use camera::*;

mod cluster;
pub use cluster::{validate_cluster, ClusterConfig};
mod webrtc;
pub use webrtc::{parse_candidate, validate_webrtc, WebRtcConfig};
mod replay;
pub use replay::{validate_replay, ReplayConfig};
pub mod auth;
pub use auth::AuthConfig;

/// Listen address used when neither `--listen` nor `server.listen` gives one.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Server settings. Default: all defaults.
    #[serde(default)]
    pub server: ServerConfig,
    /// The cameras. Default: none.
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    /// Named sets of cameras for the wall (`views::ViewConfig`). Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<views::ViewConfig>,
}

/// `server` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `HOST:PORT` to listen on; a host name is resolved and its first address taken.
    /// Default `127.0.0.1:8000`; `--listen` overrides it.
    pub listen: Option<String>,
    /// Directory of the web pages. Relative paths are taken from the config file's directory.
    /// Default `../public` (the repository's `public/` next to `config/`).
    pub public_dir: PathBuf,
    /// How long an encoded JPEG is served again to pollers before a newer frame is encoded.
    /// Default 16 (the seed's frame cache).
    pub frame_cache_ttl_ms: u64,
    /// JPEG quality tiers, best first. The first one is the default quality of a snapshot.
    /// Default `[85, 80, 70]` (the seed's steps).
    pub quality_tiers: Vec<u8>,
    /// Resource limits.
    pub limits: Limits,
    /// Access tokens. Default: none, and everything is open (fine on the loopback default).
    pub auth: AuthConfig,
    /// Origins (`scheme://host[:port]`) besides camwall's own whose pages may open the
    /// WebSocket, e.g. a dashboard served elsewhere. Default: none.
    pub allowed_origins: Vec<String>,
    /// Host names (besides IP literals and `localhost`, which always pass) that requests may
    /// name in `Host`: the name in a TLS certificate, the one a reverse proxy passes on.
    /// Default: none. Any other name gets 421 (DNS rebinding, see `access::host`).
    pub allowed_hosts: Vec<String>,
    /// HTTPS served by camwall itself. Default: none (plain HTTP).
    pub tls: Option<TlsConfig>,
    /// Whether the API (`POST`/`PUT`/`PATCH /api/ip-cameras`) may name sources that read this
    /// machine: files, `/dev/video*` devices, `lavfi:` graphs. Default false: anyone holding
    /// an admin token could otherwise make camwall read any file it can open. The config
    /// file itself (and its reload on SIGHUP) may always name them.
    pub allow_local_sources: bool,
    /// Addresses of reverse proxies whose `X-Forwarded-For` / `Forwarded: for=` headers are
    /// believed, so that per-IP caps count the real clients. Default: none (the headers are
    /// ignored: any client could send them).
    pub trusted_proxies: Vec<IpAddr>,
    /// Run as one node of a cluster over NATS (see `config::cluster`). Default: none (alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
    /// WebRTC output (WHEP, the wall without WebCodecs). Default: on, UDP on the HTTP port.
    #[serde(default, skip_serializing_if = "WebRtcConfig::is_default")]
    pub webrtc: WebRtcConfig,
    /// The last minutes of every camera on disk, for scrubbing back. Default: on, 10 minutes,
    /// at most 4096 MB, in `replay/` beside the config file.
    #[serde(default, skip_serializing_if = "ReplayConfig::is_default")]
    pub replay: ReplayConfig,
}

/// `server.tls` section: either `cert` and `key`, or `self_signed`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. Relative paths are taken from the config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert` (PKCS#8, PKCS#1 or SEC1). Relative as `cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Generate a certificate for this machine's names on first start and keep it in
    /// `camwall-tls/` beside the config file. Default false.
    #[serde(default)]
    pub self_signed: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: None,
            public_dir: PathBuf::from("../public"),
            frame_cache_ttl_ms: 16,
            quality_tiers: vec![85, 80, 70],
            limits: Limits::default(),
            auth: AuthConfig::default(),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            tls: None,
            allow_local_sources: false,
            trusted_proxies: Vec::new(),
            cluster: None,
            webrtc: WebRtcConfig::default(),
            replay: ReplayConfig::default(),
        }
    }
}

/// `server.limits` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most cameras a config may hold. Default 256.
    pub max_cameras: usize,
    /// Most distinct encoded qualities kept per camera for pollers; the least recently used one
    /// is dropped beyond it. Default 8.
    pub max_cached_qualities: usize,
    /// Most WebSocket clients at once. Default 256.
    pub max_ws_clients: usize,
    /// Most MJPEG stream clients at once. Default 256.
    pub max_mjpeg_clients: usize,
    /// Most WebSocket plus MJPEG clients from one IP address. Default 32.
    pub max_clients_per_ip: usize,
    /// A client must send a whole request head within this time or be cut off (slowloris).
    /// Default 10000. Also closes connections that send nothing at all, and keep-alive
    /// connections idle for this long between requests.
    pub header_timeout_ms: u64,
    /// Most open TCP connections from one address (trusted proxies are not capped); beyond it
    /// a new connection is closed at once. Default 64.
    pub max_connections_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_cameras: 256,
            max_cached_qualities: 8,
            max_ws_clients: 256,
            max_mjpeg_clients: 256,
            max_clients_per_ip: 32,
            header_timeout_ms: 10_000,
            max_connections_per_ip: 64,
        }
    }
}

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// `line:column` of a syntax or type error, when known.
    pub position: Option<(usize, usize)>,
    /// Camera id (or `cameras[i]` when the id itself is the problem).
    pub camera: Option<String>,
    /// Field path, e.g. `cameras[1].max_fps` or `server.listen`.
    pub field: String,
    pub message: String,
}

/// Everything wrong with a config file, with the file's name.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub path: PathBuf,
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.path.display())?;
            if let Some((line, col)) = issue.position {
                write!(f, ":{line}:{col}")?;
            }
            write!(f, ": ")?;
            if let Some(cam) = &issue.camera {
                write!(f, "camera {cam:?}: ")?;
            }
            write!(f, "field `{}`: {}", issue.field, issue.message)?;
        }
        Ok(())
    }
}

/// A config file as read once: the validated config, its JSON document (key order kept, so
/// runtime changes touch only what they change) and the exact text (so a later edit by hand
/// can be told apart from what camwall read).
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub doc: serde_json::Value,
    pub text: String,
}

impl LoadedConfig {
    /// Validates `text`, read from `path` (named in errors).
    pub fn from_text(path: &Path, text: String) -> Result<Self, ConfigError> {
        let fail = |issues| ConfigError {
            path: path.to_path_buf(),
            issues,
        };
        // Editors on Windows save a byte order mark; JSON has no place for it. The exact text
        // (mark included) is kept, so that hand-edit detection compares like with like.
        let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let config = parse(body).map_err(fail)?;
        let doc = serde_json::from_str(body).map_err(|e| {
            fail(vec![ConfigIssue {
                position: Some((e.line(), e.column())),
                camera: None,
                field: "(document)".into(),
                message: strip_position(&e.to_string()),
            }])
        })?;
        Ok(Self { config, doc, text })
    }
}

/// Reads and validates a config file, once: everything later works from what this returns.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        issues: vec![ConfigIssue {
            position: None,
            camera: None,
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
        }],
    })?;
    LoadedConfig::from_text(path, text)
}

/// Parses and validates config text.
pub fn parse(text: &str) -> Result<Config, Vec<ConfigIssue>> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        let field = match e.path().to_string() {
            p if p == "." => "(document)".to_string(),
            p => p,
        };
        vec![ConfigIssue {
            position: Some((inner.line(), inner.column())),
            camera: None,
            field,
            // serde_json appends " at line L column C"; the position is reported separately.
            message: strip_position(&inner.to_string()),
        }]
    })?;
    let issues = validate(&config);
    if issues.is_empty() {
        Ok(config)
    } else {
        Err(issues)
    }
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Checks `server.tls`: one of the two forms, no empty path. Returns (field, message) pairs.
fn validate_tls(tls: &TlsConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let empty = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| p.as_os_str().is_empty());
    if tls.self_signed && (tls.cert.is_some() || tls.key.is_some()) {
        out.push((
            "tls",
            "give either cert and key or self_signed, not both".into(),
        ));
    } else if !tls.self_signed && tls.cert.is_none() && tls.key.is_none() {
        out.push(("tls", "needs cert and key, or \"self_signed\": true".into()));
    } else if !tls.self_signed && tls.key.is_none() {
        out.push(("tls.key", "cert needs its key".into()));
    } else if !tls.self_signed && tls.cert.is_none() {
        out.push(("tls.cert", "key needs its cert".into()));
    }
    if empty(&tls.cert) {
        out.push(("tls.cert", "must not be empty".into()));
    }
    if empty(&tls.key) {
        out.push(("tls.key", "must not be empty".into()));
    }
    out
}

fn validate(config: &Config) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    let server = |field: &str, message: String| ConfigIssue {
        position: None,
        camera: None,
        field: format!("server.{field}"),
        message,
    };
    let s = &config.server;
    if let Some(listen) = &s.listen {
        if !is_host_port(listen) {
            issues.push(server(
                "listen",
                format!("{listen:?} is not HOST:PORT (e.g. 127.0.0.1:8000 or localhost:8000)"),
            ));
        }
    }
    if s.frame_cache_ttl_ms > 60_000 {
        issues.push(server("frame_cache_ttl_ms", "must be at most 60000".into()));
    }
    if s.quality_tiers.is_empty() {
        issues.push(server("quality_tiers", "needs at least one quality".into()));
    }
    if s.quality_tiers
        .iter()
        .any(|q| !crate::media::tier::QUALITY_RANGE.contains(q))
    {
        issues.push(server(
            "quality_tiers",
            "every quality must be between 1 and 100".into(),
        ));
    }
    if s.quality_tiers.windows(2).any(|w| w[0] <= w[1]) {
        issues.push(server(
            "quality_tiers",
            "qualities must be listed best first, strictly decreasing".into(),
        ));
    }
    let view_ids: HashSet<&str> = config.views.iter().map(|v| v.id.as_str()).collect();
    for (field, message) in auth::validate(&s.auth, &view_ids) {
        issues.push(server(&field, message));
    }
    for o in &s.allowed_origins {
        if !(o.starts_with("http://") || o.starts_with("https://")) {
            issues.push(server(
                "allowed_origins",
                format!("{o:?} is not an origin like https://wall.example"),
            ));
        }
    }
    for h in &s.allowed_hosts {
        let ok = !h.is_empty()
            && h.len() <= 253
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            issues.push(server(
                "allowed_hosts",
                format!(
                    "{:?} is not a host name like cams.example.com (no scheme, no port)",
                    h.chars().take(100).collect::<String>()
                ),
            ));
        }
    }
    if let Some(tls) = &s.tls {
        issues.extend(validate_tls(tls).into_iter().map(|(f, m)| server(f, m)));
    }
    if let Some(c) = &s.cluster {
        issues.extend(validate_cluster(c).into_iter().map(|(f, m)| server(f, m)));
    }
    issues.extend(
        validate_webrtc(&s.webrtc)
            .into_iter()
            .map(|(f, m)| server(f, m)),
    );
    issues.extend(
        validate_replay(&s.replay)
            .into_iter()
            .map(|(f, m)| server(f, m)),
    );
    if !(100..=600_000).contains(&s.limits.header_timeout_ms) {
        issues.push(server(
            "limits.header_timeout_ms",
            "must be between 100 and 600000".into(),
        ));
    }
    if s.limits.max_connections_per_ip == 0 {
        issues.push(server(
            "limits.max_connections_per_ip",
            "must be at least 1".into(),
        ));
    }
    if s.limits.max_cached_qualities == 0 {
        issues.push(server(
            "limits.max_cached_qualities",
            "must be at least 1".into(),
        ));
    }
    if config.cameras.len() > s.limits.max_cameras {
        issues.push(ConfigIssue {
            position: None,
            camera: None,
            field: "cameras".into(),
            message: format!(
                "{} cameras exceed server.limits.max_cameras = {}",
                config.cameras.len(),
                s.limits.max_cameras
            ),
        });
    }
    let mut seen = HashSet::new();
    for (i, cam) in config.cameras.iter().enumerate() {
        let who = if is_safe_id(&cam.id) {
            cam.id.clone()
        } else {
            format!("cameras[{i}]")
        };
        for (field, message) in validate_camera(cam) {
            issues.push(ConfigIssue {
                position: None,
                camera: Some(who.clone()),
                field: format!("cameras[{i}].{field}"),
                message,
            });
        }
        if !seen.insert(cam.id.as_str()) {
            issues.push(ConfigIssue {
                position: None,
                camera: Some(who),
                field: format!("cameras[{i}].id"),
                message: "duplicate id: ids must be unique".into(),
            });
        }
    }
    issues.extend(views::validate_views(&config.views, &config.cameras));
    issues
}

/// Whether `s` looks like `HOST:PORT` (an address, `[v6]:port`, or a host name and a port).
/// Whether a name resolves is known only when it is resolved, at start.
fn is_host_port(s: &str) -> bool {
    if s.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match s.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok()
                && !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
        None => false,
    }
}

/// The address to listen on for `s` (`HOST:PORT`): an address as it is, a host name resolved
/// (the first address it gives; `localhost` gives the loopback).
pub fn resolve_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if !is_host_port(s) {
        return Err(format!("{s:?} is not HOST:PORT (e.g. 127.0.0.1:8000)"));
    }
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {s:?}: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

#[cfg(test)]
mod tests;
