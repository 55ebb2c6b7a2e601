//! The hub: per camera, its latest frame, its live status, and the cache of encoded JPEGs.
//!
//! Camera workers publish frames here; web handlers read from here. Encoding is lazy: a JPEG is
//! made only when someone asks for it, once per frame and quality/size tier, and concurrent
//! askers of the same tier wait for that one encode instead of starting their own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use serde::Serialize;
use tokio::sync::{watch, Notify};

use crate::config::{CameraConfig, Config};
use crate::frame::Frame;
use crate::jpeg::Jpeg;
use crate::redact::{redact_text, redact_url};

/// Lifecycle state of a camera, as the status API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    /// Opening the source (first time or after a backoff).
    Connecting,
    /// Frames are arriving.
    Streaming,
    /// The last session failed; waiting before the next attempt (`last_error` says why).
    Backoff,
    /// The camera refused the credentials; retried, more slowly than other failures.
    Unauthorized,
    /// `enabled: false` in the config.
    Disabled,
    /// camwall is shutting down.
    Stopped,
}

/// What the status needs to know of a failed session (the ingest's error implements it).
pub trait SessionFailure: std::fmt::Display {
    /// The camera refused the credentials: state `unauthorized`, retried more slowly.
    fn is_unauthorized(&self) -> bool;
}

/// Mutable status of a camera, behind a mutex nothing awaits under.
#[derive(Debug, Clone)]
struct Live {
    state: CameraState,
    last_error: Option<String>,
    codec: Option<String>,
    width: u32,
    height: u32,
    fps: f64,
    reconnects: u64,
    last_frame_at: Option<Instant>,
    next_retry_at: Option<Instant>,
    fps_window_start: Option<Instant>,
    fps_window_frames: u32,
}

/// An encoded JPEG of one frame at one tier, as cached and served.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub seq: u64,
    pub captured_unix_ms: u64,
    pub jpeg: Jpeg,
    /// tokio's clock, so tests can move it with paused time.
    pub encoded_at: tokio::time::Instant,
    pub etag: String,
}

/// A quality and downscale factor: the unit of "encode once".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tier {
    pub quality: u8,
    pub scale: u8,
}

struct TierSlot {
    /// Held across the encode so that concurrent requests coalesce (tokio mutex: awaited).
    entry: tokio::sync::Mutex<Option<Encoded>>,
    last_used_ms: AtomicU64,
    encodes: AtomicU64,
}

/// Why a JPEG could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("camera has no frame yet")]
    NoFrameYet { retry_after_s: u64 },
    #[error("encode failed: {0}")]
    Encode(String),
}

/// Hub-wide settings taken from `server`.
#[derive(Debug, Clone)]
pub struct HubSettings {
    pub frame_cache_ttl: Duration,
    pub quality_tiers: Vec<u8>,
    pub max_cached_tiers: usize,
}

/// What a viewer needs to show a camera.
#[derive(Debug, Clone, Serialize)]
pub struct CameraInfo {
    pub id: String,
    pub name: String,
    pub state: CameraState,
    pub width: u32,
    pub height: u32,
}

/// One camera: config, status, latest frame, encoded tiers.
pub struct Camera {
    id: String,
    /// Swapped whole when the camera is reconfigured at runtime; the id never changes.
    config: std::sync::RwLock<Arc<CameraConfig>>,
    /// Bumped each time the camera's worker is replaced: a stopping worker from an older
    /// generation neither publishes frames nor overwrites the state.
    generation: AtomicU64,
    settings: Arc<HubSettings>,
    boot_id: u32,
    live: Mutex<Live>,
    seq: AtomicU64,
    frames_in: AtomicU64,
    jpeg_encodes: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    latest: watch::Sender<Option<Arc<Frame>>>,
    tiers: Mutex<HashMap<Tier, Arc<TierSlot>>>,
    /// Live fan-out: one broadcast channel per lane (tier and fps cap) somebody watches (see
    /// `fanout`).
    pub(crate) channels: Mutex<
        HashMap<crate::fanout::Lane, tokio::sync::broadcast::Sender<Arc<crate::fanout::Published>>>,
    >,
    /// Wakes the worker out of a backoff wait (`POST /api/ip-cameras/initialize`).
    pub kick: Notify,
    /// Fires when the camera is removed: its tier pumps and streams end.
    pub removed: tokio_util::sync::CancellationToken,
    epoch: Instant,
}

