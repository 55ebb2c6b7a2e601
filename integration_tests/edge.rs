//! End-to-end tests of the web edge: silent and surplus connections, stalled MJPEG readers,
//! client addresses behind a trusted proxy, cross-site changes (CSRF), the open-access warning,
//! quiet logs for client errors, and the config file's odd shapes (BOM, symlink, crash leftovers).

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A client that keeps no idle connection, so each request opens its own.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

fn addr_of(cw: &Camwall) -> String {
    cw.base.trim_start_matches("http://").to_string()
}

/// Blocks until the server closes `s` (EOF or reset); bounded by `limit`. Returns what it sent.
fn wait_closed(s: &mut std::net::TcpStream, limit: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("the server did not close the connection within {limit:?}")
            }
            Err(_) => return got,
        }
    }
}

#[tokio::test]
async fn silent_connections_are_closed_while_others_are_served() {
    let cw = start_camwall(json!({"server": {"limits": {"header_timeout_ms": 1000}}}));
    let addr = addr_of(&cw);
    let mut silent: Vec<_> = (0..20)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    // Meanwhile the server answers as usual.
    let health = fresh_client().get(cw.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // A kept-alive connection that goes quiet after its answer is closed too.
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    silent.push(idle);
    let closed = tokio::task::spawn_blocking(move || {
        for s in &mut silent {
            // Header deadline plus generous slack for a loaded machine.
            let sent = wait_closed(s, Duration::from_secs(15));
            // Nothing, a 408, or (the kept-alive one) the answer to its one request.
            assert!(
                sent.is_empty()
                    || sent.starts_with(b"HTTP/1.1 408")
                    || sent.starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&sent)
            );
        }
        silent.len()
    })
    .await
    .unwrap();
    assert_eq!(closed, 21);
    assert_eq!(
        fresh_client()
            .get(cw.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn connections_beyond_the_per_address_cap_are_closed_at_once() {
    let cw = start_camwall(json!({
        "server": {"limits": {"header_timeout_ms": 30000, "max_connections_per_ip": 3}}
    }));
    let addr = addr_of(&cw);
    let held: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    let addr2 = addr.clone();
    let refused = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr2).unwrap();
        let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        // Closed long before the 30 s head deadline, with no answer.
        wait_closed(&mut s, Duration::from_secs(15))
    })
    .await
    .unwrap();
    assert!(refused.is_empty(), "{}", String::from_utf8_lossy(&refused));
    drop(held);
    // The slots come back once the server sees the closes (bounded wait).
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = fresh_client().get(cw.url("/health")).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(Instant::now() < end, "the capped address never got back in");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends an MJPEG request over a socket with a tiny receive buffer, reads the answer's first
/// bytes (so the request is known to hold its slot) and never reads again.
async fn stalled_mjpeg_reader(addr: &str, path: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut s = sock.connect(addr.parse().unwrap()).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(15), s.read_exact(&mut head))
        .await
        .expect("an answer")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    s
}

