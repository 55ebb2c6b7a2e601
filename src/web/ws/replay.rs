//! A live-wall connection's replays: cameras subscribed with `at` get the camera's recorded
//! units from the replay ring (`replay::Replay::play`) instead of its live stream, through
//! the same per-viewer video rules (`video::VideoSub`: a `video_config` first, keyframe
//! gating) and, at 1 times, its recorded audio to a client that listed its codec (as live:
//! `ws::audio`), or, for a client that does not decode the camera's video (and a camera kept
//! as JPEGs), JPEG frames at its tier (`replay::Replay::play_pictures`); then `replay_ended`
//! when the player reaches the newest recording. Replays are not on the link's ladder: they
//! are what the person asked to see, at the pace asked.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamMap;

use super::audio::AudioOut;
use super::protocol::{frame_message, ProtocolError, VideoMode};
use super::video::{VideoOut, VideoSub};
use crate::hub::audio::AudioFrame;
use crate::hub::cache::Encoded;
use crate::hub::video::VideoUnit;
use crate::media::tier::Tier;
use crate::replay::play::Played;
use crate::replay::read::ReadError;
use crate::replay::Replay;

/// What a replay plays: the camera's units and audio, or pictures for a client that takes
/// JPEG.
pub enum Replayed {
    Unit(Arc<VideoUnit>),
    Audio(Arc<AudioFrame>),
    Picture(Arc<Encoded>),
}

/// Each replaying camera's units or pictures, then `None` when its player ended.
type Feed = BoxStream<'static, Option<Replayed>>;

/// How a replayed camera reaches the client.
enum Viewer {
    Video(VideoSub, AudioOut),
    Jpeg(Tier),
}

/// The cameras a connection replays now.
#[derive(Default)]
pub struct Replays {
    ring: Option<Arc<Replay>>,
    feeds: StreamMap<String, Feed>,
    viewers: HashMap<String, Viewer>,
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

    /// Replays `id` from `at_ms` at `speed`, as video (with its audio for a client that
    /// decodes one of `audio`), or as JPEGs at `jpeg` (a replay of it already running starts
    /// over).
    pub fn start(
        &mut self,
        id: &str,
        at_ms: u64,
        speed: u8,
        jpeg: Option<Tier>,
        audio: &[&'static str],
    ) -> Result<(), ProtocolError> {
        self.stop(id);
        let not_in = |why: &str| ProtocolError::NotInReplay(id.to_string(), why.to_string());
        let ring = self
            .ring
            .as_ref()
            .ok_or_else(|| not_in("replay is off on this server"))?;
        let refused = |e: ReadError| match e {
            ReadError::NotInReplay => not_in("nothing recorded at that instant"),
            ReadError::Busy => ProtocolError::Busy(id.to_string(), e.to_string()),
            e => not_in(&e.to_string()),
        };
        let (feed, viewer) = match jpeg {
            None => {
                let rx = ring.play(id, at_ms, speed).map_err(refused)?;
                let feed = ReceiverStream::new(rx).map(|p| {
                    Some(match p {
                        Played::Unit(u) => Replayed::Unit(u),
                        Played::Audio(a) => Replayed::Audio(a),
                    })
                });
                let viewer = Viewer::Video(
                    VideoSub::new(VideoMode::Full),
                    AudioOut::new(audio.to_vec()),
                );
                (feed.boxed(), viewer)
            }
            Some(tier) => {
                let rx = ring
                    .play_pictures(id, at_ms, speed, tier)
                    .map_err(refused)?;
                let feed = ReceiverStream::new(rx).map(|p| Some(Replayed::Picture(p)));
                (feed.boxed(), Viewer::Jpeg(tier))
            }
        };
        let feed = feed.chain(stream::once(async { None })).boxed();
        self.feeds.insert(id.to_string(), feed);
        self.viewers.insert(id.to_string(), viewer);
        Ok(())
    }

    /// Stops replaying `id`; whether it was.
    pub fn stop(&mut self, id: &str) -> bool {
        self.viewers.remove(id);
        self.feeds.remove(id).is_some()
    }

    /// The next unit or picture of any replay (`None` in the pair: that replay ended).
    pub async fn next(&mut self) -> Option<(String, Option<Replayed>)> {
        self.feeds.next().await
    }

    /// What goes out for a replayed unit of `id` (a `video_config` marked `replay`, the
    /// unit) or picture (a frame message), or for its end (`replay_ended`, as a text message).
    pub fn admit(&mut self, id: &str, item: Option<&Replayed>) -> Vec<VideoOut> {
        let Some(item) = item else {
            self.stop(id);
            return vec![VideoOut::Config(
                json!({"type": "replay_ended", "camera": id}),
            )];
        };
        let (v, unit) = match (self.viewers.get_mut(id), item) {
            (Some(Viewer::Video(v, _)), Replayed::Unit(u)) => (v, u),
            (Some(Viewer::Video(_, a)), Replayed::Audio(f)) => {
                let Some((config, frame)) = a.admit(id, f) else {
                    return Vec::new();
                };
                return config
                    .map(VideoOut::Config)
                    .into_iter()
                    .chain([VideoOut::Unit(frame)])
                    .collect();
            }
            (Some(Viewer::Jpeg(tier)), Replayed::Picture(p)) => {
                return vec![VideoOut::Unit(frame_message(id, *tier, p))];
            }
            _ => return Vec::new(),
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
