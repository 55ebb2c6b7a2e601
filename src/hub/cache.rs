//! The tier cache of one camera: the newest frame encoded once per tier, served again for the
//! TTL, concurrent askers of a tier coalesced onto one encode, and ETags that are unique
//! within and across runs.
//!
//! Bounded: at most `max_tiers` tiers are kept; beyond it the least recently used unpinned tier
//! is dropped, and when every tier is pinned by a live lane a new tier is encoded without
//! being kept. It reads the latest frame through the closure its camera hands in, so it knows
//! nothing of cameras, lanes or clients.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::media::clock::Stamp;
use crate::media::frame::Frame;
use crate::media::jpeg::{EncodeError, Jpeg};
use crate::media::tier::Tier;

/// An encoded JPEG of one frame at one tier, as cached and served.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub seq: u64,
    /// The frame's place on the camera's clock and its arrival time.
    pub stamp: Stamp,
    pub jpeg: Jpeg,
    /// tokio's clock, so tests can move it with paused time.
    pub encoded_at: Instant,
    pub etag: String,
}

/// Why a JPEG could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("camera has no frame yet")]
    NoFrameYet { retry_after_s: u64 },
    #[error("encode failed: {0}")]
    Encode(#[from] EncodeError),
    #[error("the encode task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The cluster node that ingests the camera did not answer (or has no picture).
    #[error("{0}")]
    Remote(String),
}

/// Whether a request's `If-None-Match` (or long-poll `after`) names `etag`: a list, weak
/// tags and `*` as HTTP has them.
pub fn etag_matches(if_none_match: Option<&str>, etag: &str) -> bool {
    let Some(h) = if_none_match else { return false };
    let bare = etag.trim_matches('"');
    h.split(',').map(str::trim).any(|t| {
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t.trim_matches('"') == bare
    })
}

struct Slot {
    /// Held across the encode so that concurrent requests coalesce (tokio mutex: awaited).
    entry: tokio::sync::Mutex<Option<Encoded>>,
    last_used_ms: AtomicU64,
    encodes: AtomicU64,
    /// Live lanes that take this tier: a pinned tier is never dropped (it would be encoded
    /// again at its next frame anyway).
    pins: AtomicUsize,
}

impl Slot {
    fn new(now_ms: u64) -> Arc<Self> {
        Arc::new(Self {
            entry: tokio::sync::Mutex::new(None),
            last_used_ms: AtomicU64::new(now_ms),
            encodes: AtomicU64::new(0),
            pins: AtomicUsize::new(0),
        })
    }
}

