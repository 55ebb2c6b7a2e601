//! The manager in cluster mode: the camera list lives in a catalog shared by every node (a
//! NATS KV bucket, a [`CameraList`] implemented by `cluster::catalog`), not in the config file.
//!
//! An API change takes the same path as alone (checked, stored with the revision the caller
//! saw, a stale one refused with `Conflict`, then applied to the hub at once); every other
//! node applies it when its watch delivers it ([`Manager::apply_shared`]). The config file's
//! cameras are read only to seed an empty catalog, and never written in this mode.

use std::sync::Arc;

use serde_json::Value;

use super::{CameraList, Manager};
use crate::config::CameraConfig;

impl Manager {
    /// Cluster mode: camera changes are stored in `catalog` from now on.
    pub fn set_catalog(&self, catalog: Arc<dyn CameraList>) {
        *self.cameras.write().unwrap_or_else(|e| e.into_inner()) = catalog;
    }

    /// The cameras of the config file as written there (to seed an empty catalog).
    pub async fn file_cameras(&self) -> Vec<Value> {
        self.file.cameras().await
    }

    /// Applies one catalog entry, from this node's watch: a new camera is added (its worker
    /// starts only where the cluster gives it a lease), a changed one reconfigured, `None`
    /// removed. Never writes the config file.
    pub async fn apply_shared(&self, id: &str, cam: Option<CameraConfig>) {
        let _serial = self.changes.lock().await;
        self.apply_locked(id, cam);
    }
}
