//! Membership: each node's heartbeat in a JetStream KV bucket whose entries expire, and the
//! live node set read back from it.
//!
//! A bucket `max_age` removes a silent node's key by itself; JetStream does not report such an
//! expiry to watchers, so the set is read back every heartbeat instead of watched.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

/// The heartbeats' bucket.
pub const NODES_BUCKET: &str = "camwall_nodes";
/// How often a node refreshes its heartbeat (and re-reads the others').
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How long a heartbeat lives: a node silent for this long has left the cluster.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(3);
/// Most nodes read back: bounds the work per heartbeat whatever the bucket holds.
pub const MAX_NODES: usize = 256;

/// What a node says of itself every heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Beat {
    pub node: String,
    pub weight: f64,
    /// Cameras this node ingests now, with their state.
    pub cameras: BTreeMap<String, String>,
    /// Their picture size and frame rate (sub streams' too), so that other nodes pick tiers as
    /// the owner would (absent from an older node's beat).
    #[serde(default)]
    pub pictures: BTreeMap<String, PictureFacts>,
    /// The sub streams of those cameras (`<id>.sub`), with their state.
    #[serde(default)]
    pub subs: BTreeMap<String, String>,
    /// WebSocket and MJPEG clients connected to this node.
    pub viewers: u64,
    /// This process's CPU use over the last heartbeat, in percent of one core.
    pub cpu_percent: f64,
}

/// A camera's pictures as its owner sees them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PictureFacts {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// How much the picture changes (0..1), when the owner has an estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<f32>,
}

/// The live nodes, by name, as their heartbeats say.
pub async fn read(kv: &kv::Store) -> Result<BTreeMap<String, Beat>, async_nats::Error> {
    let mut keys = kv.keys().await?;
    let mut names = Vec::new();
    while let Some(k) = keys.next().await {
        names.push(k?);
        if names.len() >= MAX_NODES {
            break;
        }
    }
    let mut out = BTreeMap::new();
    for name in names {
        if let Some(v) = kv.get(name.as_str()).await? {
            // A value that does not parse is another program's key, or a newer camwall's:
            // leave it out rather than guess.
            if let Ok(beat) = serde_json::from_slice::<Beat>(&v) {
                if beat.node == name {
                    out.insert(name, beat);
                }
            }
        }
    }
    Ok(out)
}

/// This process's CPU time (user + system), from `/proc/self/stat`; `None` off Linux.
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from its closing parenthesis.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux platform camwall builds for.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// CPU percent of one core between two readings `wall` apart.
pub fn cpu_percent(before: Option<Duration>, after: Option<Duration>, wall: Duration) -> f64 {
    match (before, after) {
        (Some(a), Some(b)) if !wall.is_zero() => {
            let p = b.saturating_sub(a).as_secs_f64() / wall.as_secs_f64() * 100.0;
            (p * 10.0).round() / 10.0
        }
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_read_and_turned_into_a_percentage() {
        assert!(cpu_time().is_some());
        let p = cpu_percent(
            Some(Duration::from_millis(100)),
            Some(Duration::from_millis(600)),
            Duration::from_secs(1),
        );
        assert_eq!(p, 50.0);
        assert_eq!(cpu_percent(None, None, Duration::from_secs(1)), 0.0);
    }
}
