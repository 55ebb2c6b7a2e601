//! The session's replays: a subscribe with `at` plays the cameras back from the replay ring
//! instead of live (`ws::replay`), and what goes out for their units.

use std::sync::Arc;

use super::super::protocol::{QualityReq, SubscribeReq};
use super::super::replay::{Replayed, Replays};
use super::super::video::VideoOut;
use super::{Out, Session};

impl Session {
    /// The replay ring that `subscribe` with `at` plays from (`None`: replay is off).
    pub fn set_replay(&mut self, ring: Option<Arc<crate::replay::Replay>>) {
        self.replays = Replays::new(ring);
    }

    /// `ids` played back from `at` (Unix ms) at `speed`, instead of live: the camera's video
    /// (and at 1 times its audio, to a client that listed its codec) to a client that decodes
    /// its codec, JPEGs at the asked quality and width otherwise.
    pub(super) fn subscribe_replay(
        &mut self,
        ids: &[String],
        req: &SubscribeReq,
        at: u64,
        speed: u8,
    ) {
        for id in ids {
            self.drop_sub(id);
            let Some(stream) = self.hub.stream(id) else {
                continue;
            };
            let codec = stream.camera.video().codec();
            let jpeg = (!codec.is_some_and(|c| req.codecs.contains(&c))).then(|| {
                let quality = match req.quality {
                    QualityReq::Fixed(q) => q,
                    QualityReq::Auto => self.hub.qualities().best(),
                };
                stream.tier(quality, req.max_width)
            });
            if let Err(e) = self.replays.start(id, at, speed, jpeg, &req.audio) {
                self.refuse(e);
            }
        }
    }

    /// What goes to this client for a replayed unit or picture of `id` (or the end of its
    /// replay).
    pub fn admit_replay(&mut self, id: &str, item: Option<&Replayed>) -> Vec<Out> {
        self.replays
            .admit(id, item)
            .into_iter()
            .map(|o| match o {
                VideoOut::Config(c) => Out::Text(c.to_string()),
                VideoOut::Unit(b) => Out::Binary(b),
            })
            .collect()
    }
}
