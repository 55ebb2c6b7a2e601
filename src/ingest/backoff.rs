//! Reconnect delays: exponential backoff with jitter, reset after a stable session.

use std::time::Duration;

/// First delay after a failure.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// Largest delay between attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A session that streamed this long counts as stable: the next failure starts again at
/// [`BACKOFF_INITIAL`].
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Backoff state of one camera.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    /// Multiplies the schedule (e.g. 4 for an authorization failure, which retrying fast won't fix).
    slow_factor: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    pub fn new() -> Self {
        Self {
            attempt: 0,
            slow_factor: 1,
        }
    }

    /// Base delay (no jitter) for the current attempt: 0.5, 1, 2, 4 ... capped at 30 s.
    pub fn base_delay(&self) -> Duration {
        let exp = self.attempt.min(16);
        let d = BACKOFF_INITIAL
            .saturating_mul(1 << exp)
            .saturating_mul(self.slow_factor);
        d.min(BACKOFF_MAX)
    }

    /// Delay to wait after a failed session that lasted `session`: resets first when the
    /// session was stable, then returns the base delay with up to ±20 % jitter (so that many
    /// cameras behind one lost link do not reconnect in lockstep) and moves to the next step.
    pub fn next_delay(&mut self, session: Duration, slow: bool) -> Duration {
        if session >= STABLE_AFTER {
            self.attempt = 0;
        }
        self.slow_factor = if slow { 4 } else { 1 };
        let base = self.base_delay();
        self.attempt = self.attempt.saturating_add(1);
        let jitter = 0.8 + 0.4 * fastrand::f64();
        base.mul_f64(jitter).min(BACKOFF_MAX)
    }

    #[cfg(test)]
    /// Number of consecutive failures so far.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_grows_to_cap_with_bounded_jitter() {
        let mut b = Backoff::new();
        let mut prev_base = Duration::ZERO;
        for i in 0..12 {
            let base = b.base_delay();
            let d = b.next_delay(Duration::from_secs(1), false);
            assert!(base >= prev_base, "step {i}");
            assert!(
                d >= base.mul_f64(0.79) && d <= base.mul_f64(1.21).min(BACKOFF_MAX),
                "{d:?} vs {base:?}"
            );
            prev_base = base;
        }
        assert_eq!(b.base_delay(), BACKOFF_MAX);
        assert_eq!(Backoff::new().base_delay(), BACKOFF_INITIAL);
    }

    #[test]
    fn stable_session_resets() {
        let mut b = Backoff::new();
        for _ in 0..5 {
            b.next_delay(Duration::from_secs(2), false);
        }
        assert_eq!(b.base_delay(), Duration::from_secs(16));
        let d = b.next_delay(STABLE_AFTER, false);
        assert!(d <= BACKOFF_INITIAL.mul_f64(1.21), "{d:?}");
        assert_eq!(b.attempt(), 1);
    }

    #[test]
    fn slow_mode_is_slower() {
        let mut b = Backoff::new();
        let d = b.next_delay(Duration::ZERO, true);
        assert!(d >= Duration::from_millis(1600), "{d:?}");
    }
}
