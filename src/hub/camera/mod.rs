//! One camera as the rest of camwall sees it: its configuration, its status machine and fps
//! meter, its newest frame, and its tier cache.
//!
//! The ingest worker writes here (state changes, published frames); outputs and the web layer
//! read. A camera knows nothing of its viewers: live lanes live in `fanout`, which reads the
//! camera, never the other way round.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::audio::AudioFeed;
use super::cache::TierCache;
use super::demand::Demand;
use super::remote::{Remote, RemoteSlot};
use super::transcode::OpusFeed;
use super::video::VideoFeed;
use crate::config::CameraConfig;
use crate::media::activity::ActivityMeter;
use crate::media::clock::Stamp;
use crate::media::frame::{Frame, Picture};
use crate::media::tier::Qualities;
use crate::obs::redact::redact_url;

mod fps;
mod jpeg;
mod status;
use fps::FpsMeter;
pub use status::CameraStatus;

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
    /// Not connected because nobody uses it (a sub stream, opened on demand).
    Idle,
}

impl CameraState {
    /// The name the status API and metrics use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Streaming => "streaming",
            Self::Backoff => "backoff",
            Self::Unauthorized => "unauthorized",
            Self::Disabled => "disabled",
            Self::Stopped => "stopped",
            Self::Idle => "idle",
        }
    }
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
    fps: FpsMeter,
    /// The source's own rate, from its compressed units: what `fps` shows while nothing is
    /// decoded (decoding on demand), since then no picture is published.
    unit_fps: FpsMeter,
    last_unit_at: Option<Instant>,
    /// How much the picture changes, from compressed frame sizes (never decoded for it).
    activity: ActivityMeter,
    /// A camera another node ingests: the frame rate and activity its owner reports.
    relayed_fps: f64,
    relayed_activity: Option<f32>,
    reconnects: u64,
    last_frame_at: Option<Instant>,
    next_retry_at: Option<Instant>,
    /// Read by FFmpeg although the config names retina (its audio is one only FFmpeg keeps).
    ffmpeg_instead: bool,
}

/// What the owner of a camera ingested elsewhere reports of it (cluster heartbeats).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OwnerReport {
    pub fps: f64,
    /// Its activity level (0..1), if the owner has an estimate.
    pub activity: Option<f32>,
}

/// Hub-wide settings taken from `server`.
#[derive(Debug, Clone)]
pub struct HubSettings {
    pub frame_cache_ttl: Duration,
    pub qualities: Qualities,
    pub max_cached_tiers: usize,
    /// Where cameras ingested by another cluster node get their pictures (unset alone).
    pub remote: RemoteSlot,
}

/// What a viewer needs to show a camera.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraInfo {
    pub id: String,
    pub name: String,
    pub state: CameraState,
    pub width: u32,
    pub height: u32,
}

/// How long a snapshot of a camera whose decoder is stopped waits for a fresh picture: the
/// next packet plus one GOP's decode, with room for a slow network.
pub const COLD_WAIT: Duration = Duration::from_secs(2);

/// One camera: config, status, latest frame, encoded tiers.
pub struct Camera {
    id: String,
    /// Swapped whole when the camera is reconfigured at runtime; the id never changes.
    config: std::sync::RwLock<Arc<CameraConfig>>,
    /// Bumped each time the camera's worker is replaced: a stopping worker from an older
    /// generation neither publishes frames nor overwrites the state.
    generation: AtomicU64,
    live: Mutex<Live>,
    seq: AtomicU64,
    frames_in: AtomicU64,
    frames_corrupt: AtomicU64,
    latest: watch::Sender<Option<Arc<Frame>>>,
    cache: TierCache,
    /// The camera's own access units for video viewers (H.264/H.265 sources).
    video: VideoFeed,
    /// The camera's own compressed audio, kept as it arrived (RTSP cameras read by retina).
    audio: AudioFeed,
    /// Its AAC as Opus, while WebRTC listeners take it.
    opus: OpusFeed,
    /// Who needs decoded pictures, and whether the decoder runs.
    demand: Arc<Demand>,
    /// Held while a cold snapshot has the feed's decoder decode the current GOP: concurrent
    /// ones wait for its picture instead of decoding again.
    cold_decode: tokio::sync::Mutex<()>,
    /// Wakes the worker out of a backoff wait (`POST /api/ip-cameras/initialize`).
    kick: Notify,
    /// Fires when the camera is removed: its lanes and streams end.
    removed: CancellationToken,
    /// The cluster's remote (unset alone), used while `elsewhere` says so.
    remote: RemoteSlot,
    /// Whether another cluster node ingests the camera (`control` decides; lanes watch it).
    elsewhere: watch::Sender<bool>,
    qualities: Qualities,
}

