//! The shared camera list: a JetStream KV bucket (key = camera id, value = the camera JSON as
//! in the config file) that every node watches and applies through `control::Manager`.
//!
//! An empty bucket is seeded from the first node's config file. Writes carry the revision the
//! writer saw, so concurrent edits get `Conflict` instead of one being lost. After any break
//! (NATS away, a watch error) the node reads the whole list again and applies the difference,
//! then watches from the revision after it: nothing is missed however long the break.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{CameraConfig, LoadedConfig};
use crate::control::{parse_camera, BoxFuture, CameraList, ChangeError, Manager, ReloadError};
use crate::hub::Hub;
use crate::obs::redact::redact_url;

/// The camera list's bucket.
pub const CAMERAS_BUCKET: &str = "camwall_cameras";
/// Most entries read back (the config's own `max_cameras` is far lower by default).
const MAX_ENTRIES: usize = 10_000;

/// What a write expects of the entry it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The id must be new.
    Absent,
    /// The entry must still be at this revision.
    Revision(u64),
}

/// The catalog as this node sees it: the bucket (once opened) and each camera's revision.
#[derive(Default)]
pub struct Catalog {
    store: Mutex<Option<kv::Store>>,
    revisions: Mutex<std::collections::HashMap<String, u64>>,
    /// Whether the list was read (and applied) at least once since start.
    synced: AtomicBool,
    /// Replicas of the bucket when this node creates it (`server.cluster.replicas`).
    replicas: usize,
}

fn unavailable(e: impl std::fmt::Display) -> ChangeError {
    ChangeError::Unavailable(redact_url(&e.to_string()))
}

impl Catalog {
    /// A catalog whose bucket, if this node creates it, has `replicas` copies.
    pub fn new(replicas: usize) -> Self {
        Self {
            replicas,
            ..Self::default()
        }
    }

    fn kv(&self) -> Result<kv::Store, ChangeError> {
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| unavailable("not connected to NATS yet"))
    }

    fn revisions(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, u64>> {
        self.revisions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the list was read and applied since start (cameras may be claimed then).
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    /// Keeps the list in step with the bucket until `cancel`.
    pub async fn run(
        self: Arc<Self>,
        client: async_nats::Client,
        manager: Arc<Manager>,
        hub: Arc<Hub>,
        cancel: CancellationToken,
    ) {
        let c = client.clone();
        let stop = cancel.clone();
        super::watch::keep_in_step(client, cancel, "camera list", |js| {
            let (me, client, manager, hub, cancel) = (
                self.clone(),
                c.clone(),
                manager.clone(),
                hub.clone(),
                stop.clone(),
            );
            async move {
                me.sync_and_watch(&js, &client, &manager, &hub, &cancel)
                    .await
            }
        })
        .await
    }

    async fn sync_and_watch(
        &self,
        js: &jetstream::Context,
        client: &async_nats::Client,
        manager: &Manager,
        hub: &Hub,
        cancel: &CancellationToken,
    ) -> Result<(), async_nats::Error> {
        let kv = super::bucket(js, CAMERAS_BUCKET, Duration::ZERO, self.replicas).await?;
        *self.store.lock().unwrap_or_else(|e| e.into_inner()) = Some(kv.clone());
        let mut from = super::watch::last_revision(js, CAMERAS_BUCKET).await?;
        let mut list = read_all(&kv).await?;
        if list.is_empty() && !self.is_synced() {
            let cams = manager.file_cameras().await;
            info!(
                cameras = cams.len(),
                "cluster: seeding the empty camera list from the config file"
            );
            for body in cams {
                let Some(id) = body.get("id").and_then(Value::as_str).map(String::from) else {
                    continue;
                };
                match kv
                    .create(id.as_str(), Bytes::from(serde_json::to_vec(&body)?))
                    .await
                {
                    Ok(_) => {}
                    // Another node seeded it first: its value stands.
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e.into()),
                }
            }
            from = super::watch::last_revision(js, CAMERAS_BUCKET).await?;
            list = read_all(&kv).await?;
        }
        for cam in hub.cameras() {
            if !list.contains_key(cam.id()) {
                self.apply(manager, cam.id(), None).await;
            }
        }
        for (id, (revision, value)) in list {
            self.apply(manager, &id, Some((revision, value))).await;
        }
        self.synced.store(true, Ordering::Relaxed);
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
                entry = watch.next() => match entry {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(e)) => {
                        let value = (e.operation == kv::Operation::Put)
                            .then(|| serde_json::from_slice::<Value>(&e.value).ok())
                            .flatten()
                            .map(|v| (e.revision, v));
                        self.apply(manager, &e.key, value).await;
                    }
                }
            }
        }
    }

    /// Applies one entry (`None`: the camera is gone) through the manager.
    async fn apply(&self, manager: &Manager, id: &str, entry: Option<(u64, Value)>) {
        match entry {
            None => {
                self.revisions().remove(id);
                manager.apply_shared(id, None).await;
            }
            Some((revision, value)) => match parse_camera(&value) {
                Ok(cam) if cam.id == id => {
                    self.revisions().insert(id.to_string(), revision);
                    manager.apply_shared(id, Some(cam)).await;
                }
                Ok(_) => {
                    warn!(camera = %id, "cluster: camera list entry names another id; ignored")
                }
                Err(e) => {
                    // A type error quotes the value it met, which may be a URL or an option.
                    let e = redact_url(&e.to_string());
                    warn!(camera = %id, "cluster: camera list entry is not a valid camera: {e}")
                }
            },
        }
    }
}

