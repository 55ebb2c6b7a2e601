//! The config file as the camera list (alone, the default) and as the home of the views: every
//! change is an edit of the document the store last read or wrote, validated as a whole
//! config, then written atomically through the store, which refuses to overwrite an edit made
//! by hand (`control::store`).

use std::sync::Mutex;

use serde_json::{Map, Value};
use tracing::info;

use super::list::{BoxFuture, CameraList};
use super::{invalid, views, ChangeError, ReloadError};
use crate::config::views::ViewConfig;
use crate::config::{self, CameraConfig, LoadedConfig};
use crate::control::store::ConfigStore;

/// The config file behind its store. No `Debug`: the document holds camera passwords.
pub struct FileList {
    store: tokio::sync::Mutex<ConfigStore>,
    /// The views as last written or read: `/api/views` answers from here without waiting for
    /// a write in progress.
    views: Mutex<Vec<ViewConfig>>,
}

impl FileList {
    /// The file as `store` read it at start.
    pub fn new(store: ConfigStore) -> Self {
        Self {
            views: Mutex::new(views::views_of(store.doc())),
            store: tokio::sync::Mutex::new(store),
        }
    }

    /// The views, in the file's order.
    pub fn views(&self) -> Vec<ViewConfig> {
        self.views.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_views(&self, views: Vec<ViewConfig>) {
        *self.views.lock().unwrap_or_else(|e| e.into_inner()) = views;
    }

    /// The cameras as written in the file (to seed an empty cluster catalog).
    pub async fn cameras(&self) -> Vec<Value> {
        let store = self.store.lock().await;
        store
            .doc()
            .get("cameras")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// The users as written in the file (`server.auth.users`).
    pub async fn users(&self) -> Vec<crate::config::auth::UserConfig> {
        let store = self.store.lock().await;
        store
            .doc()
            .pointer("/server/auth/users")
            .and_then(|u| serde_json::from_value(u.clone()).ok())
            .unwrap_or_default()
    }

    /// One change: `edit` changes a copy of the document, which is written only if it is a
    /// valid config and the file holds no hand edit; an error from `edit` writes nothing.
    pub async fn edit<T>(
        &self,
        edit: impl FnOnce(&mut Value) -> Result<T, ChangeError> + Send,
    ) -> Result<T, ChangeError> {
        let mut store = self.store.lock().await;
        let mut doc = store.doc().clone();
        let out = edit(&mut doc)?;
        commit(&mut store, doc).await?;
        // The views follow every write (a removed camera leaves them in the same write).
        self.set_views(views::views_of(store.doc()));
        Ok(out)
    }
}

/// Validates `doc` as a whole config and writes it, unless the file was edited by hand.
async fn commit(store: &mut ConfigStore, doc: Value) -> Result<(), ChangeError> {
    let text = serde_json::to_string_pretty(&doc).map_err(|e| ChangeError::Io {
        action: "serialize",
        path: store.path().to_path_buf(),
        source: e.into(),
    })?;
    if let Err(issues) = config::parse(&text) {
        let i = &issues[0];
        return Err(invalid(i.field.clone(), i.message.clone()));
    }
    Ok(store.write(doc).await?)
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

/// The file keeps no revisions: `base` is ignored (alone, `If-Match` never was read), and a
/// concurrent edit by hand is caught by the store instead.
impl CameraList for FileList {
    fn revision(&self, _id: &str) -> Option<u64> {
        None
    }

    fn stored(&self, current: &CameraConfig) -> BoxFuture<'_, Result<Value, ChangeError>> {
        let id = current.id.clone();
        Box::pin(async move {
            // The camera as written in the file, not as parsed: a patch then touches only the
            // fields it names, and fields left at their defaults stay absent.
            let store = self.store.lock().await;
            let pos = position(store.doc(), &id).ok_or(ChangeError::NotFound(id))?;
            Ok(store.doc()["cameras"][pos].clone())
        })
    }

    fn add(&self, _id: &str, body: Value) -> BoxFuture<'_, Result<Option<u64>, ChangeError>> {
        Box::pin(async move {
            self.edit(|doc| {
                cameras_mut(doc).push(body);
                Ok(())
            })
            .await?;
            Ok(None)
        })
    }

    fn replace(
        &self,
        id: &str,
        body: Value,
        _base: Option<u64>,
    ) -> BoxFuture<'_, Result<Option<u64>, ChangeError>> {
        let id = id.to_string();
        Box::pin(async move {
            self.edit(|doc| {
                match position(doc, &id) {
                    Some(pos) => cameras_mut(doc)[pos] = body,
                    None => cameras_mut(doc).push(body),
                }
                Ok(())
            })
            .await?;
            Ok(None)
        })
    }

    fn remove(&self, id: &str, _base: Option<u64>) -> BoxFuture<'_, Result<(), ChangeError>> {
        let id = id.to_string();
        Box::pin(async move {
            let emptied = self
                .edit(|doc| {
                    if let Some(pos) = position(doc, &id) {
                        cameras_mut(doc).remove(pos);
                    }
                    // Views name cameras: the camera leaves them in the same write.
                    Ok(views::drop_camera_from_views(doc, &id))
                })
                .await?;
            if !emptied.is_empty() {
                info!(camera = %id, views = ?emptied, "views left without a camera were removed");
            }
            Ok(())
        })
    }

    fn reload(&self) -> BoxFuture<'_, Result<LoadedConfig, ReloadError>> {
        Box::pin(async move {
            let mut store = self.store.lock().await;
            let path = store.path().to_path_buf();
            let text = match tokio::fs::read_to_string(&path).await {
                Ok(t) => t,
                Err(source) => return Err(ReloadError::Read { path, source }),
            };
            let loaded = LoadedConfig::from_text(&path, text)?;
            // Taken now, under the manager's change lock: nothing writes before it is applied,
            // and applying cannot fail.
            store.reloaded(&loaded);
            self.set_views(loaded.config.views.clone());
            Ok(loaded)
        })
    }
}
