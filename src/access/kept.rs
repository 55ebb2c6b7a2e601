//! Sessions kept across restarts on a node alone: a file beside the config
//! ([`FILE_NAME`], mode 0600) holding each live session's key (the SHA-256 of its cookie,
//! never the cookie), user and times. Read at start; written (atomically) at once after a
//! logout, at most every [`WRITE_EVERY`] after other changes, and once more at shutdown. A cluster shares its sessions
//! through NATS instead. A file that cannot be written costs only this: a restart logs
//! everyone out, as it would without it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::sessions::{key_from_hex, key_hex, Key, Sessions, Share, Shared, MAX_SESSIONS};
use crate::control::BoxFuture;

/// The file's name, in the config file's directory.
pub const FILE_NAME: &str = ".camwall-sessions.json";
/// Longest a change waits to be written.
pub const WRITE_EVERY: Duration = Duration::from_secs(2);

/// The sessions as the file holds them.
pub struct SessionFile {
    path: PathBuf,
    sessions: Arc<Sessions>,
    map: Mutex<HashMap<Key, Shared>>,
    dirty: AtomicBool,
    /// Wakes the writer at once (a logout).
    urgent: Notify,
    /// One write at a time (the writer, the shutdown).
    writing: Mutex<()>,
    /// Whether a failed write was said already (said once, not every 2 s).
    warned: AtomicBool,
}

impl SessionFile {
    /// Takes the sessions of the file at `path` (none when it is missing or unreadable, said
    /// why) into `sessions`, which from now on are written there.
    pub fn open(path: &Path, sessions: Arc<Sessions>, cancel: CancellationToken) -> Arc<Self> {
        let me = Arc::new(Self {
            path: path.to_path_buf(),
            sessions: sessions.clone(),
            map: Mutex::new(HashMap::new()),
            dirty: AtomicBool::new(false),
            urgent: Notify::new(),
            writing: Mutex::new(()),
            warned: AtomicBool::new(false),
        });
        match std::fs::read(path) {
            Ok(bytes) => me.read(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!(file = %path.display(), "cannot read the saved sessions: {e}"),
        }
        sessions.set_share(me.clone());
        let writer = me.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(WRITE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => {}
                    _ = writer.urgent.notified() => {}
                }
                if writer.dirty.swap(false, Ordering::Relaxed) {
                    let w = writer.clone();
                    let _ = tokio::task::spawn_blocking(move || w.write_now()).await;
                }
            }
        });
        me
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Shared>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self, bytes: &[u8]) {
        let Ok(saved) = serde_json::from_slice::<HashMap<String, Shared>>(bytes) else {
            warn!(file = %self.path.display(), "the saved sessions are not readable; starting without them");
            return;
        };
        let now = SystemTime::now();
        let mut map = self.map();
        for (k, s) in saved.into_iter().take(MAX_SESSIONS) {
            if let Some(key) = key_from_hex(&k) {
                if self.sessions.import(key, &s, now) {
                    map.insert(key, s);
                }
            }
        }
        if !map.is_empty() {
            info!(
                sessions = map.len(),
                "login sessions kept from before the restart"
            );
        }
    }

    /// Writes the live sessions now (blocking: the writer runs it on the blocking pool, the
    /// shutdown after the server stopped).
    pub fn write_now(&self) {
        let _one = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let now = SystemTime::now();
        let body = {
            let mut map = self.map();
            map.retain(|_, s| self.sessions.is_live(s, now));
            let out: HashMap<String, &Shared> = map.iter().map(|(k, s)| (key_hex(k), s)).collect();
            serde_json::to_vec(&out).unwrap_or_default()
        };
        match write_private(&self.path, &body) {
            Ok(()) => {
                self.warned.store(false, Ordering::Relaxed);
            }
            Err(e) if !self.warned.swap(true, Ordering::Relaxed) => warn!(
                file = %self.path.display(),
                "cannot save the login sessions (a restart will log everyone out): {e}"
            ),
            Err(e) => debug!("cannot save the login sessions: {e}"),
        }
    }

    /// Writes the sessions if they changed since the last write (at shutdown).
    pub fn flush(&self) {
        if self.dirty.swap(false, Ordering::Relaxed) {
            self.write_now();
        }
    }

    fn changed(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }
}

/// Writes `bytes` to `path` atomically (a temporary file, made readable by the owner only
/// before anything is in it, then renamed over it), keeping no copy of what it held.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Share for SessionFile {
    fn store(&self, key: Key, session: Shared) -> BoxFuture<'static, ()> {
        let mut map = self.map();
        // Bounded as the session table is: it evicts the least recently used as well.
        if map.len() >= MAX_SESSIONS && !map.contains_key(&key) {
            let now = SystemTime::now();
            map.retain(|_, s| self.sessions.is_live(s, now));
            if map.len() >= MAX_SESSIONS {
                if let Some(k) = map.iter().min_by_key(|(_, s)| s.used).map(|(k, _)| *k) {
                    map.remove(&k);
                }
            }
        }
        map.insert(key, session);
        self.changed();
        Box::pin(std::future::ready(()))
    }

    fn refresh(&self, key: Key, session: Shared) -> bool {
        if let Some(s) = self.map().get_mut(&key) {
            *s = session;
            self.changed();
        }
        true
    }

    fn remove(&self, key: Key) {
        if self.map().remove(&key).is_some() {
            self.changed();
            self.urgent.notify_one();
        }
    }

    fn fetch(&self, _key: Key) -> BoxFuture<'static, Option<Shared>> {
        // Every saved session was taken in at start: nothing else to look up.
        Box::pin(std::future::ready(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::users::{hash_password, Users};
    use crate::config::auth::{RoleName, UserConfig};

    #[tokio::test]
    async fn sessions_outlive_a_restart_and_a_logout_stays_out() {
        let users = Users::new(&[UserConfig {
            name: "staff".into(),
            password_hash: hash_password("a long password").unwrap(),
            role: RoleName::Viewer,
            cameras: None,
            views: None,
        }]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let new_node = || {
            Arc::new(Sessions::new(
                Duration::from_secs(600),
                Duration::from_secs(3600),
            ))
        };
        let cancel = CancellationToken::new();
        let first = new_node();
        let file = SessionFile::open(&path, first.clone(), cancel.clone());
        let now = SystemTime::now();
        let kept = first.begin(&users.get("staff").unwrap(), now).unwrap();
        let ended = first.begin(&users.get("staff").unwrap(), now).unwrap();
        first.store_shared(&kept).await;
        first.store_shared(&ended).await;
        first.end(&ended);
        file.write_now();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&kept), "the file holds no cookie");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let second = new_node();
        let _file = SessionFile::open(&path, second.clone(), cancel.clone());
        assert_eq!(second.user(&kept, &users, now).unwrap().name, "staff");
        assert!(second.user(&ended, &users, now).is_none(), "logged out");
        cancel.cancel();
    }
}
