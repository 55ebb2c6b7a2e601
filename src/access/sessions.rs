//! Logged-in sessions: a random 256-bit cookie value per login, kept on the server (by its
//! SHA-256, so the table holds nothing a client could present) with its user, when it began
//! and when it was last used. A session ends at logout, after `session_idle_minutes` unused,
//! `session_max_days` after its login, or when its user's password, role or scope changed (or
//! the user is gone). The table is bounded: the least recently used session makes room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;

use super::users::{User, Users};

/// Most sessions kept at once (a login beyond it ends the least recently used one).
pub const MAX_SESSIONS: usize = 10_000;
/// The cookie that carries a session.
pub const COOKIE: &str = "camwall_session";

type Key = [u8; 32];

struct Entry {
    user: Arc<User>,
    began: Instant,
    used: Instant,
}

/// The sessions of this node.
pub struct Sessions {
    table: Mutex<HashMap<Key, Entry>>,
    idle: Duration,
    max: Duration,
}

/// The table's key of a cookie value.
pub fn key_of(cookie: &str) -> Key {
    let d = ring::digest::digest(&ring::digest::SHA256, cookie.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

impl Sessions {
    pub fn new(idle: Duration, max: Duration) -> Self {
        Self {
            table: Mutex::new(HashMap::new()),
            idle,
            max,
        }
    }

    /// How long a session may last at most (the cookie's `Max-Age`).
    pub fn max_age(&self) -> Duration {
        self.max
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new session of `user` at `now`; its cookie value (`None`: no randomness).
    pub fn begin(&self, user: Arc<User>, now: Instant) -> Option<String> {
        let mut raw = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw).ok()?;
        let cookie = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let mut t = self.table();
        t.retain(|_, e| self.live(e, now));
        if t.len() >= MAX_SESSIONS {
            if let Some(k) = t.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| *k) {
                t.remove(&k);
            }
        }
        t.insert(
            key_of(&cookie),
            Entry {
                user,
                began: now,
                used: now,
            },
        );
        Some(cookie)
    }

    fn live(&self, e: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(e.used) < self.idle
            && now.saturating_duration_since(e.began) < self.max
    }

    /// The user of the session `cookie` at `now`, as `users` holds them now; marks it used.
    /// A session that ran out, or whose user changed or went, ends here.
    pub fn user(&self, cookie: &str, users: &Users, now: Instant) -> Option<Arc<User>> {
        self.user_by_key(&key_of(cookie), users, now)
    }

    /// [`Sessions::user`] by the table's key.
    pub fn user_by_key(&self, key: &Key, users: &Users, now: Instant) -> Option<Arc<User>> {
        let key = *key;
        let mut t = self.table();
        let e = t.get_mut(&key)?;
        let current = users
            .get(&e.user.name)
            .filter(|u| u.fingerprint() == e.user.fingerprint());
        match current {
            Some(u) if self.live(e, now) => {
                e.used = now;
                e.user = u.clone();
                Some(u)
            }
            _ => {
                t.remove(&key);
                None
            }
        }
    }

    /// Ends the session `cookie`; its user's name, when it was one.
    pub fn end(&self, cookie: &str) -> Option<String> {
        self.table()
            .remove(&key_of(cookie))
            .map(|e| e.user.name.clone())
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.table().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::users::hash_password;
    use crate::config::auth::{RoleName, UserConfig};

    fn users(password: &str) -> Users {
        Users::new(&[UserConfig {
            name: "staff".into(),
            password_hash: hash_password(password).unwrap(),
            role: RoleName::Viewer,
            cameras: None,
            views: None,
        }])
    }

    #[test]
    fn a_session_lives_until_logout_idle_time_or_its_age() {
        let u = users("pw");
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(300));
        let t0 = Instant::now();
        let c = s.begin(u.get("staff").unwrap(), t0).unwrap();
        assert!(c.len() >= 43, "256 bits");
        assert_eq!(s.user(&c, &u, t0).unwrap().name, "staff");
        assert!(s.user("forged", &u, t0).is_none());
        // Used every 50 s it outlives its idle time, not its age.
        let mut t = t0;
        for _ in 0..5 {
            t += Duration::from_secs(50);
            assert!(s.user(&c, &u, t).is_some());
        }
        assert!(s.user(&c, &u, t0 + Duration::from_secs(301)).is_none());
        assert!(s.is_empty(), "an ended session is gone");
        let c = s.begin(u.get("staff").unwrap(), t0).unwrap();
        assert!(
            s.user(&c, &u, t0 + Duration::from_secs(61)).is_none(),
            "idle"
        );
        let c = s.begin(u.get("staff").unwrap(), t0).unwrap();
        assert_eq!(s.end(&c).as_deref(), Some("staff"));
        assert!(s.user(&c, &u, t0).is_none(), "logged out");
    }

    #[test]
    fn a_new_password_or_a_removed_user_ends_their_sessions() {
        let before = users("one");
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(300));
        let t0 = Instant::now();
        let c = s.begin(before.get("staff").unwrap(), t0).unwrap();
        assert!(s.user(&c, &users("two"), t0).is_none());
        let c = s.begin(before.get("staff").unwrap(), t0).unwrap();
        assert!(s.user(&c, &Users::default(), t0).is_none());
    }
}
