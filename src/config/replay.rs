//! `server.replay`: the ring on disk of every camera's last minutes (types, defaults,
//! validation). On by default: 10 minutes, at most 4096 MB, in `replay/` beside the config.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `server.replay` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplayConfig {
    /// Where the segments go. Relative paths are taken from the config file's directory.
    /// Default `replay`.
    pub dir: PathBuf,
    /// How many minutes of each camera are kept; 0 turns replay off. Default 10.
    pub minutes: u32,
    /// Most megabytes all cameras' segments take together; the oldest go first. Default 4096.
    pub max_mb: u64,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("replay"),
            minutes: 10,
            max_mb: 4096,
        }
    }
}

impl ReplayConfig {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Whether anything is kept at all.
    pub fn enabled(&self) -> bool {
        self.minutes > 0 && self.max_mb > 0
    }
}

/// Longest ring: a day. Beyond it a disk-sized store with its own index is the tool.
pub const MAX_MINUTES: u32 = 24 * 60;

pub fn validate_replay(c: &ReplayConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if c.minutes > MAX_MINUTES {
        out.push((
            "replay.minutes",
            format!("must be at most {MAX_MINUTES} (a day); 0 turns replay off"),
        ));
    }
    if c.dir.as_os_str().is_empty() {
        out.push(("replay.dir", "must not be empty".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        let d = ReplayConfig::default();
        assert!(d.enabled() && validate_replay(&d).is_empty());
        let off = ReplayConfig {
            minutes: 0,
            ..d.clone()
        };
        assert!(!off.enabled());
        let long = ReplayConfig {
            minutes: MAX_MINUTES + 1,
            ..d
        };
        assert_eq!(validate_replay(&long)[0].0, "replay.minutes");
    }
}
