//! The session's replays: a subscribe with `at` plays the cameras back from the replay ring
//! instead of live (`ws::replay`), and what goes out for their units.

use std::sync::Arc;

use super::super::replay::Replays;
use super::super::video::VideoOut;
use super::{Out, Session};
use crate::hub::video::VideoUnit;

impl Session {
    /// The replay ring that `subscribe` with `at` plays from (`None`: replay is off).
    pub fn set_replay(&mut self, ring: Option<Arc<crate::replay::Replay>>) {
        self.replays = Replays::new(ring);
    }

    /// `ids` played back from `at` (Unix ms) at `speed`, instead of live: video only.
    pub(super) fn subscribe_replay(&mut self, ids: &[String], at: u64, speed: u8) {
        for id in ids {
            self.drop_sub(id);
            if let Err(e) = self.replays.start(id, at, speed) {
                self.refuse(e);
            }
        }
    }

    /// What goes to this client for a replayed unit of `id` (or the end of its replay).
    pub fn admit_replay(&mut self, id: &str, unit: Option<&VideoUnit>) -> Vec<Out> {
        self.replays
            .admit(id, unit)
            .into_iter()
            .map(|o| match o {
                VideoOut::Config(c) => Out::Text(c.to_string()),
                VideoOut::Unit(b) => Out::Binary(b),
            })
            .collect()
    }
}
