//! How much a camera's picture is changing, estimated from the sizes of its compressed frames
//! without decoding anything: a cue from bitrate, not motion detection.
//!
//! An encoder spends few bits on what did not move: a P-frame of a still scene is a small
//! fraction of a keyframe, one of a busy scene a large fraction. So each second the meter takes
//! the mean non-key frame size against the camera's recent keyframe size (`ratio`), and compares
//! it with the camera's own baseline: the quiet level it has seen, which falls at once to a
//! quieter second and rises only over minutes, so a scene that is always busy (a road, leaves,
//! sensor noise at night) becomes the camera's normal. For a JPEG-only camera (MJPEG) the
//! frame-to-frame change in JPEG size stands in for the P-frame size. The level is the ratio
//! over the baseline on a log scale: 0 at or below the baseline, 1 at [`FULL_SCALE`] times it.
//! Limits: a camera whose encoder holds a constant bitrate (CBR) flattens the signal; noise and
//! lighting changes count as change; a small moving thing in a big picture barely moves it.

use std::time::Duration;

use tokio::time::Instant;

/// One estimate a second.
pub const WINDOW: Duration = Duration::from_secs(1);
/// The ratio over the baseline that counts as full activity (level 1): 16 times.
const FULL_SCALE: f64 = 16.0;
/// Time constant, in windows, of the baseline's rise towards a busier normal (about 2 minutes).
const RISE_WINDOWS: f64 = 120.0;
/// Share of the way the baseline falls to a quieter second at once.
const FALL: f64 = 0.5;
/// Quietest baselines: below them a change is too small to mean anything (a still scene's
/// P-frames are a few dozen bytes; their jitter is not activity).
const FLOOR_VIDEO: f64 = 0.02;
const FLOOR_JPEG: f64 = 0.002;
/// A level older than this (the camera stopped sending) is no level.
const STALE: Duration = Duration::from_secs(3);

/// The activity estimate of one camera, fed with every compressed frame's size.
#[derive(Debug, Clone, Default)]
pub struct ActivityMeter {
    window_start: Option<Instant>,
    /// Non-key video frames this window: bytes and count.
    inter_bytes: u64,
    inter_n: u32,
    /// Running keyframe size (bytes); `None` until the first keyframe.
    key_size: Option<f64>,
    /// JPEG frames this window: the sum of |size change| and of sizes, and the count.
    jpeg_delta: u64,
    jpeg_bytes: u64,
    jpeg_n: u32,
    last_jpeg: Option<u32>,
    /// The camera's quiet ratio; `None` until the first window.
    baseline: Option<f64>,
    level: Option<f32>,
    updated_at: Option<Instant>,
}

impl ActivityMeter {
    /// One access unit of the camera's own video: `size` bytes, a keyframe or not.
    pub fn video(&mut self, size: usize, key: bool, at: Instant) {
        self.roll(at);
        let size = size as f64;
        if key {
            // Keyframes vary with the scene's detail: smoothed over a few of them.
            self.key_size = Some(self.key_size.map_or(size, |k| k + (size - k) * 0.3));
        } else {
            self.inter_bytes += size as u64;
            self.inter_n += 1;
        }
    }

    /// One JPEG frame from a camera that sends JPEGs.
    pub fn jpeg(&mut self, size: usize, at: Instant) {
        self.roll(at);
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        if let Some(last) = self.last_jpeg.replace(size) {
            self.jpeg_delta += u64::from(size.abs_diff(last));
            self.jpeg_bytes += u64::from(size);
            self.jpeg_n += 1;
        }
    }

    /// The level (0..1) at `now`, if the camera sent within the last few seconds.
    pub fn level(&self, now: Instant) -> Option<f32> {
        let at = self.updated_at?;
        (now.saturating_duration_since(at) <= STALE).then_some(self.level?)
    }

