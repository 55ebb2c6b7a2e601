//! End-to-end tests of credentials and hostile pages (issue 23) against the real binary: a
//! camera edited through the API keeps its secrets, no secret shows in any output, the `Host`
//! check against DNS rebinding, bounded plain names, deduplicated subscriptions, and probe
//! answers that tell nothing of the target.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// One raw HTTP/1.1 request with the headers as written (`Host` included) and the answer: the
/// whole of it, or only its head for a `101` (the connection then stays open).
fn raw(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if got.starts_with(b"HTTP/1.1 101") && find_bytes(&got, b"\r\n\r\n").is_some() {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

fn json_of(answer: &str) -> Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer:?}"))
}

/// A WebSocket upgrade request's headers, with `host` and `origin`.
fn upgrade_headers<'a>(host: &'a str, origin: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("Host", host),
        ("Origin", origin),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ]
}

/// An HTTP server that answers every request `404 Not Found` and keeps the request heads.
fn not_found_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let kept = heads.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while find_bytes(&got, b"\r\n\r\n").is_none() {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            kept.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&got).into_owned());
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (port, heads)
}

fn file_camera(cw: &Camwall, id: &str) -> Value {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&cw.config_path).unwrap()).unwrap();
    doc["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no camera {id} in the file: {doc}"))
}

