//! End-to-end tests of the core: the real binary against FFmpeg lavfi sources, real HTTP.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn every_camera_streams_and_frames_decode_to_their_size() {
    let cw = start_camwall(json!({
        "server": {},
        "cameras": [
            lavfi("small", "testsrc2=size=320x240:rate=10"),
            lavfi("wide", "testsrc=size=640x360:rate=15"),
            {"id": "off", "url": "lavfi:testsrc2", "enabled": false}
        ]
    }));
    for (id, w, h) in [("small", 320, 240), ("wide", 640, 360)] {
        cw.wait_camera(id, Duration::from_secs(15), |c| c["state"] == "streaming")
            .await;
        let res = get_frame(&cw, id, "").await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "image/jpeg");
        assert_eq!(res.headers()["cache-control"], "no-cache");
        assert!(res.headers().contains_key("x-frame-seq"));
        let capture: u64 = res.headers()["x-capture-time"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(
            capture <= now && now - capture < 10_000,
            "capture time {capture} vs now {now}"
        );
        let body = res.bytes().await.unwrap();
        let (dw, dh, _) = decode_rgb(&body);
        assert_eq!((dw, dh), (w, h), "{id}");
    }
    let off = cw.camera("off").await;
    assert_eq!(off["state"], "disabled");
    let health: Value = reqwest::get(cw.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["cameras"]["total"], 3);
    assert_eq!(health["cameras"]["streaming"], 2);
    // The measured rate follows the source (paced, not read as fast as possible).
    let c = cw
        .wait_camera("wide", Duration::from_secs(5), |c| {
            c["fps"].as_f64().unwrap() > 0.0
        })
        .await;
    let fps = c["fps"].as_f64().unwrap();
    assert!((10.0..=20.0).contains(&fps), "fps {fps}");
}

