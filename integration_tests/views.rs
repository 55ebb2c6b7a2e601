//! End-to-end tests of `/api/views` (the wall's named sets of cameras, kept in the config file)
//! and `POST /api/ip-cameras/probe` (testing a camera before saving it), against the real
//! binary with real sources.

mod common;

use common::*;
use serde_json::{json, Value};

const VIEWER: &str = "viewer-token-0123456789";
const ADMIN: &str = "admin-token-0123456789ab";

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn send(
    cw: &Camwall,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = client().request(method.parse().unwrap(), cw.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let res = r.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn with_tokens(cameras: Value, views: Value) -> Value {
    json!({
        "server": {"auth": {"viewer_tokens": [VIEWER], "admin_tokens": [ADMIN]}},
        "cameras": cameras,
        "views": views,
    })
}

fn three_cameras() -> Value {
    json!([
        lavfi("a", "testsrc2=size=160x120:rate=5"),
        lavfi("b", "testsrc2=size=160x120:rate=5"),
        lavfi("c", "testsrc2=size=160x120:rate=5"),
    ])
}

#[tokio::test]
async fn views_are_listed_for_viewers_and_changed_by_admins_in_the_file() {
    let cw = start_camwall(with_tokens(
        three_cameras(),
        json!([{"id": "front", "name": "Front", "cameras": ["b", "a"], "columns": 2}]),
    ));
    // Viewers read them; no token is refused.
    let (s, body) = send(&cw, "GET", "/api/views", Some(VIEWER), None).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["views"],
        json!([{"id": "front", "name": "Front", "cameras": ["b", "a"], "columns": 2}])
    );
    assert_eq!(send(&cw, "GET", "/api/views", None, None).await.0, 401);
    // Changes take the admin token.
    let good = json!({"id": "yard", "cameras": ["c", "a"], "layout": "1+5"});
    assert_eq!(
        send(&cw, "POST", "/api/views", None, Some(good.clone()))
            .await
            .0,
        401
    );
    let (s, body) = send(&cw, "POST", "/api/views", Some(VIEWER), Some(good.clone())).await;
    assert_eq!((s, body["error"].as_str()), (403, Some("forbidden")));
    // Validation errors name the field.
    for (bad, field) in [
        (json!({"id": "x", "cameras": ["a", "nope"]}), "cameras[1]"),
        (json!({"id": "x", "cameras": ["a", "a"]}), "cameras[1]"),
        (json!({"id": "x", "cameras": []}), "cameras"),
        (
            json!({"id": "x", "cameras": ["a"], "columns": 40}),
            "columns",
        ),
        (json!({"id": "x y", "cameras": ["a"]}), "id"),
        (
            json!({"id": "x", "cameras": ["a"], "layout": "3+3"}),
            "layout",
        ),
        (json!({"cameras": ["a"]}), "(body)"),
    ] {
        let (s, body) = send(&cw, "POST", "/api/views", Some(ADMIN), Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad} -> {body}");
        assert_eq!(body["error"], "invalid_view", "{body}");
        assert_eq!(body["field"], field, "{bad} -> {body}");
    }
    let (s, body) = send(&cw, "POST", "/api/views", Some(ADMIN), Some(good.clone())).await;
    assert_eq!(s, 201, "{body}");
    let (s, _) = send(&cw, "POST", "/api/views", Some(ADMIN), Some(good)).await;
    assert_eq!(s, 409);
    let (s, body) = send(
        &cw,
        "PUT",
        "/api/views/front",
        Some(ADMIN),
        Some(json!({"cameras": ["a", "b", "c"]})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (s, _) = send(
        &cw,
        "PUT",
        "/api/views/nope",
        Some(ADMIN),
        Some(json!({"cameras": ["a"]})),
    )
    .await;
    assert_eq!(s, 404);
    // Written to the file, in order, next to the cameras.
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(&cw.config_path).unwrap()).unwrap();
    assert_eq!(
        file["views"],
        json!([
            {"id": "front", "cameras": ["a", "b", "c"]},
            {"id": "yard", "cameras": ["c", "a"], "layout": "1+5"}
        ])
    );
    // A removed camera leaves every view in the same write.
    let (s, _) = send(&cw, "DELETE", "/api/ip-cameras/a", Some(ADMIN), None).await;
    assert_eq!(s, 200);
    let (_, body) = send(&cw, "GET", "/api/views", Some(VIEWER), None).await;
    assert_eq!(body["views"][1]["cameras"], json!(["c"]), "{body}");
    let (s, _) = send(&cw, "DELETE", "/api/views/yard", Some(ADMIN), None).await;
    assert_eq!(s, 200);
    // A hand edit is never overwritten: the next change is refused until a reload.
    let edited = std::fs::read_to_string(&cw.config_path)
        .unwrap()
        .replace("\"front\"", "\"front2\"");
    std::fs::write(&cw.config_path, &edited).unwrap();
    let (s, body) = send(
        &cw,
        "POST",
        "/api/views",
        Some(ADMIN),
        Some(json!({"id": "z", "cameras": ["b"]})),
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (409, Some("config_changed_on_disk"))
    );
    assert_eq!(std::fs::read_to_string(&cw.config_path).unwrap(), edited);
    // After SIGHUP the edit is read, and the views follow it.
    signal(cw.pid(), "HUP");
    cw.wait_log("config reloaded", std::time::Duration::from_secs(10))
        .await;
    let (_, body) = send(&cw, "GET", "/api/views", Some(VIEWER), None).await;
    assert_eq!(body["views"][0]["id"], "front2", "{body}");
}

#[tokio::test]
async fn a_bad_view_in_the_file_is_named_with_its_field() {
    let (_dir, path) = write_config(json!({"server": {}, "cameras": [lavfi("a", "testsrc2")],
        "views": [{"id": "v", "cameras": ["a", "ghost"]}]}));
    let out = check_config(&path);
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("views[0].cameras[1]") && text.contains("ghost"),
        "{text}"
    );
}

#[tokio::test]
async fn the_probe_reports_a_source_or_why_not_and_never_echoes_credentials() {
    let cw = start_camwall(with_tokens(json!([]), json!([])));
    let probe = |body: Value, token: Option<&'static str>| {
        let cw = &cw;
        async move { send(cw, "POST", "/api/ip-cameras/probe", token, Some(body)).await }
    };
    // A lavfi source: codec, size, a snapshot; its sub stream too.
    let (s, body) = probe(
        json!({"id": "new", "url": "lavfi:testsrc2=size=320x240:rate=10",
               "sub": {"url": "lavfi:testsrc=size=160x120:rate=5"}}),
        Some(ADMIN),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        (body["width"].as_u64(), body["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert_eq!(body["audio"], false);
    assert!(body["codec"].is_string(), "{body}");
    let snap = body["snapshot"].as_str().unwrap();
    let b64 = snap
        .strip_prefix("data:image/jpeg;base64,")
        .expect("a JPEG data URL");
    use base64::Engine;
    let jpeg = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let (w, h, _) = decode_rgb(&jpeg);
    assert_eq!((w, h), (320, 240));
    assert_eq!(
        (
            body["sub"]["width"].as_u64(),
            body["sub"]["height"].as_u64()
        ),
        (Some(160), Some(120)),
        "{body}"
    );
    // Nothing was added.
    let (_, cams) = send(&cw, "GET", "/api/ip-cameras", Some(VIEWER), None).await;
    assert_eq!(cams["cameras"], json!([]));
    // Unreachable RTSP (a closed port): a plain cause, next to the URL, no password.
    let (_l, port) = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        drop(l);
        ((), p)
    };
    let (s, body) = probe(
        json!({"url": format!("rtsp://user:hunter2secret@127.0.0.1:{port}/cam"), "open_timeout_ms": 3000}),
        Some(ADMIN),
    )
    .await;
    assert_eq!(s, 502, "{body}");
    assert_eq!(body["error"], "probe_unreachable", "{body}");
    assert_eq!(body["field"], "url");
    assert!(!body.to_string().contains("hunter2secret"), "{body}");
    // At most two probes at once: two of a server that accepts and never answers hold both
    // places for their open timeout, and a third meanwhile gets 503 too_many_probes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let slow = json!({"url": format!("rtsp://127.0.0.1:{}/cam", silent.local_addr().unwrap().port()),
                      "open_timeout_ms": 3000});
    let ((s1, _), (s2, _), (s3, third)) = tokio::join!(
        probe(slow.clone(), Some(ADMIN)),
        probe(slow.clone(), Some(ADMIN)),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(700)).await;
            probe(json!({"url": "lavfi:testsrc2"}), Some(ADMIN)).await
        }
    );
    assert_eq!((s1, s2), (502, 502), "the silent server's probes time out");
    assert_eq!(s3, 503, "{third}");
    assert_eq!(third["error"], "too_many_probes", "{third}");
    drop(silent);
    // A bad body is a 400 naming the field; a viewer may not probe at all.
    let (s, body) = probe(json!({"id": "x"}), Some(ADMIN)).await;
    assert_eq!(s, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("url"), "{body}");
    let (s, body) = probe(json!({"url": "lavfi:testsrc2", "max_fps": -1}), Some(ADMIN)).await;
    assert_eq!(
        (s, body["field"].as_str()),
        (400, Some("max_fps")),
        "{body}"
    );
    let (s, _) = probe(json!({"url": "lavfi:testsrc2"}), Some(VIEWER)).await;
    assert_eq!(s, 403);
    // Like every change, from another site it is refused.
    let res = client()
        .post(cw.url("/api/ip-cameras/probe"))
        .bearer_auth(ADMIN)
        .header("Origin", "https://evil.example")
        .json(&json!({"url": "lavfi:testsrc2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}