/// Every live entry: id → (revision, camera JSON).
async fn read_all(kv: &kv::Store) -> Result<BTreeMap<String, (u64, Value)>, async_nats::Error> {
    let mut keys = kv.keys().await?;
    let mut names = Vec::new();
    while let Some(k) = keys.next().await {
        names.push(k?);
        if names.len() >= MAX_ENTRIES {
            warn!("cluster: the camera list holds more than {MAX_ENTRIES} entries; the rest are ignored");
            break;
        }
    }
    let mut out = BTreeMap::new();
    for name in names {
        if let Some(e) = kv.entry(name.as_str()).await? {
            if e.operation == kv::Operation::Put {
                if let Ok(v) = serde_json::from_slice::<Value>(&e.value) {
                    out.insert(name, (e.revision, v));
                }
            }
        }
    }
    Ok(out)
}

impl Catalog {
    /// Writes camera `id` as `body`; returns the new revision.
    async fn put(&self, id: String, body: Value, expect: Expect) -> Result<u64, ChangeError> {
        let kv = self.kv()?;
        let bytes = Bytes::from(serde_json::to_vec(&body).map_err(unavailable)?);
        let revision = match expect {
            Expect::Absent => kv.create(id.as_str(), bytes).await.map_err(|e| {
                if e.kind() == kv::CreateErrorKind::AlreadyExists {
                    ChangeError::Duplicate(id.clone())
                } else {
                    unavailable(e)
                }
            })?,
            Expect::Revision(r) => kv.update(id.as_str(), bytes, r).await.map_err(|e| {
                if e.kind() == kv::UpdateErrorKind::WrongLastRevision {
                    ChangeError::Conflict(id.clone())
                } else {
                    unavailable(e)
                }
            })?,
        };
        self.revisions().insert(id, revision);
        Ok(revision)
    }

    /// Removes camera `id` if it is still at `revision`.
    async fn delete(&self, id: String, revision: u64) -> Result<(), ChangeError> {
        let kv = self.kv()?;
        if let Err(e) = kv.delete_expect_revision(id.as_str(), Some(revision)).await {
            // The error does not say why: a newer revision there means someone changed it.
            return Err(match kv.entry(id.as_str()).await {
                Ok(Some(now)) if now.revision != revision => ChangeError::Conflict(id),
                _ => unavailable(e),
            });
        }
        self.revisions().remove(&id);
        Ok(())
    }
}

/// The camera list of a cluster node: every change carries a revision, so that concurrent
/// edits on different nodes get `Conflict` instead of one silently replacing the other.
impl CameraList for Catalog {
    fn revision(&self, id: &str) -> Option<u64> {
        self.revisions().get(id).copied()
    }

    fn stored(&self, current: &CameraConfig) -> BoxFuture<'_, Result<Value, ChangeError>> {
        // The entry is the camera as this node applied it: its JSON form is the stored one.
        let body = serde_json::to_value(current).map_err(|e| ChangeError::Invalid {
            field: "(body)".into(),
            message: e.to_string(),
        });
        Box::pin(std::future::ready(body))
    }

    fn add(&self, id: &str, body: Value) -> BoxFuture<'_, Result<Option<u64>, ChangeError>> {
        let id = id.to_string();
        Box::pin(async move { self.put(id, body, Expect::Absent).await.map(Some) })
    }

    fn replace(
        &self,
        id: &str,
        body: Value,
        base: Option<u64>,
    ) -> BoxFuture<'_, Result<Option<u64>, ChangeError>> {
        let id = id.to_string();
        Box::pin(async move {
            // No revision seen: the camera is not (yet) in the shared list.
            let base = base.ok_or_else(|| ChangeError::NotFound(id.clone()))?;
            self.put(id, body, Expect::Revision(base)).await.map(Some)
        })
    }

    fn remove(&self, id: &str, base: Option<u64>) -> BoxFuture<'_, Result<(), ChangeError>> {
        let id = id.to_string();
        Box::pin(async move {
            let base = base.ok_or_else(|| ChangeError::NotFound(id.clone()))?;
            self.delete(id, base).await
        })
    }

    fn reload(&self) -> BoxFuture<'_, Result<LoadedConfig, ReloadError>> {
        // The shared list is the truth in a cluster; the file is read only at start.
        Box::pin(std::future::ready(Err(ReloadError::Clustered)))
    }
}
