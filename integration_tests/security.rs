//! End-to-end tests of access control: tokens and roles, WebSocket origins, client caps,
//! static files that cannot escape `public/`, and credentials that never show.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const VIEWER: &str = "viewer-token-0123456789";
const ADMIN: &str = "admin-token-0123456789ab";

async fn ws_status(cw: &Camwall, query: &str, origin: Option<&str>) -> Result<(), u16> {
    let url = cw.base.replace("http://", "ws://") + "/ws" + query;
    let mut req = url.into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn tokens_gate_viewers_and_admins() {
    let cw = start_camwall(json!({
        "server": {"auth": {"viewer_tokens": [VIEWER], "admin_tokens": [ADMIN]}},
        "cameras": [lavfi("a", "testsrc2=size=160x120:rate=5")]
    }));
    let c = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut r = c.get(cw.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    // Open: health and the pages (they hold no data; the data needs a token).
    assert_eq!(get("/health", None).await.unwrap().status(), 200);
    assert_eq!(get("/", None).await.unwrap().status(), 200);
    // Viewer paths.
    let r = get("/api/ip-cameras/status", None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized");
    assert_eq!(
        get("/api/ip-cameras/status", Some("wrong-token-0123456789"))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        get("/api/ip-cameras/status", Some(VIEWER))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get("/api/ip-cameras/status", Some(ADMIN))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get(&format!("/api/ip-cameras/status?token={VIEWER}"), None)
            .await
            .unwrap()
            .status(),
        200
    );
    let s = get(&format!("/api/ip-cameras/status?token={VIEWER}"), None)
        .await
        .unwrap();
    assert_eq!(s.status(), 200);
    // Admin paths: a viewer is refused with 403, an admin passes.
    let r = c
        .post(cw.url("/api/ip-cameras/initialize"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "forbidden");
    let r = c
        .post(cw.url("/api/ip-cameras/initialize"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = lavfi("b", "testsrc2=size=64x48:rate=2");
    assert_eq!(
        c.post(cw.url("/api/ip-cameras"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.post(cw.url("/api/ip-cameras"))
            .bearer_auth(VIEWER)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        c.post(cw.url("/api/ip-cameras"))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    // Streams take the token in the query, as <img> and WebSocket must.
    cw.wait_camera_with_token("a", VIEWER).await;
    assert_eq!(
        get("/api/ip-cameras/frame/a", None).await.unwrap().status(),
        401
    );
    assert_eq!(
        get(&format!("/api/ip-cameras/frame/a?token={VIEWER}"), None)
            .await
            .unwrap()
            .status(),
        200
    );
    let r = get(&format!("/api/ip-cameras/mjpeg/a?token={VIEWER}"), None)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(r);
    assert_eq!(ws_status(&cw, "", None).await, Err(401));
    assert_eq!(
        ws_status(&cw, &format!("?token={VIEWER}"), None).await,
        Ok(())
    );
    // Tokens never reach the logs. Logging is asynchronous: wait for the line that ends the
    // last request (the WebSocket above), so the log holds everything it could leak.
    cw.wait_log("disconnected", Duration::from_secs(5)).await;
    let logs = cw.logs();
    assert!(
        !logs.contains(VIEWER) && !logs.contains(ADMIN),
        "token in logs"
    );
}

#[tokio::test]
async fn websocket_origins_and_client_caps() {
    let cw = start_camwall(json!({
        "server": {
            "allowed_origins": ["https://dash.example"],
            "limits": {"max_ws_clients": 2, "max_mjpeg_clients": 1}
        },
        "cameras": [lavfi("a", "testsrc2=size=160x120:rate=5")]
    }));
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    let own = cw.base.clone();
    assert_eq!(
        ws_status(&cw, "", Some("http://evil.example")).await,
        Err(403)
    );
    assert_eq!(ws_status(&cw, "", Some("null")).await, Err(403));
    assert_eq!(ws_status(&cw, "", Some(&own)).await, Ok(()));
    assert_eq!(
        ws_status(&cw, "", Some("https://dash.example")).await,
        Ok(())
    );
    // The probes above closed their sockets; the server gives their slots back when it sees
    // the close. Wait for that before counting.
    cw.wait_ws_clients(0).await;
    // Caps: two WebSocket clients at once, the third is refused, then admitted once one leaves.
    let first = ws_connect(&cw).await;
    let _second = ws_connect(&cw).await;
    assert_eq!(ws_status(&cw, "", None).await, Err(503));
    drop(first);
    cw.wait_ws_clients(1).await;
    assert_eq!(
        ws_status(&cw, "", None).await,
        Ok(()),
        "a freed slot was given back"
    );
    // One MJPEG client: the second gets a JSON 503 and the first keeps streaming.
    let mut one = reqwest::get(cw.url("/api/ip-cameras/mjpeg/a"))
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let two = reqwest::get(cw.url("/api/ip-cameras/mjpeg/a"))
        .await
        .unwrap();
    assert_eq!(two.status(), 503);
    assert!(two.headers().contains_key("retry-after"));
    assert_eq!(
        two.json::<Value>().await.unwrap()["error"],
        "too_many_clients"
    );
    assert!(one.chunk().await.unwrap().is_some());
    // Snapshots are not capped.
    assert_eq!(get_frame(&cw, "a", "").await.status(), 200);
}

#[tokio::test]
async fn static_files_never_escape_public() {
    let cw = start_camwall(json!({"server": {}, "cameras": []}));
    let c = reqwest::Client::new();
    assert_eq!(c.get(cw.url("/")).send().await.unwrap().status(), 200);
    assert_eq!(
        c.get(cw.url("/advanced_test"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(cw.url("/wall.js")).send().await.unwrap().headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    // reqwest normalizes "..": send raw requests so the server sees them as written.
    let addr = cw.base.trim_start_matches("http://").to_string();
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2E%2E%2FCargo.toml",
        "/..%2f..%2fetc%2fpasswd",
        "/public/../../Cargo.toml",
        "/.%2e/config/cameras.json",
        "/..\\Cargo.toml",
    ] {
        let raw = raw_get(&addr, path);
        assert!(
            raw.starts_with("HTTP/1.1 404") || raw.starts_with("HTTP/1.1 400"),
            "{path}: {raw}"
        );
        assert!(
            !raw.contains("[package]") && !raw.contains("root:"),
            "{path} leaked a file"
        );
    }
}

fn raw_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may answer and close before a huge request is fully written.
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn slowloris_is_cut_and_huge_requests_are_refused_without_harm() {
    let cw = start_camwall(json!({
        "server": {"limits": {"header_timeout_ms": 1000}},
        "cameras": [lavfi("a", "testsrc2=size=64x48:rate=5")]
    }));
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    let addr = cw.base.trim_start_matches("http://").to_string();
    // Headers a byte at a time, forever: the server hangs up once the header deadline passes.
    let slow = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let t0 = std::time::Instant::now();
            let head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            for b in head.iter().cycle().take(60) {
                if s.write_all(&[*b]).is_err() {
                    return Some(t0.elapsed());
                }
                // The slow client under test: a byte every 100 ms.
                std::thread::sleep(Duration::from_millis(100));
            }
            None
        })
    };
    // Meanwhile others are served as usual, spread over the slow client's first second.
    for _ in 0..5 {
        assert_eq!(reqwest::get(cw.url("/health")).await.unwrap().status(), 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cut = tokio::task::spawn_blocking(move || slow.join().unwrap())
        .await
        .unwrap();
    let cut = cut.expect("the slow client was never cut off");
    assert!(cut < Duration::from_secs(5), "cut after {cut:?}");
    // A 1 MB query string is refused; a 20 KB one is just ignored; nothing else is disturbed.
    let huge = raw_get(
        &addr,
        &format!("/api/ip-cameras/frame/a?x={}", "y".repeat(1 << 20)),
    );
    assert!(
        !huge.starts_with("HTTP/1.1 200"),
        "{}",
        &huge[..huge.len().min(100)]
    );
    let big = raw_get(
        &addr,
        &format!("/api/ip-cameras/frame/a?x={}", "y".repeat(20_000)),
    );
    assert!(
        big.starts_with("HTTP/1.1 200"),
        "{}",
        &big[..big.len().min(100)]
    );
    assert_eq!(get_frame(&cw, "a", "").await.status(), 200);
}

/// nginx from Debian in front of camwall, configured as the README says.
struct Nginx {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nginx(upstream: &str) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let port = free_port();
    let conf = format!(
        "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass {upstream};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection \"upgrade\";
      proxy_set_header Host $http_host;
      proxy_buffering off;
      proxy_read_timeout 1h;
    }}
  }}
}}
"
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = std::process::Command::new("/usr/sbin/nginx")
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start /usr/sbin/nginx (Debian package nginx)");
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        && std::time::Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx {
        child,
        port,
        _dir: dir,
    }
}

#[tokio::test]
async fn behind_nginx_the_pages_websocket_and_streams_work() {
    let cw = start_camwall(
        json!({"server": {}, "cameras": [lavfi("a", "testsrc2=size=160x120:rate=10")]}),
    );
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    let nginx = start_nginx(&cw.base);
    let front = format!("http://127.0.0.1:{}", nginx.port);
    assert_eq!(
        reqwest::get(format!("{front}/")).await.unwrap().status(),
        200
    );
    let r = reqwest::get(format!("{front}/api/ip-cameras/frame/a"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(decode_rgb(&r.bytes().await.unwrap()).0, 160);
    // WebSocket through the proxy, from a page on the proxy's origin.
    let mut req = format!("ws://127.0.0.1:{}/ws", nginx.port)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("origin", front.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("WebSocket through nginx");
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": ["a"], "quality": 70}),
    )
    .await;
    let mut texts = Vec::new();
    let mut seqs = Vec::new();
    for _ in 0..5 {
        seqs.push(
            next_frame(&mut ws, &mut texts, Duration::from_secs(5))
                .await
                .expect("frame via nginx")
                .seq(),
        );
    }
    assert!(seqs.windows(2).all(|w| w[1] > w[0]));
    // MJPEG arrives frame by frame, not buffered by the proxy.
    let mut r = reqwest::get(format!("{front}/api/ip-cameras/mjpeg/a"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut boundaries = 0;
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    while boundaries < 3 {
        let chunk = tokio::time::timeout_at(end, r.chunk())
            .await
            .expect("MJPEG via nginx")
            .unwrap()
            .unwrap();
        boundaries += chunk.windows(14).filter(|w| w == b"--camwallframe").count();
    }
}

#[tokio::test]
async fn credentials_never_appear_in_any_output() {
    const SECRET: &str = "Sup3rSecretPw";
    let closed = free_port();
    let url = format!("rtsp://admin:{SECRET}@127.0.0.1:{closed}/stream");
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "cam", "url": url, "options": {"rtsp_transport": "tcp"}},
        {"id": "http", "url": format!("http://127.0.0.1:{closed}/video.cgi?user=admin&pwd={SECRET}")}
    ]}));
    cw.wait_camera("cam", Duration::from_secs(15), |c| c["state"] == "backoff")
        .await;
    cw.wait_camera("http", Duration::from_secs(15), |c| c["state"] == "backoff")
        .await;
    let c = reqwest::Client::new();
    let mut outputs = Vec::new();
    for path in [
        "/health",
        "/metrics",
        "/api/ip-cameras/status",
        "/api/ip-cameras",
        "/api/ip-cameras/cam",
        "/api/ip-cameras/http",
        "/api/ip-cameras/frame/cam",
    ] {
        outputs.push((
            path.to_string(),
            c.get(cw.url(path))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        ));
    }
    outputs.push((
        "initialize".into(),
        c.post(cw.url("/api/ip-cameras/initialize"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    ));
    outputs.push((
        "patch".into(),
        c.patch(cw.url("/api/ip-cameras/cam"))
            .json(&json!({"name": "Door"}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    ));
    let bad = json!({"url": format!("rtsp://admin:{SECRET}@host/\u{7}")});
    outputs.push((
        "bad patch".into(),
        c.patch(cw.url("/api/ip-cameras/cam"))
            .json(&bad)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    ));
    let mut ws = ws_connect(&cw).await;
    ws_send(&mut ws, json!({"type": "subscribe", "cameras": ["*"]})).await;
    let mut texts = Vec::new();
    let _ = next_frame(&mut ws, &mut texts, Duration::from_secs(2)).await;
    outputs.push(("websocket".into(), format!("{texts:?}")));
    let check = check_config(&cw.config_path);
    outputs.push((
        "check-config".into(),
        String::from_utf8_lossy(&check.stdout).into_owned(),
    ));
    // Logging is asynchronous: the WebSocket's closing line is the last the requests above
    // cause, so once it is there the log holds everything they could leak.
    let closed_before = cw.logs().matches("disconnected").count();
    drop(ws);
    cw.wait_log_count("disconnected", closed_before + 1, Duration::from_secs(5))
        .await;
    outputs.push(("logs".into(), cw.logs()));
    for (what, text) in &outputs {
        assert!(
            !text.contains(SECRET),
            "{what} shows the credential:\n{text}"
        );
    }
    // The redacted URLs are there, so the grep looked at the right text.
    let all: String = outputs.iter().map(|(_, t)| t.as_str()).collect();
    assert!(all.contains("rtsp://***@127.0.0.1"));
    assert!(all.contains("pwd=***"));
}