    /// Closes the window when it is a second old: one estimate, the baseline follows.
    fn roll(&mut self, at: Instant) {
        let Some(start) = self.window_start else {
            self.window_start = Some(at);
            return;
        };
        if at.saturating_duration_since(start) < WINDOW {
            return;
        }
        let measured = if self.inter_n > 0 {
            self.key_size.filter(|k| *k > 0.0).map(|k| {
                (
                    self.inter_bytes as f64 / f64::from(self.inter_n) / k,
                    FLOOR_VIDEO,
                )
            })
        } else if self.jpeg_n > 0 && self.jpeg_bytes > 0 {
            Some((self.jpeg_delta as f64 / self.jpeg_bytes as f64, FLOOR_JPEG))
        } else {
            None
        };
        if let Some((ratio, floor)) = measured {
            let base = self.baseline.unwrap_or(floor).max(floor);
            let level = ((ratio / base).log2() / FULL_SCALE.log2()).clamp(0.0, 1.0);
            self.level = Some(level as f32);
            self.updated_at = Some(at);
            self.baseline = Some(if ratio < base {
                base + (ratio - base) * FALL
            } else {
                base + (ratio - base) / RISE_WINDOWS
            });
        }
        self.window_start = Some(at);
        self.inter_bytes = 0;
        self.inter_n = 0;
        self.jpeg_delta = 0;
        self.jpeg_bytes = 0;
        self.jpeg_n = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `secs` seconds of a 25 fps stream with 1 s GOPs: keyframes of `key` bytes and
    /// P-frames of `inter` bytes.
    async fn feed(m: &mut ActivityMeter, secs: u32, key: usize, inter: usize) {
        for i in 0..secs * 25 {
            m.video(
                if i % 25 == 0 { key } else { inter },
                i % 25 == 0,
                Instant::now(),
            );
            tokio::time::advance(Duration::from_millis(40)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_still_scene_is_quiet_and_a_busy_one_is_not() {
        let mut still = ActivityMeter::default();
        feed(&mut still, 5, 20_000, 60).await;
        let s = still.level(Instant::now()).unwrap();
        let mut busy = ActivityMeter::default();
        feed(&mut busy, 5, 20_000, 4_000).await;
        let b = busy.level(Instant::now()).unwrap();
        assert!(s < 0.1, "still {s}");
        assert!(b > 0.6, "busy {b}");
    }

    #[tokio::test(start_paused = true)]
    async fn rises_within_two_seconds_and_a_busy_normal_fades_over_minutes() {
        let mut m = ActivityMeter::default();
        feed(&mut m, 30, 20_000, 60).await;
        assert!(m.level(Instant::now()).unwrap() < 0.1);
        feed(&mut m, 2, 20_000, 3_000).await;
        assert!(m.level(Instant::now()).unwrap() > 0.6, "{m:?}");
        // Ten minutes of the same busy scene: it became this camera's normal.
        feed(&mut m, 600, 20_000, 3_000).await;
        assert!(m.level(Instant::now()).unwrap() < 0.3, "{m:?}");
        // And a quiet second brings the baseline down quickly.
        feed(&mut m, 5, 20_000, 60).await;
        feed(&mut m, 2, 20_000, 3_000).await;
        assert!(m.level(Instant::now()).unwrap() > 0.5, "{m:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn jpeg_sizes_stand_in_for_p_frames_and_a_silent_camera_has_no_level() {
        let mut still = ActivityMeter::default();
        let mut moving = ActivityMeter::default();
        for i in 0..100u32 {
            still.jpeg(30_000, Instant::now());
            moving.jpeg(30_000 + (i % 7) as usize * 900, Instant::now());
            tokio::time::advance(Duration::from_millis(40)).await;
        }
        assert_eq!(still.level(Instant::now()), Some(0.0));
        assert!(moving.level(Instant::now()).unwrap() > 0.5);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(moving.level(Instant::now()), None, "stale after 3 s");
        assert_eq!(ActivityMeter::default().level(Instant::now()), None);
    }
}
