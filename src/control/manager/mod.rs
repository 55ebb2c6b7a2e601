//! The camera workers and the changes applied to them: start and stop workers, add, replace,
//! patch and remove cameras while the others stream, and reload the file on SIGHUP.
//!
//! Changes are stored in one [`CameraList`]: the config file alone, the cluster's shared
//! catalog once the cluster sets it; the paths below never ask which. One async mutex
//! serializes changes, so concurrent API calls, reloads and catalog entries each see a list
//! that contains every change before them. A change is stored first and applied to the hub
//! only once stored: a refused write changes nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::store::{ConfigStore, StoreError};

mod file;
mod list;
mod shared;
use crate::config::{self, CameraConfig, ConfigError};
use crate::hub::{Camera, Hub};
use crate::obs::redact::{redact_options, redact_url};
use file::FileList;
pub use list::{BoxFuture, CameraList, UserList};
pub use users::short_name;

mod secrets;
mod users;
mod views;
mod workers;
pub use views::parse_view;

/// Why a change was refused. Maps to an HTTP status in `web`.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("a camera with id {0:?} exists already")]
    Duplicate(String),
    #[error("no camera with id {0:?}")]
    NotFound(String),
    /// A view body that is not a valid view (`/api/views`).
    #[error("{message}")]
    InvalidView { field: String, message: String },
    #[error("a view with id {0:?} exists already")]
    DuplicateView(String),
    #[error("no view with id {0:?}")]
    UnknownView(String),
    /// A user body that is not a valid user (`/api/users`).
    #[error("{message}")]
    InvalidUser { field: String, message: String },
    #[error("a user named {0:?} exists already")]
    DuplicateUser(String),
    #[error("no user named {0:?}")]
    UnknownUser(String),
    /// The file holds an edit made by hand since camwall last read or wrote it.
    #[error(
        "the config file {} was changed on disk since camwall last read or wrote it; nothing \
         was changed: reload it first with SIGHUP (`kill -HUP <pid>`), then retry",
        path.display()
    )]
    ChangedOnDisk { path: PathBuf },
    /// A list with revisions (the cluster's): the camera changed elsewhere since the revision
    /// the change was based on.
    #[error("camera {0:?} changed since the revision this change is based on: read it, retry")]
    Conflict(String),
    /// The cluster's user list: the user changed on another node since this one read it.
    #[error("user {0:?} was changed on another node meanwhile: read the users again, retry")]
    UserConflict(String),
    /// Cluster mode: the shared camera or user list cannot be reached.
    #[error("the cluster's shared list cannot be reached now: {0}")]
    Unavailable(String),
    #[error("cannot {action} the config file {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<StoreError> for ChangeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ChangedOnDisk { path } => ChangeError::ChangedOnDisk { path },
            StoreError::Io {
                action,
                path,
                source,
            } => ChangeError::Io {
                action,
                path,
                source,
            },
        }
    }
}

/// Why a reload (SIGHUP) was refused; the running cameras stay as they were.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file names itself and every problem in it.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// Cluster mode: cameras live in the shared list; the file is read only at start.
    #[error("this node is in a cluster: change cameras through the API, not the file")]
    Clustered,
}

/// A camera's configuration as the API shows it: credentials redacted.
#[derive(Debug, Clone, Serialize)]
pub struct CameraView {
    #[serde(flatten)]
    pub config: CameraConfig,
    /// The camera's revision where the camera list keeps them (the cluster's shared list):
    /// send it back as `If-Match`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

impl CameraView {
    pub fn of(c: &CameraConfig) -> Self {
        let mut config = c.clone();
        config.url = redact_url(&c.url);
        config.options = redact_options(&c.options);
        if let Some(sub) = config.sub.as_mut() {
            sub.url = redact_url(&sub.url);
            sub.options = redact_options(&sub.options);
        }
        Self {
            config,
            revision: None,
        }
    }

