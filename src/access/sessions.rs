//! Logged-in sessions: a random 256-bit cookie value per login, kept on the server (by its
//! SHA-256, so the table holds nothing a client could present) with its user, when it began
//! and when it was last used. A session ends at logout, after `session_idle_minutes` unused,
//! `session_max_days` after its login, or when its user's password, role or scope changed (or
//! the user is gone). The table is bounded: the least recently used session makes room.
//!
//! In a cluster the table is shared through a [`Share`] (the cluster's NATS KV bucket): a
//! login is stored there before it is answered, a use refreshes it at most every
//! [`SHARE_EVERY`], a logout removes it, and a node asked with a cookie it does not hold looks
//! it up there. Times are wall-clock (Unix milliseconds), the one clock nodes share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::users::{User, Users};
use crate::control::BoxFuture;

/// Most sessions kept at once (a login beyond it ends the least recently used one).
pub const MAX_SESSIONS: usize = 10_000;
/// The cookie that carries a session.
pub const COOKIE: &str = "camwall_session";
/// How often a session in use is refreshed in the shared table (other nodes' idle clocks lag
/// by at most this).
pub const SHARE_EVERY: Duration = Duration::from_secs(60);

/// A session's key: the SHA-256 of its cookie value.
pub type Key = [u8; 32];

/// A session as it is shared with other nodes: its user and times, never the cookie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shared {
    pub user: String,
    /// The user's fingerprint when the session began ([`User::fingerprint`]).
    pub fingerprint: u64,
    /// Unix milliseconds.
    pub began: u64,
    pub used: u64,
}

/// Where sessions are shared (a cluster's store). Nothing here waits on the network except
/// [`Share::store`] and [`Share::fetch`], which their callers await.
pub trait Share: Send + Sync {
    /// Stores `session` (a login): resolves once stored or given up.
    fn store(&self, key: Key, session: Shared) -> BoxFuture<'static, ()>;
    /// Refreshes a session's last use; never waits. False when it was not taken (busy: the
    /// next use sends it again).
    fn refresh(&self, key: Key, session: Shared) -> bool;
    /// Removes a session (a logout, a changed user); never waits, never dropped: kept until
    /// it is written.
    fn remove(&self, key: Key);
    /// The stored session `key`, for a cookie this node does not hold.
    fn fetch(&self, key: Key) -> BoxFuture<'static, Option<Shared>>;
}

struct Entry {
    /// The user's name and fingerprint when the session began: the user as configured now
    /// must still match.
    user: String,
    fingerprint: u64,
    began: u64,
    used: u64,
    /// When this node last refreshed it in the shared table.
    shared: u64,
}

impl Entry {
    fn shared_form(&self) -> Shared {
        Shared {
            user: self.user.clone(),
            fingerprint: self.fingerprint,
            began: self.began,
            used: self.used,
        }
    }
}

/// The sessions this node knows.
pub struct Sessions {
    table: Mutex<HashMap<Key, Entry>>,
    /// Sessions ended here or told ended, until they would have run out anyway (key → Unix
    /// ms): a copy still in the shared table, or a lookup that crossed the logout, cannot
    /// bring one back.
    ended: Mutex<HashMap<Key, u64>>,
    idle: Duration,
    max: Duration,
    share: OnceLock<Arc<dyn Share>>,
}