#[tokio::test]
async fn etag_gives_304_and_a_new_frame_gives_a_new_tag() {
    let cw = start_camwall(json!({
        "server": {"frame_cache_ttl_ms": 1000},
        "cameras": [lavfi("a", "testsrc2=size=160x120:rate=10")]
    }));
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    let client = reqwest::Client::new();
    let url = cw.url("/api/ip-cameras/frame/a");
    let first = client.get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    // Within the 1 s TTL the same encoded frame is served: its tag matches.
    let again = client
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert!(again.bytes().await.unwrap().is_empty());
    // After the TTL a newer frame exists: full answer, new tag. The TTL running out is what is
    // tested, so this waits past it on the clock.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = client
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(later.status(), 200);
    assert_ne!(later.headers()["etag"].to_str().unwrap(), etag);
    assert!(!later.bytes().await.unwrap().is_empty());
    // A tag from nowhere never matches.
    let other = client
        .get(&url)
        .header("If-None-Match", "\"nope\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn concurrent_requests_share_one_encode_and_idle_cameras_encode_nothing() {
    let cw = start_camwall(json!({
        "server": {"frame_cache_ttl_ms": 0},
        "cameras": [
            lavfi("slow", "testsrc2=size=640x360:rate=1"),
            lavfi("idle", "testsrc2=size=160x120:rate=10")
        ]
    }));
    cw.wait_camera("slow", Duration::from_secs(15), |c| {
        c["state"] == "streaming"
    })
    .await;
    cw.wait_camera("idle", Duration::from_secs(15), |c| {
        c["state"] == "streaming"
    })
    .await;
    let client = reqwest::Client::new();
    let url = cw.url("/api/ip-cameras/frame/slow?quality=42");
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (c, u) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let r = c.get(&u).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.headers()["x-frame-seq"].to_str().unwrap().to_string()
        }));
    }
    let mut seqs = HashSet::new();
    for t in tasks {
        seqs.insert(t.await.unwrap());
    }
    let slow = cw.camera("slow").await;
    let tier = slow["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["quality"] == 42)
        .unwrap();
    // One encode per distinct frame served, however many asked at once.
    assert_eq!(
        tier["jpeg_encodes"].as_u64().unwrap(),
        seqs.len() as u64,
        "{slow}"
    );
    assert!(
        seqs.len() <= 3,
        "a 1 fps camera served {} frames",
        seqs.len()
    );
    let idle = cw.camera("idle").await;
    assert!(idle["frames_in"].as_u64().unwrap() > 0);
    assert_eq!(
        idle["jpeg_encodes"], 0,
        "nobody asked for this camera: {idle}"
    );
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let (_stuck, port) = silent_listener();
    let cw = start_camwall(json!({
        "server": {},
        "cameras": [
            lavfi("a", "testsrc2=size=160x120:rate=5"),
            {"id": "stuck", "url": format!("rtsp://127.0.0.1:{port}/x"), "open_timeout_ms": 60000}
        ]
    }));
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    let client = reqwest::Client::new();
    let cases = [
        ("/api/ip-cameras/frame/nope", 404, "unknown_camera"),
        ("/api/ip-cameras/frame/a?quality=0", 400, "bad_quality"),
        ("/api/ip-cameras/frame/a?quality=abc", 400, "bad_quality"),
        ("/api/ip-cameras/frame/a?quality=101", 400, "bad_quality"),
        ("/no/such/path", 404, "not_found"),
        ("/api/ip-cameras/frame/stuck", 503, "no_frame_yet"),
    ];
    for (path, status, code) in cases {
        let r = client.get(cw.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        if status == 503 {
            assert!(r.headers().contains_key("retry-after"), "{path}");
        }
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], code, "{path}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let r = client
        .delete(cw.url("/api/ip-cameras/frame/a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
    // A cache-busting parameter is not an error.
    let r = client
        .get(cw.url("/api/ip-cameras/frame/a?t=12345"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn broken_cameras_back_off_alone_and_credentials_never_show() {
    let closed = free_port();
    let cw = start_camwall(json!({
        "server": {},
        "cameras": [
            lavfi("good", "testsrc2=size=160x120:rate=10"),
            {"id": "dead", "url": format!("rtsp://admin:s3cretPW@127.0.0.1:{closed}/stream")},
            {"id": "nofile", "url": "/nonexistent/clip.mp4"}
        ]
    }));
    let dead = cw
        .wait_camera("dead", Duration::from_secs(15), |c| {
            c["state"] == "backoff" && c["reconnects"].as_u64().unwrap_or(0) >= 1
        })
        .await;
    assert!(
        dead["last_error"].as_str().unwrap().contains("open failed"),
        "{dead}"
    );
    cw.wait_camera("nofile", Duration::from_secs(15), |c| {
        c["state"] == "backoff"
    })
    .await;
    // The healthy camera keeps its full rate beside the broken ones.
    cw.wait_camera("good", Duration::from_secs(15), |c| {
        c["state"] == "streaming" && c["fps"].as_f64().unwrap() >= 8.0
    })
    .await;
    // Redacted everywhere: status, health, logs.
    let status = reqwest::get(cw.url("/api/ip-cameras/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !status.contains("s3cretPW") && !status.contains("admin:"),
        "{status}"
    );
    assert!(status.contains("rtsp://***@127.0.0.1"), "{status}");
    // initialize wakes the camera in backoff and is idempotent.
    let client = reqwest::Client::new();
    let r: Value = client
        .post(cw.url("/api/ip-cameras/initialize"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["cameras"].as_array().unwrap().len() == 3);
    assert!(!r.to_string().contains("s3cretPW"));
    let r2 = client
        .post(cw.url("/api/ip-cameras/initialize"))
        .send()
        .await
        .unwrap();
    assert_eq!(r2.status(), 200);
    let good2 = cw.camera("good").await;
    assert_eq!(good2["reconnects"], 0);
    cw.wait_log("dead", Duration::from_secs(10)).await;
    assert!(!cw.logs().contains("s3cretPW"), "credential in logs");
}

#[tokio::test]
async fn sigterm_exits_quickly_even_with_a_camera_stuck_connecting() {
    let (_stuck, port) = silent_listener();
    let mut cw = start_camwall(json!({
        "server": {},
        "cameras": [
            lavfi("a", "testsrc2=size=160x120:rate=10"),
            {"id": "stuck", "url": format!("rtsp://127.0.0.1:{port}/x"), "open_timeout_ms": 60000}
        ]
    }));
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    let stuck = cw.camera("stuck").await;
    assert_eq!(stuck["state"], "connecting");
    // Hold a request open too: shutdown must not wait for it forever.
    let _ = get_frame(&cw, "a", "").await;
    let (took, status) = cw.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(3), "took {took:?} to exit");
}

#[tokio::test]
async fn stalled_source_is_treated_as_lost() {
    // Accepts, answers nothing: with a short open timeout the camera backs off quickly.
    let (_stuck, port) = silent_listener();
    let cw = start_camwall(json!({
        "server": {},
        "cameras": [{"id": "mute", "url": format!("rtsp://127.0.0.1:{port}/x"), "open_timeout_ms": 800}]
    }));
    let t0 = Instant::now();
    let c = cw
        .wait_camera("mute", Duration::from_secs(10), |c| c["state"] == "backoff")
        .await;
    assert!(
        c["last_error"].as_str().unwrap().contains("timed out"),
        "{c}"
    );
    assert!(t0.elapsed() < Duration::from_secs(8));
}

#[test]
fn bad_config_exits_2_and_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cameras.json");
    std::fs::write(&path, "{\n  \"cameras\": [\n    {\"id\": \"a\", \"url\": \"lavfi:testsrc2\", \"max_fps\": \"ten\"}\n  ]\n}\n").unwrap();
    for args in [vec!["check-config"], vec![]] {
        let out = std::process::Command::new(camwall_bin())
            .args(&args)
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("{}:3:", path.display())), "{err}");
        assert!(err.contains("cameras[0].max_fps"), "{err}");
    }
    std::fs::write(
        &path,
        r#"{"cameras":[{"id":"a","url":"lavfi:x"},{"id":"a","url":""},{"id":"b/c","url":"x","bogus":1}]}"#,
    )
    .unwrap();
    let out = check_config(&path);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bogus"), "{err}");
    std::fs::write(
        &path,
        r#"{"cameras":[{"id":"a","url":"lavfi:x"},{"id":"a","url":""},{"id":"b/c","url":"x"}]}"#,
    )
    .unwrap();
    let out = check_config(&path);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    // Every problem at once, each with its camera and field.
    assert!(
        err.contains("camera \"a\": field `cameras[1].id`: duplicate id"),
        "{err}"
    );
    assert!(err.contains("field `cameras[1].url`"), "{err}");
    assert!(
        err.contains("camera \"cameras[2]\": field `cameras[2].id`"),
        "{err}"
    );
    // The shipped config is valid and lists its cameras.
    let out = check_config(repo_root().join("config/cameras.json"));
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("demo-720p"));
}

#[tokio::test]
async fn metrics_expose_cameras_clients_and_requests() {
    let closed = free_port();
    let cw = start_camwall(json!({
        "server": {},
        "cameras": [
            lavfi("a", "testsrc2=size=160x120:rate=10"),
            {"id": "locked", "url": format!("rtsp://admin:s3cretPW@127.0.0.1:{closed}/x")}
        ]
    }));
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    assert_eq!(get_frame(&cw, "a", "").await.status(), 200);
    let mut ws = ws_connect(&cw).await;
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": ["a"], "quality": 60}),
    )
    .await;
    let mut texts = Vec::new();
    for _ in 0..3 {
        next_frame(&mut ws, &mut texts, Duration::from_secs(5))
            .await
            .expect("frame");
    }
    let r = reqwest::get(cw.url("/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    for needle in [
        "camwall_camera_state{camera=\"a\",state=\"streaming\"} 1",
        "camwall_camera_frames_in_total{camera=\"a\"}",
        "camwall_camera_fps{camera=\"a\"}",
        "camwall_jpeg_encodes_total{camera=\"a\",quality=\"85\",scale=\"1\"}",
        "camwall_jpeg_encodes_total{camera=\"a\",quality=\"60\",scale=\"1\"}",
        "camwall_http_requests_total{route=\"/api/ip-cameras/frame/{id}\",method=\"GET\",status=\"200\"} 1",
        "camwall_clients{kind=\"websocket\"} 1",
        // The one frame request above, from this address, within the last 10 s.
        "camwall_clients{kind=\"polling\"} 1",
        "camwall_frames_sent_total{kind=\"polling\"} 1",
        "camwall_frames_sent_total{kind=\"websocket\"}",
        "camwall_encode_seconds_bucket{",
        "camwall_decode_seconds_count{camera=\"a\"}",
        "camwall_cache_misses_total{camera=\"a\"}",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    assert!(
        !text.contains("s3cretPW") && !text.contains("admin:"),
        "credential in metrics"
    );
}

/// A page's body, after checking it answered 200 as `content_type`.
async fn page(cw: &Camwall, path: &str, content_type: &str) -> String {
    let res = reqwest::get(cw.url(path)).await.unwrap();
    assert_eq!(res.status(), 200, "{path}");
    assert_eq!(res.headers()["content-type"], content_type, "{path}");
    res.text().await.unwrap()
}

#[tokio::test]
async fn the_pages_are_built_in_and_public_dir_overrides_them() {
    let repo_page = |name: &str| std::fs::read_to_string(repo_root().join("public").join(name));
    let html = "text/html; charset=utf-8";
    // A config alone in a fresh directory: no public/ beside it, no public_dir.
    let (dir, path) = write_config(json!({"server": {}, "cameras": []}));
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["server"].as_object_mut().unwrap().remove("public_dir");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let cw = start_with_config_file(dir, path);
    for (url, file, ct) in [
        ("/", "index.html", html),
        ("/settings", "settings.html", html),
        ("/advanced_test", "advanced_test.html", html),
        ("/wall.js", "wall.js", "text/javascript; charset=utf-8"),
    ] {
        assert_eq!(page(&cw, url, ct).await, repo_page(file).unwrap(), "{url}");
    }
    let missing = reqwest::get(cw.url("/nope.html")).await.unwrap();
    assert_eq!(missing.status(), 404);
    drop(cw);

    // public_dir with an edited page: that page from disk, the others built in.
    let edited = tempfile::tempdir().unwrap();
    std::fs::write(edited.path().join("index.html"), "<p>our own wall</p>").unwrap();
    let (dir, path) = write_config(json!({"server": {}, "cameras": []}));
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["server"]["public_dir"] = json!(path_str(edited.path()));
    std::fs::write(&path, cfg.to_string()).unwrap();
    let cw = start_with_config_file(dir, path);
    assert_eq!(page(&cw, "/", html).await, "<p>our own wall</p>");
    assert_eq!(
        page(&cw, "/advanced_test", html).await,
        repo_page("advanced_test.html").unwrap()
    );
}
