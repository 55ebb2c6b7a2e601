//! The hub: every camera by id in config order, each with its status, newest frame and tier
//! cache (`camera`, `cache`) and its live lanes (`fanout`), plus the events that tell viewers
//! when cameras come, change and go.
//!
//! Ingest workers write into cameras; outputs and the web layer read. The hub never starts or
//! stops workers (that is `control`) and knows nothing of HTTP, WebSockets or clients.

pub mod attach;
pub mod audio;
pub mod cache;
pub mod camera;
pub mod demand;
pub mod fanout;
pub mod placement;
pub mod remote;
pub mod streams;
pub mod transcode;
pub mod video;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::broadcast;

use crate::config::{CameraConfig, Config, ServerConfig};
use crate::media::tier::Qualities;
pub use attach::{
    Audio, AudioOutput, LaneOutput, Pictures, RecordPictures, Still, Video, VideoOutput,
};
pub use audio::{AudioFrame, AudioInfo};
pub use cache::{Encoded, FrameError};
pub use camera::{
    Camera, CameraInfo, CameraState, CameraStatus, HubSettings, OwnerReport, SessionFailure,
};
pub use fanout::{Fanout, Published};

pub use remote::Remote;

/// Cameras appearing, changing (name, size, state as viewers see it) and disappearing.
#[derive(Debug, Clone)]
pub enum HubEvent {
    Added(CameraInfo),
    Changed(CameraInfo),
    Removed(String),
}

/// Events buffered per listener; a listener that falls further behind re-reads the list.
const EVENT_BACKLOG: usize = 64;

#[derive(Clone)]
struct Entry {
    camera: Arc<Camera>,
    fanout: Arc<Fanout>,
    /// The camera's sub stream: a camera of its own (status, cache, lanes, video), listed
    /// under its main camera only.
    sub: Option<Stream>,
}

/// One stream of a camera (its main stream, or its sub stream): outputs attach to it through
/// [`Stream::attach`] (`attach`), never to its parts.
#[derive(Clone)]
pub struct Stream {
    pub camera: Arc<Camera>,
    fanout: Arc<Fanout>,
}

impl Stream {
    fn new(camera: Arc<Camera>) -> Self {
        let fanout = Fanout::new(camera.clone());
        Self { camera, fanout }
    }

    /// Live viewers attached to the stream: of its JPEG lanes and of its video.
    pub fn viewers(&self) -> usize {
        self.fanout.viewers() + self.camera.video().viewers()
    }

    /// JPEG lanes with a pump right now.
    pub fn lane_count(&self) -> usize {
        self.fanout.lane_count()
    }
}

/// Which of a camera's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    Main,
    Sub,
}

/// All cameras, by id, in config order.
pub struct Hub {
    settings: HubSettings,
    server: ServerConfig,
    cameras: DashMap<String, Entry>,
    order: Mutex<Vec<String>>,
    events: broadcast::Sender<HubEvent>,
    boot_id: u32,
    started_at: tokio::time::Instant,
}

impl Hub {
    /// The cameras of `config`, none started.
    pub fn new(config: &Config) -> Self {
        let s = &config.server;
        let hub = Self {
            settings: HubSettings {
                frame_cache_ttl: Duration::from_millis(s.frame_cache_ttl_ms),
                qualities: Qualities::new(&s.quality_tiers),
                max_cached_tiers: s.limits.max_cached_qualities,
                remote: remote::RemoteSlot::default(),
            },
            server: s.clone(),
            cameras: DashMap::new(),
            order: Mutex::new(Vec::new()),
            events: broadcast::channel(EVENT_BACKLOG).0,
            boot_id: fastrand::u32(..),
            started_at: tokio::time::Instant::now(),
        };
        for cam in &config.cameras {
            hub.insert(cam.clone());
        }
        hub
    }

    /// The `server` section camwall started with.
    pub fn server_config(&self) -> &ServerConfig {
        &self.server
    }

    /// The quality tiers (best first) and the rules derived from them.
    pub fn qualities(&self) -> &Qualities {
        &self.settings.qualities
    }

    /// Cluster mode: where cameras another node ingests get their pictures from (set once,
    /// when the cluster connects). Every camera's lanes look again at once.
    pub fn set_remote(&self, remote: Arc<dyn Remote>) {
        if !self.settings.remote.set(remote) {
            return;
        }
        for cam in self.streams() {
            cam.placement_touched();
        }
    }

    /// Time since camwall started.
    pub fn uptime(&self) -> Duration {
        self.started_at.elapsed()
    }

    /// Cameras coming, changing and going.
    pub fn events(&self) -> broadcast::Receiver<HubEvent> {
        self.events.subscribe()
    }

