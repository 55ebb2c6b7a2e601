//! One subscription of a live-wall connection: what it asked for, which stream of the camera
//! serves it, where it is on its ladder, what it should receive now (`target`), and what each
//! rung of that ladder costs the link (`tile`, for the connection's sharing of the link).

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::time::Instant;

use super::meter::Meter;
use super::protocol::QualityReq;
use super::video::{VideoMode, VideoSub};
use crate::hub::demand::StreamUse;
use crate::hub::streams::StreamReq;
use crate::hub::{Camera, CameraState, Hub, Stream, StreamKind};
use crate::link::share::{Reason, Tile};
use crate::media::h26x::Codec;
use crate::media::tier::{Lane, LaneAsk, LaneQuality, Rung};

/// Levels of the ladder above the JPEG rungs for a camera served as video: every access unit,
/// then keyframes only.
pub const VIDEO_LEVELS: usize = 2;

/// What a subscription should receive now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    Video(Codec, VideoMode),
    Jpeg(Lane),
}

/// One camera a connection watches.
pub struct Sub {
    /// The stream serving it now (the camera's main or sub stream).
    pub stream: Stream,
    pub quality: QualityReq,
    pub max_width: Option<u32>,
    pub max_fps: Option<f64>,
    /// Where it is on its ladder (0: the best), and why it is below the best (`None` at the
    /// top or for a fixed quality).
    pub level: usize,
    pub reason: Option<Reason>,
    /// What its rungs cost, as measured.
    pub meter: Meter,
    /// The client's page said its decoder fell behind on this tile since the last decision.
    pub viewer_busy: bool,
    /// The lane this subscription reads now (`None` before the first retarget).
    pub lane: Option<Lane>,
    pub src_width: u32,
    pub last_sent_seq: u64,
    /// Frames sent and not yet acknowledged: sequence number, when the send began, bytes.
    pub in_flight: VecDeque<(u64, Instant, usize)>,
    pub last_state: Option<CameraState>,
    /// Video families the client decodes.
    pub codecs: Vec<Codec>,
    /// The client's decoder failed on this camera: JPEG from now on.
    pub video_failed: bool,
    /// Set while the camera is served as video.
    pub video: Option<VideoSub>,
    /// The camera's video codec when the target was last chosen: a change moves the viewer.
    pub seen_codec: Option<Codec>,
    /// Which of the camera's streams the client asked for, which serves it now, and whether
    /// that one stands in for the other.
    pub stream_req: StreamReq,
    pub serving: StreamKind,
    pub fallback: bool,
    /// Keeps the camera's sub stream connected while this viewer prefers it (or needs it as
    /// the fallback of a main stream that is down).
    pub sub_use: Option<StreamUse>,
}

impl Sub {
    /// Holds the sub stream of camera `id` open while `wanted`.
    pub fn keep_sub(&mut self, hub: &Hub, id: &str, wanted: bool) {
        if !wanted {
            self.sub_use = None;
        } else if self.sub_use.is_none() {
            self.sub_use = hub.sub(id).map(|o| o.camera.demand().use_stream());
        }
    }

    /// The levels of a ladder with `video` above the JPEG rungs: every unit, then keyframes.
    pub fn max_level(ladder: &[Rung], video: bool) -> usize {
        ladder.len() - 1 + if video { VIDEO_LEVELS } else { 0 }
    }

    /// The video codec this viewer gets the camera's own units in, if any.
    fn video_codec(&self) -> Option<Codec> {
        self.cam()
            .video()
            .codec()
            .filter(|c| !self.video_failed && self.codecs.contains(c))
    }

    /// What to serve for the current settings and level.
    pub fn target(&self, ladder: &[Rung], now: Instant) -> Target {
        self.target_at(ladder, self.level, now)
    }

    /// What level `level` serves.
    fn target_at(&self, ladder: &[Rung], level: usize, now: Instant) -> Target {
        let video = self.video_codec();
        match (video, self.quality) {
            (Some(c), QualityReq::Fixed(_)) => Target::Video(c, VideoMode::Full),
            (Some(c), QualityReq::Auto) if level == 0 => Target::Video(c, VideoMode::Full),
            (Some(c), QualityReq::Auto) if level < VIDEO_LEVELS => {
                Target::Video(c, VideoMode::Keyframes)
            }
            _ => {
                // The video levels count only where video could be served: elsewhere each
                // level is a JPEG rung.
                let offset = if video.is_some() { VIDEO_LEVELS } else { 0 };
                let rung = level.saturating_sub(offset);
                Target::Jpeg(self.lane(ladder, rung, now))
            }
        }
    }

    /// What a target costs the link, in bits per second.
    fn cost(&self, target: Target, now: Instant) -> f64 {
        let cam = self.cam();
        let (w, h) = (f64::from(cam.width()), f64::from(cam.height()));
        let fps = cam.fps_at(now).max(1.0);
        match target {
            Target::Video(_, VideoMode::Full) => self.meter.full_bps(w * h, fps),
            Target::Video(_, VideoMode::Keyframes) => self.meter.keyframes_bps(w * h, fps),
            Target::Jpeg(lane) => {
                let fps = lane.max_fps().map_or(fps, |cap| cap.min(fps));
                self.meter.jpeg_bps(lane.tier, w * h, fps)
            }
        }
    }

    /// This subscription as the link's sharing sees it: its size on the client's screen, its
    /// level, and the cost of each rung it may be moved to (one rung, where it is, for a
    /// fixed quality).
    pub fn tile(&self, ladder: &[Rung], now: Instant) -> Tile {
        let weight = self.max_width.unwrap_or(self.src_width).max(1);
        let costs = match self.quality {
            QualityReq::Fixed(_) => vec![self.cost(self.target(ladder, now), now)],
            QualityReq::Auto => {
                let top = Self::max_level(ladder, self.video_codec().is_some());
                (0..=top)
                    .map(|l| self.cost(self.target_at(ladder, l, now), now))
                    .collect()
            }
        };
        Tile {
            weight,
            level: if costs.len() == 1 { 0 } else { self.level },
            costs,
        }
    }

    /// The JPEG lane for `rung` of the ladder, as the stream resolves it.
    pub fn lane(&self, ladder: &[Rung], rung: usize, now: Instant) -> Lane {
        let quality = match self.quality {
            QualityReq::Fixed(q) => LaneQuality::Fixed(q),
            QualityReq::Auto => LaneQuality::Rung(ladder[rung.min(ladder.len() - 1)]),
        };
        let ask = LaneAsk {
            quality,
            max_width: self.max_width,
            max_fps: self.max_fps,
        };
        self.stream.lane(&ask, now)
    }

    /// The camera of the stream serving it now.
    pub fn cam(&self) -> &Arc<Camera> {
        &self.stream.camera
    }
}