#[tokio::test]
async fn an_edit_sent_back_as_shown_keeps_every_secret_and_the_camera_still_opens() {
    const RTSP_PW: &str = "Rtsp-Pw-4242";
    const SRT_PASS: &str = "SrtPassphrase99";
    const SUB_OPT: &str = "SubOptionSecret7";
    let rtsp = RtspServer::start(&[
        "--size",
        "160x120",
        "--fps",
        "10",
        "--user",
        "viewer",
        "--password",
        RTSP_PW,
    ]);
    let closed = free_port();
    let url = format!("rtsp://viewer:{RTSP_PW}@127.0.0.1:{}/cam", rtsp.port);
    let sub_url = format!("srt://127.0.0.1:{closed}?mode=caller&passphrase={SRT_PASS}");
    let cw = start_camwall(json!({"server": {}, "cameras": [{
        "id": "sec", "url": url, "options": {"rtsp_transport": "tcp"},
        "sub": {"url": sub_url, "options": {"passphrase": SUB_OPT}}
    }]}));
    cw.wait_camera("sec", Duration::from_secs(20), |c| {
        c["state"] == "streaming"
    })
    .await;
    let c = reqwest::Client::new();
    let shown: Value = c
        .get(cw.url("/api/ip-cameras/sec"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = shown.to_string();
    for secret in [RTSP_PW, SRT_PASS, SUB_OPT] {
        assert!(!text.contains(secret), "{text}");
    }
    // Sent back as shown, with a new name and a change that reopens the source.
    let mut body = shown.clone();
    body["name"] = json!("Back door");
    body["max_fps"] = json!(5);
    let r = c
        .put(cw.url("/api/ip-cameras/sec"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let stored = file_camera(&cw, "sec");
    assert_eq!(stored["url"], url.as_str());
    assert_eq!(stored["sub"]["url"], sub_url.as_str());
    assert_eq!(stored["sub"]["options"]["passphrase"], SUB_OPT);
    assert_eq!(stored["name"], "Back door");
    // The source reopened with the stored password: a second session streams.
    cw.wait_log_count("source opened", 2, Duration::from_secs(20))
        .await;
    cw.wait_camera("sec", Duration::from_secs(20), |c| {
        c["state"] == "streaming" && c["name"] == "Back door"
    })
    .await;

    // A mask that no longer matches the stored URL (another port) is refused, nothing written.
    let mut moved = shown.clone();
    moved["url"] = json!(shown["url"]
        .as_str()
        .unwrap()
        .replace(&rtsp.port.to_string(), &closed.to_string()));
    let r = c
        .put(cw.url("/api/ip-cameras/sec"))
        .json(&moved)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "url");
    assert_eq!(file_camera(&cw, "sec")["url"], url.as_str());

    // A new password replaces the stored one (and the camera now says it is refused).
    let wrong = format!("rtsp://viewer:Wrong-Pw-1@127.0.0.1:{}/cam", rtsp.port);
    let r = c
        .patch(cw.url("/api/ip-cameras/sec"))
        .json(&json!({"url": wrong}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(file_camera(&cw, "sec")["url"], wrong.as_str());
    cw.wait_camera("sec", Duration::from_secs(20), |c| {
        c["state"] == "unauthorized"
    })
    .await;
}

#[tokio::test]
async fn no_secret_shows_in_any_output() {
    let secrets = [
        "UserInfoSecret1",
        "SrtPassSecret2",
        "TokenSecret3",
        "HeaderSecret4",
        "ProbeSecret5",
        "ProbeHeaderSecret6",
    ];
    let closed = free_port();
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "ui", "url": format!("rtsp://admin:{}@127.0.0.1:{closed}/x#@evil", secrets[0])},
        {"id": "srt", "url": format!("srt://127.0.0.1:{closed}?mode=caller&passphrase={}", secrets[1])},
        {"id": "tok", "url": format!("http://127.0.0.1:{closed}/video.mjpg?token={}", secrets[2])},
        {"id": "hdr", "url": format!("http://127.0.0.1:{closed}/video.mjpg"),
         "options": {"headers": format!("Authorization: Basic {}\r\n", secrets[3])}}
    ]}));
    for id in ["ui", "srt", "tok", "hdr"] {
        cw.wait_camera(id, Duration::from_secs(20), |c| c["state"] == "backoff")
            .await;
    }
    let c = reqwest::Client::new();
    let mut outputs = Vec::new();
    for path in [
        "/api/ip-cameras",
        "/api/ip-cameras/ui",
        "/api/ip-cameras/srt",
        "/api/ip-cameras/tok",
        "/api/ip-cameras/hdr",
        "/api/ip-cameras/status",
        "/metrics",
    ] {
        let text = c.get(cw.url(path)).send().await.unwrap().text().await;
        outputs.push((path.to_string(), text.unwrap()));
    }
    let init = c.post(cw.url("/api/ip-cameras/initialize")).send().await;
    outputs.push(("initialize".into(), init.unwrap().text().await.unwrap()));
    let probe = json!({
        "url": format!("http://127.0.0.1:{closed}/x?token={}", secrets[4]),
        "options": {"headers": format!("Authorization: Basic {}\r\n", secrets[5])},
        "open_timeout_ms": 2000
    });
    let r = c
        .post(cw.url("/api/ip-cameras/probe"))
        .json(&probe)
        .send()
        .await
        .unwrap();
    outputs.push(("probe".into(), r.text().await.unwrap()));
    let mut ws = ws_connect(&cw).await;
    ws_send(&mut ws, json!({"type": "subscribe", "cameras": ["*"]})).await;
    ws_send(&mut ws, json!({"type": "ping", "t0": 1})).await;
    let events = std::cell::RefCell::new(Vec::new());
    let pong = next_text(&mut ws, Duration::from_secs(10), |t| {
        events.borrow_mut().push(t.clone());
        t["type"] == "pong"
    })
    .await;
    let events = events.into_inner();
    assert!(pong.is_some(), "no pong: {events:?}");
    outputs.push(("websocket".into(), format!("{events:?}")));
    // Logging is asynchronous: the WebSocket's closing line is the last the requests above
    // cause, so once it is there the log holds everything they could leak.
    let closed_before = cw.logs().matches("disconnected").count();
    drop(ws);
    cw.wait_log_count("disconnected", closed_before + 1, Duration::from_secs(5))
        .await;
    outputs.push(("logs".into(), cw.logs()));
    for (what, text) in &outputs {
        for s in secrets {
            assert!(!text.contains(s), "{what} shows {s}:\n{text}");
        }
        assert!(
            !text.contains("@evil"),
            "{what} shows a made-up host:\n{text}"
        );
    }
    // The redacted forms are there, so the search looked at the right text.
    let all: String = outputs.iter().map(|(_, t)| t.as_str()).collect();
    for shown in [
        format!("rtsp://***@127.0.0.1:{closed}/x#***"),
        "passphrase=***".into(),
        "token=***".into(),
        format!("camera starting url=srt://127.0.0.1:{closed}?mode=caller&passphrase=***"),
    ] {
        assert!(all.contains(&shown), "{shown} not found");
    }
    let hdr: Value = serde_json::from_str(&outputs[4].1).unwrap();
    assert_eq!(hdr["options"]["headers"], "***");
}

