//! Whether anyone needs a camera's decoded pictures right now, and what its decoder is doing.
//!
//! Viewers write here: a live JPEG lane (wall tile, MJPEG client) or a long-poll holds a
//! [`DemandHold`] while it lives, with the frame rate it needs; a snapshot marks a linger
//! deadline. The ingest source reads it on its own thread once per packet, so what it reads is
//! an atomic: no lock on the packet path (holds are counted under a mutex only when a lane
//! comes or goes). The source writes back its decoder's mode and how many pictures it
//! decoded. Nothing here knows FFmpeg, clients or lanes: only counts, rates and deadlines.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use tokio::time::Instant;

/// What a camera's decoder does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeMode {
    /// Nothing is decoded: the access units go to video viewers, the GOP is kept.
    Off,
    /// Only keyframes are decoded: every viewer's rate cap is at or below the keyframe rate.
    Keyframes,
    /// Every picture is decoded.
    Full,
}

impl DecodeMode {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Keyframes,
            2 => Self::Full,
            _ => Self::Off,
        }
    }
}

/// The highest rate a hold may ask for: no cap.
const UNCAPPED: u64 = u64::MAX;

/// The demand for one camera's pictures and its decoder's state.
#[derive(Debug)]
pub struct Demand {
    /// tokio's clock, so paused-time tests move the linger deadline.
    epoch: Instant,
    /// Live holders by the rate they need in mHz ([`UNCAPPED`]: every picture). Bounded: one
    /// entry per distinct rate, and lanes snap their rates to a fixed set of rungs.
    holds: Mutex<Vec<(u64, usize)>>,
    /// The highest rate any live hold needs, in mHz; 0: no hold. What the packet path reads.
    wanted_mhz: AtomicU64,
    /// Milliseconds after `epoch` until which the last snapshot keeps the decoder warm.
    until_ms: AtomicU64,
    /// The decoder's [`DecodeMode`] (status, metrics).
    mode: AtomicU8,
    /// The source stopped decoding and the newest picture may be old: a snapshot waits for a
    /// fresh one. Set by the source when it stops, cleared by the next published picture.
    cold: AtomicBool,
    frames_decoded: AtomicU64,
    /// Viewers of the stream in any form (video or pictures): what keeps a stream that opens
    /// on demand (a sub stream) connected.
    users: AtomicUsize,
    /// Woken when a use, hold or snapshot arrives, so that a closed stream opens at once
    /// instead of finding out at its next check.
    used: tokio::sync::Notify,
}

/// Keeps a stream connected while held (decoded or not).
#[derive(Debug)]
pub struct StreamUse(Arc<Demand>);

impl Drop for StreamUse {
    fn drop(&mut self) {
        self.0.users.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Keeps a camera's decoder running while held, at the rate the holder needs.
#[derive(Debug)]
pub struct DemandHold(Arc<Demand>, u64);

impl Drop for DemandHold {
    fn drop(&mut self) {
        self.0.count(self.1, false);
    }
}

impl Default for Demand {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            holds: Mutex::new(Vec::new()),
            wanted_mhz: AtomicU64::new(0),
            until_ms: AtomicU64::new(0),
            mode: AtomicU8::new(DecodeMode::Off as u8),
            cold: AtomicBool::new(false),
            frames_decoded: AtomicU64::new(0),
            users: AtomicUsize::new(0),
            used: tokio::sync::Notify::new(),
        }
    }
}

impl Demand {
    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Keeps every picture wanted until the returned hold is dropped.
    pub fn hold(self: &Arc<Self>) -> DemandHold {
        self.hold_at(None)
    }

    /// Keeps pictures wanted at up to `max_fps` (`None`: every picture) until the returned
    /// hold is dropped.
    pub fn hold_at(self: &Arc<Self>, max_fps: Option<f64>) -> DemandHold {
        let mhz = max_fps
            .filter(|f| f.is_finite() && *f > 0.0)
            .map_or(UNCAPPED, |f| (f * 1000.0).round().max(1.0) as u64);
        self.count(mhz, true);
        DemandHold(self.clone(), mhz)
    }

    /// Keeps the stream connected until the returned guard is dropped.
    pub fn use_stream(self: &Arc<Self>) -> StreamUse {
        self.users.fetch_add(1, Ordering::Relaxed);
        self.used.notify_waiters();
        StreamUse(self.clone())
    }