    fn at(self, revision: Option<u64>) -> Self {
        Self { revision, ..self }
    }
}

/// Owns the camera workers and, through the store, the config file.
pub struct Manager {
    hub: Arc<Hub>,
    root: CancellationToken,
    tracker: TaskTracker,
    workers: Mutex<HashMap<String, CancellationToken>>,
    /// Held through each change, from its checks against the hub to its application there.
    changes: tokio::sync::Mutex<()>,
    /// The config file: the views, SIGHUP reloads, the seed of an empty cluster catalog.
    file: Arc<FileList>,
    /// Where camera changes are stored: `file` alone; the cluster's shared catalog once
    /// [`Manager::set_catalog`] replaces it.
    cameras: RwLock<Arc<dyn CameraList>>,
    /// Cluster mode: `Some` holds the cameras this node owns (ingests); only those get a
    /// worker. `None`: alone, every enabled camera gets one.
    owned: Option<Mutex<std::collections::HashSet<String>>>,
    /// Told `server.auth` as a reload finds it (users and their sessions apply at once).
    on_auth: std::sync::OnceLock<AuthHook>,
    /// Cluster mode: where users are stored instead of the config file.
    user_list: std::sync::OnceLock<Arc<dyn UserList>>,
    /// Held while the user list is read and handed to the guard.
    user_apply: Mutex<()>,
}

/// What a reload hands `server.auth` to.
pub type AuthHook = Box<dyn Fn(&crate::config::AuthConfig) + Send + Sync>;

/// A replacement body (`PUT .../{id}`) takes its id from the path: filled in when absent,
/// refused when it names another one (ids cannot change).
pub(super) fn path_id(body: &mut Value, id: &str) -> Result<(), &'static str> {
    match body.get("id") {
        None => {
            if let Some(o) = body.as_object_mut() {
                o.insert("id".into(), Value::String(id.to_string()));
            }
            Ok(())
        }
        Some(v) if v.as_str() == Some(id) => Ok(()),
        Some(_) => Err("the id in the body must match the path; ids cannot change"),
    }
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

impl Manager {
    /// Starts a worker for every enabled camera of `hub`. `store` holds the config file as it
    /// was read to build `hub`.
    pub fn start(hub: Arc<Hub>, store: ConfigStore, root: CancellationToken) -> Arc<Self> {
        Self::start_with(hub, store, root, false)
    }

    /// As [`Manager::start`], for a cluster node: no camera gets a worker until the cluster
    /// says this node owns it ([`Manager::set_owned`]).
    pub fn start_clustered(
        hub: Arc<Hub>,
        store: ConfigStore,
        root: CancellationToken,
    ) -> Arc<Self> {
        Self::start_with(hub, store, root, true)
    }

    fn start_with(
        hub: Arc<Hub>,
        store: ConfigStore,
        root: CancellationToken,
        clustered: bool,
    ) -> Arc<Self> {
        let file = Arc::new(FileList::new(store));
        let m = Arc::new(Self {
            hub: hub.clone(),
            root,
            tracker: TaskTracker::new(),
            workers: Mutex::new(HashMap::new()),
            changes: tokio::sync::Mutex::new(()),
            cameras: RwLock::new(file.clone()),
            file,
            owned: clustered.then(|| Mutex::new(std::collections::HashSet::new())),
            on_auth: std::sync::OnceLock::new(),
            user_list: std::sync::OnceLock::new(),
            user_apply: Mutex::new(()),
        });
        for cam in hub.cameras() {
            m.start_worker(&cam);
        }
        m
    }