impl Camera {
    pub(crate) fn new(config: CameraConfig, settings: &HubSettings, boot_id: u32) -> Self {
        let state = if config.enabled {
            CameraState::Connecting
        } else {
            CameraState::Disabled
        };
        Self {
            id: config.id.clone(),
            cache: TierCache::new(
                &config.id,
                boot_id,
                settings.frame_cache_ttl,
                settings.max_cached_tiers,
                settings.qualities.best(),
            ),
            config: std::sync::RwLock::new(Arc::new(config)),
            generation: AtomicU64::new(0),
            live: Mutex::new(Live {
                state,
                last_error: None,
                codec: None,
                width: 0,
                height: 0,
                fps: FpsMeter::default(),
                unit_fps: FpsMeter::default(),
                last_unit_at: None,
                activity: ActivityMeter::default(),
                relayed_fps: 0.0,
                relayed_activity: None,
                reconnects: 0,
                last_frame_at: None,
                next_retry_at: None,
                ffmpeg_instead: false,
            }),
            seq: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            frames_corrupt: AtomicU64::new(0),
            latest: watch::Sender::new(None),
            video: VideoFeed::default(),
            audio: AudioFeed::default(),
            opus: OpusFeed::default(),
            demand: Arc::new(Demand::default()),
            cold_decode: tokio::sync::Mutex::new(()),
            kick: Notify::new(),
            removed: CancellationToken::new(),
            remote: settings.remote.clone(),
            elsewhere: watch::Sender::new(false),
            qualities: settings.qualities.clone(),
        }
    }

    /// Marks the camera as ingested by another cluster node (`true`) or by this one. Lanes
    /// move to the owner's frames or back to local encodes at once.
    pub fn set_elsewhere(&self, elsewhere: bool) {
        let moved = self
            .elsewhere
            .send_if_modified(|e| std::mem::replace(e, elsewhere) != elsewhere);
        if moved && elsewhere {
            // The last picture this node ingested grows old while another node has the
            // camera: were it to come back, that picture must not pass for a fresh one.
            self.latest.send_replace(None);
        } else if moved {
            // Ingested here again: this node measures for itself.
            let mut l = self.live();
            (l.relayed_fps, l.relayed_activity) = (0.0, None);
        }
    }

    /// Wakes every watcher of the placement (the remote became available).
    pub(crate) fn placement_touched(&self) {
        self.elsewhere.send_modify(|_| {});
    }

    /// Wakes at each change of where the camera is ingested (see `Camera::placement`).
    pub fn placement_changes(&self) -> watch::Receiver<bool> {
        self.elsewhere.subscribe()
    }

    /// The node its pictures come from while another one ingests it and the cluster is
    /// connected (read as a `hub::placement::Placement`).
    pub(in crate::hub) fn owner_elsewhere(&self) -> Option<Arc<dyn Remote>> {
        match self.remote.get() {
            Some(remote) if *self.elsewhere.borrow() => Some(remote.clone()),
            _ => None,
        }
    }

