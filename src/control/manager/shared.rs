//! The manager in cluster mode: the camera list lives in a catalog shared by every node (a
//! NATS KV bucket, behind the [`SharedCatalog`] seam), not in the config file.
//!
//! An API change is checked here exactly as alone, then written to the catalog with the
//! revision the caller saw (a stale one is refused with `Conflict`), then applied to the hub
//! at once; every other node applies it when its watch delivers it ([`Manager::apply_shared`]).
//! The config file is never written in this mode.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;
use tracing::info;

use super::{parse_camera, CameraView, ChangeError, Manager};
use crate::config::CameraConfig;

/// A boxed future, so the seam stays object-safe without an extra crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a catalog write expects of the entry it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The id must be new.
    Absent,
    /// The entry must still be at this revision.
    Revision(u64),
}

/// The shared camera list. Implemented by the cluster over NATS; nothing here knows NATS.
pub trait SharedCatalog: Send + Sync {
    /// Writes camera `id` as `body`; returns the new revision.
    fn put(&self, id: &str, body: Value, expect: Expect)
        -> BoxFuture<'_, Result<u64, ChangeError>>;
    /// Removes camera `id` if it is still at `revision`.
    fn delete(&self, id: &str, revision: u64) -> BoxFuture<'_, Result<(), ChangeError>>;
    /// The newest revision of `id` this node has seen.
    fn revision(&self, id: &str) -> Option<u64>;
}

impl Manager {
    /// Cluster mode: the camera list lives in `catalog` from now on.
    pub fn set_catalog(&self, catalog: Arc<dyn SharedCatalog>) {
        let _ = self.catalog.set(catalog);
    }

    pub(super) fn catalog(&self) -> Option<Arc<dyn SharedCatalog>> {
        self.catalog.get().cloned()
    }

    /// The cameras of the config file as written there (to seed an empty catalog).
    pub async fn file_cameras(&self) -> Vec<Value> {
        let store = self.store.lock().await;
        store
            .doc()
            .get("cameras")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    fn with_revision(&self, mut view: CameraView) -> CameraView {
        view.revision = self.catalog().and_then(|c| c.revision(&view.config.id));
        view
    }

    /// The configured cameras with their catalog revisions (cluster mode).
    pub(super) fn shared_list(&self) -> Vec<CameraView> {
        self.hub
            .cameras()
            .iter()
            .map(|c| self.with_revision(CameraView::of(&c.config())))
            .collect()
    }

    /// One camera with its catalog revision, if it exists.
    pub fn view(&self, id: &str) -> Option<CameraView> {
        let cam = self.hub.get(id)?;
        Some(self.with_revision(CameraView::of(&cam.config())))
    }

    pub(super) async fn shared_add(
        &self,
        catalog: Arc<dyn SharedCatalog>,
        body: Value,
    ) -> Result<CameraView, ChangeError> {
        let cam = parse_camera(&body)?;
        self.check_source(&cam, None)?;
        let _serial = self.store.lock().await;
        if self.hub.get(&cam.id).is_some() {
            return Err(ChangeError::Duplicate(cam.id));
        }
        catalog.put(&cam.id, body, Expect::Absent).await?;
        self.apply_locked(&cam.id, Some(cam.clone()));
        info!(camera = %cam.id, "camera added to the cluster");
        Ok(self.with_revision(CameraView::of(&cam)))
    }

    /// PUT and PATCH in cluster mode: `body` is the whole new camera, `if_match` the revision
    /// the caller read (else the newest this node has seen).
    pub(super) async fn shared_write(
        &self,
        catalog: Arc<dyn SharedCatalog>,
        id: &str,
        body: Value,
        if_match: Option<u64>,
    ) -> Result<CameraView, ChangeError> {
        let _serial = self.store.lock().await;
        let mut body = body;
        self.restore_secrets(&mut body, id)?;
        let cam = parse_camera(&body)?;
        let existing = self
            .hub
            .get(id)
            .ok_or_else(|| ChangeError::NotFound(id.to_string()))?;
        self.check_source(&cam, Some(&existing.config()))?;
        let revision = if_match
            .or_else(|| catalog.revision(id))
            .ok_or_else(|| ChangeError::NotFound(id.to_string()))?;
        catalog.put(id, body, Expect::Revision(revision)).await?;
        self.apply_locked(id, Some(cam.clone()));
        Ok(self.with_revision(CameraView::of(&cam)))
    }

    /// The current camera as a JSON body, for a merge patch in cluster mode.
    pub(super) fn shared_body(&self, id: &str) -> Result<Value, ChangeError> {
        let cam = self
            .hub
            .get(id)
            .ok_or_else(|| ChangeError::NotFound(id.to_string()))?;
        serde_json::to_value(&*cam.config()).map_err(|e| ChangeError::Invalid {
            field: "(body)".into(),
            message: e.to_string(),
        })
    }

    pub(super) async fn shared_remove(
        &self,
        catalog: Arc<dyn SharedCatalog>,
        id: &str,
        if_match: Option<u64>,
    ) -> Result<(), ChangeError> {
        let _serial = self.store.lock().await;
        if self.hub.get(id).is_none() {
            return Err(ChangeError::NotFound(id.to_string()));
        }
        let revision = if_match
            .or_else(|| catalog.revision(id))
            .ok_or_else(|| ChangeError::NotFound(id.to_string()))?;
        catalog.delete(id, revision).await?;
        self.apply_locked(id, None);
        Ok(())
    }

    /// Applies one catalog entry, from this node's watch: a new camera is added (its worker
    /// starts only where the cluster gives it a lease), a changed one reconfigured, `None`
    /// removed. Never writes the config file.
    pub async fn apply_shared(&self, id: &str, cam: Option<CameraConfig>) {
        let _serial = self.store.lock().await;
        self.apply_locked(id, cam);
    }

    fn apply_locked(&self, id: &str, cam: Option<CameraConfig>) {
        match (cam, self.hub.get(id)) {
            (Some(cfg), Some(existing)) => self.reconfigure(&existing, cfg),
            (Some(cfg), None) => {
                let c = self.hub.insert(cfg);
                self.start_worker(&c);
            }
            (None, Some(_)) => {
                self.set_owned(id, false);
                self.drop_camera(id);
            }
            (None, None) => {}
        }
    }
}
