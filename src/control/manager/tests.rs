//! Unit tests of the manager: camera bodies checked with their field named, views redacted,
//! and the same change paths storing into either camera list (the file alone, a shared
//! catalog in a cluster).

use super::*;

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
    let e = parse_camera(&serde_json::json!({"id": "a", "url": "x", "max_fps": "x"})).unwrap_err();
    assert!(
        matches!(&e, ChangeError::Invalid { field, .. } if field == "max_fps"),
        "{e:?}"
    );
    assert!(parse_camera(&serde_json::json!({"id": "a", "url": "lavfi:testsrc2"})).is_ok());
}

#[test]
fn views_hide_credentials() {
    let mut c = parse_camera(&serde_json::json!({"id": "a", "url": "rtsp://u:pw@h/x"})).unwrap();
    c.options.insert("auth_password".into(), "pw".into());
    c.options.insert("rtsp_transport".into(), "udp".into());
    let v = serde_json::to_string(&CameraView::of(&c)).unwrap();
    assert!(!v.contains("pw@") && !v.contains("\"pw\""), "{v}");
    assert!(v.contains("udp"));
}

mod cluster_mode {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use serde_json::{json, Value};
    use tokio_util::sync::CancellationToken;

    use super::super::*;
    use crate::config::LoadedConfig;

    /// The shared list in memory, with revisions as NATS KV gives them.
    #[derive(Default)]
    struct FakeCatalog {
        entries: Mutex<HashMap<String, (u64, Value)>>,
        next: Mutex<u64>,
    }

    impl FakeCatalog {
        fn put(&self, id: &str, body: Value, base: Option<u64>) -> Result<u64, ChangeError> {
            let id = id.to_string();
            let mut e = self.entries.lock().unwrap();
            match (base, e.get(&id)) {
                (None, Some(_)) => return Err(ChangeError::Duplicate(id)),
                (Some(r), Some((cur, _))) if *cur != r => return Err(ChangeError::Conflict(id)),
                (Some(_), None) => return Err(ChangeError::Conflict(id)),
                _ => {}
            }
            let mut n = self.next.lock().unwrap();
            *n += 1;
            e.insert(id, (*n, body));
            Ok(*n)
        }
    }

    impl CameraList for FakeCatalog {
        fn revision(&self, id: &str) -> Option<u64> {
            self.entries.lock().unwrap().get(id).map(|(r, _)| *r)
        }
        fn stored(&self, current: &CameraConfig) -> BoxFuture<'_, Result<Value, ChangeError>> {
            let body = serde_json::to_value(current).unwrap();
            Box::pin(async move { Ok(body) })
        }
        fn add(&self, id: &str, body: Value) -> BoxFuture<'_, Result<Option<u64>, ChangeError>> {
            let r = self.put(id, body, None).map(Some);
            Box::pin(async move { r })
        }
        fn replace(
            &self,
            id: &str,
            body: Value,
            base: Option<u64>,
        ) -> BoxFuture<'_, Result<Option<u64>, ChangeError>> {
            let r = match base {
                None => Err(ChangeError::NotFound(id.to_string())),
                Some(_) => self.put(id, body, base).map(Some),
            };
            Box::pin(async move { r })
        }
        fn remove(&self, id: &str, base: Option<u64>) -> BoxFuture<'_, Result<(), ChangeError>> {
            let mut e = self.entries.lock().unwrap();
            let r = match e.get(id) {
                Some((cur, _)) if Some(*cur) == base => {
                    e.remove(id);
                    Ok(())
                }
                _ => Err(ChangeError::Conflict(id.to_string())),
            };
            Box::pin(async move { r })
        }
        fn reload(&self) -> BoxFuture<'_, Result<LoadedConfig, ReloadError>> {
            Box::pin(async { Err(ReloadError::Clustered) })
        }
    }

    fn clustered(text: &str) -> (tempfile::TempDir, Arc<Hub>, Arc<Manager>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cameras.json");
        std::fs::write(&path, text).unwrap();
        let loaded = LoadedConfig::from_text(&path, text.to_string()).unwrap();
        let hub = Arc::new(Hub::new(&loaded.config));
        let store = ConfigStore::new(path, &loaded);
        let m = Manager::start_clustered(hub.clone(), store, CancellationToken::new());
        (dir, hub, m)
    }

    #[tokio::test]
    async fn only_cameras_this_node_owns_get_a_worker() {
        // A closed port: a worker that does start fails fast and waits in backoff.
        let (_d, _hub, m) = clustered(r#"{"cameras":[{"id":"a","url":"rtsp://127.0.0.1:1/a"}]}"#);
        let has_worker = |m: &Manager| m.workers.lock().unwrap().contains_key("a");
        assert!(!m.ingests("a"));
        assert!(
            !has_worker(&m),
            "a worker started without the camera being owned"
        );
        m.set_owned("a", true);
        assert!(m.ingests("a") && has_worker(&m));
        m.set_owned("a", false);
        assert!(!m.ingests("a") && !has_worker(&m));
        m.root.cancel();
        m.stopped().await;
    }

    #[tokio::test]
    async fn changes_go_to_the_shared_list_with_revisions_never_the_file() {
        let text = r#"{"cameras":[]}"#;
        let (dir, hub, m) = clustered(text);
        let cat = Arc::new(FakeCatalog::default());
        m.set_catalog(cat.clone());
        let v = m
            .add(json!({"id": "door", "url": "rtsp://u:pw@h/x", "enabled": false}))
            .await
            .unwrap();
        assert_eq!(v.revision, Some(1));
        assert!(hub.get("door").is_some(), "applied here at once");
        assert!(matches!(
            m.add(json!({"id": "door", "url": "rtsp://h/y"})).await,
            Err(ChangeError::Duplicate(_))
        ));
        // Someone else's edit lands first: a change based on revision 1 is refused.
        let v = m
            .patch_if("door", json!({"name": "Door"}), Some(1))
            .await
            .unwrap();
        assert_eq!(v.revision, Some(2));
        let stale = m.patch_if("door", json!({"name": "Lost"}), Some(1)).await;
        assert!(matches!(stale, Err(ChangeError::Conflict(_))), "{stale:?}");
        assert_eq!(
            hub.get("door").unwrap().config().name.as_deref(),
            Some("Door")
        );
        assert!(matches!(
            m.remove_if("door", Some(1)).await,
            Err(ChangeError::Conflict(_))
        ));
        m.remove_if("door", None).await.unwrap();
        assert!(hub.get("door").is_none());
        // The watch applies other nodes' entries through the same path.
        let cam = parse_camera(&json!({"id": "yard", "url": "rtsp://h/z", "enabled": false}));
        m.apply_shared("yard", Some(cam.unwrap())).await;
        assert!(hub.get("yard").is_some());
        m.apply_shared("yard", None).await;
        assert!(hub.get("yard").is_none());
        let file = std::fs::read_to_string(dir.path().join("cameras.json")).unwrap();
        assert_eq!(
            file, text,
            "the config file is never written in cluster mode"
        );
        assert!(matches!(m.reload().await, Err(ReloadError::Clustered)));
    }
}

