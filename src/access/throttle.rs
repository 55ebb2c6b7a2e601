//! Login throttling: after [`FREE`] failed logins for one name or from one address within
//! [`WINDOW`], further attempts are refused (429 with `Retry-After`) until a delay that doubles
//! with each failure beyond them has passed since the last one (1 s, 2 s, 4 s... at most
//! [`MAX_DELAY`]). Refused attempts are not tried and do not count. A success clears its
//! name's failures. Both tables are bounded: past [`MAX_KEYS`], the oldest entry goes.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failures allowed within the window before attempts wait.
pub const FREE: usize = 5;
/// How far back failures count.
pub const WINDOW: Duration = Duration::from_secs(600);
/// The longest wait.
pub const MAX_DELAY: Duration = Duration::from_secs(900);
/// Most names (and addresses) with failures kept.
pub const MAX_KEYS: usize = 10_000;
/// Failures kept per key (enough to reach the longest delay).
const KEPT: usize = 32;

struct Table<K> {
    failures: HashMap<K, VecDeque<Instant>>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new() -> Self {
        Self {
            failures: HashMap::new(),
        }
    }

    /// How long `key` must still wait at `now`.
    fn wait(&mut self, key: &K, now: Instant) -> Option<Duration> {
        let f = self.failures.get_mut(key)?;
        while f
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            f.pop_front();
        }
        if f.is_empty() {
            self.failures.remove(key);
            return None;
        }
        if f.len() < FREE {
            return None;
        }
        let last = *f.back()?;
        let delay = Duration::from_secs(1u64 << (f.len() - FREE).min(10)).min(MAX_DELAY);
        let until = last + delay;
        (until > now).then(|| until - now)
    }

    fn fail(&mut self, key: K, now: Instant) {
        if !self.failures.contains_key(&key) && self.failures.len() >= MAX_KEYS {
            self.failures.retain(|_, f| {
                f.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < WINDOW)
            });
            if self.failures.len() >= MAX_KEYS {
                let oldest = self
                    .failures
                    .iter()
                    .min_by_key(|(_, f)| f.back().copied())
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.failures.remove(&k);
                }
            }
        }
        let f = self.failures.entry(key).or_default();
        if f.len() >= KEPT {
            f.pop_front();
        }
        f.push_back(now);
    }
}

/// The login throttle of this node.
pub struct Throttle {
    names: Mutex<Table<String>>,
    addrs: Mutex<Table<IpAddr>>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            names: Mutex::new(Table::new()),
            addrs: Mutex::new(Table::new()),
        }
    }
}

impl Throttle {
    /// How long an attempt for `name` from `addr` must still wait; `None`: it may be tried.
    pub fn wait(&self, name: &str, addr: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let name = name.to_lowercase();
        let by_name = self
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .wait(&name, now);
        let by_addr = addr.and_then(|a| {
            self.addrs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .wait(&a, now)
        });
        by_name.max(by_addr)
    }

    pub fn fail(&self, name: &str, addr: Option<IpAddr>, now: Instant) {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fail(name.to_lowercase(), now);
        if let Some(a) = addr {
            self.addrs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .fail(a, now);
        }
    }

    /// A right password: the name's failures are forgotten (the address's stand).
    pub fn succeed(&self, name: &str) {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failures
            .remove(&name.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_then_a_doubling_wait_by_name_or_address() {
        let t = Throttle::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..FREE {
            assert_eq!(t.wait("Staff", Some(a), t0), None, "attempt {i}");
            t.fail("staff", Some(a), t0);
        }
        assert_eq!(t.wait("STAFF", None, t0), Some(Duration::from_secs(1)));
        assert_eq!(
            t.wait("other", Some(a), t0),
            Some(Duration::from_secs(1)),
            "the same address"
        );
        assert_eq!(t.wait("other", None, t0), None);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(t.wait("staff", Some(a), t1), None, "waited");
        t.fail("staff", Some(a), t1);
        assert_eq!(t.wait("staff", None, t1), Some(Duration::from_secs(2)));
        // Out of the window, failures no longer count.
        assert_eq!(t.wait("staff", None, t1 + WINDOW), None);
        // A success forgets the name's failures, not the address's.
        for _ in 0..FREE {
            t.fail("x", Some(a), t1);
        }
        t.succeed("X");
        assert_eq!(t.wait("x", None, t1), None);
        assert!(t.wait("x", Some(a), t1).is_some());
    }

    #[test]
    fn the_tables_stay_bounded() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..MAX_KEYS + 10 {
            t.fail(&format!("n{i}"), None, now);
        }
        assert!(t.names.lock().unwrap().failures.len() <= MAX_KEYS);
    }
}