    /// The server's quality tiers, from which live lanes are resolved.
    pub fn qualities(&self) -> &Qualities {
        &self.qualities
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The camera's own compressed video (ingest pushes, video viewers subscribe).
    pub fn video(&self) -> &VideoFeed {
        &self.video
    }

    /// The camera's own compressed audio, as ingest pushed it.
    pub fn audio(&self) -> &AudioFeed {
        &self.audio
    }

    /// The camera's AAC as Opus (see `hub::transcode`).
    pub fn opus(&self) -> &OpusFeed {
        &self.opus
    }

    /// Demand for decoded pictures (lanes hold it, the ingest source reads it).
    pub fn demand(&self) -> &Arc<Demand> {
        &self.demand
    }

    /// The current configuration.
    pub fn config(&self) -> Arc<CameraConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the configuration (same id); the hub tells viewers, the manager restarts the
    /// worker. The old source's last picture is dropped: it no longer shows what this camera is.
    /// A new name alone changes no picture: the frame, codec and error stay.
    pub(crate) fn set_config(&self, config: CameraConfig) {
        let old = std::mem::replace(
            &mut *self.config.write().unwrap_or_else(|e| e.into_inner()),
            Arc::new(config.clone()),
        );
        if old.same_except_name(&config) {
            return;
        }
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

    /// Resolves when `initialize` asks a waiting camera to retry now.
    pub async fn kicked(&self) {
        self.kick.notified().await
    }

    /// Cuts the camera's backoff wait short (`initialize`).
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Fires when the camera is removed.
    pub fn removed(&self) -> &CancellationToken {
        &self.removed
    }

    /// `enabled: false`: no picture is served any more.
    pub fn set_disabled(&self) {
        {
            let mut l = self.live();
            l.state = CameraState::Disabled;
            l.fps.reset();
            l.unit_fps.reset();
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
    pub fn width(&self) -> u32 {
        self.live().width
    }

    /// Height of the newest frame (0 before the first).
    pub fn height(&self) -> u32 {
        self.live().height
    }

    /// Measured frame rate at `now` (0 when frames stopped): of the pictures published, or,
    /// while none are (nobody needs decoded pictures), of the source's compressed units.
    pub fn fps_at(&self, now: Instant) -> f64 {
        Self::rate(&self.live(), now)
    }

    fn rate(l: &Live, now: Instant) -> f64 {
        let pictures = l.fps.fps_at(now);
        let units = l.unit_fps.fps_at(now);
        if pictures > 0.0 {
            pictures
        } else if units > 0.0 {
            units
        } else {
            l.relayed_fps
        }
    }

    /// An access unit of the camera's own video, stamped by ingest: forwarded to video
    /// viewers, and counted in `frames_in`, the source's rate and the activity estimate.
    pub fn video_unit(&self, data: bytes::Bytes, stamp: Stamp) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        self.forward_unit(data, stamp);
    }

    /// A unit relayed from the node that ingests the camera, with that node's stamp: as
    /// [`Camera::video_unit`], but not counted as sent to this node (`frames_in` shows who
    /// ingests).
    pub fn relayed_unit(&self, data: bytes::Bytes, stamp: Stamp) {
        self.forward_unit(data, stamp);
    }

    fn forward_unit(&self, data: bytes::Bytes, stamp: Stamp) {
        let now = Instant::now();
        let size = data.len();
        let key = self.video.push_unit(data, stamp);
        let mut l = self.live();
        l.unit_fps.record(now);
        l.last_unit_at = Some(now);
        if let Some(key) = key {
            l.activity.video(size, key, now);
        }
    }

    /// How much the picture changes now (0..1); `None` without a recent estimate.
    pub fn activity(&self) -> Option<f32> {
        Self::activity_of(&self.live(), Instant::now())
    }

    /// The camera's own estimate, else (ingested elsewhere) its owner's.
    fn activity_of(l: &Live, now: Instant) -> Option<f32> {
        l.activity.level(now).or(l.relayed_activity)
    }

    /// The last session error, redacted.
    pub fn last_error(&self) -> Option<String> {
        self.live().last_error.clone()
    }

    /// Counts a picture from the source that would not decode (dropped, never published).
    pub fn count_corrupt(&self) {
        self.frames_corrupt.fetch_add(1, Ordering::Relaxed);
    }

    /// What the camera sent since camwall started: access units of its video feed, or
    /// pictures of a source without one (MJPEG, raw), decoded or not.
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
        l.last_error = Some(redact_url(&failure.to_string()));
        l.next_retry_at = Some(Instant::now() + retry_in);
        l.fps.reset();
        l.unit_fps.reset();
        l.reconnects += 1;
    }

    /// Closed because nobody uses it: no picture is served until it opens again (an old one
    /// would look live).
    pub fn set_idle(&self) {
        {
            let mut l = self.live();
            l.state = CameraState::Idle;
            l.fps.reset();
            l.unit_fps.reset();
            l.next_retry_at = None;
        }
        self.latest.send_replace(None);
    }

    /// A camera another cluster node ingests: its state, picture size and (when known) rate
    /// and activity as its owner reports them.
    pub fn set_relayed(
        &self,
        state: CameraState,
        width: u32,
        height: u32,
        report: Option<OwnerReport>,
    ) {
        let mut l = self.live();
        l.state = state;
        (l.width, l.height) = (width, height);
        if let Some(r) = report {
            // Another node's numbers: only finite ones in range are taken.
            l.relayed_fps = if r.fps.is_finite() {
                r.fps.max(0.0)
            } else {
                0.0
            };
            l.relayed_activity = r
                .activity
                .filter(|a| a.is_finite())
                .map(|a| a.clamp(0.0, 1.0));
        }
        l.next_retry_at = None;
    }

    pub fn set_stopped(&self) {
        let mut l = self.live();
        if l.state != CameraState::Disabled {
            l.state = CameraState::Stopped;
        }
        l.fps.reset();
        l.unit_fps.reset();
    }

    /// Publishes a new picture: it becomes the latest, and waiters are woken. `stamp` is its
    /// place on the camera's clock (ingest's, or the owner's for a relayed picture).
    pub fn publish(&self, width: u32, height: u32, picture: Picture, stamp: Stamp) -> u64 {
        let now = Instant::now();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        // What the camera sent: its units when it has a video feed (counted there), else
        // its pictures.
        if self.video.codec().is_none() {
            self.frames_in.fetch_add(1, Ordering::Relaxed);
        }
        {
            let mut l = self.live();
            l.state = CameraState::Streaming;
            l.width = width;
            l.height = height;
            l.last_frame_at = Some(now);
            l.next_retry_at = None;
            l.fps.record(now);
            if let Picture::Jpeg { data, .. } = &picture {
                l.activity.jpeg(data.len(), now);
            }
        }
        let frame = Frame {
            seq,
            stamp,
            captured_at: now,
            width,
            height,
            picture,
        };
        // "Not cold" is said under the frame's lock: a snapshot that sees it finds the frame,
        // and `forget_cold_picture` never drops one published after the decoder went cold.
        let frame = Arc::new(frame);
        self.latest.send_modify(|l| {
            *l = Some(frame);
            self.demand.published();
        });
        seq
    }

    /// Drops the newest picture while the decoder is cold (nobody watches): it is older than
    /// the GOP, a snapshot decodes a fresh one anyway, and a 720p picture is 1.4 MB a camera
    /// would otherwise hold for nobody.
    pub fn forget_cold_picture(&self) {
        self.latest.send_if_modified(|l| {
            let stale = l.is_some() && self.demand.is_cold();
            if stale {
                *l = None;
            }
            stale
        });
    }

    /// The latest frame, if any.
    pub fn latest(&self) -> Option<Arc<Frame>> {
        self.latest.borrow().clone()
    }

    /// A receiver that wakes on every new frame (latest wins; nothing queues).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Frame>>> {
        self.latest.subscribe()
    }

    /// The cache's tier bookkeeping (pins for live lanes).
    pub(crate) fn cache(&self) -> &TierCache {
        &self.cache
    }
}

#[cfg(test)]
pub(crate) mod tests;
