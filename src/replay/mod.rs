//! Replay: the last minutes of every camera on disk, scrubbed back on the wall. A recorder
//! per camera (`recorder`, attached to its main stream through the output seam) cuts what it
//! sends into segments of about a second (`segment`: the file format), one disk thread
//! writes them in batches and keeps the ring within its bounds (`disk`, `ring`: the index),
//! and readers take instants and spans back (`read`: a picture at an instant, `clip`: an MP4
//! of a span). Off when `server.replay.minutes` is 0. Cameras keep their own H.264/H.265;
//! MJPEG cameras their JPEGs; raw sources (lavfi, raw V4L2) nothing unless they set
//! `"replay": true`, then JPEGs at most 5 a second.

pub mod clip;
pub mod disk;
pub mod pictures;
pub mod play;
pub mod read;
pub mod recorder;
pub mod ring;
pub mod segment;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::ReplayConfig;
use crate::hub::{Hub, HubEvent};
use crate::media::clock::Stamp;
use crate::media::jpeg::Jpeg;
use crate::media::tier::Tier;
use read::ReadError;
use ring::{Ring, Span};

/// Batches the disk thread may have waiting; a recorder holds its own beyond it.
const DISK_QUEUE: usize = 256;
/// Clips being muxed at once; more get `503`.
const MAX_CLIPS: usize = 4;
/// Chunks of a clip between the muxer and the answer (32 KB each).
const CLIP_CHUNKS: usize = 8;

/// The ring of a camera another cluster node ingests, asked of that node (set by the cluster
/// with [`Replay::set_remote`]; replay never knows NATS).
pub trait RemoteRing: Send + Sync {
    fn span(&self, id: &str) -> BoxFuture<'static, Result<Span, ReadError>>;
    fn picture_at(
        &self,
        id: &str,
        at_ms: u64,
        tier: Tier,
    ) -> BoxFuture<'static, Result<(Jpeg, Stamp), ReadError>>;
}

/// The replay ring of this node.
pub struct Replay {
    hub: Arc<Hub>,
    ring: Arc<Mutex<Ring>>,
    clips: Arc<tokio::sync::Semaphore>,
    /// Replays decoding for JPEG viewers (`pictures`).
    pictures: Arc<tokio::sync::Semaphore>,
    remote: std::sync::OnceLock<Arc<dyn RemoteRing>>,
}

impl Replay {
    /// Finds the segments kept in `config.dir` (relative to `config_dir`), starts the disk
    /// thread and a recorder for every camera the hub has and gets, until `cancel`. `None`
    /// when replay is off or its directory cannot be made (said in the log).
    pub fn start(
        hub: Arc<Hub>,
        config: &ReplayConfig,
        config_dir: &Path,
        cancel: CancellationToken,
    ) -> Option<Arc<Self>> {
        if !config.enabled() {
            return None;
        }
        let dir = config_dir.join(&config.dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            warn!(dir = %dir.display(), error = %e, "replay off: cannot make its directory");
            return None;
        }
        let mut ring = Ring::new(
            u64::from(config.minutes) * 60_000,
            config.max_mb.saturating_mul(1 << 20),
        );
        disk::recover(&dir, &mut ring);
        let ring = Arc::new(Mutex::new(ring));
        let (tx, rx) = mpsc::channel(DISK_QUEUE);
        if let Err(e) = disk::spawn(dir, ring.clone(), rx) {
            warn!(error = %e, "replay off: cannot start its disk thread");
            return None;
        }
        tokio::spawn(follow(hub.clone(), tx, cancel));
        Some(Arc::new(Self {
            hub,
            ring,
            clips: Arc::new(tokio::sync::Semaphore::new(MAX_CLIPS)),
            pictures: Arc::new(tokio::sync::Semaphore::new(pictures::MAX_PLAYERS)),
            remote: std::sync::OnceLock::new(),
        }))
    }

    /// Where spans and pictures of cameras other nodes ingest are asked (once, by the cluster).
    pub fn set_remote(&self, remote: Arc<dyn RemoteRing>) {
        let _ = self.remote.set(remote);
    }

    /// The owner's ring to ask for `id`, when another node ingests it.
    fn remote_for(&self, id: &str) -> Option<&Arc<dyn RemoteRing>> {
        let cam = self.hub.get(id)?;
        let elsewhere = *cam.placement_changes().borrow();
        self.remote.get().filter(|_| elsewhere)
    }

