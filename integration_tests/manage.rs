//! End-to-end tests of runtime camera management: the API, persistence, SIGHUP, SIGKILL.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn file_cameras(cw: &Camwall) -> Vec<Value> {
    let text = std::fs::read_to_string(&cw.config_path).unwrap();
    let v: Value = serde_json::from_str(&text).expect("the config file is valid JSON");
    v["cameras"].as_array().unwrap().clone()
}

fn file_ids(cw: &Camwall) -> Vec<String> {
    file_cameras(cw)
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn changes_apply_live_persist_and_never_interrupt_another_camera() {
    let cw = start_camwall(json!({"server": {}, "cameras": [
        lavfi("watched", "testsrc2=size=160x120:rate=10"),
        lavfi("other", "testsrc=size=160x120:rate=5")
    ]}));
    cw.wait_camera("watched", Duration::from_secs(15), |c| {
        c["state"] == "streaming"
    })
    .await;
    // A viewer of "watched" records every sequence number while the others change.
    let mut ws = ws_connect(&cw).await;
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": ["watched"], "quality": 50}),
    )
    .await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen2 = seen.clone();
    let viewer = tokio::spawn(async move {
        let mut seqs = Vec::new();
        let mut texts = Vec::new();
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(f) = next_frame(&mut ws, &mut texts, Duration::from_millis(500)).await {
                seqs.push(f.seq());
                seen2.store(seqs.len(), std::sync::atomic::Ordering::Relaxed);
            }
        }
        (seqs, texts)
    });
    // Lets the viewer run across every step: returns once it has received a few more frames.
    let viewer_runs_on = || {
        let seen = seen.clone();
        async move {
            let want = seen.load(std::sync::atomic::Ordering::Relaxed) + 5;
            let end = Instant::now() + Duration::from_secs(10);
            while seen.load(std::sync::atomic::Ordering::Relaxed) < want {
                assert!(Instant::now() < end, "the viewer stopped receiving frames");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let client = reqwest::Client::new();
    let api = cw.url("/api/ip-cameras");

    // Add.
    let r = client
        .post(&api)
        .json(&lavfi("new", "testsrc2=size=320x240:rate=10"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    cw.wait_camera("new", Duration::from_secs(15), |c| {
        c["state"] == "streaming" && c["width"] == 320
    })
    .await;
    assert_eq!(file_ids(&cw), ["watched", "other", "new"]);
    let listed: Value = client.get(&api).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["cameras"].as_array().unwrap().len(), 3);

    viewer_runs_on().await;
    // Replace: new URL, same id.
    let r = client
        .put(format!("{api}/new"))
        .json(&json!({"url": "rtsp://user:pw@127.0.0.1:1/x", "name": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(!body.contains("pw@"), "credential echoed: {body}");
    cw.wait_camera("new", Duration::from_secs(15), |c| {
        c["state"] == "backoff" && c["name"] == "Renamed"
    })
    .await;
    let stored = file_cameras(&cw)[2].clone();
    assert_eq!(
        stored["url"], "rtsp://user:pw@127.0.0.1:1/x",
        "stored as given"
    );
    let one: Value = client
        .get(format!("{api}/new"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["url"], "rtsp://***@127.0.0.1:1/x");

    viewer_runs_on().await;
    // Patch: disable another camera.
    let r = client
        .patch(format!("{api}/other"))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    cw.wait_camera("other", Duration::from_secs(5), |c| {
        c["state"] == "disabled"
    })
    .await;
    assert_eq!(file_cameras(&cw)[1]["enabled"], false);
    let r = client
        .patch(format!("{api}/other"))
        .json(&json!({"enabled": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    cw.wait_camera("other", Duration::from_secs(15), |c| {
        c["state"] == "streaming"
    })
    .await;
    assert!(file_cameras(&cw)[1].get("enabled").is_none());

    viewer_runs_on().await;
    // Remove.
    let r = client.delete(format!("{api}/new")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        client
            .get(format!("{api}/new"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(file_ids(&cw), ["watched", "other"]);
    let bak = cw.config_path.with_file_name("cameras.json.bak");
    let bak: Value = serde_json::from_str(&std::fs::read_to_string(bak).unwrap()).unwrap();
    assert_eq!(
        bak["cameras"].as_array().unwrap().len(),
        3,
        "the previous version is kept"
    );

    viewer_runs_on().await;
    // Refusals, each naming what is wrong; nothing changes.
    let cases = [
        (
            client.post(&api).json(&lavfi("watched", "testsrc2")),
            409,
            "duplicate_id",
        ),
        (
            client
                .post(&api)
                .json(&json!({"id": "x", "url": "lavfi:testsrc2", "fps": 1})),
            400,
            "invalid_camera",
        ),
        (
            client.post(&api).json(&json!({"id": "x", "url": ""})),
            400,
            "invalid_camera",
        ),
        (
            client
                .post(&api)
                .json(&json!({"id": "status", "url": "lavfi:testsrc2"})),
            400,
            "invalid_camera",
        ),
        (
            client
                .post(&api)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "bad_json",
        ),
        (
            client
                .patch(format!("{api}/nope"))
                .json(&json!({"enabled": false})),
            404,
            "unknown_camera",
        ),
        (
            client
                .patch(format!("{api}/watched"))
                .json(&json!({"max_fps": "x"})),
            400,
            "invalid_camera",
        ),
        (
            client
                .put(format!("{api}/watched"))
                .json(&json!({"id": "other", "url": "x"})),
            400,
            "invalid_camera",
        ),
        (client.delete(format!("{api}/nope")), 404, "unknown_camera"),
    ];
    for (req, status, code) in cases {
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], code, "{v}");
        if code == "invalid_camera" {
            assert!(v["field"].is_string(), "{v}");
        }
    }
    assert_eq!(file_ids(&cw), ["watched", "other"]);

    viewer_runs_on().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (seqs, texts) = viewer.await.unwrap();
    assert!(seqs.len() > 20, "viewer got {} frames", seqs.len());
    let gaps: Vec<_> = seqs.windows(2).filter(|w| w[1] != w[0] + 1).collect();
    assert!(
        gaps.is_empty(),
        "frame gaps while other cameras changed: {gaps:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t["type"] == "camera_added" && t["camera"]["id"] == "new"),
        "{texts:?}"
    );
    assert!(texts
        .iter()
        .any(|t| t["type"] == "camera_removed" && t["camera"] == "new"));
}

#[tokio::test]
async fn concurrent_changes_all_land_in_a_valid_file() {
    let cw = start_camwall(
        json!({"server": {}, "cameras": [lavfi("base", "testsrc2=size=64x48:rate=2")]}),
    );
    let client = reqwest::Client::new();
    let api = cw.url("/api/ip-cameras");
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (c, a) = (client.clone(), api.clone());
            tokio::spawn(async move {
                let r = c
                    .post(&a)
                    .json(&json!({"id": format!("c{i}"), "url": "lavfi:testsrc2=size=64x48:rate=2", "enabled": false}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let r = c.patch(format!("{a}/c{i}")).json(&json!({"name": format!("Camera {i}")})).send().await.unwrap();
                assert_eq!(r.status(), 200);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let cams = file_cameras(&cw);
    assert_eq!(cams.len(), 13);
    for i in 0..12 {
        let c = cams
            .iter()
            .find(|c| c["id"] == format!("c{i}"))
            .expect("every change is in the file");
        assert_eq!(c["name"], format!("Camera {i}"));
    }
    let out = check_config(&cw.config_path);
    assert!(out.status.success());
}

#[tokio::test]
async fn sigkill_during_a_burst_of_changes_leaves_a_valid_config() {
    let mut cw = start_camwall(
        json!({"server": {}, "cameras": [lavfi("base", "testsrc2=size=64x48:rate=2")]}),
    );
    let api = cw.url("/api/ip-cameras");
    let burst = tokio::spawn(async move {
        let client = reqwest::Client::new();
        for i in 0..200 {
            let body = json!({"id": format!("b{i}"), "url": "lavfi:testsrc2=size=64x48:rate=2", "enabled": false});
            if client.post(&api).json(&body).send().await.is_err() {
                return i;
            }
        }
        200
    });
    // Kill while the burst runs.
    let end = Instant::now() + Duration::from_secs(10);
    while file_cameras(&cw).len() < 10 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    signal(cw.pid(), "KILL");
    let sent = burst.await.unwrap();
    assert!(sent < 200, "the burst finished before the kill");
    let config_path = cw.config_path.clone();
    let out = check_config(&config_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And it starts again from that file.
    let dir = std::mem::replace(&mut cw.dir, tempfile::tempdir().unwrap());
    cw.child.take();
    let again = start_with_config_file(dir, config_path);
    let s = again.status().await;
    assert!(s["cameras"].as_array().unwrap().len() >= 10);
}

#[tokio::test]
async fn sighup_reloads_a_valid_file_and_refuses_an_invalid_one() {
    let cw = start_camwall(json!({"server": {}, "cameras": [
        lavfi("a", "testsrc2=size=64x48:rate=5"),
        lavfi("b", "testsrc2=size=64x48:rate=5")
    ]}));
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    let good = std::fs::read_to_string(&cw.config_path).unwrap();
    std::fs::write(
        &cw.config_path,
        "{ \"cameras\": [ {\"id\": \"a\", \"url\": \"\"} ] }",
    )
    .unwrap();
    signal(cw.pid(), "HUP");
    cw.wait_log("reload refused", Duration::from_secs(10)).await;
    let s = cw.status().await;
    assert_eq!(
        s["cameras"].as_array().unwrap().len(),
        2,
        "invalid file changed the cameras"
    );
    assert_eq!(cw.camera("a").await["state"], "streaming");
    // A valid edit: b removed, c added, a changed.
    let mut v: Value = serde_json::from_str(&good).unwrap();
    v["cameras"] = json!([
        lavfi("a", "testsrc2=size=96x64:rate=5"),
        lavfi("c", "testsrc2=size=64x48:rate=5")
    ]);
    std::fs::write(&cw.config_path, v.to_string()).unwrap();
    signal(cw.pid(), "HUP");
    cw.wait_camera("c", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    cw.wait_camera("a", Duration::from_secs(15), |c| c["width"] == 96)
        .await;
    let ids: Vec<Value> = cw.status().await["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, [json!("a"), json!("c")]);
}

#[tokio::test]
async fn removing_a_camera_ends_its_streams() {
    let cw = start_camwall(
        json!({"server": {}, "cameras": [lavfi("gone", "testsrc2=size=64x48:rate=10")]}),
    );
    cw.wait_camera("gone", Duration::from_secs(15), |c| {
        c["state"] == "streaming"
    })
    .await;
    let mut mjpeg = reqwest::get(cw.url("/api/ip-cameras/mjpeg/gone"))
        .await
        .unwrap();
    assert_eq!(mjpeg.status(), 200);
    assert!(mjpeg.chunk().await.unwrap().is_some());
    let mut ws = ws_connect(&cw).await;
    ws_send(&mut ws, json!({"type": "subscribe", "cameras": ["gone"]})).await;
    let mut texts = Vec::new();
    next_frame(&mut ws, &mut texts, Duration::from_secs(5))
        .await
        .expect("a frame");
    let r = reqwest::Client::new()
        .delete(cw.url("/api/ip-cameras/gone"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The MJPEG stream ends (after whatever was already on its way).
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), mjpeg.chunk()).await {
            Ok(Ok(Some(_))) if Instant::now() < end => continue,
            Ok(Ok(None)) | Ok(Err(_)) => break,
            other => panic!("the MJPEG stream of a removed camera did not end: {other:?}"),
        }
    }
    let removed = next_text(&mut ws, Duration::from_secs(5), |v| {
        v["type"] == "camera_removed"
    })
    .await;
    assert_eq!(removed.expect("camera_removed event")["camera"], "gone");
}

/// Ids in the order the status API lists them.
async fn status_ids(cw: &Camwall) -> Vec<String> {
    cw.status().await["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

/// The first log line that holds every one of `needles`, if any.
fn log_line_with(cw: &Camwall, needles: &[&str]) -> Option<String> {
    cw.logs()
        .lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_string)
}

#[tokio::test]
async fn an_api_change_never_overwrites_a_hand_edit() {
    let cw =
        start_camwall(json!({"server": {}, "cameras": [lavfi("a", "testsrc2=size=64x48:rate=5")]}));
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    // Someone adds a camera to the file by hand while camwall runs.
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(&cw.config_path).unwrap()).unwrap();
    v["cameras"]
        .as_array_mut()
        .unwrap()
        .push(lavfi("by-hand", "testsrc2=size=64x48:rate=5"));
    let edited = serde_json::to_string_pretty(&v).unwrap();
    std::fs::write(&cw.config_path, &edited).unwrap();

    let client = reqwest::Client::new();
    let api = cw.url("/api/ip-cameras");
    let refused = [
        client
            .post(&api)
            .json(&lavfi("by-api", "testsrc2=size=64x48:rate=5")),
        client.patch(format!("{api}/a")).json(&json!({"name": "A"})),
        client.delete(format!("{api}/a")),
    ];
    for req in refused {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 409);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "config_changed_on_disk", "{body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains("kill -HUP"), "{body}");
    }
    assert_eq!(
        std::fs::read_to_string(&cw.config_path).unwrap(),
        edited,
        "the hand edit was overwritten"
    );
    assert_eq!(status_ids(&cw).await, ["a"], "a refused change was applied");
    assert!(cw.camera("a").await.get("name") != Some(&json!("A")));

    // Once reloaded, changes go through again and the file keeps both.
    signal(cw.pid(), "HUP");
    cw.wait_camera("by-hand", Duration::from_secs(15), |_| true)
        .await;
    let r = client
        .post(&api)
        .json(&lavfi("by-api", "testsrc2=size=64x48:rate=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert_eq!(file_ids(&cw), ["a", "by-hand", "by-api"]);
    assert_eq!(status_ids(&cw).await, ["a", "by-hand", "by-api"]);
}

#[tokio::test]
async fn sighup_with_an_invalid_file_logs_the_file_and_the_field() {
    let cw =
        start_camwall(json!({"server": {}, "cameras": [lavfi("a", "testsrc2=size=64x48:rate=5")]}));
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    std::fs::write(
        &cw.config_path,
        r#"{"cameras": [{"id": "a", "url": "lavfi:testsrc2", "max_fps": "ten"}]}"#,
    )
    .unwrap();
    signal(cw.pid(), "HUP");
    let path = cw.config_path.display().to_string();
    let needles = ["ERROR", path.as_str(), "cameras[0].max_fps"];
    let end = Instant::now() + Duration::from_secs(10);
    while log_line_with(&cw, &needles).is_none() {
        assert!(
            Instant::now() < end,
            "no error line naming the file and the field:\n{}",
            cw.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_ids(&cw).await, ["a"]);
    assert_eq!(cw.camera("a").await["state"], "streaming");
}

#[tokio::test]
async fn sighup_with_an_unreadable_file_logs_an_error() {
    let cw =
        start_camwall(json!({"server": {}, "cameras": [lavfi("a", "testsrc2=size=64x48:rate=5")]}));
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    // Deleting works as the test user and as root alike (root reads through chmod 000).
    std::fs::remove_file(&cw.config_path).unwrap();
    signal(cw.pid(), "HUP");
    let path = cw.config_path.display().to_string();
    let needles = ["ERROR", path.as_str()];
    let end = Instant::now() + Duration::from_secs(10);
    while log_line_with(&cw, &needles).is_none() {
        assert!(
            Instant::now() < end,
            "no error line naming the unreadable file:\n{}",
            cw.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_ids(&cw).await, ["a"]);
    // A deleted file counts as edited: the API does not write a new one over the deletion.
    let r = reqwest::Client::new()
        .post(cw.url("/api/ip-cameras"))
        .json(&lavfi("b", "testsrc2=size=64x48:rate=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(!cw.config_path.exists());
    assert_eq!(status_ids(&cw).await, ["a"]);
}

#[tokio::test]
async fn the_api_refuses_local_sources_unless_allowed() {
    // The real default: the harness turns the setting on for other tests, so take it out.
    let (dir, path) = write_config(json!({"server": {}, "cameras": [
        lavfi("a", "testsrc2=size=64x48:rate=5"),
        {"id": "net", "url": "rtsp://127.0.0.1:9/x"}
    ]}));
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["server"]
        .as_object_mut()
        .unwrap()
        .remove("allow_local_sources");
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let cw = start_with_config_file(dir, path);
    // The config file may name a lavfi camera.
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    let before = std::fs::read_to_string(&cw.config_path).unwrap();
    let client = reqwest::Client::new();
    let api = cw.url("/api/ip-cameras");
    let local = [
        "file:/etc/passwd",
        "file:///etc/passwd",
        "/etc/passwd",
        "concat:/etc/passwd|/etc/hostname",
        "subfile:,,start,0,end,64,,:/etc/passwd",
        "lavfi:testsrc2",
        "/dev/video0",
    ];
    for url in local {
        let reqs = [
            client.post(&api).json(&json!({"id": "x", "url": url})),
            client.put(format!("{api}/net")).json(&json!({"url": url})),
            client
                .patch(format!("{api}/net"))
                .json(&json!({"url": url})),
        ];
        for req in reqs {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 400, "{url}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], "invalid_camera", "{url}: {body}");
            assert_eq!(body["field"], "url", "{url}: {body}");
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains("server.allow_local_sources"), "{body}");
        }
    }
    // Nor may the API widen a network camera's protocols.
    let r = client
        .post(&api)
        .json(&json!({"id": "x", "url": "rtsp://127.0.0.1:9/x",
            "options": {"protocol_whitelist": "file,rtsp,tcp"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["field"], "options", "{body}");
    assert_eq!(std::fs::read_to_string(&cw.config_path).unwrap(), before);
    assert_eq!(status_ids(&cw).await, ["a", "net"]);
    assert_eq!(cw.camera("net").await["url"], "rtsp://127.0.0.1:9/x");
    // A camera the file named keeps its source through other changes.
    let r = client
        .patch(format!("{api}/a"))
        .json(&json!({"name": "Test card"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn the_api_accepts_local_sources_when_allowed() {
    let cw = start_camwall(json!({"server": {"allow_local_sources": true}, "cameras": []}));
    let r = reqwest::Client::new()
        .post(cw.url("/api/ip-cameras"))
        .json(&lavfi("card", "testsrc2=size=64x48:rate=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    cw.wait_camera("card", Duration::from_secs(15), |c| {
        c["state"] == "streaming"
    })
    .await;
}

/// Renames camera `id` with `rename`, then checks that the stream went on: the session was
/// not reopened, the snapshot never went away, frames kept coming and nothing reconnected.
async fn assert_renamed_live(
    cw: &Camwall,
    id: &str,
    name: &str,
    rename: impl std::future::Future<Output = ()>,
) {
    let before = cw
        .wait_camera(id, Duration::from_secs(15), |c| {
            c["state"] == "streaming" && c["frames_in"].as_u64().unwrap() > 3
        })
        .await;
    cw.wait_log_count("source opened", 1, Duration::from_secs(5))
        .await;
    let opened = cw.logs().matches("source opened").count();
    let renamed = cw.logs().matches("camera renamed").count();
    rename.await;
    cw.wait_log_count("camera renamed", renamed + 1, Duration::from_secs(10))
        .await;
    // The newest frame is still there the moment after the change.
    assert_eq!(get_frame(cw, id, "").await.status(), 200);
    let after = cw
        .wait_camera(id, Duration::from_secs(10), |c| c["name"] == name)
        .await;
    let frames = after["frames_in"].as_u64().unwrap();
    let later = cw
        .wait_camera(id, Duration::from_secs(10), |c| {
            c["frames_in"].as_u64().unwrap() >= frames + 5
        })
        .await;
    assert_eq!(later["state"], "streaming");
    assert_eq!(later["reconnects"], before["reconnects"]);
    assert_eq!(
        cw.logs().matches("source opened").count(),
        opened,
        "the rename reopened the source:\n{}",
        cw.logs()
    );
}

#[tokio::test]
async fn a_rename_by_patch_or_sighup_does_not_restart_the_stream() {
    let cw = start_camwall(json!({"server": {}, "cameras": [
        lavfi("cam", "testsrc2=size=64x48:rate=10")
    ]}));
    let api = cw.url("/api/ip-cameras/cam");
    assert_renamed_live(&cw, "cam", "Porch", async {
        let r = reqwest::Client::new()
            .patch(&api)
            .json(&json!({"name": "Porch"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    })
    .await;
    let path = cw.config_path.clone();
    let pid = cw.pid();
    assert_renamed_live(&cw, "cam", "Garden", async move {
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        v["cameras"][0]["name"] = json!("Garden");
        std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        signal(pid, "HUP");
    })
    .await;
}
