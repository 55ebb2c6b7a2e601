//! Whether anyone needs a camera's decoded pictures right now, and what its decoder is doing.
//!
//! Viewers write here: a live JPEG lane (wall tile, MJPEG client) or a long-poll holds a
//! [`DemandHold`] while it lives; a snapshot marks a linger deadline. The ingest source reads
//! it on its own thread once per packet, so everything is an atomic: no lock on the packet
//! path. The source writes back whether it decodes and how many pictures it decoded. Nothing
//! here knows FFmpeg, clients or lanes: only counts and deadlines.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// The demand for one camera's pictures and its decoder's state.
#[derive(Debug)]
pub struct Demand {
    /// tokio's clock, so paused-time tests move the linger deadline.
    epoch: Instant,
    /// Live holders: JPEG lanes and waiting requests.
    holds: AtomicUsize,
    /// Milliseconds after `epoch` until which the last snapshot keeps the decoder warm.
    until_ms: AtomicU64,
    /// The decoder is running (status, metrics).
    decoding: AtomicBool,
    /// The source stopped decoding and the newest picture may be old: a snapshot waits for a
    /// fresh one. Set by the source when it stops, cleared by the next published picture.
    cold: AtomicBool,
    frames_decoded: AtomicU64,
}

/// Keeps a camera's decoder running while held.
#[derive(Debug)]
pub struct DemandHold(Arc<Demand>);

impl Drop for DemandHold {
    fn drop(&mut self) {
        self.0.holds.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for Demand {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            holds: AtomicUsize::new(0),
            until_ms: AtomicU64::new(0),
            decoding: AtomicBool::new(false),
            cold: AtomicBool::new(false),
            frames_decoded: AtomicU64::new(0),
        }
    }
}

impl Demand {
    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Keeps pictures wanted until the returned hold is dropped.
    pub fn hold(self: &Arc<Self>) -> DemandHold {
        self.holds.fetch_add(1, Ordering::Relaxed);
        DemandHold(self.clone())
    }

    /// A snapshot at `now`: pictures stay wanted for `linger` after it.
    pub fn touch(&self, now: Instant, linger: Duration) {
        let until = self.ms(now).saturating_add(linger.as_millis() as u64);
        self.until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// Whether pictures are wanted at `now`: a hold lives or the last snapshot's linger runs.
    pub fn wanted_at(&self, now: Instant) -> bool {
        self.holds.load(Ordering::Relaxed) > 0
            || self.ms(now) < self.until_ms.load(Ordering::Relaxed)
    }

    /// [`Self::wanted_at`] now (the source's thread, once per packet).
    pub fn wanted(&self) -> bool {
        self.wanted_at(Instant::now())
    }

    pub fn set_decoding(&self, on: bool) {
        self.decoding.store(on, Ordering::Relaxed);
    }

    pub fn decoding(&self) -> bool {
        self.decoding.load(Ordering::Relaxed)
    }

    /// The source stopped decoding: the newest picture ages from here on.
    pub fn set_cold(&self) {
        self.cold.store(true, Ordering::Release);
    }

    /// A picture was published: the newest one is current again.
    pub(crate) fn published(&self) {
        self.cold.store(false, Ordering::Release);
    }

    pub fn is_cold(&self) -> bool {
        self.cold.load(Ordering::Acquire)
    }

    /// Pictures that came out of the decoder.
    pub fn count_decoded(&self, n: u64) {
        self.frames_decoded.fetch_add(n, Ordering::Relaxed);
    }

    pub fn frames_decoded(&self) -> u64 {
        self.frames_decoded.load(Ordering::Relaxed)
    }

    /// The session ended: no decoder runs, and no picture is on its way that a snapshot could
    /// wait for.
    pub fn session_ended(&self) {
        self.decoding.store(false, Ordering::Relaxed);
        self.cold.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_hold_keeps_pictures_wanted_until_dropped() {
        let d = Arc::new(Demand::default());
        assert!(!d.wanted());
        let a = d.hold();
        let b = d.hold();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(
            d.wanted(),
            "a lane keeps the decoder warm however long it lives"
        );
        drop(a);
        assert!(d.wanted());
        drop(b);
        assert!(!d.wanted(), "no lane and no snapshot: cold");
    }

    #[tokio::test(start_paused = true)]
    async fn a_snapshot_lingers_then_expires() {
        let d = Demand::default();
        tokio::time::advance(Duration::from_secs(5)).await;
        d.touch(Instant::now(), Duration::from_millis(1500));
        tokio::time::advance(Duration::from_millis(1499)).await;
        assert!(d.wanted());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!d.wanted(), "the linger passed");
        // A later snapshot extends it; an earlier deadline never shortens it.
        d.touch(Instant::now(), Duration::from_secs(10));
        d.touch(Instant::now(), Duration::ZERO);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(d.wanted());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!d.wanted());
    }

    #[test]
    fn cold_until_a_picture_is_published_and_never_after_the_session() {
        let d = Demand::default();
        d.set_cold();
        assert!(d.is_cold());
        d.published();
        assert!(!d.is_cold());
        d.set_cold();
        d.set_decoding(true);
        d.session_ended();
        assert!(!d.is_cold() && !d.decoding());
    }
}
