//! The shared sessions: a JetStream KV bucket (key = the hex SHA-256 of a session cookie,
//! never the cookie; value = its user and times, `access::sessions::Shared`) that every node
//! watches into its own session table, so a login on one node is a session on all of them and
//! a logout on one ends it everywhere.
//!
//! A login is stored before it is answered; a node asked with a cookie it does not hold looks
//! it up at once (the watch may lag by milliseconds). Uses refresh the entry at most once a
//! minute, queued without waiting ([`QUEUE`] at most; a full queue drops a refresh, which the
//! next use sends again); a refresh names the revision this node last saw of the entry, so
//! one that crosses a logout made elsewhere fails instead of bringing the session back.
//! Logouts are kept apart from refreshes and never dropped: each stays pending until its purge
//! is written, and pending ones are written before the bucket is read again after a break.
//! The node that ended a session refuses it from then on (`Sessions` keeps it ended), so
//! neither a re-read nor a late lookup brings it back. Entries expire in the bucket at the
//! longest session age.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::access::sessions::{key_from_hex, key_hex, Key, Sessions, Share, Shared, MAX_SESSIONS};
use crate::control::BoxFuture;

/// The sessions' bucket.
pub const SESSIONS_BUCKET: &str = "camwall_sessions";
/// Refreshes waiting to be written.
const QUEUE: usize = 1024;

/// This node's side of the shared table.
pub struct SharedSessions {
    store: Mutex<Option<kv::Store>>,
    /// Whether a sync runs now (NATS connected, the bucket open): lookups are not tried
    /// otherwise, so a request never waits on a NATS that is away.
    connected: AtomicBool,
    refreshes: mpsc::Sender<(Key, Shared)>,
    /// The queue's other end, held by the sync that runs.
    pending: tokio::sync::Mutex<mpsc::Receiver<(Key, Shared)>>,
    /// Sessions ended here, until their purge is written (bounded as the session table).
    removals: Mutex<VecDeque<Key>>,
    removed: Notify,
    /// The revision last seen of each entry this node holds.
    revisions: Arc<Mutex<HashMap<Key, u64>>>,
    sessions: Weak<Sessions>,
    replicas: usize,
}

impl SharedSessions {
    /// The share of `sessions`; [`SharedSessions::run`] keeps it in step once NATS is
    /// connected.
    pub fn new(replicas: usize, sessions: &Arc<Sessions>) -> Arc<Self> {
        let (refreshes, rx) = mpsc::channel(QUEUE);
        Arc::new(Self {
            store: Mutex::new(None),
            connected: AtomicBool::new(false),
            refreshes,
            pending: tokio::sync::Mutex::new(rx),
            removals: Mutex::new(VecDeque::new()),
            removed: Notify::new(),
            revisions: Arc::new(Mutex::new(HashMap::new())),
            sessions: Arc::downgrade(sessions),
            replicas,
        })
    }

    fn kv(&self) -> Option<kv::Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn revisions(&self) -> std::sync::MutexGuard<'_, HashMap<Key, u64>> {
        self.revisions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes pending refreshes and logouts and takes in other nodes' until `cancel`.
    pub async fn run(self: Arc<Self>, client: async_nats::Client, cancel: CancellationToken) {
        let c = client.clone();
        let stop = cancel.clone();
        super::watch::keep_in_step(client, cancel, "session", |js| {
            let (me, client, cancel) = (self.clone(), c.clone(), stop.clone());
            async move {
                // One sync at a time holds the queue.
                let mut queue = me.pending.lock().await;
                let r = me.sync_and_watch(&js, &client, &mut queue, &cancel).await;
                me.connected.store(false, Ordering::Relaxed);
                r
            }
        })
        .await
    }

