//! Timing of a live read: the stall deadline that follows a camera's frame interval, and the
//! pacing of sources with no clock of their own (files, lavfi). No FFmpeg here.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::source::MAX_STALL;

/// The last few gaps between video packets, for the stall deadline.
#[derive(Default)]
pub struct Gaps {
    last_at: Option<Instant>,
    recent: [Duration; 8],
    next: usize,
}

impl Gaps {
    pub fn arrived(&mut self, now: Instant) {
        if let Some(prev) = self.last_at.replace(now) {
            self.push(now.duration_since(prev));
        }
    }

    pub fn push(&mut self, gap: Duration) {
        self.recent[self.next % self.recent.len()] = gap;
        self.next = self.next.wrapping_add(1);
    }

    /// The configured stall timeout, stretched to three of the camera's recent frame
    /// intervals (a 0.2 fps camera is not stalled after 5 s), but never past `MAX_STALL`
    /// unless the configured timeout is longer. Until a few gaps are known (the first packets
    /// may come in a burst, out of FFmpeg's probe buffer) the open timeout also applies.
    pub fn stall_deadline(&self, configured: Duration, open_timeout: Duration) -> Duration {
        let widest = self.recent.iter().max().copied().unwrap_or_default();
        let floor = if self.next < self.recent.len() {
            configured.max(open_timeout)
        } else {
            configured
        };
        floor.max((widest * 3).min(MAX_STALL))
    }
}

/// Paces sources that have no clock of their own (files, lavfi) to their timestamps.
#[derive(Default)]
pub struct Pacer {
    /// Wall time and timestamp (seconds) the clock counts from.
    origin: Option<(Instant, f64)>,
    pub last_pts: f64,
}

impl Pacer {
    /// Sleeps until `pts_s` is due. Returns false if cancelled meanwhile.
    pub fn wait(&mut self, pts_s: f64, cancel: &CancellationToken) -> bool {
        let now = Instant::now();
        // Forward jumps up to a minute are real (a timelapse source at one frame per 20 s);
        // beyond that the timestamp is broken and waiting for it would freeze the camera.
        let jumped = pts_s < self.last_pts || pts_s - self.last_pts > 60.0;
        self.last_pts = pts_s;
        let (t0, p0) = match self.origin {
            Some(o) if !jumped => o,
            // First packet, or a timestamp jump (a loop, a concatenated file, a broken
            // timestamp): restart the clock here instead of sleeping long or bursting.
            _ => {
                self.origin = Some((now, pts_s));
                return true;
            }
        };
        let ahead = pts_s - p0;
        if ahead - now.duration_since(t0).as_secs_f64() < -1.0 {
            // More than a second late (the reader was held up): do not burst to catch up.
            self.origin = Some((now, pts_s));
            return true;
        }
        let due = t0 + Duration::from_secs_f64(ahead.max(0.0));
        while let Some(left) = due.checked_duration_since(Instant::now()) {
            if cancel.is_cancelled() {
                return false;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
        !cancel.is_cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stall_deadline_follows_the_frame_interval_within_bounds() {
        let (stall, open) = (Duration::from_secs(1), Duration::from_secs(10));
        let mut g = Gaps::default();
        // Nothing known yet: the open timeout covers the first, possibly slow, frames.
        assert_eq!(g.stall_deadline(stall, open), open);
        let t0 = Instant::now();
        for i in 0..=8 {
            g.arrived(t0 + Duration::from_secs(2 * i));
        }
        // A camera at 0.5 fps: three of its intervals.
        assert_eq!(g.stall_deadline(stall, open), Duration::from_secs(6));
        // A fast camera keeps the configured timeout.
        let mut fast = Gaps::default();
        for i in 0..=8 {
            fast.arrived(t0 + Duration::from_millis(40 * i));
        }
        assert_eq!(fast.stall_deadline(stall, open), stall);
        // A timelapse camera stretches it no further than the bound.
        let mut slow = Gaps::default();
        for i in 0..=8 {
            slow.arrived(t0 + Duration::from_secs(100 * i));
        }
        assert_eq!(slow.stall_deadline(stall, open), MAX_STALL);
    }
}
