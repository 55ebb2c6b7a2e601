//! The manager's workers: which cameras this node ingests, and starting and stopping their
//! ingest workers (the main stream's, and the sub stream's that connects on demand).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Manager;
use crate::config::SUB_SUFFIX;
use crate::hub::Camera;

impl Manager {
    /// Whether this node ingests camera `id` now (alone: every camera).
    pub fn ingests(&self, id: &str) -> bool {
        match &self.owned {
            None => true,
            Some(o) => o.lock().unwrap_or_else(|e| e.into_inner()).contains(id),
        }
    }

    /// Cluster mode: this node starts (`true`) or stops (`false`) ingesting camera `id`. The
    /// cluster calls it when it gains or gives up the camera's lease; alone, it does nothing.
    pub fn set_owned(&self, id: &str, owned: bool) {
        let Some(set) = &self.owned else { return };
        let changed = {
            let mut set = set.lock().unwrap_or_else(|e| e.into_inner());
            if owned {
                set.insert(id.to_string())
            } else {
                set.remove(id)
            }
        };
        if !changed {
            return;
        }
        match (owned, self.hub.get(id)) {
            (true, Some(cam)) => self.start_worker(&cam),
            (false, cam) => {
                self.stop_worker(id);
                let sub = self.hub.sub(id).map(|s| s.camera);
                for c in cam.into_iter().chain(sub) {
                    // A newer generation makes the old worker's late writes no-ops.
                    c.next_generation();
                    c.video().stop();
                    c.set_elsewhere(true);
                }
            }
            (true, None) => {}
        }
    }

    pub(super) fn start_worker(&self, cam: &Arc<Camera>) {
        let generation = cam.next_generation();
        let sub = self.hub.sub(cam.id());
        // Ingested elsewhere: its pictures come from the owner (cluster mode only).
        let elsewhere = !self.ingests(cam.id());
        for c in std::iter::once(cam).chain(sub.as_ref().map(|s| &s.camera)) {
            c.set_elsewhere(elsewhere);
        }
        if !cam.config().enabled {
            cam.set_disabled();
            if let Some(sub) = sub {
                sub.camera.next_generation();
                sub.camera.set_disabled();
            }
            return;
        }
        if !self.ingests(cam.id()) {
            return;
        }
        let opener: Arc<dyn crate::ingest::worker::Opener> =
            Arc::new(crate::ingest::opener::CameraOpener);
        let token = self.worker_token(cam.id().to_string());
        self.tracker.spawn(crate::ingest::worker::run(
            cam.clone(),
            opener.clone(),
            token,
            generation,
        ));
        // The sub stream connects only while something uses it.
        if let Some(sub) = sub {
            let generation = sub.camera.next_generation();
            let token = self.worker_token(sub.camera.id().to_string());
            self.tracker.spawn(crate::ingest::worker::run_on_demand(
                sub.camera, opener, token, generation,
            ));
        }
    }

    /// A fresh token for the worker named `key`; the worker it replaces is cancelled.
    fn worker_token(&self, key: String) -> CancellationToken {
        let token = self.root.child_token();
        if let Some(old) = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, token.clone())
        {
            old.cancel();
        }
        token
    }

    /// Stops camera `id`'s workers (main and sub stream).
    pub(super) fn stop_worker(&self, id: &str) {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for key in [id.to_string(), format!("{id}{SUB_SUFFIX}")] {
            if let Some(t) = workers.remove(&key) {
                t.cancel();
            }
        }
    }
}