    async fn sync_and_watch(
        &self,
        js: &jetstream::Context,
        client: &async_nats::Client,
        queue: &mut mpsc::Receiver<(Key, Shared)>,
        cancel: &CancellationToken,
    ) -> Result<(), async_nats::Error> {
        let Some(sessions) = self.sessions.upgrade() else {
            return Ok(());
        };
        let max_age = sessions.max_age();
        let kv = super::bucket(js, SESSIONS_BUCKET, max_age, self.replicas).await?;
        *self.store.lock().unwrap_or_else(|e| e.into_inner()) = Some(kv.clone());
        // Logouts made while away go first: the read below must not find them.
        self.write_removals(&kv).await?;
        // Every stored session, so that a node that starts (or comes back) knows them all;
        // the watch then starts after the last revision the bucket had before the read.
        let from = super::watch::last_revision(js, SESSIONS_BUCKET).await?;
        let mut keys = kv.keys().await?;
        let mut names = Vec::new();
        while let Some(k) = keys.next().await {
            names.push(k?);
            if names.len() >= MAX_SESSIONS {
                break;
            }
        }
        let complete = names.len() < MAX_SESSIONS;
        let mut present = std::collections::HashSet::new();
        for name in names {
            if let Some(key) = key_from_hex(&name) {
                present.insert(key);
            }
            if let Some(e) = kv.entry(name.as_str()).await? {
                self.take_in(&sessions, &e);
            }
        }
        // Sessions ended elsewhere during a break are no longer in the bucket, and their
        // purge is older than the watch's start: each one this node saw there ends here too.
        if complete {
            let gone: Vec<Key> = self
                .revisions()
                .keys()
                .filter(|k| !present.contains(*k))
                .copied()
                .collect();
            for key in gone {
                self.saw(key, None);
                sessions.forget(&key);
            }
        }
        self.connected.store(true, Ordering::Relaxed);
        let mut watch = kv.watch_all_from_revision(from + 1).await?;
        let mut check = tokio::time::interval(super::watch::CHECK_EVERY);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(()),
                _ = check.tick() => {
                    if !super::watch::connected(client) {
                        return Err(super::watch::lost());
                    }
                }
                _ = self.removed.notified() => self.write_removals(&kv).await?,
                refresh = queue.recv() => match refresh {
                    None => return Ok(()),
                    Some((key, s)) => {
                        let Some(base) = self.revisions().get(&key).copied() else { continue };
                        let value = Bytes::from(serde_json::to_vec(&s)?);
                        match kv.update(key_hex(&key).as_str(), value, base).await {
                            Ok(rev) => self.saw(key, Some(rev)),
                            // Refreshed or ended elsewhere meanwhile: the watch brings it.
                            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                },
                entry = watch.next() => match entry {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(e)) => self.take_in(&sessions, &e),
                }
            }
        }
    }

    /// Purges every pending logout, each taken off only once written.
    async fn write_removals(&self, kv: &kv::Store) -> Result<(), async_nats::Error> {
        loop {
            let next = self
                .removals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .front()
                .copied();
            let Some(key) = next else { return Ok(()) };
            kv.purge(key_hex(&key).as_str()).await?;
            let mut r = self.removals.lock().unwrap_or_else(|e| e.into_inner());
            if r.front() == Some(&key) {
                r.pop_front();
            }
        }
    }

    /// Notes revision `revision` of entry `key` (`None`: the entry is gone).
    fn saw(&self, key: Key, revision: Option<u64>) {
        saw(&self.revisions, &self.sessions, key, revision);
    }

    /// One entry of the bucket into this node's table: a session added or used elsewhere,
    /// or ended.
    fn take_in(&self, sessions: &Sessions, e: &kv::Entry) {
        let Some(key) = key_from_hex(&e.key) else {
            return;
        };
        match e.operation {
            kv::Operation::Put => match serde_json::from_slice::<Shared>(&e.value) {
                Ok(s) => {
                    if sessions.import(key, &s, SystemTime::now()) {
                        self.saw(key, Some(e.revision));
                    }
                }
                Err(_) => warn!("cluster: a session entry is not a session; ignored"),
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                self.saw(key, None);
                sessions.forget(&key);
            }
        }
    }
}

/// Notes a revision, keeping only entries of sessions `sessions` still holds once full.
fn saw(
    revisions: &Mutex<HashMap<Key, u64>>,
    sessions: &Weak<Sessions>,
    key: Key,
    revision: Option<u64>,
) {
    let mut r = revisions.lock().unwrap_or_else(|e| e.into_inner());
    match revision {
        Some(rev) => {
            if r.len() >= MAX_SESSIONS && !r.contains_key(&key) {
                if let Some(s) = sessions.upgrade() {
                    r.retain(|k, _| s.holds(k));
                }
                if r.len() >= MAX_SESSIONS {
                    // Its refreshes are skipped: its entry ages in the bucket, not here.
                    return;
                }
            }
            r.insert(key, rev);
        }
        None => {
            r.remove(&key);
        }
    }
}

impl Share for SharedSessions {
    fn store(&self, key: Key, session: Shared) -> BoxFuture<'static, ()> {
        let kv = self.kv().filter(|_| self.connected.load(Ordering::Relaxed));
        let revisions = self.revisions.clone();
        let sessions = self.sessions.clone();
        Box::pin(async move {
            let (Some(kv), Ok(value)) = (kv, serde_json::to_vec(&session)) else {
                warn!("cluster: a login could not be shared with the other nodes (NATS away)");
                return;
            };
            let name = key_hex(&key);
            let put = kv.put(name.as_str(), Bytes::from(value));
            match tokio::time::timeout(super::REQUEST_TIMEOUT, put).await {
                Ok(Ok(rev)) => saw(&revisions, &sessions, key, Some(rev)),
                // The login holds on this node; the others do not know it.
                _ => warn!("cluster: a login could not be shared with the other nodes now"),
            }
        })
    }

    fn refresh(&self, key: Key, session: Shared) -> bool {
        self.refreshes.try_send((key, session)).is_ok()
    }

    fn remove(&self, key: Key) {
        self.saw(key, None);
        {
            let mut r = self.removals.lock().unwrap_or_else(|e| e.into_inner());
            if r.len() >= MAX_SESSIONS {
                // The oldest logout left unwritten still expires in the bucket at its age,
                // and this node keeps it ended.
                r.pop_front();
            }
            r.push_back(key);
        }
        self.removed.notify_one();
    }

    fn fetch(&self, key: Key) -> BoxFuture<'static, Option<Shared>> {
        let kv = self.kv().filter(|_| self.connected.load(Ordering::Relaxed));
        Box::pin(async move {
            let kv = kv?;
            let get = kv.entry(key_hex(&key));
            let entry = tokio::time::timeout(super::REQUEST_TIMEOUT, get)
                .await
                .ok()?
                .ok()??;
            (entry.operation == kv::Operation::Put)
                .then(|| serde_json::from_slice(&entry.value).ok())
                .flatten()
        })
    }
}
