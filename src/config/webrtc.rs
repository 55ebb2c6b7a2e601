//! `server.webrtc`: WebRTC output (types, defaults, validation). On by default; the UDP port
//! is the HTTP port unless set.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// `server.webrtc` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebRtcConfig {
    /// Whether WHEP and the wall's WebRTC tiles are served. Default true.
    pub enabled: bool,
    /// The UDP port every WebRTC session uses. Default: the HTTP port (or any free port when
    /// another program holds it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<u16>,
    /// Addresses to announce as candidates besides the one a request arrived on: the public
    /// address of a NAT or a Docker host, as `IP` or `IP:PORT`. Default: none.
    pub candidates: Vec<String>,
    /// Most WebRTC sessions at once. Default 256.
    pub max_sessions: usize,
    /// Most WebRTC sessions from one address: a wall on a page without WebCodecs opens one
    /// per tile on screen. Default 64.
    pub max_sessions_per_ip: usize,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            udp: None,
            candidates: Vec::new(),
            max_sessions: 256,
            max_sessions_per_ip: 64,
        }
    }
}

impl WebRtcConfig {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A candidate address: `IP` (with `port`) or `IP:PORT`.
pub fn parse_candidate(s: &str, port: u16) -> Option<SocketAddr> {
    s.parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, port)))
}

pub fn validate_webrtc(c: &WebRtcConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for cand in &c.candidates {
        if parse_candidate(cand, 1).is_none() {
            out.push((
                "webrtc.candidates",
                format!(
                    "{:?} is not an IP address or IP:PORT (e.g. 203.0.113.7 or 203.0.113.7:8000)",
                    cand.chars().take(100).collect::<String>()
                ),
            ));
        }
    }
    if c.max_sessions == 0 {
        out.push(("webrtc.max_sessions", "must be at least 1".into()));
    }
    if c.max_sessions_per_ip == 0 {
        out.push(("webrtc.max_sessions_per_ip", "must be at least 1".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_ip_or_ip_port() {
        assert_eq!(
            parse_candidate("203.0.113.7", 8000),
            "203.0.113.7:8000".parse().ok()
        );
        assert_eq!(
            parse_candidate("203.0.113.7:9000", 8000),
            "203.0.113.7:9000".parse().ok()
        );
        assert_eq!(parse_candidate("cams.example", 8000), None);
        let bad = WebRtcConfig {
            candidates: vec!["cams.example".into()],
            max_sessions: 0,
            ..Default::default()
        };
        let fields: Vec<_> = validate_webrtc(&bad).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["webrtc.candidates", "webrtc.max_sessions"]);
    }
}
