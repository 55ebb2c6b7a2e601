//! A camera's measured frame rate: the median gap between its recent frames. Pure state fed
//! with instants by `Camera`; it reads no clock itself.
//!
//! Why a median over a window and not "frames per last second": a camera that opens with a
//! burst of buffered frames showed 34.6 fps at 10 fps, and a 0.2 fps camera, with no frame in
//! most one-second windows, showed 0.0 while streaming.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Frames older than this no longer count.
const WINDOW: Duration = Duration::from_secs(30);
/// Most frames remembered (about 2.5 s at 25 fps: plenty for a median, and bounded).
const MAX_FRAMES: usize = 64;
/// The rate shows only once the frames measured span this long: a startup burst alone says
/// nothing.
const MIN_SPAN: Duration = Duration::from_secs(1);
/// A camera whose last frame is older than this (or three of its frame intervals, if
/// longer) has stopped: its rate is 0.
const FRESH: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Default)]
pub struct FpsMeter {
    times: VecDeque<Instant>,
}

impl FpsMeter {
    /// A frame arrived at `now`.
    pub fn record(&mut self, now: Instant) {
        if self.times.len() == MAX_FRAMES {
            self.times.pop_front();
        }
        self.times.push_back(now);
        while self
            .times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > WINDOW)
        {
            self.times.pop_front();
        }
    }

    /// Forgets every frame: the camera stopped.
    pub fn reset(&mut self) {
        self.times.clear();
    }

    /// Frames per second at `now`, 0 when too few frames were seen or frames stopped.
    pub fn fps_at(&self, now: Instant) -> f64 {
        let (Some(first), Some(last)) = (self.times.front(), self.times.back()) else {
            return 0.0;
        };
        if self.times.len() < 2 || last.saturating_duration_since(*first) < MIN_SPAN {
            return 0.0;
        }
        let mut gaps: Vec<Duration> = self
            .times
            .iter()
            .zip(self.times.iter().skip(1))
            .map(|(a, b)| b.saturating_duration_since(*a))
            .collect();
        gaps.sort_unstable();
        let median = gaps[gaps.len() / 2];
        if median.is_zero() || now.saturating_duration_since(*last) > FRESH.max(median * 3) {
            return 0.0;
        }
        1.0 / median.as_secs_f64()
    }
}
