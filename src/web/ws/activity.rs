//! Which cameras' activity one connection hears about, and when: at most one `activity`
//! event a second per camera, only when the level moved, only for cameras the client
//! subscribed to or asked about.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::protocol;
use crate::hub::Hub;

/// Fewest seconds between two events of one camera.
const MIN_SPACING: Duration = Duration::from_secs(1);
/// A level that moved less than this is not news.
const STEP: f32 = 0.02;

/// One connection's activity events.
#[derive(Debug, Default)]
pub struct ActivityWatch {
    /// Cameras asked about beside the subscribed ones (`all`: every camera).
    asked: HashSet<String>,
    all: bool,
    /// Per camera: the level last sent and when. Bounded by the hub's cameras: entries of
    /// cameras no longer watched are dropped at each tick.
    sent: HashMap<String, (f32, Instant)>,
}

impl ActivityWatch {
    /// The client's `activity` request: these cameras (`"*"`: all) from now on; none: only
    /// the subscribed ones.
    pub fn ask(&mut self, ids: Vec<String>) {
        self.all = ids.iter().any(|i| i == "*");
        self.asked = if self.all {
            HashSet::new()
        } else {
            ids.into_iter().collect()
        };
    }

    /// The events due at `now`; `allowed` tells the cameras the client may see (its scope),
    /// `subscribed` those it watches. One pass over the hub's cameras, whatever their number.
    pub fn tick(
        &mut self,
        hub: &Hub,
        allowed: impl Fn(&str) -> bool,
        subscribed: impl Fn(&str) -> bool,
        now: Instant,
    ) -> Vec<Value> {
        let watched =
            |id: &str| allowed(id) && (self.all || self.asked.contains(id) || subscribed(id));
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for cam in hub.cameras() {
            let id = cam.id();
            if !watched(id) {
                continue;
            }
            seen.insert(id.to_string());
            let Some(level) = cam.activity() else {
                continue;
            };
            let due = match self.sent.get(id) {
                None => true,
                Some((last, at)) => {
                    now.saturating_duration_since(*at) >= MIN_SPACING
                        && (level - last).abs() >= STEP
                }
            };
            if due {
                out.push(protocol::activity(id, level));
                self.sent.insert(id.to_string(), (level, now));
            }
        }
        self.sent.retain(|id, _| seen.contains(id));
        out
    }
}
