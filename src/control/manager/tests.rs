//! Unit tests of the manager: camera bodies checked with their field named, views redacted.

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

    /// The shared list in memory, with revisions as NATS KV gives them.
    #[derive(Default)]
    struct FakeCatalog {
        entries: Mutex<HashMap<String, (u64, Value)>>,
        next: Mutex<u64>,
    }

    impl SharedCatalog for FakeCatalog {
        fn put(
            &self,
            id: &str,
            body: Value,
            expect: Expect,
        ) -> BoxFuture<'_, Result<u64, ChangeError>> {
            let id = id.to_string();
            Box::pin(async move {
                let mut e = self.entries.lock().unwrap();
                match (expect, e.get(&id)) {
                    (Expect::Absent, Some(_)) => return Err(ChangeError::Duplicate(id)),
                    (Expect::Revision(r), Some((cur, _))) if *cur != r => {
                        return Err(ChangeError::Conflict(id))
                    }
                    (Expect::Revision(_), None) => return Err(ChangeError::Conflict(id)),
                    _ => {}
                }
                let mut n = self.next.lock().unwrap();
                *n += 1;
                e.insert(id, (*n, body));
                Ok(*n)
            })
        }
        fn delete(&self, id: &str, revision: u64) -> BoxFuture<'_, Result<(), ChangeError>> {
            let id = id.to_string();
            Box::pin(async move {
                let mut e = self.entries.lock().unwrap();
                match e.get(&id) {
                    Some((cur, _)) if *cur == revision => {
                        e.remove(&id);
                        Ok(())
                    }
                    _ => Err(ChangeError::Conflict(id)),
                }
            })
        }
        fn revision(&self, id: &str) -> Option<u64> {
            self.entries.lock().unwrap().get(id).map(|(r, _)| *r)
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
