//! What each subscription of a live-wall connection receives: moving it to the lane or video
//! its level and stream call for, and to the stream that should serve it, telling the client.

use std::sync::Arc;

use tokio::time::Instant;

use super::super::protocol::{QualityReq, TierEvent};
use super::super::sub::{Sub, Target};
use super::super::video::{VideoOut, VideoSub};
use super::{Out, Session};
use crate::hub::{streams, Pictures, Video};

impl Session {
    /// Recomputes what `id` receives; on a change (or the first time), moves it to the new
    /// lane or to video and tells the client.
    pub(super) fn retarget(&mut self, id: &str, now: Instant) {
        let Some(sub) = self.subs.get_mut(id) else {
            return;
        };
        sub.seen_codec = sub.cam().video().codec();
        let target = sub.target(&self.ladder, now);
        let (codec, mode, lane) = match target {
            Target::Video(codec, mode) => {
                if let Some(v) = sub.video.as_mut() {
                    if v.mode == mode {
                        return;
                    }
                    v.set_mode(mode);
                } else {
                    // Video from the current GOP on, keyframe first: the client decodes up to
                    // the newest picture at once instead of waiting for the next keyframe.
                    let mut video = sub.stream.attach(Video::Watch);
                    let mut v = VideoSub::new(mode);
                    for unit in &std::mem::take(&mut video.gop) {
                        sub.meter_mut().unit(unit);
                        for o in v.admit(id, unit) {
                            self.out.push(match o {
                                VideoOut::Config(c) => Out::Text(c.to_string()),
                                VideoOut::Unit(b) => Out::Binary(b),
                            });
                        }
                    }
                    self.streams.remove(id);
                    self.video_streams.insert(id.to_string(), video);
                    sub.video = Some(v);
                    sub.lane = None;
                    // Acknowledgements of JPEG frames say nothing about video.
                    sub.in_flight.clear();
                }
                (codec.name(), Some(mode), None)
            }
            Target::Jpeg(want) => {
                if sub.video.take().is_some() {
                    self.video_streams.remove(id);
                    sub.in_flight.clear();
                } else if sub.lane == Some(want) {
                    return;
                }
                // The fan-out may serve a nearby lane when the camera has as many as it may.
                let frames = sub.stream.attach(Pictures(want));
                let lane = frames.lane();
                if sub.lane == Some(lane) {
                    return;
                }
                sub.lane = Some(lane);
                self.streams.insert(id.to_string(), frames);
                ("jpeg", None, Some(lane))
            }
        };
        let (quality, scale, max_fps) = lane.map_or((0, 1, None), |l| {
            (l.tier.quality, l.tier.scale, l.max_fps())
        });
        let best = sub.tile(&self.ladder, now).costs.first().copied();
        let ev = TierEvent {
            kind: "tier",
            camera: id,
            quality,
            scale,
            width: sub.src_width.div_ceil(u32::from(scale)),
            max_fps,
            auto: sub.quality == QualityReq::Auto,
            level: sub.level,
            codec,
            mode,
            stream: sub.serving,
            fallback: sub.fallback,
            reason: sub.reason.filter(|_| sub.level > 0),
            best_kbps: best.map_or(0, |b| (b / 1000.0).round() as u64),
        };
        if let Ok(t) = serde_json::to_string(&ev) {
            self.out.push(Out::Text(t));
        }
    }

    /// Moves `id` to the stream that should serve it now (the sub stream came up or went
    /// down, the main one failed, the link moved the viewer to or from the sub stream): a new
    /// lane or video from the new stream's keyframe, with the old picture on screen until the
    /// first new one arrives.
    pub(super) fn restream(&mut self, id: &str, now: Instant) {
        let Some(sub) = self.subs.get_mut(id) else {
            return;
        };
        let video = !sub.codecs.is_empty() && !sub.video_failed;
        sub.link_streams = Sub::link_streams_for(
            &self.hub,
            id,
            (sub.quality, sub.stream_req, video),
            sub.max_width,
        );
        let Some(choice) = streams::choose(&self.hub, id, sub.stream_ask(), sub.max_width) else {
            return;
        };
        sub.keep_sub(&self.hub, id, choice.wants_sub);
        if Arc::ptr_eq(&choice.stream.camera, sub.cam()) {
            return;
        }
        tracing::debug!(camera = %id, stream = ?choice.kind, fallback = choice.fallback(), "switching stream");
        sub.fallback = choice.fallback();
        sub.serving = choice.kind;
        sub.stream = choice.stream;
        sub.src_width = sub.cam().width();
        // Sequence numbers belong to one stream.
        sub.last_sent_seq = 0;
        sub.in_flight.clear();
        sub.lane = None;
        sub.video = None;
        sub.seen_codec = None;
        self.streams.remove(id);
        self.video_streams.remove(id);
        self.retarget(id, now);
    }
}
