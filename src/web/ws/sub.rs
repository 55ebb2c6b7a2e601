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
use crate::hub::streams::{self, StreamReq};
use crate::hub::{Camera, CameraState, Hub, Stream, StreamKind};
use crate::link::share::{Reason, Tile};
use crate::media::h26x::Codec;
use crate::media::tier::{Lane, LaneAsk, LaneQuality, Rung};

/// Levels of the ladder above the JPEG rungs for a camera served as video: every access unit,
/// then keyframes only (with a sub stream the link may move the viewer to, its every unit in
/// between: three).
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
    /// What its rungs cost, as measured on the main stream and on the sub stream.
    pub meters: [Meter; 2],
    /// The camera's main and sub streams, when the link may move this viewer from the one to
    /// the other: video, `auto` quality and stream, a tile its size gives the main stream.
    pub link_streams: Option<(Stream, Stream)>,
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

    /// The main and sub stream of camera `id` if the link may move a viewer asking `req` at
    /// most `max_width` wide between them (see [`Sub::link_streams`]).
    pub fn link_streams_for(
        hub: &Hub,
        id: &str,
        req: (QualityReq, StreamReq, bool),
        max_width: Option<u32>,
    ) -> Option<(Stream, Stream)> {
        let (quality, stream, video) = req;
        if quality != QualityReq::Auto || stream != StreamReq::Auto || !video {
            return None;
        }
        let main = hub.stream_of(id, StreamKind::Main)?;
        let sub = hub.sub(id)?;
        (streams::preferred(StreamReq::Auto, max_width, &main.camera, Some(&sub.camera))
            == StreamKind::Main)
            .then_some((main, sub))
    }

    /// Video levels above the JPEG rungs.
    fn video_levels(&self) -> usize {
        VIDEO_LEVELS + usize::from(self.link_streams.is_some())
    }

    /// The lowest level of this viewer's ladder.
    pub fn max_level(&self, ladder: &[Rung]) -> usize {
        let video = if self.video_codec().is_some() {
            self.video_levels()
        } else {
            0
        };
        ladder.len() - 1 + video
    }

    /// Which of the camera's streams should serve it: the sub stream when the link moved it
    /// below the main stream's video, else what the client asked for.
    pub fn stream_ask(&self) -> StreamReq {
        if self.link_streams.is_some() && self.level >= 1 && self.quality == QualityReq::Auto {
            StreamReq::Sub
        } else {
            self.stream_req
        }
    }

    /// The measurements of the stream serving it now.
    pub fn meter_mut(&mut self) -> &mut Meter {
        &mut self.meters[usize::from(self.serving == StreamKind::Sub)]
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
        self.target_on(&self.stream, ladder, level, now)
    }

    /// What level `level` serves when `stream` serves it (its codec, its lanes).
    fn target_on(&self, stream: &Stream, ladder: &[Rung], level: usize, now: Instant) -> Target {
        let video = stream
            .camera
            .video()
            .codec()
            .or(self.video_codec())
            .filter(|c| !self.video_failed && self.codecs.contains(c));
        let levels = self.video_levels();
        match (video, self.quality) {
            (Some(c), QualityReq::Fixed(_)) => Target::Video(c, VideoMode::Full),
            // Every unit: of the main stream at level 0, of the sub stream at level 1 when
            // the link may move the viewer to it.
            (Some(c), QualityReq::Auto) if level == 0 || (levels > VIDEO_LEVELS && level == 1) => {
                Target::Video(c, VideoMode::Full)
            }
            (Some(c), QualityReq::Auto) if level < levels => Target::Video(c, VideoMode::Keyframes),
            _ => {
                // The video levels count only where video could be served: elsewhere each
                // level is a JPEG rung.
                let offset = if video.is_some() { levels } else { 0 };
                let rung = level.saturating_sub(offset);
                Target::Jpeg(self.lane_on(stream, ladder, rung, now))
            }
        }
    }

    /// What level `level` costs the link, in bits per second, priced on the stream that would
    /// serve it: as measured there, else scaled from the main stream's measurements by size.
    fn cost(&self, ladder: &[Rung], level: usize, now: Instant) -> f64 {
        let (stream, kind) = match &self.link_streams {
            Some((main, _)) if level == 0 => (main, StreamKind::Main),
            Some((_, sub)) => (sub, StreamKind::Sub),
            None => (&self.stream, self.serving),
        };
        let main_cam = self
            .link_streams
            .as_ref()
            .map_or(self.cam(), |(m, _)| &m.camera);
        let main_pixels = f64::from(main_cam.width()) * f64::from(main_cam.height());
        let main_fps = main_cam.fps_at(now).max(1.0);
        let cam = &stream.camera;
        let mut pixels = f64::from(cam.width()) * f64::from(cam.height());
        let mut fps = cam.fps_at(now);
        if pixels == 0.0 {
            // A sub stream not opened yet: a typical one, a sixth of the main stream's pixels.
            pixels = main_pixels / 6.0;
        }
        if fps <= 0.0 {
            fps = main_fps;
        }
        let meter = &self.meters[usize::from(kind == StreamKind::Sub)];
        match self.target_on(stream, ladder, level, now) {
            Target::Video(_, VideoMode::Full) if kind == StreamKind::Sub && !meter.measured() => {
                self.meters[0].full_bps(main_pixels, main_fps) * pixels / main_pixels.max(1.0)
            }
            Target::Video(_, VideoMode::Full) => meter.full_bps(pixels, fps),
            Target::Video(_, VideoMode::Keyframes) => meter.keyframes_bps(pixels, fps),
            Target::Jpeg(lane) => {
                let fps = lane.max_fps().map_or(fps, |cap| cap.min(fps));
                meter.jpeg_bps(lane.tier, pixels, fps)
            }
        }
    }

    /// This subscription as the link's sharing sees it: its size on the client's screen, its
    /// level, and the cost of each rung it may be moved to (one rung, where it is, for a
    /// fixed quality).
    pub fn tile(&self, ladder: &[Rung], now: Instant) -> Tile {
        let weight = self.max_width.unwrap_or(self.src_width).max(1);
        let costs: Vec<f64> = match self.quality {
            QualityReq::Fixed(_) => vec![self.cost(ladder, self.level, now)],
            QualityReq::Auto => (0..=self.max_level(ladder))
                .map(|l| self.cost(ladder, l, now))
                .collect(),
        };
        Tile {
            weight,
            level: if costs.len() == 1 { 0 } else { self.level },
            costs,
        }
    }

    /// The JPEG lane for `rung` of the ladder, as `stream` resolves it.
    fn lane_on(&self, stream: &Stream, ladder: &[Rung], rung: usize, now: Instant) -> Lane {
        let quality = match self.quality {
            QualityReq::Fixed(q) => LaneQuality::Fixed(q),
            QualityReq::Auto => LaneQuality::Rung(ladder[rung.min(ladder.len() - 1)]),
        };
        let ask = LaneAsk {
            quality,
            max_width: self.max_width,
            max_fps: self.max_fps,
        };
        stream.lane(&ask, now)
    }

    /// The camera of the stream serving it now.
    pub fn cam(&self) -> &Arc<Camera> {
        &self.stream.camera
    }
}