mod alone {
    use std::sync::Arc;

    use serde_json::{json, Value};
    use tokio_util::sync::CancellationToken;

    use super::super::*;
    use crate::config::LoadedConfig;

    fn file_of(dir: &tempfile::TempDir) -> Value {
        let text = std::fs::read_to_string(dir.path().join("cameras.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[tokio::test]
    async fn changes_are_edits_of_the_file_as_written_never_over_a_hand_edit() {
        // Disabled cameras: no worker, no FFmpeg.
        let text = r#"{"cameras":[{"id":"a","url":"rtsp://u:pw@h/x","enabled":false}],
            "views":[{"id":"v","cameras":["a"]}]}"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cameras.json");
        std::fs::write(&path, text).unwrap();
        let loaded = LoadedConfig::from_text(&path, text.to_string()).unwrap();
        let hub = Arc::new(Hub::new(&loaded.config));
        let store = ConfigStore::new(path.clone(), &loaded);
        let m = Manager::start(hub.clone(), store, CancellationToken::new());
        // A patch touches the fields it names; the secret sent back as shown is kept; the
        // file has no revisions.
        let v = m
            .patch("a", json!({"name": "A", "url": "rtsp://***@h/x"}))
            .await
            .unwrap();
        assert_eq!(v.revision, None);
        assert_eq!(
            file_of(&dir)["cameras"][0],
            json!({"id": "a", "url": "rtsp://u:pw@h/x", "enabled": false, "name": "A"})
        );
        assert!(m.list().iter().all(|v| v.revision.is_none()));
        let v = m
            .add(json!({"id": "b", "url": "rtsp://h/y", "enabled": false}))
            .await
            .unwrap();
        assert_eq!(v.revision, None);
        assert_eq!(file_of(&dir)["cameras"][1]["id"], "b");
        // A hand edit is never overwritten, and the refused change is not applied.
        let edited = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"A\"", "\"Hand\"");
        std::fs::write(&path, &edited).unwrap();
        let e = m.remove("b").await.unwrap_err();
        assert!(matches!(e, ChangeError::ChangedOnDisk { .. }), "{e:?}");
        assert!(hub.get("b").is_some());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
        assert_eq!(m.reload().await.unwrap(), 2);
        assert_eq!(hub.get("a").unwrap().config().name.as_deref(), Some("Hand"));
        // A removed camera leaves the views in the same write.
        m.remove("a").await.unwrap();
        assert!(hub.get("a").is_none());
        assert!(m.views().is_empty());
        let file = file_of(&dir);
        assert!(file.get("views").is_none(), "{file}");
        assert_eq!(file["cameras"].as_array().unwrap().len(), 1);
    }
}
