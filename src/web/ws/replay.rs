//! A live-wall connection's replays: cameras subscribed with `at` get the camera's recorded
//! units from the replay ring (`replay::Replay::play`) instead of its live stream, through
//! the same per-viewer video rules (`video::VideoSub`: a `video_config` first, keyframe
//! gating), then `replay_ended` when the player reaches the newest recording. Replays are
//! not on the link's ladder: they are what the person asked to see, at the pace asked.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamMap;

use super::protocol::{ProtocolError, VideoMode};
use super::video::{VideoOut, VideoSub};
use crate::hub::video::VideoUnit;
use crate::replay::read::ReadError;
use crate::replay::Replay;

/// Each replaying camera's units, then `None` when its player ended.
type Feed = BoxStream<'static, Option<Arc<VideoUnit>>>;

/// The cameras a connection replays now.
#[derive(Default)]
pub struct Replays {
    ring: Option<Arc<Replay>>,
    feeds: StreamMap<String, Feed>,
    viewers: HashMap<String, VideoSub>,
}

impl Replays {
    pub fn new(ring: Option<Arc<Replay>>) -> Self {
        Self {
            ring,
            ..Self::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.feeds.is_empty()
    }

    /// Replays `id` from `at_ms` at `speed` (a replay of it already running starts over).
    pub fn start(&mut self, id: &str, at_ms: u64, speed: u8) -> Result<(), ProtocolError> {
        self.stop(id);
        let not_in = |why: &str| ProtocolError::NotInReplay(id.to_string(), why.to_string());
        let ring = self
            .ring
            .as_ref()
            .ok_or_else(|| not_in("replay is off on this server"))?;
        let rx = ring.play(id, at_ms, speed).map_err(|e| match e {
            ReadError::NotInReplay => not_in("nothing recorded at that instant"),
            e => not_in(&e.to_string()),
        })?;
        let feed = ReceiverStream::new(rx)
            .map(Some)
            .chain(stream::once(async { None }))
            .boxed();
        self.feeds.insert(id.to_string(), feed);
        self.viewers
            .insert(id.to_string(), VideoSub::new(VideoMode::Full));
        Ok(())
    }

    /// Stops replaying `id`; whether it was.
    pub fn stop(&mut self, id: &str) -> bool {
        self.viewers.remove(id);
        self.feeds.remove(id).is_some()
    }

    /// The next unit of any replay (`None` in the pair: that replay ended).
    pub async fn next(&mut self) -> Option<(String, Option<Arc<VideoUnit>>)> {
        self.feeds.next().await
    }

    /// What goes out for a replayed unit of `id` (a `video_config` marked `replay`, the
    /// unit), or for its end (`replay_ended`, as a text message).
    pub fn admit(&mut self, id: &str, unit: Option<&VideoUnit>) -> Vec<VideoOut> {
        let Some(unit) = unit else {
            self.stop(id);
            return vec![VideoOut::Config(
                json!({"type": "replay_ended", "camera": id}),
            )];
        };
        let Some(v) = self.viewers.get_mut(id) else {
            return Vec::new();
        };
        let mut out = v.admit(id, unit);
        for o in &mut out {
            if let VideoOut::Config(c) = o {
                c["replay"] = json!(true);
            }
        }
        out
    }
}
