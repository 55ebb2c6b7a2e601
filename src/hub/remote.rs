//! Cameras another node ingests: the seam through which their JPEG lanes and snapshots come.
//!
//! The hub knows nothing of NATS. In a cluster, `cluster::relay` implements [`Remote`] and the
//! hub hands it to every camera ([`Hub::set_remote`](super::Hub::set_remote)); `control`
//! marks which cameras are ingested elsewhere. A camera so marked answers snapshots and
//! long-polls through the remote, and its fan-out lanes take their frames from the owner's
//! lane of the same tier instead of encoding here: the owner encodes each tier once however
//! many nodes and viewers take it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

use super::cache::{Encoded, FrameError};
use crate::media::tier::{Lane, Tier};

/// Where the pictures of a camera ingested by another node come from.
pub trait Remote: Send + Sync {
    /// Lane `lane` of camera `camera` as its owner encodes it: the newest frame, replaced as
    /// frames come (latest wins), until the receiver is dropped.
    fn lane(&self, camera: &str, lane: Lane) -> watch::Receiver<Option<Encoded>>;

    /// A JPEG at `tier` from the owner's TTL cache; with `after` (an ETag and a wait), the
    /// first whose tag differs from it within the wait (a long-poll).
    fn snapshot(
        &self,
        camera: &str,
        tier: Tier,
        after: Option<(String, Duration)>,
    ) -> BoxFuture<'static, Result<Encoded, FrameError>>;
}

/// The remote every camera of a hub shares, set once when the cluster connects.
#[derive(Clone, Default)]
pub struct RemoteSlot(Arc<OnceLock<Arc<dyn Remote>>>);

impl RemoteSlot {
    pub fn get(&self) -> Option<&Arc<dyn Remote>> {
        self.0.get()
    }

    /// Sets the remote; `false` if one was set already.
    pub fn set(&self, remote: Arc<dyn Remote>) -> bool {
        self.0.set(remote).is_ok()
    }
}

impl std::fmt::Debug for RemoteSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "RemoteSlot(set)"
        } else {
            "RemoteSlot(unset)"
        })
    }
}