/// A camera's status as the API shows it. No field carries a credential.
#[derive(Debug, Clone, Serialize)]
pub struct CameraStatus {
    pub id: String,
    pub name: String,
    /// The camera URL with credentials replaced by `***`.
    pub url: String,
    pub enabled: bool,
    pub state: CameraState,
    pub fps: f64,
    pub width: u32,
    pub height: u32,
    pub codec: Option<String>,
    pub frames_in: u64,
    pub jpeg_encodes: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
    pub last_frame_age_ms: Option<u64>,
    pub retry_in_ms: Option<u64>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub tiers: Vec<TierStatus>,
}

/// Encodes done for one tier.
#[derive(Debug, Clone, Serialize)]
pub struct TierStatus {
    pub quality: u8,
    pub scale: u8,
    pub jpeg_encodes: u64,
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Camera {
    pub fn new(config: CameraConfig, settings: Arc<HubSettings>, boot_id: u32) -> Self {
        let state = if config.enabled {
            CameraState::Connecting
        } else {
            CameraState::Disabled
        };
        Self {
            id: config.id.clone(),
            config: std::sync::RwLock::new(Arc::new(config)),
            generation: AtomicU64::new(0),
            settings,
            boot_id,
            live: Mutex::new(Live {
                state,
                last_error: None,
                codec: None,
                width: 0,
                height: 0,
                fps: 0.0,
                reconnects: 0,
                last_frame_at: None,
                next_retry_at: None,
                fps_window_start: None,
                fps_window_frames: 0,
            }),
            seq: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            jpeg_encodes: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            latest: watch::Sender::new(None),
            tiers: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            kick: Notify::new(),
            removed: tokio_util::sync::CancellationToken::new(),
            epoch: Instant::now(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The current configuration.
    pub fn config(&self) -> Arc<CameraConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the configuration (same id). The caller restarts the worker. The old
    /// source's last picture is dropped: it no longer shows what this camera is.
    pub fn set_config(&self, config: CameraConfig) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        {
            let mut l = self.live();
            l.last_error = None;
            l.codec = None;
        }
        self.latest.send_replace(None);
    }

    /// Starts a new worker generation and returns it.
    pub fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Whether `generation` is still the camera's current worker.
    pub fn is_current(&self, generation: u64) -> bool {
        self.generation.load(Ordering::SeqCst) == generation
    }

    /// `enabled: false`: no picture is served any more.
    pub fn set_disabled(&self) {
        {
            let mut l = self.live();
            l.state = CameraState::Disabled;
            l.fps = 0.0;
            l.next_retry_at = None;
        }
        self.latest.send_replace(None);
    }

    /// Id, name, state and size, for viewers.
    pub fn info(&self) -> CameraInfo {
        let l = self.live();
        CameraInfo {
            id: self.id.clone(),
            name: self.config().display_name().to_string(),
            state: l.state,
            width: l.width,
            height: l.height,
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        // A poisoned lock only means a panic elsewhere mid-update of plain counters: keep going.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Width of the newest frame (0 before the first).
    pub fn status_width(&self) -> u32 {
        self.live().width
    }

    /// Measured frame rate (0 when frames stopped).
    pub fn status_fps(&self) -> f64 {
        let l = self.live();
        match l.last_frame_at {
            Some(t) if t.elapsed() < Duration::from_secs(2) => l.fps,
            _ => 0.0,
        }
    }

    /// The last session error, redacted.
    pub fn last_error(&self) -> Option<String> {
        self.live().last_error.clone()
    }

    /// Frames published since camwall started.
    pub fn frames_in(&self) -> u64 {
        self.frames_in.load(Ordering::Relaxed)
    }

    pub fn state(&self) -> CameraState {
        self.live().state
    }

    /// The worker is (re)opening the source.
    pub fn set_connecting(&self) {
        let mut l = self.live();
        l.state = CameraState::Connecting;
        l.next_retry_at = None;
    }

    /// The source opened and its codec is known.
    pub fn set_codec(&self, codec: &str) {
        self.live().codec = Some(codec.to_string());
    }

    /// The last session failed; the worker waits `retry_in` before trying again. Every such
    /// failure counts as a reconnect.
    pub fn set_backoff(&self, failure: &dyn SessionFailure, retry_in: Duration) {
        let mut l = self.live();
        l.state = if failure.is_unauthorized() {
            CameraState::Unauthorized
        } else {
            CameraState::Backoff
        };
        l.last_error = Some(redact_text(&failure.to_string()));
        l.next_retry_at = Some(Instant::now() + retry_in);
        l.fps = 0.0;
        l.fps_window_start = None;
        l.reconnects += 1;
    }

    pub fn set_stopped(&self) {
        let mut l = self.live();
        if l.state != CameraState::Disabled {
            l.state = CameraState::Stopped;
        }
    }

    /// Publishes a new frame: it becomes the latest, and waiters are woken.
    pub fn publish(&self, width: u32, height: u32, picture: crate::frame::Picture) -> u64 {
        let now = Instant::now();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        {
            let mut l = self.live();
            l.state = CameraState::Streaming;
            l.width = width;
            l.height = height;
            l.last_frame_at = Some(now);
            l.next_retry_at = None;
            // fps over windows of at least one second.
            match l.fps_window_start {
                Some(start) => {
                    l.fps_window_frames += 1;
                    let el = now.duration_since(start);
                    if el >= Duration::from_secs(1) {
                        l.fps = l.fps_window_frames as f64 / el.as_secs_f64();
                        l.fps_window_start = Some(now);
                        l.fps_window_frames = 0;
                    }
                }
                None => {
                    l.fps_window_start = Some(now);
                    l.fps_window_frames = 0;
                }
            }
        }
        let frame = Frame {
            seq,
            captured_unix_ms: unix_ms_now(),
            captured_at: now,
            width,
            height,
            picture,
        };
        self.latest.send_replace(Some(Arc::new(frame)));
        seq
    }

    /// The latest frame, if any.
    pub fn latest(&self) -> Option<Arc<Frame>> {
        self.latest.borrow().clone()
    }

    /// A receiver that wakes on every new frame (latest wins; nothing queues).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Frame>>> {
        self.latest.subscribe()
    }

    /// ETag of a frame at a tier: unique within and across runs of camwall.
    pub fn etag(&self, seq: u64, tier: Tier) -> String {
        format!(
            "\"{:08x}-{}-{}-q{}s{}\"",
            self.boot_id, self.id, seq, tier.quality, tier.scale
        )
    }

    fn slot(&self, tier: Tier) -> Arc<TierSlot> {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let mut tiers = self.tiers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = tiers.get(&tier) {
            slot.last_used_ms.store(now_ms, Ordering::Relaxed);
            return slot.clone();
        }
        // Bounded: beyond the limit, drop the least recently used tier, but never one that
        // live viewers take or one being encoded right now (either would be encoded twice).
        let live: Vec<Tier> = self
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .map(|l| l.tier)
            .collect();
        while tiers.len() >= self.settings.max_cached_tiers {
            let oldest = tiers
                .iter()
                .filter(|(k, s)| !live.contains(k) && s.entry.try_lock().is_ok())
                .min_by_key(|(_, s)| s.last_used_ms.load(Ordering::Relaxed))
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    tiers.remove(&k);
                }
                None => break,
            }
        }
        let slot = Arc::new(TierSlot {
            entry: tokio::sync::Mutex::new(None),
            last_used_ms: AtomicU64::new(now_ms),
            encodes: AtomicU64::new(0),
        });
        tiers.insert(tier, slot.clone());
        slot
    }

    /// The latest frame as a JPEG at `tier`, through the TTL cache. Concurrent callers for the
    /// same tier share one encode; a frame is never encoded twice at the same tier.
    pub async fn jpeg(&self, tier: Tier) -> Result<Encoded, FrameError> {
        self.encode_tier(tier, None).await
    }

    /// The latest frame as a JPEG at `tier`, at least as new as frame `min_seq`, ignoring the
    /// TTL: what live streams use, so that every source frame reaches them.
    pub async fn jpeg_at_least(&self, tier: Tier, min_seq: u64) -> Result<Encoded, FrameError> {
        self.encode_tier(tier, Some(min_seq)).await
    }

    async fn encode_tier(&self, tier: Tier, min_seq: Option<u64>) -> Result<Encoded, FrameError> {
        if self.latest.borrow().is_none() {
            return Err(FrameError::NoFrameYet {
                retry_after_s: self.retry_after_s(),
            });
        }
        let slot = self.slot(tier);
        let mut entry = slot.entry.lock().await;
        // Read the latest frame only now: a caller that waited for the lock gets what the
        // previous holder encoded if nothing newer arrived meanwhile.
        let Some(frame) = self.latest() else {
            return Err(FrameError::NoFrameYet { retry_after_s: 1 });
        };
        if let Some(cached) = entry.as_ref() {
            let fresh = match min_seq {
                Some(min) => cached.seq >= min,
                None => cached.encoded_at.elapsed() < self.settings.frame_cache_ttl,
            };
            if cached.seq == frame.seq || fresh {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(cached.clone());
            }
        }
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
        let f = frame.clone();
        let full = self.full_quality();
        // libjpeg-turbo blocks for milliseconds: keep it off the async workers.
        let id = self.id.clone();
        let (jpeg, encoded) = tokio::task::spawn_blocking(move || {
            let t0 = Instant::now();
            let r = f.encode(tier.quality, tier.scale, full);
            if matches!(r, Ok((_, true))) {
                crate::metrics::observe_encode(&id, t0.elapsed());
            }
            r
        })
        .await
        .map_err(|e| FrameError::Encode(e.to_string()))?
        .map_err(|e| FrameError::Encode(e.to_string()))?;
        if encoded {
            self.jpeg_encodes.fetch_add(1, Ordering::Relaxed);
            slot.encodes.fetch_add(1, Ordering::Relaxed);
        }
        let out = Encoded {
            seq: frame.seq,
            captured_unix_ms: frame.captured_unix_ms,
            etag: self.etag(frame.seq, tier),
            jpeg,
            encoded_at: tokio::time::Instant::now(),
        };
        *entry = Some(out.clone());
        Ok(out)
    }

    /// The best quality tier: what "full quality" means for passing source JPEGs through.
    pub fn full_quality(&self) -> u8 {
        self.settings.quality_tiers.first().copied().unwrap_or(85)
    }

    fn retry_after_s(&self) -> u64 {
        let l = self.live();
        match l.next_retry_at {
            Some(t) => t
                .saturating_duration_since(Instant::now())
                .as_secs()
                .clamp(1, 30),
            None => 1,
        }
    }

    pub fn status(&self) -> CameraStatus {
        let l = self.live().clone();
        let config = self.config();
        let age = l.last_frame_at.map(|t| t.elapsed());
        // A camera that stopped sending has no fps, whatever the last window said.
        let fps = match age {
            Some(a) if a < Duration::from_secs(2) => (l.fps * 10.0).round() / 10.0,
            _ => 0.0,
        };
        let mut tiers: Vec<TierStatus> = self
            .tiers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(t, s)| TierStatus {
                quality: t.quality,
                scale: t.scale,
                jpeg_encodes: s.encodes.load(Ordering::Relaxed),
            })
            .collect();
        tiers.sort_by_key(|t| (std::cmp::Reverse(t.quality), t.scale));
        CameraStatus {
            id: self.id.clone(),
            name: config.display_name().to_string(),
            url: redact_url(&config.url),
            enabled: config.enabled,
            state: l.state,
            fps,
            width: l.width,
            height: l.height,
            codec: l.codec,
            frames_in: self.frames_in.load(Ordering::Relaxed),
            jpeg_encodes: self.jpeg_encodes.load(Ordering::Relaxed),
            reconnects: l.reconnects,
            last_error: l.last_error,
            last_frame_age_ms: age.map(|a| a.as_millis() as u64),
            retry_in_ms: l
                .next_retry_at
                .map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            tiers,
        }
    }
}

/// All cameras, by id, in config order.
pub struct Hub {
    pub settings: Arc<HubSettings>,
    server: crate::config::ServerConfig,
    cameras: DashMap<String, Arc<Camera>>,
    order: Mutex<Vec<String>>,
    pub boot_id: u32,
    pub started_at: Instant,
}

impl Hub {
    pub fn new(config: &Config) -> Self {
        let settings = Arc::new(HubSettings {
            frame_cache_ttl: Duration::from_millis(config.server.frame_cache_ttl_ms),
            quality_tiers: config.server.quality_tiers.clone(),
            max_cached_tiers: config.server.limits.max_cached_qualities,
        });
        let boot_id = fastrand::u32(..);
        let hub = Self {
            settings,
            server: config.server.clone(),
            cameras: DashMap::new(),
            order: Mutex::new(Vec::new()),
            boot_id,
            started_at: Instant::now(),
        };
        for cam in &config.cameras {
            hub.insert(cam.clone());
        }
        hub
    }