    /// What `id`'s ring holds, here or (a camera another node ingests) on its owner.
    pub async fn span_of(&self, id: &str) -> Result<Span, ReadError> {
        match self.remote_for(id) {
            Some(r) => r.span(id).await,
            None => Ok(self.span(id)),
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What `id`'s ring holds.
    pub fn span(&self, id: &str) -> Span {
        self.ring().span(id)
    }

    /// The picture of `id` at or just before `at_ms`, as a JPEG at `tier`, with its stamp:
    /// from this node's ring, or from its owner's for a camera another node ingests.
    pub async fn picture_at(
        &self,
        id: &str,
        at_ms: u64,
        tier: Tier,
    ) -> Result<(Jpeg, Stamp), ReadError> {
        match self.remote_for(id) {
            Some(r) => r.picture_at(id, at_ms, tier).await,
            None => self.local_picture_at(id, at_ms, tier).await,
        }
    }

    /// [`Replay::picture_at`] from this node's ring (what an owner answers other nodes).
    pub async fn local_picture_at(
        &self,
        id: &str,
        at_ms: u64,
        tier: Tier,
    ) -> Result<(Jpeg, Stamp), ReadError> {
        let seg = self.ring().at(id, at_ms).ok_or(ReadError::NotInReplay)?;
        tokio::task::spawn_blocking(move || {
            let records = read::records(&seg.path)?;
            if let Some(jpeg) = read::jpeg_to(&records, at_ms) {
                return read::jpeg_picture(jpeg, tier);
            }
            let run = read::run_to(&records, at_ms).ok_or(ReadError::NotInReplay)?;
            read::picture(&run, tier)
        })
        .await
        .map_err(|e| ReadError::Decode(e.to_string()))?
    }

    /// An MP4 of `id` from `from_ms` to `to_ms`: its first chunk (the header, written once
    /// the span is found to hold video) and the rest as it is muxed. `None` when as many
    /// clips as allowed are being made.
    pub async fn clip(
        &self,
        id: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Option<(Bytes, mpsc::Receiver<Bytes>)>, ReadError> {
        let segments = self.ring().range(id, from_ms, to_ms);
        if segments.is_empty() {
            return Err(ReadError::NotInReplay);
        }
        let Ok(permit) = self.clips.clone().try_acquire_owned() else {
            return Ok(None);
        };
        let (tx, mut rx) = mpsc::channel(CLIP_CHUNKS);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let id = id.to_string();
        std::thread::Builder::new()
            .name("clip".into())
            .spawn(move || {
                let _permit = permit;
                let r = clip::mux_span(&segments, from_ms, to_ms, tx);
                if let Err(e) = &r {
                    tracing::debug!(camera = %id, error = %e, "no clip");
                }
                let _ = done_tx.send(r);
            })
            .map_err(ReadError::Io)?;
        // Nothing comes before the muxer opened: a span without video ends with its error.
        match rx.recv().await {
            Some(first) => Ok(Some((first, rx))),
            None => match done_rx.await {
                Ok(Err(e)) => Err(e),
                _ => Err(ReadError::NotInReplay),
            },
        }
    }
}

/// Keeps a recorder running for every camera that is recorded: enabled, not `"replay":
/// false`. Follows the hub's additions, changes and removals.
async fn follow(hub: Arc<Hub>, tx: mpsc::Sender<disk::Op>, cancel: CancellationToken) {
    let mut events = hub.events();
    let mut running: HashMap<String, CancellationToken> = HashMap::new();
    loop {
        let wanted: HashMap<String, crate::hub::Stream> = hub
            .cameras()
            .into_iter()
            .filter(|c| {
                let cfg = c.config();
                cfg.enabled && cfg.replay != Some(false)
            })
            .filter_map(|c| hub.stream(c.id()).map(|s| (c.id().to_string(), s)))
            .collect();
        running.retain(|id, stop| {
            let keep = wanted
                .get(id)
                .is_some_and(|s| !stop.is_cancelled() && s.camera.config().enabled);
            if !keep {
                stop.cancel();
            }
            keep
        });
        for (id, stream) in wanted {
            running.entry(id).or_insert_with(|| {
                let stop = cancel.child_token();
                tokio::spawn(recorder::record(stream, tx.clone(), stop.clone()));
                stop
            });
        }
        // Any event may change what is recorded; a removal and an addition of the same id
        // are a new camera, so its recorder is started again.
        tokio::select! {
            _ = cancel.cancelled() => break,
            ev = events.recv() => match ev {
                Ok(HubEvent::Removed(id)) => {
                    if let Some(stop) = running.remove(&id) {
                        stop.cancel();
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    for stop in running.values() {
        stop.cancel();
    }
}
