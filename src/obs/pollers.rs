//! Polling clients, counted: an address that asked for a frame within a window (polling
//! holds no connection to count), bounded in how many addresses it remembers.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// How recently an address must have polled a frame to count as a polling client.
pub const POLLER_WINDOW: Duration = Duration::from_secs(10);
/// Most polling addresses remembered; beyond it the gauge saturates instead of growing memory.
pub(super) const MAX_POLLERS: usize = 4096;

/// Polling clients hold no connection to count, so a polling client is an address that asked
/// for a frame within [`POLLER_WINDOW`]. Bounded to [`MAX_POLLERS`] addresses.
pub struct Pollers {
    seen: DashMap<IpAddr, Instant>,
    max: usize,
}

impl Pollers {
    pub fn new(max: usize) -> Self {
        Self {
            seen: DashMap::new(),
            max,
        }
    }

    /// Records a frame request from `ip` at `now`.
    pub fn seen(&self, ip: IpAddr, now: Instant) {
        if self.seen.len() >= self.max && !self.seen.contains_key(&ip) {
            self.prune(now);
            if self.seen.len() >= self.max {
                return;
            }
        }
        self.seen.insert(ip, now);
    }

    /// Addresses that polled within the window before `now`.
    pub fn active(&self, now: Instant) -> usize {
        self.prune(now);
        self.seen.len()
    }

    fn prune(&self, now: Instant) {
        self.seen
            .retain(|_, at| now.saturating_duration_since(*at) < POLLER_WINDOW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pollers_expire_and_stay_bounded() {
        let p = Pollers::new(2);
        let t0 = Instant::now();
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        p.seen(ip(1), t0);
        p.seen(ip(1), t0);
        p.seen(ip(2), t0);
        p.seen(ip(3), t0);
        assert_eq!(p.active(t0), 2, "full: a third address is not remembered");
        let later = t0 + POLLER_WINDOW + Duration::from_millis(1);
        p.seen(ip(3), later);
        assert_eq!(p.active(later), 1, "old addresses expire");
    }
}