    /// Waits for every worker to stop (after the root token was cancelled).
    pub async fn stopped(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// The list camera changes are stored in now.
    fn camera_list(&self) -> Arc<dyn CameraList> {
        self.cameras
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The configured cameras, credentials redacted, with their revisions where the list
    /// keeps them.
    pub fn list(&self) -> Vec<CameraView> {
        let list = self.camera_list();
        self.hub
            .cameras()
            .iter()
            .map(|c| CameraView::of(&c.config()).at(list.revision(c.id())))
            .collect()
    }

    /// One camera as [`Manager::list`] shows it, if it exists.
    pub fn view(&self, id: &str) -> Option<CameraView> {
        let cam = self.hub.get(id)?;
        Some(CameraView::of(&cam.config()).at(self.camera_list().revision(id)))
    }

    /// Refuses, through the API, a camera that reads this machine (a file, a device, a lavfi
    /// graph) unless `server.allow_local_sources` is on; `before` is the camera's current
    /// configuration, whose source (named by the config file) may stay as it is.
    fn check_source(
        &self,
        cam: &CameraConfig,
        before: Option<&CameraConfig>,
    ) -> Result<(), ChangeError> {
        if self.hub.server_config().allow_local_sources {
            return Ok(());
        }
        Self::check_one_source(cam, before)?;
        // The sub stream by the same rule, its fields named as such.
        if let Some(sub) = cam.sub_config() {
            let before = before.and_then(CameraConfig::sub_config);
            Self::check_one_source(&sub, before.as_ref()).map_err(|e| match e {
                ChangeError::Invalid { field, message } => ChangeError::Invalid {
                    field: format!("sub.{field}"),
                    message,
                },
                e => e,
            })?;
        }
        Ok(())
    }

    fn check_one_source(
        cam: &CameraConfig,
        before: Option<&CameraConfig>,
    ) -> Result<(), ChangeError> {
        let unchanged = |key: &str| {
            before.is_some_and(|b| b.options.get(key) == cam.options.get(key))
                || !cam.options.contains_key(key)
        };
        let kind = crate::ingest::source::SourceKind::of(&cam.url);
        if kind.is_local() && before.is_none_or(|b| b.url != cam.url) {
            return Err(invalid(
                "url",
                "files, devices and lavfi: sources can only be added through the API when \
                 server.allow_local_sources is true in the config file (or name them in the \
                 config file itself)",
            ));
        }
        // The whitelist is what keeps a network URL off the local disk.
        for key in ["protocol_whitelist", "protocol_blacklist"] {
            if !unchanged(key) {
                return Err(invalid(
                    "options",
                    format!(
                        "options.{key} can only be set through the API when \
                         server.allow_local_sources is true in the config file"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether the API may open `cam`'s source at all (the probe): the same rule as adding it,
    /// or as changing the camera of the same id.
    pub fn check_probe(&self, cam: &CameraConfig) -> Result<(), ChangeError> {
        let before = self.hub.get(&cam.id).map(|c| c.config());
        self.check_source(cam, before.as_deref())
    }

    /// Adds a camera (`POST /api/ip-cameras`).
    pub async fn add(&self, mut body: Value) -> Result<CameraView, ChangeError> {
        // A new camera has no stored secret a mask could stand for.
        secrets::restore(&mut body, None)?;
        let cam = parse_camera(&body)?;
        self.check_source(&cam, None)?;
        let _serial = self.changes.lock().await;
        if self.hub.get(&cam.id).is_some() {
            return Err(ChangeError::Duplicate(cam.id));
        }
        let revision = self.camera_list().add(&cam.id, body).await?;
        self.apply_locked(&cam.id, Some(cam.clone()));
        info!(camera = %cam.id, "camera added");
        Ok(CameraView::of(&cam).at(revision))
    }

    /// Replaces a camera's whole configuration (`PUT /api/ip-cameras/{id}`). The id stays.
    pub async fn replace(&self, id: &str, body: Value) -> Result<CameraView, ChangeError> {
        self.replace_if(id, body, None).await
    }

    /// As [`Manager::replace`]; `if_match` is the revision the caller read, where the camera
    /// list keeps revisions.
    pub async fn replace_if(
        &self,
        id: &str,
        mut body: Value,
        if_match: Option<u64>,
    ) -> Result<CameraView, ChangeError> {
        path_id(&mut body, id).map_err(|m| invalid("id", m))?;
        let _serial = self.changes.lock().await;
        self.replace_locked(id, body, if_match).await
    }

    /// Changes some fields (`PATCH /api/ip-cameras/{id}`, JSON merge patch: `null` removes a
    /// field, i.e. returns it to its default).
    pub async fn patch(&self, id: &str, patch: Value) -> Result<CameraView, ChangeError> {
        self.patch_if(id, patch, None).await
    }

    /// As [`Manager::patch`]; `if_match` as for [`Manager::replace_if`].
    pub async fn patch_if(
        &self,
        id: &str,
        patch: Value,
        if_match: Option<u64>,
    ) -> Result<CameraView, ChangeError> {
        let Value::Object(patch) = patch else {
            return Err(invalid(
                "(body)",
                "a patch is a JSON object of the fields to change",
            ));
        };
        if patch.get("id").is_some_and(|v| v.as_str() != Some(id)) {
            return Err(invalid("id", "ids cannot change"));
        }
        // One lock from reading the stored camera to writing it: no change slips in between.
        let _serial = self.changes.lock().await;
        let existing = self
            .hub
            .get(id)
            .ok_or_else(|| ChangeError::NotFound(id.to_string()))?;
        let mut body = self.camera_list().stored(&existing.config()).await?;
        if let Some(o) = body.as_object_mut() {
            for (k, v) in patch {
                if v.is_null() {
                    o.remove(&k);
                } else {
                    o.insert(k, v);
                }
            }
        }
        self.replace_locked(id, body, if_match).await
    }

    /// A body that sends camera `id`'s secrets back as shown keeps the stored ones (see
    /// `secrets.rs`); the probe uses it too, for a camera edited before it is saved.
    pub fn restore_secrets(&self, body: &mut Value, id: &str) -> Result<(), ChangeError> {
        let stored = self.hub.get(id).map(|c| c.config());
        secrets::restore(body, stored.as_deref())
    }

    /// PUT and PATCH, with `changes` held: `body` is the whole new camera.
    async fn replace_locked(
        &self,
        id: &str,
        mut body: Value,
        if_match: Option<u64>,
    ) -> Result<CameraView, ChangeError> {
        self.restore_secrets(&mut body, id)?;
        let cam = parse_camera(&body)?;
        let existing = self
            .hub
            .get(id)
            .ok_or_else(|| ChangeError::NotFound(id.to_string()))?;
        self.check_source(&cam, Some(&existing.config()))?;
        let list = self.camera_list();
        // Without If-Match, a change is based on the newest revision this node has seen.
        let base = if_match.or_else(|| list.revision(id));
        let revision = list.replace(id, body, base).await?;
        self.reconfigure(&existing, cam.clone());
        Ok(CameraView::of(&cam).at(revision))
    }

    /// Gives a running camera a new configuration: only its own worker restarts; its viewers
    /// stay subscribed to the same camera and see frames again when the new session streams.
    fn reconfigure(&self, cam: &Arc<Camera>, config: CameraConfig) {
        let old = cam.config();
        if *old == config {
            return;
        }
        if old.same_except_name(&config) {
            // A new name changes nothing the source sees: viewers are told, the stream goes on.
            self.hub.reconfigure(cam, config);
            info!(camera = %cam.id(), "camera renamed");
            return;
        }
        self.stop_worker(cam.id());
        self.hub.reconfigure(cam, config);
        self.start_worker(cam);
        info!(camera = %cam.id(), "camera reconfigured");
    }

    /// Removes a camera (`DELETE /api/ip-cameras/{id}`).
    pub async fn remove(&self, id: &str) -> Result<(), ChangeError> {
        self.remove_if(id, None).await
    }

    /// As [`Manager::remove`]; `if_match` as for [`Manager::replace_if`].
    pub async fn remove_if(&self, id: &str, if_match: Option<u64>) -> Result<(), ChangeError> {
        let _serial = self.changes.lock().await;
        if self.hub.get(id).is_none() {
            return Err(ChangeError::NotFound(id.to_string()));
        }
        let list = self.camera_list();
        let base = if_match.or_else(|| list.revision(id));
        list.remove(id, base).await?;
        self.apply_locked(id, None);
        Ok(())
    }

    /// Applies one stored camera to the hub, with `changes` held: a new camera is added (its
    /// worker starts where this node ingests it), a changed one reconfigured, `None` removed.
    fn apply_locked(&self, id: &str, cam: Option<CameraConfig>) {
        match (cam, self.hub.get(id)) {
            (Some(cfg), Some(existing)) => self.reconfigure(&existing, cfg),
            (Some(cfg), None) => {
                let c = self.hub.insert(cfg);
                self.start_worker(&c);
            }
            (None, Some(_)) => {
                // Cluster mode: no lease is kept for a camera that is gone.
                self.set_owned(id, false);
                self.stop_worker(id);
                // Its lanes and MJPEG streams end; WebSocket viewers get camera_removed.
                self.hub.remove(id);
                info!(camera = %id, "camera removed");
            }
            (None, None) => {}
        }
    }

    /// Reloads the config file (SIGHUP): applies the difference camera by camera and returns
    /// how many cameras the file holds. A file that cannot be read or is invalid is refused and
    /// the running set stays as it was; the caller reports why. In a cluster the camera list
    /// is not the file, and it refuses.
    pub async fn reload(&self) -> Result<usize, ReloadError> {
        let _serial = self.changes.lock().await;
        let loaded = self.camera_list().reload().await?;
        let new = &loaded.config;
        let wanted: HashMap<&str, &CameraConfig> =
            new.cameras.iter().map(|c| (c.id.as_str(), c)).collect();
        for cam in self.hub.cameras() {
            if !wanted.contains_key(cam.id()) {
                self.apply_locked(cam.id(), None);
            }
        }
        for c in &new.cameras {
            self.apply_locked(&c.id, Some(c.clone()));
        }
        self.hub
            .reorder(new.cameras.iter().map(|c| c.id.clone()).collect());
        let old = self.hub.server_config();
        if let Some(hook) = self.on_auth.get() {
            hook(&new.server.auth);
        }
        let rest = crate::config::ServerConfig {
            auth: old.auth.clone(),
            ..new.server.clone()
        };
        if rest != *old {
            warn!("server settings changed in the file: they take effect at the next start");
        }
        Ok(new.cameras.len())
    }

    /// Where a reload's `server.auth` goes (once: the app's access guard).
    pub fn on_auth_reload(&self, hook: AuthHook) {
        let _ = self.on_auth.set(hook);
    }
}

#[cfg(test)]
mod tests;