    fn order(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.order.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a camera (not started: `control` starts workers) and tells viewers.
    pub fn insert(&self, config: CameraConfig) -> Arc<Camera> {
        let id = config.id.clone();
        let sub = config.sub_config().map(|c| self.sub_stream(c));
        let camera = Arc::new(Camera::new(config, &self.settings, self.boot_id));
        let fanout = Fanout::new(camera.clone());
        self.cameras.insert(
            id.clone(),
            Entry {
                camera: camera.clone(),
                fanout,
                sub,
            },
        );
        self.order().push(id);
        let _ = self.events.send(HubEvent::Added(camera.info()));
        camera
    }

    /// A sub stream's camera: its own boot id, so that its ETags never match the main
    /// stream's frames of the same sequence number.
    fn sub_stream(&self, config: CameraConfig) -> Stream {
        Stream::new(Arc::new(Camera::new(
            config,
            &self.settings,
            self.boot_id.wrapping_add(1),
        )))
    }

    /// Gives `cam` a new configuration and tells viewers (a rename reaches open walls). Its
    /// sub stream follows: kept and reconfigured, added, or stopped and dropped.
    pub fn reconfigure(&self, cam: &Camera, config: CameraConfig) {
        let sub_config = config.sub_config();
        cam.set_config(config);
        if let Some(mut e) = self.cameras.get_mut(cam.id()) {
            match (e.sub.as_ref(), sub_config) {
                (Some(sub), Some(c)) => sub.camera.set_config(c),
                (None, Some(c)) => e.sub = Some(self.sub_stream(c)),
                (Some(sub), None) => {
                    stop(&sub.camera);
                    e.sub = None;
                }
                (None, None) => {}
            }
        }
        let _ = self.events.send(HubEvent::Changed(cam.info()));
    }

    /// Takes a camera out: its lanes and streams end, viewers are told, its metric series go.
    pub fn remove(&self, id: &str) -> Option<Arc<Camera>> {
        self.order().retain(|x| x != id);
        let (_, entry) = self.cameras.remove(id)?;
        stop(&entry.camera);
        if let Some(sub) = &entry.sub {
            stop(&sub.camera);
        }
        crate::obs::metrics::forget_camera(id);
        let _ = self.events.send(HubEvent::Removed(id.to_string()));
        Some(entry.camera)
    }

    /// Sets the listing order (ids not in `ids` keep their place at the end).
    pub fn reorder(&self, ids: Vec<String>) {
        let mut order = self.order();
        let rest: Vec<String> = order.iter().filter(|i| !ids.contains(i)).cloned().collect();
        *order = ids
            .into_iter()
            .filter(|i| self.cameras.contains_key(i))
            .chain(rest)
            .collect();
    }

    pub fn get(&self, id: &str) -> Option<Arc<Camera>> {
        self.cameras.get(id).map(|e| e.camera.clone())
    }

    /// Camera `id`'s sub stream, if it has one.
    pub fn sub(&self, id: &str) -> Option<Stream> {
        self.cameras.get(id).and_then(|e| e.sub.clone())
    }

    /// Stream `kind` of camera `id` (`None`: no such camera, or no sub stream).
    pub fn stream_of(&self, id: &str, kind: StreamKind) -> Option<Stream> {
        let e = self.cameras.get(id)?;
        match kind {
            StreamKind::Main => Some(Stream {
                camera: e.camera.clone(),
                fanout: e.fanout.clone(),
            }),
            StreamKind::Sub => e.sub.clone(),
        }
    }

    /// A stream by its id: a camera's main stream by the camera id, its sub stream by the
    /// camera id plus `.sub` (`config::SUB_SUFFIX`).
    pub fn stream(&self, id: &str) -> Option<Stream> {
        match id.strip_suffix(crate::config::SUB_SUFFIX) {
            Some(main) => self.sub(main),
            None => self.stream_of(id, StreamKind::Main),
        }
    }

    /// Every stream's camera, in config order: each camera, then its sub stream if it has one.
    pub fn streams(&self) -> Vec<Arc<Camera>> {
        let order = self.order().clone();
        order
            .iter()
            .filter_map(|id| self.cameras.get(id).map(|e| e.clone()))
            .flat_map(|e| std::iter::once(e.camera).chain(e.sub.map(|s| s.camera)))
            .collect()
    }

    /// Cameras in config order.
    pub fn cameras(&self) -> Vec<Arc<Camera>> {
        let order = self.order().clone();
        order.iter().filter_map(|id| self.get(id)).collect()
    }

    /// What viewers need of every camera, in order.
    pub fn infos(&self) -> Vec<CameraInfo> {
        self.cameras().iter().map(|c| c.info()).collect()
    }
}

/// A camera leaves: its worker's generation ends, its lanes and streams end.
fn stop(cam: &Camera) {
    cam.next_generation();
    cam.set_stopped();
    cam.removed().cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registry_tells_viewers_about_changes() {
        let cfg = crate::config::parse(
            r#"{"cameras":[{"id":"a","url":"lavfi:testsrc2"},{"id":"b","url":"lavfi:testsrc2"}]}"#,
        )
        .unwrap();
        let hub = Hub::new(&cfg);
        let mut ev = hub.events();
        let ids = |h: &Hub| {
            h.cameras()
                .iter()
                .map(|c| c.id().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&hub), ["a", "b"]);
        let a = hub.get("a").unwrap();
        let mut renamed = (*a.config()).clone();
        renamed.name = Some("Front door".into());
        hub.reconfigure(&a, renamed);
        assert!(matches!(ev.recv().await, Ok(HubEvent::Changed(i)) if i.name == "Front door"));
        hub.insert(serde_json::from_str(r#"{"id":"c","url":"x"}"#).unwrap());
        assert!(matches!(ev.recv().await, Ok(HubEvent::Added(i)) if i.id == "c"));
        let removed = hub.remove("a").unwrap();
        assert!(removed.removed().is_cancelled());
        assert!(matches!(ev.recv().await, Ok(HubEvent::Removed(id)) if id == "a"));
        assert!(hub.get("a").is_none() && hub.stream("a").is_none());
        hub.reorder(vec!["c".into()]);
        assert_eq!(ids(&hub), ["c", "b"]);
    }
}