/// The table's key of a cookie value.
pub fn key_of(cookie: &str) -> Key {
    let d = ring::digest::digest(&ring::digest::SHA256, cookie.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

/// A key as 64 hex digits (how the sessions file and a cluster's bucket name it).
pub fn key_hex(key: &Key) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key written as [`key_hex`] writes it.
pub fn key_from_hex(s: &str) -> Option<Key> {
    if s.len() != 64 {
        return None;
    }
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(k)
}

/// `t` in Unix milliseconds.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Sessions {
    pub fn new(idle: Duration, max: Duration) -> Self {
        Self {
            table: Mutex::new(HashMap::new()),
            ended: Mutex::new(HashMap::new()),
            idle,
            max,
            share: OnceLock::new(),
        }
    }

    /// How long a session may last at most (the cookie's `Max-Age`).
    pub fn max_age(&self) -> Duration {
        self.max
    }

    /// From now on sessions are shared through `share` (set once, by the cluster).
    pub fn set_share(&self, share: Arc<dyn Share>) {
        let _ = self.share.set(share);
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `entry` in the table, making room when it is full (sessions that ran out first,
    /// then the least recently used).
    fn insert(&self, t: &mut HashMap<Key, Entry>, key: Key, entry: Entry, now: u64) {
        if t.len() >= MAX_SESSIONS && !t.contains_key(&key) {
            t.retain(|_, e| self.live(e, now));
            if t.len() >= MAX_SESSIONS {
                if let Some(k) = t.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| *k) {
                    t.remove(&k);
                }
            }
        }
        t.insert(key, entry);
    }

    /// Marks `key` ended (see `ended`), bounded as the table is.
    fn bury(&self, key: Key, now: u64) {
        let mut ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
        if ended.len() >= MAX_SESSIONS && !ended.contains_key(&key) {
            ended.retain(|_, until| *until > now);
            if ended.len() >= MAX_SESSIONS {
                if let Some(k) = ended.iter().min_by_key(|(_, u)| **u).map(|(k, _)| *k) {
                    ended.remove(&k);
                }
            }
        }
        ended.insert(key, now.saturating_add(ms(self.max)));
    }

    fn is_buried(&self, key: &Key, now: u64) -> bool {
        self.ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .is_some_and(|until| *until > now)
    }

    /// Whether this node holds session `key` now.
    pub fn holds(&self, key: &Key) -> bool {
        self.table().contains_key(key)
    }

    /// A new session of `user` at `now`; its cookie value (`None`: no randomness).
    pub fn begin(&self, user: &User, now: SystemTime) -> Option<String> {
        let mut raw = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw).ok()?;
        let cookie = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = unix_ms(now);
        let entry = Entry {
            user: user.name.clone(),
            fingerprint: user.fingerprint(),
            began: now,
            used: now,
            shared: now,
        };
        self.insert(&mut self.table(), key_of(&cookie), entry, now);
        Some(cookie)
    }

    /// Stores the session `cookie` in the shared table (a login, before it is answered, so
    /// that any node knows it at once); at once when nothing is shared.
    pub fn store_shared(&self, cookie: &str) -> BoxFuture<'static, ()> {
        let key = key_of(cookie);
        let shared = self.table().get(&key).map(Entry::shared_form);
        match (self.share.get(), shared) {
            (Some(share), Some(s)) => share.store(key, s),
            _ => Box::pin(std::future::ready(())),
        }
    }

    /// Whether `s` has not run out at `now` (idle time and age).
    pub fn is_live(&self, s: &Shared, now: SystemTime) -> bool {
        let now = unix_ms(now);
        now.saturating_sub(s.used) < ms(self.idle) && now.saturating_sub(s.began) < ms(self.max)
    }

    fn live(&self, e: &Entry, now: u64) -> bool {
        now.saturating_sub(e.used) < ms(self.idle) && now.saturating_sub(e.began) < ms(self.max)
    }

    /// The user of the session `cookie` at `now`, as `users` holds them now; marks it used.
    /// A session that ran out, or whose user changed or went, ends here.
    pub fn user(&self, cookie: &str, users: &Users, now: SystemTime) -> Option<Arc<User>> {
        self.user_by_key(&key_of(cookie), users, now)
    }

    /// [`Sessions::user`] by the table's key.
    pub fn user_by_key(&self, key: &Key, users: &Users, now: SystemTime) -> Option<Arc<User>> {
        let now = unix_ms(now);
        let mut t = self.table();
        let e = t.get_mut(key)?;
        let current = users
            .get(&e.user)
            .filter(|u| u.fingerprint() == e.fingerprint);
        match current {
            Some(u) if self.live(e, now) => {
                e.used = e.used.max(now);
                if let Some(share) = self.share.get() {
                    if now.saturating_sub(e.shared) >= ms(SHARE_EVERY)
                        && share.refresh(*key, e.shared_form())
                    {
                        e.shared = now;
                    }
                }
                Some(u)
            }
            // Ran out, or its user changed or went. Only here: a node whose users lag behind
            // a change (a cluster's watch) must not end a session begun under the new ones
            // everywhere; every node finds this alone.
            _ => {
                t.remove(key);
                None
            }
        }
    }

    /// Ends the session `cookie` (on every node); its user's name, when this node held it.
    pub fn end(&self, cookie: &str) -> Option<String> {
        let key = key_of(cookie);
        let name = {
            let mut t = self.table();
            self.bury(key, unix_ms(SystemTime::now()));
            t.remove(&key).map(|e| e.user)
        };
        if let Some(share) = self.share.get() {
            share.remove(key);
        }
        name
    }

    /// Looks the session `cookie` up in the shared table; true when it was found (and is now
    /// in this node's table).
    pub async fn fetch(&self, cookie: &str, now: SystemTime) -> bool {
        let Some(share) = self.share.get().cloned() else {
            return false;
        };
        let key = key_of(cookie);
        match share.fetch(key).await {
            Some(s) => self.import(key, &s, now),
            None => false,
        }
    }

    /// A session as another node stored it: added, or its last use moved on. False when it
    /// has run out.
    pub fn import(&self, key: Key, s: &Shared, now: SystemTime) -> bool {
        let now = unix_ms(now);
        let entry = Entry {
            user: s.user.clone(),
            fingerprint: s.fingerprint,
            began: s.began,
            used: s.used,
            shared: s.used,
        };
        // The table's lock first, then the ended list's, here as in `end` and `forget`: an
        // end cannot fall between the check and the insert.
        let mut t = self.table();
        if !self.live(&entry, now) || self.is_buried(&key, now) {
            return false;
        }
        match t.get_mut(&key) {
            Some(e) => {
                e.used = e.used.max(s.used);
                e.shared = e.shared.max(s.used);
            }
            None => self.insert(&mut t, key, entry, now),
        }
        true
    }

    /// A session another node ended.
    pub fn forget(&self, key: &Key) {
        let mut t = self.table();
        self.bury(*key, unix_ms(SystemTime::now()));
        t.remove(key);
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

    #[tokio::test]
    async fn a_session_lives_until_logout_idle_time_or_its_age() {
        let u = users("pw");
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(300));
        let t0 = SystemTime::now();
        let c = s.begin(&u.get("staff").unwrap(), t0).unwrap();
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
        let c = s.begin(&u.get("staff").unwrap(), t0).unwrap();
        assert!(
            s.user(&c, &u, t0 + Duration::from_secs(61)).is_none(),
            "idle"
        );
        let c = s.begin(&u.get("staff").unwrap(), t0).unwrap();
        assert_eq!(s.end(&c).as_deref(), Some("staff"));
        assert!(s.user(&c, &u, t0).is_none(), "logged out");
    }

    #[test]
    fn a_new_password_or_a_removed_user_ends_their_sessions() {
        let before = users("one");
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(300));
        let t0 = SystemTime::now();
        let c = s.begin(&before.get("staff").unwrap(), t0).unwrap();
        assert!(s.user(&c, &users("two"), t0).is_none());
        let c = s.begin(&before.get("staff").unwrap(), t0).unwrap();
        assert!(s.user(&c, &Users::default(), t0).is_none());
    }

    /// A shared table as a cluster's store is: a map, with what was published kept in order.
    #[derive(Default)]
    struct Store {
        map: Mutex<HashMap<Key, Shared>>,
        published: Mutex<Vec<(Key, Option<Shared>)>>,
    }

    impl Share for Store {
        fn store(&self, key: Key, session: Shared) -> BoxFuture<'static, ()> {
            self.map.lock().unwrap().insert(key, session);
            Box::pin(std::future::ready(()))
        }
        fn refresh(&self, key: Key, session: Shared) -> bool {
            self.published
                .lock()
                .unwrap()
                .push((key, Some(session.clone())));
            self.map.lock().unwrap().insert(key, session);
            true
        }
        fn remove(&self, key: Key) {
            self.published.lock().unwrap().push((key, None));
            self.map.lock().unwrap().remove(&key);
        }
        fn fetch(&self, key: Key) -> BoxFuture<'static, Option<Shared>> {
            Box::pin(std::future::ready(
                self.map.lock().unwrap().get(&key).cloned(),
            ))
        }
    }

    #[tokio::test]
    async fn a_shared_session_is_known_on_another_node_until_logout() {
        let u = users("pw");
        let store = Arc::new(Store::default());
        let node = || {
            let s = Sessions::new(Duration::from_secs(600), Duration::from_secs(3600));
            s.set_share(store.clone());
            s
        };
        let (a, b) = (node(), node());
        let t0 = SystemTime::now();
        let c = a.begin(&u.get("staff").unwrap(), t0).unwrap();
        a.store_shared(&c).await;
        assert!(b.user(&c, &u, t0).is_none(), "b does not hold it yet");
        assert!(b.fetch(&c, t0).await, "b finds it in the shared table");
        assert_eq!(b.user(&c, &u, t0).unwrap().name, "staff");
        assert!(!b.fetch("forged", t0).await);
        // Use refreshes the shared entry at most every SHARE_EVERY.
        let later = t0 + SHARE_EVERY;
        assert!(a.user(&c, &u, t0 + Duration::from_secs(1)).is_some());
        assert!(store.published.lock().unwrap().is_empty());
        assert!(a.user(&c, &u, later).is_some());
        let refreshed = store.published.lock().unwrap().last().cloned().unwrap();
        assert_eq!(refreshed.1.unwrap().used, unix_ms(later));
        // b's idle clock follows a's use.
        assert!(b.import(refreshed.0, &store.map.lock().unwrap()[&refreshed.0], later));
        assert!(b.user(&c, &u, later + Duration::from_secs(599)).is_some());
        // Logout on a: removed from the store; b forgets it when told.
        assert_eq!(a.end(&c).as_deref(), Some("staff"));
        let (key, gone) = store.published.lock().unwrap().last().cloned().unwrap();
        assert!(gone.is_none() && store.map.lock().unwrap().is_empty());
        // A lookup that read the store before the logout cannot bring it back on b.
        let stale = Shared {
            user: "staff".into(),
            fingerprint: u.get("staff").unwrap().fingerprint(),
            began: unix_ms(t0),
            used: unix_ms(later),
        };
        b.forget(&key);
        assert!(b.user(&c, &u, later).is_none());
        assert!(!b.fetch(&c, later).await);
        assert!(
            !b.import(key, &stale, later),
            "an ended session stays ended"
        );
        // A stored session past its age is not taken in.
        let old = Shared {
            user: "staff".into(),
            fingerprint: u.get("staff").unwrap().fingerprint(),
            began: unix_ms(t0),
            used: unix_ms(t0),
        };
        assert!(!b.import([7; 32], &old, t0 + Duration::from_secs(3601)));
    }

    #[test]
    fn keys_go_to_hex_and_back() {
        let k = key_of("a cookie");
        let hex = key_hex(&k);
        assert_eq!(hex.len(), 64);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(key_from_hex(&hex), Some(k));
        assert_eq!(key_from_hex("zz"), None);
        assert_eq!(key_from_hex(&"g".repeat(64)), None);
    }
}
