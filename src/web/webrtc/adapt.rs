//! When a WebRTC viewer's path cannot carry the camera: what the receiver's feedback says
//! the path carries (TWCC through str0m's bandwidth estimator, or REMB) and how long packets
//! wait in the pacer, against what the camera's full video and its keyframes cost
//! (`web::ws::meter`, measured on the camera's clock), decided by `link::share` exactly as for
//! a tile on the wall's WebSocket. Pure: the session feeds it units and samples.

use std::time::Duration;

use crate::hub::video::VideoUnit;
use crate::link::share::{Share, Signal, Tile};
use crate::web::ws::meter::Meter;

/// How often the session asks for a decision.
pub const DECIDE_EVERY: Duration = Duration::from_millis(500);
/// Packets waiting this long in the pacer mean the path is full (the WebSocket's bound).
const QUEUE_FULL: Duration = Duration::from_millis(300);
/// Packets waiting no longer than this mean nothing queues.
const QUEUE_CLEAR: Duration = Duration::from_millis(50);
/// Loss reported by the receiver past which the path is full, whatever the estimate.
const LOSS_FULL: f32 = 0.1;

/// The rungs of a WebRTC viewer: the camera's full video, then its keyframes alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rung {
    Full = 0,
    Keyframes = 1,
}

/// What the session saw since the last decision.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// The receiver-fed estimate, bits per second.
    pub estimate_bps: Option<f64>,
    /// How long the oldest packet has waited in the pacer.
    pub queued_for: Duration,
    /// Fraction of packets the receiver reported lost.
    pub loss: Option<f32>,
}

/// One viewer's adaptation state.
#[derive(Debug, Clone, Default)]
pub struct Adapt {
    meter: Meter,
    share: Share,
    level: usize,
    pixels: f64,
    fps: f64,
}

impl Adapt {
    /// A unit of the camera passed (sent or not: the cost is the camera's).
    pub fn unit(&mut self, unit: &VideoUnit) {
        self.meter.unit(unit);
        let p = &unit.config.params;
        self.pixels = f64::from(p.width) * f64::from(p.height);
    }

    /// The camera's frame rate, for the cost guesses before anything is measured.
    pub fn set_fps(&mut self, fps: f64) {
        self.fps = fps;
    }

    pub fn rung(&self) -> Rung {
        if self.level == 0 {
            Rung::Full
        } else {
            Rung::Keyframes
        }
    }

    /// Bits per second of each rung, best first.
    pub fn costs(&self) -> [f64; 2] {
        let fps = if self.fps > 0.0 { self.fps } else { 25.0 };
        [
            self.meter.full_bps(self.pixels, fps),
            self.meter.keyframes_bps(self.pixels, fps),
        ]
    }

    /// Takes a sample; returns the rung from now on.
    pub fn decide(&mut self, s: Sample) -> Rung {
        let costs = self.costs();
        let here = costs[self.level];
        let lossy = s.loss.is_some_and(|l| l >= LOSS_FULL);
        let short = s.estimate_bps.is_some_and(|e| e < here);
        let signal = if s.queued_for >= QUEUE_FULL || lossy || short {
            Signal::Congested {
                rate_bps: s.estimate_bps,
            }
        } else if s.queued_for <= QUEUE_CLEAR
            && (self.level == 0 || s.estimate_bps.is_none_or(|e| e >= costs[0]))
        {
            Signal::Clear
        } else {
            Signal::Steady
        };
        let tile = Tile {
            weight: 1,
            level: self.level,
            costs: costs.to_vec(),
        };
        let d = self.share.decide(std::slice::from_ref(&tile), signal);
        self.level = d.levels.first().copied().unwrap_or(self.level).min(1);
        self.rung()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::video::VideoConfig;
    use crate::media::clock::Stamp;
    use crate::media::h26x::fixtures::{H264_TINY_PPS, H264_TINY_SPS};
    use crate::media::h26x::{Codec, VideoParams};
    use bytes::Bytes;
    use std::sync::Arc;

    /// A camera of 2 Mbit/s at 25 fps with a 100 KB keyframe every second.
    fn measured() -> Adapt {
        let config = Arc::new(VideoConfig {
            params: Arc::new(
                VideoParams::from_parameter_sets(Codec::H264, [H264_TINY_SPS, H264_TINY_PPS])
                    .unwrap(),
            ),
            generation: 1,
        });
        let mut a = Adapt::default();
        a.set_fps(25.0);
        for seq in 0..100u64 {
            let key = seq % 25 == 0;
            let size = if key { 100_000 } else { 6_250 };
            a.unit(&VideoUnit::new(
                seq,
                key,
                Bytes::from(vec![0u8; size]),
                Stamp {
                    pts_us: seq as i64 * 40_000,
                    captured_unix_ms: 0,
                },
                config.clone(),
            ));
        }
        a
    }

    fn clear(estimate: f64) -> Sample {
        Sample {
            estimate_bps: Some(estimate),
            ..Sample::default()
        }
    }

    #[test]
    fn a_path_short_of_the_camera_gets_keyframes_and_full_video_once_it_carries_it() {
        let mut a = measured();
        let [full, keys] = a.costs();
        assert!(keys < full / 2.0, "keyframes {keys} against full {full}");
        assert_eq!(a.decide(clear(full * 2.0)), Rung::Full);
        assert_eq!(
            a.decide(clear(full * 0.5)),
            Rung::Keyframes,
            "short of the camera"
        );
        for _ in 0..200 {
            if a.decide(clear(full * 3.0)) == Rung::Full {
                return;
            }
        }
        panic!("never back to full video on a path three times the camera");
    }

    #[test]
    fn a_queue_in_the_pacer_or_loss_means_a_full_path_whatever_the_estimate() {
        let mut a = measured();
        let full = a.costs()[0];
        let queued = Sample {
            estimate_bps: Some(full * 2.0),
            queued_for: Duration::from_millis(400),
            loss: None,
        };
        assert_eq!(a.decide(queued), Rung::Keyframes);
        let mut b = measured();
        let lossy = Sample {
            estimate_bps: None,
            queued_for: Duration::ZERO,
            loss: Some(0.3),
        };
        assert_eq!(b.decide(lossy), Rung::Keyframes);
        for _ in 0..20 {
            assert_eq!(
                b.decide(Sample {
                    estimate_bps: Some(full * 0.5),
                    ..Sample::default()
                }),
                Rung::Keyframes,
                "stays down while the estimate is short"
            );
        }
    }
}