/// Keeps a tier in the cache while held (see [`TierCache::pin`]).
pub struct Pin {
    slot: Arc<Slot>,
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.slot.pins.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counters of the cache, for the status API.
#[derive(Debug, Clone, Default)]
pub struct CacheStats {
    pub jpeg_encodes: u64,
    pub hits: u64,
    pub misses: u64,
    /// (tier, encodes) per tier kept, best quality first.
    pub tiers: Vec<(Tier, u64)>,
}

/// One camera's encoded tiers.
pub struct TierCache {
    camera_id: String,
    boot_id: u32,
    ttl: Duration,
    max_tiers: usize,
    /// Best tier: a source JPEG asked for at this quality passes through as it is.
    full_quality: u8,
    epoch: Instant,
    slots: Mutex<HashMap<Tier, Arc<Slot>>>,
    jpeg_encodes: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TierCache {
    pub fn new(
        camera_id: &str,
        boot_id: u32,
        ttl: Duration,
        max_tiers: usize,
        full_quality: u8,
    ) -> Self {
        Self {
            camera_id: camera_id.to_string(),
            boot_id,
            ttl,
            max_tiers: max_tiers.max(1),
            full_quality,
            epoch: Instant::now(),
            slots: Mutex::new(HashMap::new()),
            jpeg_encodes: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// ETag of a frame at a tier: unique within and across runs of camwall.
    pub fn etag(&self, seq: u64, tier: Tier) -> String {
        format!(
            "\"{:08x}-{}-{}-q{}s{}\"",
            self.boot_id, self.camera_id, seq, tier.quality, tier.scale
        )
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<Tier, Arc<Slot>>> {
        // A poisoned lock only means a panic elsewhere mid-insert: the map is still whole.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    /// Tiers pinned by live lanes right now.
    pub fn pinned_tiers(&self) -> usize {
        self.slots()
            .values()
            .filter(|s| s.pins.load(Ordering::Relaxed) > 0)
            .count()
    }

    /// Whether a new pinned tier would still fit under the bound.
    pub fn can_pin(&self, tier: Tier) -> bool {
        let slots = self.slots();
        let pinned = |s: &Arc<Slot>| s.pins.load(Ordering::Relaxed) > 0;
        slots.get(&tier).is_some_and(pinned)
            || slots.values().filter(|s| pinned(s)).count() < self.max_tiers
    }

    /// Keeps `tier` cached while the returned pin lives (a live lane takes it).
    pub fn pin(&self, tier: Tier) -> Pin {
        let slot = self.slot(tier).unwrap_or_else(|| Slot::new(self.now_ms()));
        slot.pins.fetch_add(1, Ordering::Relaxed);
        Pin { slot }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The slot of `tier`, made room for if new; `None` if every kept tier is pinned or being
    /// encoded (the caller encodes without keeping the result).
    fn slot(&self, tier: Tier) -> Option<Arc<Slot>> {
        let now_ms = self.now_ms();
        let mut slots = self.slots();
        if let Some(slot) = slots.get(&tier) {
            slot.last_used_ms.store(now_ms, Ordering::Relaxed);
            return Some(slot.clone());
        }
        while slots.len() >= self.max_tiers {
            let oldest = slots
                .iter()
                .filter(|(_, s)| s.pins.load(Ordering::Relaxed) == 0 && s.entry.try_lock().is_ok())
                .min_by_key(|(_, s)| s.last_used_ms.load(Ordering::Relaxed))
                .map(|(k, _)| *k);
            slots.remove(&oldest?);
        }
        let slot = Slot::new(now_ms);
        slots.insert(tier, slot.clone());
        Some(slot)
    }

    /// The newest frame (`latest()` is read once the tier's lock is held) as a JPEG at `tier`.
    /// With `min_seq`, anything at least that new is fresh (live streams: every source frame
    /// reaches them); without, a cached JPEG younger than the TTL is (pollers).
    pub async fn get(
        &self,
        tier: Tier,
        min_seq: Option<u64>,
        latest: impl Fn() -> Option<Arc<Frame>>,
    ) -> Result<Encoded, FrameError> {
        let slot = self.slot(tier).unwrap_or_else(|| Slot::new(self.now_ms()));
        let mut entry = slot.entry.lock().await;
        // Read the latest frame only now: a caller that waited for the lock gets what the
        // previous holder encoded if nothing newer arrived meanwhile.
        let Some(frame) = latest() else {
            return Err(FrameError::NoFrameYet { retry_after_s: 1 });
        };
        if let Some(cached) = entry.as_ref() {
            let fresh = match min_seq {
                Some(min) => cached.seq >= min,
                None => cached.encoded_at.elapsed() < self.ttl,
            };
            if cached.seq == frame.seq || fresh {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(cached.clone());
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let f = frame.clone();
        let full = self.full_quality;
        let id = self.camera_id.clone();
        // libjpeg-turbo blocks for milliseconds: keep it off the async workers.
        let (jpeg, encoded) = tokio::task::spawn_blocking(move || {
            let t0 = std::time::Instant::now();
            let r = f.encode(tier.quality, tier.scale, full);
            if matches!(r, Ok((_, true))) {
                crate::obs::metrics::observe_encode(&id, t0.elapsed());
            }
            r
        })
        .await??;
        if encoded {
            self.jpeg_encodes.fetch_add(1, Ordering::Relaxed);
            slot.encodes.fetch_add(1, Ordering::Relaxed);
        }
        let out = Encoded {
            seq: frame.seq,
            stamp: frame.stamp,
            etag: self.etag(frame.seq, tier),
            jpeg,
            encoded_at: Instant::now(),
        };
        *entry = Some(out.clone());
        Ok(out)
    }

    pub fn stats(&self) -> CacheStats {
        let mut tiers: Vec<(Tier, u64)> = self
            .slots()
            .iter()
            .map(|(t, s)| (*t, s.encodes.load(Ordering::Relaxed)))
            .collect();
        tiers.sort_by_key(|(t, _)| (std::cmp::Reverse(t.quality), t.scale));
        CacheStats {
            jpeg_encodes: self.jpeg_encodes.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            tiers,
        }
    }
}