    /// Resolves at the next use, hold or snapshot. Enable it (or poll it once) before checking
    /// [`Self::in_use_at`], so that a use between the check and the wait is not missed.
    pub fn next_use(&self) -> tokio::sync::futures::Notified<'_> {
        self.used.notified()
    }

    /// Whether anyone uses the stream at `now`: a [`StreamUse`], or pictures wanted.
    pub fn in_use_at(&self, now: Instant) -> bool {
        self.users.load(Ordering::Relaxed) > 0 || self.wanted_at(now)
    }

    fn count(&self, mhz: u64, add: bool) {
        let mut holds = self.holds.lock().unwrap_or_else(PoisonError::into_inner);
        match holds.iter().position(|(r, _)| *r == mhz) {
            Some(i) if add => holds[i].1 += 1,
            Some(i) => {
                holds[i].1 -= 1;
                if holds[i].1 == 0 {
                    holds.swap_remove(i);
                }
            }
            None if add => holds.push((mhz, 1)),
            None => {}
        }
        let max = holds.iter().map(|(r, _)| *r).max().unwrap_or(0);
        self.wanted_mhz.store(max, Ordering::Relaxed);
        drop(holds);
        if add {
            self.used.notify_waiters();
        }
    }

    /// A snapshot at `now`: pictures stay wanted for `linger` after it.
    pub fn touch(&self, now: Instant, linger: Duration) {
        let until = self.ms(now).saturating_add(linger.as_millis() as u64);
        self.until_ms.fetch_max(until, Ordering::Relaxed);
        self.used.notify_waiters();
    }

    /// Whether pictures are wanted at `now`: a hold lives or the last snapshot's linger runs.
    pub fn wanted_at(&self, now: Instant) -> bool {
        self.mode_at(now, None) != DecodeMode::Off
    }

    /// [`Self::wanted_at`] now.
    pub fn wanted(&self) -> bool {
        self.wanted_at(Instant::now())
    }

    /// What the decoder should do at `now` for a stream with `key_fps` keyframes a second
    /// (`None`: not known yet). Keyframes only when every hold's rate is at or below the
    /// keyframe rate (with 5 % slack for timing jitter) and no snapshot lingers: a snapshot
    /// wants the newest picture, not the last keyframe.
    pub fn mode_at(&self, now: Instant, key_fps: Option<f64>) -> DecodeMode {
        if self.ms(now) < self.until_ms.load(Ordering::Relaxed) {
            return DecodeMode::Full;
        }
        match self.wanted_mhz.load(Ordering::Relaxed) {
            0 => DecodeMode::Off,
            UNCAPPED => DecodeMode::Full,
            mhz => match key_fps {
                Some(k) if mhz as f64 / 1000.0 <= k * 1.05 => DecodeMode::Keyframes,
                _ => DecodeMode::Full,
            },
        }
    }

    /// [`Self::mode_at`] now (the source's thread, once per packet).
    pub fn mode(&self, key_fps: Option<f64>) -> DecodeMode {
        self.mode_at(Instant::now(), key_fps)
    }

    pub fn set_mode(&self, mode: DecodeMode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// The decoder's mode as the source last set it.
    pub fn decoder(&self) -> DecodeMode {
        DecodeMode::from_u8(self.mode.load(Ordering::Relaxed))
    }

    pub fn decoding(&self) -> bool {
        self.decoder() != DecodeMode::Off
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
        self.set_mode(DecodeMode::Off);
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
        d.set_mode(DecodeMode::Full);
        d.session_ended();
        assert!(!d.is_cold() && !d.decoding());
    }

    #[tokio::test(start_paused = true)]
    async fn keyframes_only_while_every_hold_is_at_or_below_the_keyframe_rate() {
        let d = Arc::new(Demand::default());
        assert_eq!(d.mode(Some(1.0)), DecodeMode::Off);
        let thumb = d.hold_at(Some(1.0));
        assert_eq!(
            d.mode(Some(1.0)),
            DecodeMode::Keyframes,
            "1 fps tile, 1 s GOP"
        );
        assert_eq!(
            d.mode(Some(0.5)),
            DecodeMode::Full,
            "2 s GOP: keyframes are too rare"
        );
        assert_eq!(
            d.mode(None),
            DecodeMode::Full,
            "keyframe rate not measured yet"
        );
        let slow = d.hold_at(Some(0.25));
        assert_eq!(d.mode(Some(1.0)), DecodeMode::Keyframes);
        let live = d.hold_at(Some(25.0));
        assert_eq!(
            d.mode(Some(1.0)),
            DecodeMode::Full,
            "one 25 fps lane needs every picture"
        );
        drop(live);
        assert_eq!(
            d.mode(Some(1.0)),
            DecodeMode::Keyframes,
            "back when it goes"
        );
        let uncapped = d.hold();
        assert_eq!(d.mode(Some(1.0)), DecodeMode::Full);
        drop(uncapped);
        d.touch(Instant::now(), Duration::from_secs(2));
        assert_eq!(
            d.mode(Some(1.0)),
            DecodeMode::Full,
            "a snapshot wants the newest picture"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(d.mode(Some(1.0)), DecodeMode::Keyframes);
        drop(thumb);
        drop(slow);
        assert_eq!(d.mode(Some(1.0)), DecodeMode::Off);
    }
}