#[tokio::test]
async fn a_stalled_mjpeg_reader_is_dropped_and_its_slot_freed() {
    let cw = start_camwall(json!({
        "server": {"limits": {"max_clients_per_ip": 1}},
        // Noise makes big frames, so the socket buffers fill within a second or two.
        "cameras": [lavfi("a", "testsrc2=size=640x480:rate=15,noise=alls=60:allf=t")]
    }));
    cw.wait_camera("a", Duration::from_secs(20), |c| c["state"] == "streaming")
        .await;
    let path = "/api/ip-cameras/mjpeg/a?quality=95";
    let _stalled = stalled_mjpeg_reader(&addr_of(&cw), path).await;
    // It holds the address's only slot.
    let r = fresh_client().get(cw.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    drop(r);
    // Dropped after the send-stall deadline (20 s): a new client from the same address gets in.
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let r = fresh_client().get(cw.url(path)).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(Instant::now() < end, "the stalled reader was never dropped");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn mjpeg_from(cw: &Camwall, forwarded_for: &str) -> reqwest::Response {
    fresh_client()
        .get(cw.url("/api/ip-cameras/mjpeg/a"))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn behind_a_trusted_proxy_clients_are_counted_by_their_forwarded_address() {
    let camera = lavfi("a", "testsrc2=size=64x48:rate=5");
    let cw = start_camwall(json!({
        "server": {"trusted_proxies": ["127.0.0.1"], "limits": {"max_clients_per_ip": 1}},
        "cameras": [camera]
    }));
    cw.wait_camera("a", Duration::from_secs(20), |c| c["state"] == "streaming")
        .await;
    let one = mjpeg_from(&cw, "10.0.0.1").await;
    let two = mjpeg_from(&cw, "192.0.2.7, 10.0.0.2").await;
    assert_eq!((one.status().as_u16(), two.status().as_u16()), (200, 200));
    // The same forwarded address again is over its cap.
    assert_eq!(mjpeg_from(&cw, "10.0.0.1").await.status(), 503);
    drop((one, two));

    // From a peer that is not a trusted proxy the header is ignored: one address, one slot.
    let untrusted = start_camwall(json!({
        "server": {"trusted_proxies": ["10.9.9.9"], "limits": {"max_clients_per_ip": 1}},
        "cameras": [lavfi("a", "testsrc2=size=64x48:rate=5")]
    }));
    untrusted
        .wait_camera("a", Duration::from_secs(20), |c| c["state"] == "streaming")
        .await;
    let one = mjpeg_from(&untrusted, "10.0.0.1").await;
    assert_eq!(one.status(), 200);
    assert_eq!(mjpeg_from(&untrusted, "10.0.0.2").await.status(), 503);
}

#[tokio::test]
async fn cross_site_changes_are_refused_and_bodies_must_be_json() {
    let cw = start_camwall(json!({"cameras": [lavfi("a", "testsrc2=size=64x48:rate=5")]}));
    let before = std::fs::read(&cw.config_path).unwrap();
    let c = fresh_client();
    let api = cw.url("/api/ip-cameras");
    let cam = json!({"id": "b", "url": "lavfi:testsrc2=size=64x48:rate=5"}).to_string();
    let err = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap()["error"].clone())
    };
    // A form-like cross-site POST (text/plain needs no preflight).
    let r = c
        .post(&api)
        .header("origin", "http://evil.example")
        .header("content-type", "text/plain")
        .body(cam.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(err(r).await, (403, json!("bad_origin")));
    let r = c
        .post(&api)
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "application/json")
        .body(cam.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(err(r).await, (403, json!("bad_origin")));
    // Same origin but not declared JSON.
    let r = c
        .post(&api)
        .header("content-type", "text/plain")
        .body(cam.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(err(r).await, (415, json!("unsupported_media_type")));
    let r = c
        .patch(cw.url("/api/ip-cameras/a"))
        .body(r#"{"enabled": false}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(err(r).await, (415, json!("unsupported_media_type")));
    let r = c
        .post(cw.url("/api/ip-cameras/initialize"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(err(r).await, (403, json!("bad_origin")));
    let r = c
        .delete(cw.url("/api/ip-cameras/a"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(err(r).await, (403, json!("bad_origin")));
    // A body over 64 KiB on the one route that takes it: 413, not another route's 405.
    let r = c
        .post(&api)
        .header("content-type", "application/json")
        .body(format!(r#"{{"id":"c","url":"{}"}}"#, "x".repeat(70 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(err(r).await, (413, json!("too_large")));
    // Nothing was changed.
    assert_eq!(std::fs::read(&cw.config_path).unwrap(), before);
    let ids: Vec<Value> = cw.status().await["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, [json!("a")]);
    // camwall's own page (same origin), with JSON: accepted.
    let r = c
        .post(&api)
        .header("origin", &cw.base)
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"id": "b", "url": "lavfi:testsrc2=size=64x48:rate=5"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_ne!(std::fs::read(&cw.config_path).unwrap(), before);
}

/// camwall started with `--listen 0.0.0.0:0`: (child, base URL over 127.0.0.1, stderr file).
struct OpenCamwall {
    child: std::process::Child,
    base: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for OpenCamwall {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_on_any_address(config: Value) -> OpenCamwall {
    use std::io::BufRead;
    let (dir, config_path) = write_config(config);
    let log = dir.path().join("stderr.log");
    let mut child = std::process::Command::new(camwall_bin())
        .arg("--config")
        .arg(&config_path)
        .arg("--listen")
        .arg("0.0.0.0:0")
        .env("CAMWALL_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("camwall exited before listening")
            .unwrap();
        if let Some(url) = line.trim().strip_prefix("camwall listening on http://") {
            break url.rsplit_once(':').unwrap().1.to_string();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    OpenCamwall {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
        _dir: dir,
    }
}

#[tokio::test]
async fn an_open_listen_address_is_warned_about_and_shown_by_health() {
    let open = start_on_any_address(json!({}));
    let h: Value = reqwest::get(format!("{}/health", open.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["open_access"], true);
    let log = std::fs::read_to_string(&open.log).unwrap();
    let warned = log
        .lines()
        .any(|l| l.contains("WARN") && l.contains("no token or user configured"));
    assert!(warned, "{log}");

    // With a token on the same address: not open, no warning.
    let tokened = start_on_any_address(json!({
        "server": {"auth": {"admin_tokens": ["admin-token-0123456789ab"]}}
    }));
    let h: Value = reqwest::get(format!("{}/health", tokened.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["open_access"], false);
    let log = std::fs::read_to_string(&tokened.log).unwrap();
    assert!(!log.contains("no token or user configured"), "{log}");

    // On the loopback: not open.
    let lo = start_camwall(json!({}));
    let h: Value = reqwest::get(lo.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["open_access"], false);
    assert!(!lo.logs().contains("no token or user configured"));
}

#[tokio::test]
async fn client_errors_leave_no_error_line_and_long_polls_beyond_the_cap_get_503() {
    // A camera stuck connecting never has a frame: long-polls wait their whole wait_ms.
    let (_listener, port) = silent_listener();
    let cw = start_camwall(json!({
        "server": {"limits": {"max_mjpeg_clients": 2}},
        "cameras": [{"id": "off", "url": format!("http://127.0.0.1:{port}/x"), "open_timeout_ms": 600000}]
    }));
    let c = fresh_client();
    let polls: Vec<_> = (0..22)
        .map(|_| {
            let req = c
                .get(cw.url("/api/ip-cameras/frame/off?after=x&wait_ms=3000"))
                .send();
            tokio::spawn(async move {
                let r = req.await.unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                (status, body["error"].as_str().unwrap_or("").to_string())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for p in polls {
        answers.push(p.await.unwrap());
    }
    let count = |code: &str| answers.iter().filter(|(_, e)| e == code).count();
    assert!(answers.iter().all(|(s, _)| *s == 503), "{answers:?}");
    // Two held the cap's places until their wait ran out; the other twenty were refused.
    assert_eq!(count("too_many_clients"), 20, "{answers:?}");
    assert_eq!(count("no_frame_yet"), 2, "{answers:?}");
    for _ in 0..20 {
        assert_eq!(get_frame(&cw, "off", "").await.status(), 503);
    }
    assert_eq!(get_frame(&cw, "nope", "").await.status(), 404);
    // The answers are logged (debug) before the next request is read; a last request makes
    // sure the log has caught up.
    assert_eq!(c.get(cw.url("/health")).send().await.unwrap().status(), 200);
    cw.wait_log("request answered with an error", Duration::from_secs(5))
        .await;
    let logs = cw.logs();
    assert!(
        !logs.lines().any(|l| l.contains("ERROR")),
        "ERROR lines:\n{}",
        logs.lines()
            .filter(|l| l.contains("ERROR"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !logs.contains('\x1b'),
        "colour codes in a log that is not a terminal"
    );
}

#[tokio::test]
async fn a_symlinked_config_with_a_bom_and_crash_leftovers_is_handled() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let target = real.join("cameras.json");
    let config = json!({
        "server": {"public_dir": path_str(&repo_root().join("public")), "allow_local_sources": true},
        "cameras": [lavfi("a", "testsrc2=size=64x48:rate=5")]
    });
    let text = format!("\u{feff}{}", serde_json::to_string_pretty(&config).unwrap());
    std::fs::write(&target, text).unwrap();
    // What a crash in the middle of a write leaves (no process has this id).
    let stale = real.join(".cameras.json.tmp-99999999");
    let stale_bak = real.join(".cameras.json.bak.tmp-99999999");
    std::fs::write(&stale, "half").unwrap();
    std::fs::write(&stale_bak, "half").unwrap();
    let link = dir.path().join("cameras.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let cw = start_with_config_file(dir, link.clone());
    assert_eq!(cw.status().await["cameras"].as_array().unwrap().len(), 1);
    assert!(
        !stale.exists() && !stale_bak.exists(),
        "crash leftovers remain"
    );
    let r = fresh_client()
        .post(cw.url("/api/ip-cameras"))
        .json(&json!({"id": "b", "url": "lavfi:testsrc2=size=64x48:rate=5"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert_eq!(written["cameras"].as_array().unwrap().len(), 2);
    assert!(real.join("cameras.json.bak").exists());
}