    /// The `server` section camwall started with.
    pub fn server_config(&self) -> &crate::config::ServerConfig {
        &self.server
    }

    /// Takes a camera out; its viewers keep their handle until they let go.
    pub fn remove(&self, id: &str) -> Option<Arc<Camera>> {
        self.order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|x| x != id);
        self.cameras.remove(id).map(|(_, c)| c)
    }

    /// Sets the listing order (ids not in `ids` keep their place at the end).
    pub fn reorder(&self, ids: Vec<String>) {
        let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        let rest: Vec<String> = order.iter().filter(|i| !ids.contains(i)).cloned().collect();
        *order = ids
            .into_iter()
            .filter(|i| self.cameras.contains_key(i))
            .chain(rest)
            .collect();
    }

    /// Adds a camera (not started: the manager starts workers).
    pub fn insert(&self, config: CameraConfig) -> Arc<Camera> {
        let id = config.id.clone();
        let cam = Arc::new(Camera::new(config, self.settings.clone(), self.boot_id));
        self.cameras.insert(id.clone(), cam.clone());
        self.order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id);
        cam
    }

    pub fn get(&self, id: &str) -> Option<Arc<Camera>> {
        self.cameras.get(id).map(|c| c.clone())
    }

    /// Cameras in config order.
    pub fn cameras(&self) -> Vec<Arc<Camera>> {
        let order = self.order.lock().unwrap_or_else(|e| e.into_inner()).clone();
        order.iter().filter_map(|id| self.get(id)).collect()
    }

    /// Default snapshot quality: the best tier.
    pub fn default_quality(&self) -> u8 {
        self.settings.quality_tiers.first().copied().unwrap_or(85)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Picture;
    use bytes::Bytes;

    fn jpeg_bytes() -> Bytes {
        let y = vec![128u8; 16 * 16];
        let c = vec![128u8; 8 * 8];
        let p = crate::jpeg::YuvPlanes {
            planes: [&y, &c, &c],
            strides: [16, 8, 8],
            width: 16,
            height: 16,
            subsamp: turbojpeg::Subsamp::Sub2x2,
            limited_range: false,
        };
        crate::jpeg::encode_planes(&p, 90, 1).unwrap().data
    }

    fn camera(ttl_ms: u64) -> Arc<Camera> {
        let cfg: Config = crate::config::parse(&format!(
            r#"{{"server":{{"frame_cache_ttl_ms":{ttl_ms}}},"cameras":[{{"id":"a","url":"lavfi:testsrc2"}}]}}"#
        ))
        .unwrap();
        Hub::new(&cfg).get("a").unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_cache_serves_the_same_jpeg_until_it_expires() {
        let cam = camera(16);
        let tier = Tier {
            quality: 50,
            scale: 1,
        };
        assert!(matches!(
            cam.jpeg(tier).await,
            Err(FrameError::NoFrameYet { .. })
        ));
        let src = jpeg_bytes();
        cam.publish(
            16,
            16,
            Picture::Jpeg {
                data: src.clone(),
                quality: Some(90),
            },
        );
        let a = cam.jpeg(tier).await.unwrap();
        assert_eq!(cam.status().jpeg_encodes, 1);
        // A newer frame within the TTL: the cached JPEG is served again.
        cam.publish(
            16,
            16,
            Picture::Jpeg {
                data: src.clone(),
                quality: Some(90),
            },
        );
        let b = cam.jpeg(tier).await.unwrap();
        assert_eq!(a.seq, b.seq);
        assert_eq!(cam.status().jpeg_encodes, 1);
        // After the TTL, the newer frame is encoded.
        tokio::time::advance(Duration::from_millis(17)).await;
        let c = cam.jpeg(tier).await.unwrap();
        assert_eq!(c.seq, a.seq + 1);
        assert_eq!(cam.status().jpeg_encodes, 2);
        // Same frame, long after the TTL: still no second encode.
        tokio::time::advance(Duration::from_millis(100)).await;
        let d = cam.jpeg(tier).await.unwrap();
        assert_eq!(d.etag, c.etag);
        assert_eq!(cam.status().jpeg_encodes, 2);
        assert_eq!(cam.status().cache_hits, 2);
    }

    #[tokio::test]
    async fn passthrough_does_not_encode_and_tiers_are_bounded() {
        let cam = camera(0);
        cam.publish(
            16,
            16,
            Picture::Jpeg {
                data: jpeg_bytes(),
                quality: Some(90),
            },
        );
        let e = cam
            .jpeg(Tier {
                quality: 90,
                scale: 1,
            })
            .await
            .unwrap();
        assert_eq!(e.jpeg.data, jpeg_bytes());
        assert_eq!(cam.status().jpeg_encodes, 0);
        for q in 1..=20 {
            cam.jpeg(Tier {
                quality: q,
                scale: 1,
            })
            .await
            .unwrap();
        }
        assert!(cam.status().tiers.len() <= 8);
    }
}