/// A JSON request's headers, with `host` and `origin` (as a rebinding page's would match).
fn json_headers<'a>(host: &'a str, origin: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("Host", host),
        ("Origin", origin),
        ("Content-Type", "application/json"),
    ]
}

#[tokio::test]
async fn the_host_header_guards_every_route_against_dns_rebinding() {
    let cw =
        start_camwall(json!({"server": {}, "cameras": [lavfi("a", "testsrc2=size=64x48:rate=5")]}));
    let addr = cw.base.trim_start_matches("http://").to_string();
    let port = addr.rsplit(':').next().unwrap().to_string();
    let evil = format!("evil.example:{port}");
    let evil_origin = format!("http://{evil}");
    let view = r#"{"id": "v1", "cameras": ["a"]}"#;
    // A write, a probe, MJPEG, a snapshot and a page for another name: 421, naming the setting.
    for (method, path, body) in [
        ("POST", "/api/views", view),
        (
            "POST",
            "/api/ip-cameras/probe",
            r#"{"url": "rtsp://10.0.0.1/x"}"#,
        ),
        ("GET", "/api/ip-cameras/mjpeg/a", ""),
        ("GET", "/api/ip-cameras/frame/a", ""),
        ("GET", "/", ""),
    ] {
        let answer = raw(
            &addr,
            method,
            path,
            &json_headers(&evil, &evil_origin),
            body,
        );
        assert_eq!(status_of(&answer), 421, "{method} {path}: {answer}");
        let e = json_of(&answer);
        assert_eq!(e["error"], "misdirected_host");
        let message = e["message"].as_str().unwrap();
        assert!(message.contains("server.allowed_hosts"), "{e}");
    }
    let answer = raw(
        &addr,
        "GET",
        "/ws",
        &upgrade_headers(&evil, &evil_origin),
        "",
    );
    assert_eq!(status_of(&answer), 421, "{answer}");
    assert!(!std::fs::read_to_string(&cw.config_path)
        .unwrap()
        .contains("\"v1\""));
    // IP literals and localhost, any port, always pass.
    for (i, host) in [addr.clone(), format!("localhost:{port}")]
        .iter()
        .enumerate()
    {
        let origin = format!("http://{host}");
        let body = format!(r#"{{"id": "v{i}x", "cameras": ["a"]}}"#);
        let answer = raw(
            &addr,
            "POST",
            "/api/views",
            &json_headers(host, &origin),
            &body,
        );
        assert_eq!(status_of(&answer), 201, "{host}: {answer}");
        let answer = raw(&addr, "GET", "/ws", &upgrade_headers(host, &origin), "");
        assert_eq!(status_of(&answer), 101, "{host}: {answer}");
    }

    // A listed name works, for writes, the WebSocket and pages alike; others still do not.
    let cw = start_camwall(json!({"server": {"allowed_hosts": ["camwall.test"]},
        "cameras": [lavfi("a", "testsrc2=size=64x48:rate=5")]}));
    let addr = cw.base.trim_start_matches("http://").to_string();
    let port = addr.rsplit(':').next().unwrap().to_string();
    let host = format!("camwall.test:{port}");
    let origin = format!("http://{host}");
    let answer = raw(
        &addr,
        "POST",
        "/api/views",
        &json_headers(&host, &origin),
        view,
    );
    assert_eq!(status_of(&answer), 201, "{answer}");
    let answer = raw(&addr, "GET", "/ws", &upgrade_headers(&host, &origin), "");
    assert_eq!(status_of(&answer), 101, "{answer}");
    let answer = raw(&addr, "GET", "/", &[("Host", host.as_str())], "");
    assert_eq!(status_of(&answer), 200, "{answer}");
    let answer = raw(&addr, "GET", "/", &[("Host", "evil.example")], "");
    assert_eq!(status_of(&answer), 421, "{answer}");
}

#[tokio::test]
async fn names_are_bounded_and_plain_and_a_repeated_id_is_one_subscription() {
    let cw =
        start_camwall(json!({"server": {}, "cameras": [lavfi("a", "testsrc2=size=64x48:rate=5")]}));
    let c = reqwest::Client::new();
    let post_view = |name: String| {
        c.post(cw.url("/api/views"))
            .json(&json!({"id": "v", "name": name, "cameras": ["a"]}))
            .send()
    };
    for bad in ["x".repeat(201), "door\u{202E}gpj".into(), "a\u{0}b".into()] {
        let r = post_view(bad.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "{bad:?}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["field"], "name", "{e}");
    }
    let r = c
        .patch(cw.url("/api/ip-cameras/a"))
        .json(&json!({"name": "evil\u{2066}name"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "name");
    assert_eq!(post_view("é".repeat(200)).await.unwrap().status(), 201);

    // 1000 copies of one id: one subscription, one tier event. The pong answers a message
    // sent after the subscribe, so every event the subscribe caused came before it.
    let mut ws = ws_connect(&cw).await;
    let many = vec!["a"; 1000];
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": many, "quality": 80}),
    )
    .await;
    ws_send(&mut ws, json!({"type": "ping", "t0": 1})).await;
    let seen = std::cell::RefCell::new(Vec::new());
    let pong = next_text(&mut ws, Duration::from_secs(10), |t| {
        seen.borrow_mut().push(t["type"].clone());
        t["type"] == "pong"
    })
    .await;
    let seen = seen.into_inner();
    assert!(pong.is_some(), "{seen:?}");
    let tiers = seen.iter().filter(|t| *t == "tier").count();
    assert_eq!(tiers, 1, "{seen:?}");
}

#[tokio::test]
async fn a_probe_says_not_a_camera_source_and_opens_the_sub_stream_with_its_options() {
    let (port, heads) = not_found_server();
    let cw = start_camwall(json!({"server": {}, "cameras": []}));
    let c = reqwest::Client::new();
    let probe = |body: Value| c.post(cw.url("/api/ip-cameras/probe")).json(&body).send();
    let missing = cw.dir.path().join("no-such-file.mp4");
    let existing = cw.dir.path().join("not-a-video");
    std::fs::write(&existing, "just some text, not a picture\n").unwrap();
    let mut answers = Vec::new();
    for url in [
        format!("http://127.0.0.1:{port}/video.mjpg"),
        path_str(&missing),
        path_str(&existing),
    ] {
        let r = probe(json!({"url": url, "open_timeout_ms": 3000}))
            .await
            .unwrap();
        assert_eq!(r.status(), 502, "{url}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["message"], "not a camera source", "{url}: {e}");
        answers.push(e);
    }
    // A missing file and an existing one (not a video) answer alike.
    assert_eq!(answers[1], answers[2]);
    assert!(!answers[0].to_string().contains("404"));
    // The operator still finds what the target said, at debug level.
    cw.wait_log("404 Not Found", Duration::from_secs(5)).await;

    // The sub stream is opened with its own options (not the main stream's).
    let r = probe(json!({
        "url": "lavfi:testsrc2=size=64x48:rate=5",
        "sub": {"url": format!("http://127.0.0.1:{port}/sub.mjpg"),
                "options": {"headers": "X-Sub-Probe: yes\r\n"}},
        "open_timeout_ms": 3000
    }))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["sub"]["message"], "not a camera source", "{p}");
    let heads = heads.lock().unwrap().clone();
    assert!(
        heads
            .iter()
            .any(|h| h.contains("/sub.mjpg") && h.contains("X-Sub-Probe: yes")),
        "{heads:?}"
    );
}
