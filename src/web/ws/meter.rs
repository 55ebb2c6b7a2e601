//! What each rung of one subscription costs the link, in bits per second: measured from what
//! passes through the subscription (the camera's own units on the camera's clock, the JPEG
//! frames of its lane), and for a rung not seen yet, scaled from one that was.

use std::time::Duration;

use crate::hub::video::VideoUnit;
use crate::media::tier::Tier;

/// Weight of a new measurement in the smoothed ones.
const GAIN: f64 = 0.25;
/// Video is measured over at least this much of the camera's own time (its pts), so that a
/// GOP sent at once on subscribe counts at the rate it was filmed.
const VIDEO_SPAN: Duration = Duration::from_secs(1);
/// JPEG tiers remembered: the ladder's, and a few more for the sizes a tile had.
const MAX_TIERS: usize = 16;
/// Guesses before anything was measured (replaced by the first frame or second of video):
/// bytes of JPEG per pixel at quality 85, bits of video per pixel.
const JPEG_BYTES_PER_PIXEL_Q85: f64 = 0.15;
const VIDEO_BITS_PER_PIXEL: f64 = 0.1;

/// The size of a JPEG at `tier` relative to quality 85 at full size: fewer pixels compress
/// less than in proportion, lower qualities shrink it.
fn jpeg_model(tier: Tier) -> f64 {
    let q = f64::from(tier.quality.min(98));
    let quality = (15.0 / (100.0 - q)).powf(0.6);
    let area = f64::from(tier.scale.max(1)).powf(-1.6);
    quality * area
}

/// One subscription's measurements.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    /// Video seen since `span_start` (pts, µs): all units' bits.
    bits: u64,
    span_start: Option<i64>,
    last_pts: i64,
    full_bps: Option<f64>,
    /// Smoothed keyframe size (bits) and spacing (µs of pts).
    key_bits: Option<f64>,
    key_every_us: Option<f64>,
    last_key_pts: Option<i64>,
    /// Smoothed JPEG frame size (bytes) per tier, most recently seen last.
    jpeg: Vec<(Tier, f64)>,
}

fn smooth(old: Option<f64>, new: f64) -> f64 {
    old.map_or(new, |o| o + GAIN * (new - o))
}

impl Meter {
    /// A unit of the camera's video passed (sent or not: the rate is the camera's).
    pub fn unit(&mut self, unit: &VideoUnit) {
        let pts = unit.stamp.pts_us;
        let bits = unit.data.len() as f64 * 8.0;
        if pts < self.last_pts {
            // The camera's clock started over (a reconnect): measure afresh from here.
            self.span_start = None;
            self.last_key_pts = None;
        }
        self.last_pts = pts;
        match self.span_start {
            None => {
                self.span_start = Some(pts);
                self.bits = 0;
            }
            Some(start) => {
                self.bits += unit.data.len() as u64 * 8;
                let span = pts.saturating_sub(start);
                if span >= VIDEO_SPAN.as_micros() as i64 {
                    let bps = self.bits as f64 / (span as f64 / 1e6);
                    self.full_bps = Some(smooth(self.full_bps, bps));
                    self.span_start = Some(pts);
                    self.bits = 0;
                }
            }
        }
        if unit.key {
            self.key_bits = Some(smooth(self.key_bits, bits));
            if let Some(prev) = self.last_key_pts.filter(|p| *p < pts) {
                self.key_every_us = Some(smooth(self.key_every_us, (pts - prev) as f64));
            }
            self.last_key_pts = Some(pts);
        }
    }

    /// A JPEG frame of `bytes` at `tier` passed.
    pub fn jpeg(&mut self, tier: Tier, bytes: usize) {
        let i = self.jpeg.iter().position(|(t, _)| *t == tier);
        let old = i.map(|i| self.jpeg.remove(i).1);
        if self.jpeg.len() >= MAX_TIERS {
            self.jpeg.remove(0);
        }
        self.jpeg.push((tier, smooth(old, bytes as f64)));
    }

    /// Whether the stream's own bitrate was measured yet.
    pub fn measured(&self) -> bool {
        self.full_bps.is_some()
    }

    /// Bits per second of the camera's full video, `pixels` a picture at `fps`.
    pub fn full_bps(&self, pixels: f64, fps: f64) -> f64 {
        self.full_bps.unwrap_or(pixels * fps * VIDEO_BITS_PER_PIXEL)
    }

    /// Bits per second of its keyframes alone: never as much as the whole stream they are a
    /// part of, whatever the guesses before both were measured.
    pub fn keyframes_bps(&self, pixels: f64, fps: f64) -> f64 {
        let full = self.full_bps(pixels, fps);
        let keys = match (self.key_bits, self.key_every_us) {
            (Some(bits), Some(every)) if every > 0.0 => bits / (every / 1e6),
            // One GOP a second or so until two keyframes were seen.
            (Some(bits), _) => bits,
            _ => full / 5.0,
        };
        keys.min(full * 0.9)
    }

    /// Bits per second of JPEG frames at `tier` (of a source `pixels` large) at `fps`: the
    /// measured size of that tier, else scaled from the one seen last, else a guess.
    pub fn jpeg_bps(&self, tier: Tier, pixels: f64, fps: f64) -> f64 {
        let bytes = self
            .jpeg
            .iter()
            .find(|(t, _)| *t == tier)
            .map(|(_, b)| *b)
            .or_else(|| {
                self.jpeg
                    .last()
                    .map(|(t, b)| b * jpeg_model(tier) / jpeg_model(*t))
            })
            .unwrap_or(pixels * JPEG_BYTES_PER_PIXEL_Q85 * jpeg_model(tier));
        bytes * 8.0 * fps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(quality: u8, scale: u8) -> Tier {
        Tier { quality, scale }
    }

    #[test]
    fn jpeg_rungs_not_seen_are_scaled_from_one_that_was() {
        let mut m = Meter::default();
        let px = 1280.0 * 720.0;
        // A guess before anything is seen; lower rungs cost less.
        assert!(m.jpeg_bps(tier(85, 1), px, 25.0) > m.jpeg_bps(tier(70, 1), px, 25.0));
        for _ in 0..20 {
            m.jpeg(tier(85, 1), 60_000);
        }
        assert_eq!(m.jpeg_bps(tier(85, 1), px, 25.0), 60_000.0 * 8.0 * 25.0);
        let half = m.jpeg_bps(tier(70, 2), px, 25.0);
        assert!(half < 60_000.0 * 8.0 * 25.0 / 3.0, "{half}");
        assert!(half > 60_000.0 * 8.0 * 25.0 / 10.0, "{half}");
        // Measured once seen, and bounded.
        m.jpeg(tier(70, 2), 10_000);
        assert_eq!(m.jpeg_bps(tier(70, 2), px, 10.0), 10_000.0 * 8.0 * 10.0);
        for q in 0..100 {
            m.jpeg(tier(q, 1), 1);
        }
        assert!(m.jpeg.len() <= MAX_TIERS);
    }
}
