//! Runtime camera management: add, replace, patch and remove cameras while the others stream,
//! each accepted change written to the config file atomically (previous version kept as
//! `.bak`), and SIGHUP reloading the file camera by camera.
//!
//! One async mutex serializes changes, so concurrent API calls and reloads each see and write
//! a file that contains every change before them.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::{self, CameraConfig};
use crate::hub::{Camera, CameraInfo, Hub};
use crate::redact::redact_url;

/// Cameras appearing and disappearing, for live viewers.
#[derive(Debug, Clone)]
pub enum HubEvent {
    Added(CameraInfo),
    Removed(String),
}

/// Why a change was refused. Maps to an HTTP status in `web`.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("a camera with id {0:?} exists already")]
    Duplicate(String),
    #[error("no camera with id {0:?}")]
    NotFound(String),
    #[error("cannot write the config file: {0}")]
    Io(String),
}

/// A camera's configuration as the API shows it: credentials redacted.
#[derive(Debug, Clone, Serialize)]
pub struct CameraView {
    #[serde(flatten)]
    pub config: CameraConfig,
}

/// Option keys whose values are secrets (shown as `***`).
fn secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    ["pass", "auth", "token", "secret", "key", "cookie"]
        .iter()
        .any(|s| k.contains(s))
}

impl CameraView {
    pub fn of(c: &CameraConfig) -> Self {
        let mut config = c.clone();
        config.url = redact_url(&c.url);
        for (k, v) in config.options.iter_mut() {
            if secret_key(k) {
                *v = "***".into();
            } else {
                *v = redact_url(v);
            }
        }
        Self { config }
    }
}

struct FileState {
    path: PathBuf,
    /// The file as last written or read, as JSON with its key order: edits touch only the
    /// camera they change, so everything else (order, fields left at defaults) stays as is.
    doc: Value,
}

/// Owns the camera workers and the config file.
pub struct Manager {
    pub hub: Arc<Hub>,
    root: CancellationToken,
    tracker: TaskTracker,
    workers: Mutex<HashMap<String, CancellationToken>>,
    file: tokio::sync::Mutex<FileState>,
    events: broadcast::Sender<HubEvent>,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ChangeError {
    ChangeError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Parses a camera object as the config file holds it, naming the field on error.
pub fn parse_camera(body: &Value) -> Result<CameraConfig, ChangeError> {
    let cam: CameraConfig = serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(body)".to_string()
        } else {
            path
        };
        invalid(field, e.inner().to_string())
    })?;
    if let Some((field, message)) = config::validate_camera(&cam).into_iter().next() {
        return Err(invalid(field, message));
    }
    Ok(cam)
}

/// Writes `bytes` to `path` so that a crash at any moment leaves the old or the new file:
/// temporary file in the same directory, fsync, copy the old file to `<name>.bak`, rename,
/// fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cameras.json".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        // The file may hold camera passwords: keep the permissions the owner gave it (a
        // fresh file would get the umask's, often world-readable).
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    if path.exists() {
        let bak_tmp = dir.join(format!(".{name}.bak.tmp-{}", std::process::id()));
        std::fs::copy(path, &bak_tmp)?;
        std::fs::File::open(&bak_tmp)?.sync_all()?;
        std::fs::rename(&bak_tmp, dir.join(format!("{name}.bak")))?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

impl Manager {
    /// Starts a worker for every enabled camera of `hub`. `path` is the config file, `doc` its
    /// JSON as loaded.
    pub fn start(hub: Arc<Hub>, path: PathBuf, doc: Value, root: CancellationToken) -> Arc<Self> {
        let (events, _) = broadcast::channel(64);
        let m = Arc::new(Self {
            hub: hub.clone(),
            root,
            tracker: TaskTracker::new(),
            workers: Mutex::new(HashMap::new()),
            file: tokio::sync::Mutex::new(FileState { path, doc }),
            events,
        });
        for cam in hub.cameras() {
            m.start_worker(&cam);
        }
        m
    }

    /// Live camera additions and removals.
    pub fn events(&self) -> broadcast::Receiver<HubEvent> {
        self.events.subscribe()
    }

    /// Waits for every worker to stop (after the root token was cancelled).
    pub async fn stopped(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    fn start_worker(&self, cam: &Arc<Camera>) {
        let generation = cam.next_generation();
        if !cam.config().enabled {
            cam.set_disabled();
            return;
        }
        let token = self.root.child_token();
        if let Some(old) = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cam.id().to_string(), token.clone())
        {
            old.cancel();
        }
        self.tracker.spawn(crate::ingest::worker::run(
            cam.clone(),
            Arc::new(crate::ingest::ffmpeg_source::FfmpegOpener),
            token,
            generation,
        ));
    }

    fn stop_worker(&self, id: &str) {
        if let Some(t) = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
        {
            t.cancel();
        }
    }

    /// The configured cameras, credentials redacted.
    pub fn list(&self) -> Vec<CameraView> {
        self.hub
            .cameras()
            .iter()
            .map(|c| CameraView::of(&c.config()))
            .collect()
    }

    /// Validates `doc` as a whole config and writes it.
    async fn commit(file: &mut FileState, doc: Value) -> Result<(), ChangeError> {
        let text =
            serde_json::to_string_pretty(&doc).map_err(|e| ChangeError::Io(e.to_string()))?;
        if let Err(issues) = config::parse(&text) {
            let i = &issues[0];
            return Err(invalid(i.field.clone(), i.message.clone()));
        }
        // fsyncs and renames block: off the async workers.
        let path = file.path.clone();
        tokio::task::spawn_blocking(move || write_atomic(&path, format!("{text}\n").as_bytes()))
            .await
            .map_err(|e| ChangeError::Io(e.to_string()))?
            .map_err(|e| ChangeError::Io(e.to_string()))?;
        file.doc = doc;
        Ok(())
    }

    fn cameras_mut(doc: &mut Value) -> &mut Vec<Value> {
        if !doc.is_object() {
            *doc = Value::Object(Map::new());
        }
        let cams = doc.as_object_mut().map(|o| {
            o.entry("cameras")
                .or_insert_with(|| Value::Array(Vec::new()))
        });
        match cams {
            Some(Value::Array(a)) => a,
            Some(other) => {
                *other = Value::Array(Vec::new());
                match other {
                    Value::Array(a) => a,
                    _ => unreachable!("just set to an array"),
                }
            }
            None => unreachable!("doc is an object"),
        }
    }

    fn position(doc: &Value, id: &str) -> Option<usize> {
        doc.get("cameras")?
            .as_array()?
            .iter()
            .position(|c| c.get("id").and_then(Value::as_str) == Some(id))
    }

    /// Adds a camera (`POST /api/ip-cameras`).
    pub async fn add(&self, body: Value) -> Result<CameraView, ChangeError> {
        let cam = parse_camera(&body)?;
        let mut file = self.file.lock().await;
        if self.hub.get(&cam.id).is_some() {
            return Err(ChangeError::Duplicate(cam.id));
        }
        let mut doc = file.doc.clone();
        Self::cameras_mut(&mut doc).push(body);
        Self::commit(&mut file, doc).await?;
        let c = self.hub.insert(cam.clone());
        self.start_worker(&c);
        info!(camera = %cam.id, "camera added");
        let _ = self.events.send(HubEvent::Added(c.info()));
        Ok(CameraView::of(&cam))
    }

    /// Replaces a camera's whole configuration (`PUT /api/ip-cameras/{id}`). The id stays.
    pub async fn replace(&self, id: &str, mut body: Value) -> Result<CameraView, ChangeError> {
        match body.get("id") {
            None => {
                if let Some(o) = body.as_object_mut() {
                    o.insert("id".into(), Value::String(id.to_string()));
                }
            }
            Some(v) if v.as_str() == Some(id) => {}
            Some(_) => {
                return Err(invalid(
                    "id",
                    "the id in the body must match the path; ids cannot change",
                ))
            }
        }
        let cam = parse_camera(&body)?;
        let mut file = self.file.lock().await;
        self.apply_replace(&mut file, id, body, cam).await
    }

    /// Changes some fields (`PATCH /api/ip-cameras/{id}`, JSON merge patch: `null` removes a
    /// field, i.e. returns it to its default).
    pub async fn patch(&self, id: &str, patch: Value) -> Result<CameraView, ChangeError> {
        let Value::Object(patch) = patch else {
            return Err(invalid(
                "(body)",
                "a patch is a JSON object of the fields to change",
            ));
        };
        if patch.get("id").is_some_and(|v| v.as_str() != Some(id)) {
            return Err(invalid("id", "ids cannot change"));
        }
        let mut file = self.file.lock().await;
        let pos =
            Self::position(&file.doc, id).ok_or_else(|| ChangeError::NotFound(id.to_string()))?;
        let mut body = file.doc["cameras"][pos].clone();
        if let Some(o) = body.as_object_mut() {
            for (k, v) in patch {
                if v.is_null() {
                    o.remove(&k);
                } else {
                    o.insert(k, v);
                }
            }
        }
        let cam = parse_camera(&body)?;
        self.apply_replace(&mut file, id, body, cam).await
    }

    async fn apply_replace(
        &self,
        file: &mut FileState,
        id: &str,
        body: Value,
        cam: CameraConfig,
    ) -> Result<CameraView, ChangeError> {
        let existing = self
            .hub
            .get(id)
            .ok_or_else(|| ChangeError::NotFound(id.to_string()))?;
        let mut doc = file.doc.clone();
        match Self::position(&doc, id) {
            Some(pos) => Self::cameras_mut(&mut doc)[pos] = body,
            None => Self::cameras_mut(&mut doc).push(body),
        }
        Self::commit(file, doc).await?;
        self.reconfigure(&existing, cam.clone());
        Ok(CameraView::of(&cam))
    }

    /// Gives a running camera a new configuration: only its own worker restarts; its viewers
    /// stay subscribed to the same camera and see frames again when the new session streams.
    fn reconfigure(&self, cam: &Arc<Camera>, config: CameraConfig) {
        if *cam.config() == config {
            return;
        }
        self.stop_worker(cam.id());
        cam.set_config(config);
        self.start_worker(cam);
        info!(camera = %cam.id(), "camera reconfigured");
    }

    /// Removes a camera (`DELETE /api/ip-cameras/{id}`).
    pub async fn remove(&self, id: &str) -> Result<(), ChangeError> {
        let mut file = self.file.lock().await;
        if self.hub.get(id).is_none() {
            return Err(ChangeError::NotFound(id.to_string()));
        }
        let mut doc = file.doc.clone();
        if let Some(pos) = Self::position(&doc, id) {
            Self::cameras_mut(&mut doc).remove(pos);
        }
        Self::commit(&mut file, doc).await?;
        self.drop_camera(id);
        Ok(())
    }

    fn drop_camera(&self, id: &str) {
        self.stop_worker(id);
        if let Some(cam) = self.hub.remove(id) {
            cam.next_generation();
            cam.set_stopped();
            // Its tier pumps and MJPEG streams end; WebSocket viewers get camera_removed.
            cam.removed.cancel();
        }
        info!(camera = %id, "camera removed");
        let _ = self.events.send(HubEvent::Removed(id.to_string()));
    }

    /// Reloads the config file (SIGHUP): applies the difference camera by camera. An invalid
    /// file is refused and the running set stays as it was.
    pub async fn reload(&self) -> Result<(), String> {
        let mut file = self.file.lock().await;
        let text = tokio::fs::read_to_string(&file.path)
            .await
            .map_err(|e| format!("{}: {e}", file.path.display()))?;
        let new = match config::parse(&text) {
            Ok(c) => c,
            Err(issues) => {
                let err = config::ConfigError {
                    path: file.path.clone(),
                    issues,
                };
                error!("reload refused, cameras unchanged:\n{err}");
                return Err(err.to_string());
            }
        };
        let doc: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let wanted: HashMap<&str, &CameraConfig> =
            new.cameras.iter().map(|c| (c.id.as_str(), c)).collect();
        for cam in self.hub.cameras() {
            if !wanted.contains_key(cam.id()) {
                self.drop_camera(cam.id());
            }
        }
        for c in &new.cameras {
            match self.hub.get(&c.id) {
                Some(cam) => self.reconfigure(&cam, c.clone()),
                None => {
                    let cam = self.hub.insert(c.clone());
                    self.start_worker(&cam);
                    let _ = self.events.send(HubEvent::Added(cam.info()));
                }
            }
        }
        self.hub
            .reorder(new.cameras.iter().map(|c| c.id.clone()).collect());
        if new.server != *self.hub.server_config() {
            warn!("server settings changed in the file: they take effect at the next start");
        }
        file.doc = doc;
        info!(cameras = new.cameras.len(), "config reloaded");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_keeps_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cameras.json");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::read(dir.path().join("cameras.json.bak")).unwrap(),
            b"one"
        );
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn camera_bodies_are_checked_with_the_field_named() {
        let e = parse_camera(&serde_json::json!({"id": "a", "url": "x", "fps": 3})).unwrap_err();
        assert!(matches!(e, ChangeError::Invalid { .. }));
        assert!(e.to_string().contains("fps"), "{e}");
        let e = parse_camera(&serde_json::json!({"id": "a b", "url": "x"})).unwrap_err();
        assert!(
            matches!(&e, ChangeError::Invalid { field, .. } if field == "id"),
            "{e:?}"
        );
        let e =
            parse_camera(&serde_json::json!({"id": "a", "url": "x", "max_fps": "x"})).unwrap_err();
        assert!(
            matches!(&e, ChangeError::Invalid { field, .. } if field == "max_fps"),
            "{e:?}"
        );
        assert!(parse_camera(&serde_json::json!({"id": "a", "url": "lavfi:testsrc2"})).is_ok());
    }

    #[test]
    fn views_hide_credentials() {
        let mut c =
            parse_camera(&serde_json::json!({"id": "a", "url": "rtsp://u:pw@h/x"})).unwrap();
        c.options.insert("auth_password".into(), "pw".into());
        c.options.insert("rtsp_transport".into(), "udp".into());
        let v = serde_json::to_string(&CameraView::of(&c)).unwrap();
        assert!(!v.contains("pw@") && !v.contains("\"pw\""), "{v}");
        assert!(v.contains("udp"));
    }
}
