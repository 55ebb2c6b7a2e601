//! Users, logins and camera scopes, end to end: the camwall binary with `server.auth.users`
//! (argon2id hashes made by `camwall hash-password`), lavfi cameras `a` and `b`, and clients
//! that log in with reqwest and carry the session cookie to every path (status, lists,
//! snapshots, MJPEG, long-polls, WHEP, replay, metrics, the WebSocket), a scoped token played
//! by the third-party WHEP player, logout and password changes (a hand edit and SIGHUP), the
//! login throttle, and the pages in chromium.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const STAFF_PW: &str = "staff-password-1";
const BOSS_PW: &str = "boss-password-22";
const SCOPED_TOKEN: &str = "scoped-token-for-a-only";
const ADMIN_TOKEN: &str = "admin-token-0123456789";

/// Two small lavfi cameras, a view of both, `staff` (a viewer of `a`), `boss` (an admin),
/// a token scoped to `a` and a plain admin token.
fn start() -> Camwall {
    start_with(json!([
        lavfi("a", "testsrc2=size=160x120:rate=10"),
        lavfi("b", "testsrc2=size=160x120:rate=10")
    ]))
}

/// The same with `cameras`.
fn start_with(cameras: Value) -> Camwall {
    start_camwall(json!({
        "server": {
            "auth": {
                "users": [
                    {"name": "staff", "password_hash": hash_password(STAFF_PW), "role": "viewer", "cameras": ["a"]},
                    {"name": "boss", "password_hash": hash_password(BOSS_PW), "role": "admin"}
                ],
                "viewer_tokens": [{"token": SCOPED_TOKEN, "cameras": ["a"]}],
                "admin_tokens": [ADMIN_TOKEN]
            },
            // The throttle counts by forwarded address in the timing test.
            "trusted_proxies": ["127.0.0.1"]
        },
        "cameras": cameras,
        "views": [{"id": "both", "cameras": ["a", "b"]}]
    }))
}

async fn code_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or_default();
    (status, v["error"].as_str().unwrap_or_default().to_string())
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_limited_to_a_sees_only_a_on_every_path() {
    // H.264 cameras: WHEP plays them.
    let (ra, rb) = (RtspServer::small(None), RtspServer::small(None));
    let cw = start_with(json!([{"id": "a", "url": ra.url()}, {"id": "b", "url": rb.url()}]));
    for id in ["a", "b"] {
        cw.wait_camera_with_token(id, ADMIN_TOKEN).await;
    }
    // Nobody without a session or a token.
    assert_eq!(
        code_of(
            reqwest::get(cw.url("/api/ip-cameras/status"))
                .await
                .unwrap()
        )
        .await,
        (401, "unauthorized".into())
    );
    let (staff, me) = session(&cw, "staff", STAFF_PW).await;
    assert_eq!(
        (&me["user"], &me["role"], &me["cameras"]),
        (&json!("staff"), &json!("viewer"), &json!(["a"]))
    );

    // The status, the camera list and the views name only `a`.
    let status: Value = get_with_cookie(&cw, &staff, "/api/ip-cameras/status")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&status["cameras"]), vec!["a"]);
    let list: Value = get_with_cookie(&cw, &staff, "/api/ip-cameras")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&list["cameras"]), vec!["a"]);
    let views: Value = get_with_cookie(&cw, &staff, "/api/views")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(views["views"][0]["cameras"], json!(["a"]), "{views}");
    assert_eq!(
        get_with_cookie(&cw, &staff, "/api/ip-cameras/a")
            .await
            .status(),
        200
    );
    let not_b = (404, "unknown_camera".to_string());

    // Snapshots, MJPEG, long-polls, replay and WHEP: `a`, and `b` as if it did not exist.
    let snap = get_with_cookie(&cw, &staff, "/api/ip-cameras/frame/a").await;
    assert_eq!(snap.status(), 200);
    assert_eq!(&snap.bytes().await.unwrap()[..2], &[0xFF, 0xD8]);
    let mut mjpeg = get_with_cookie(&cw, &staff, "/api/ip-cameras/mjpeg/a").await;
    assert_eq!(mjpeg.status(), 200);
    assert!(mjpeg.chunk().await.unwrap().is_some_and(|c| !c.is_empty()));
    drop(mjpeg);
    for path in [
        "/api/ip-cameras/frame/b",
        "/api/ip-cameras/mjpeg/b",
        "/api/ip-cameras/frame/b?after=x&wait_ms=1000",
        "/api/frame.jpeg?src=b",
        "/api/ip-cameras/b/replay",
        "/api/ip-cameras/b",
    ] {
        assert_eq!(
            code_of(get_with_cookie(&cw, &staff, path).await).await,
            not_b,
            "{path}"
        );
    }
    let whep = |id: &str| {
        reqwest::Client::new()
            .post(cw.url(&format!("/api/ip-cameras/{id}/whep")))
            .header("cookie", staff.as_str())
            .header("content-type", "application/sdp")
            .body("v=0\r\n")
    };
    assert_eq!(code_of(whep("b").send().await.unwrap()).await, not_b);
    assert_eq!(
        whep("a").send().await.unwrap().status(),
        400,
        "`a` is reached: its offer is what is wrong"
    );

    // Metrics carry every camera's name: refused, and said why; an admin reads them.
    let (status, body) = code_of(get_with_cookie(&cw, &staff, "/metrics").await).await;
    assert_eq!((status, body.as_str()), (403, "forbidden"));
    let (boss, _) = session(&cw, "boss", BOSS_PW).await;
    assert_eq!(get_with_cookie(&cw, &boss, "/metrics").await.status(), 200);

    // The WebSocket: `*` streams `a` only, and nothing names `b`.
    let mut req = cw
        .url("/ws")
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", staff.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": ["*"], "quality": 70}),
    )
    .await;
    ws_send(&mut ws, json!({"type": "subscribe", "cameras": ["b"]})).await;
    let mut frames = 0;
    let mut texts = Vec::new();
    let end = Instant::now() + Duration::from_secs(20);
    while frames < 10 {
        let left = end.saturating_duration_since(Instant::now());
        let Ok(Some(Ok(m))) = tokio::time::timeout(left, ws.next()).await else {
            panic!("{frames} frames; {texts:?}");
        };
        match m {
            Message::Binary(b) => {
                let n = u16::from_be_bytes([b[1], b[2]]) as usize;
                let h: Value = serde_json::from_slice(&b[3..3 + n]).unwrap();
                assert_eq!(h["camera"], "a", "{h}");
                frames += 1;
            }
            Message::Text(t) => texts.push(serde_json::from_str::<Value>(&t).unwrap()),
            _ => {}
        }
    }
    for t in &texts {
        let s = t.to_string();
        if t["type"] == "error" {
            assert_eq!(t["code"], "unknown_camera", "{t}");
        } else {
            assert!(!s.contains("\"b\""), "{s}");
        }
    }
    let hello = texts.iter().find(|t| t["type"] == "hello").expect("hello");
    assert_eq!(ids(&hello["cameras"]), vec!["a"]);

    // A viewer cannot add a camera; an admin can.
    let add = |cookie: &str| {
        reqwest::Client::new()
            .post(cw.url("/api/ip-cameras"))
            .header("cookie", cookie)
            .json(&lavfi("c", "testsrc2=size=160x120:rate=5"))
    };
    assert_eq!(code_of(add(&staff).send().await.unwrap()).await.0, 403);
    assert_eq!(add(&boss).send().await.unwrap().status(), 201);
    // The scoped token: the third-party WHEP player plays `a`; `b` does not exist for it.
    let events = whep::play(
        &cw.url("/api/ip-cameras/a/whep"),
        &["--token", SCOPED_TOKEN, "--frames", "5"],
        Duration::from_secs(40),
    )
    .await;
    assert!(
        whep::event(&events, "done")["frames"].as_u64() >= Some(5),
        "{events:?}"
    );
    let r = reqwest::Client::new()
        .post(cw.url("/api/ip-cameras/b/whep"))
        .bearer_auth(SCOPED_TOKEN)
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(r).await, (404, "unknown_camera".into()));
    // The audit log has the logins and the change, never a password or the cookie.
    let logs = cw.logs();
    assert!(logs.contains("login") && logs.contains("boss"), "{logs}");
    for secret in [STAFF_PW, BOSS_PW, staff.split('=').nth(1).unwrap()] {
        assert!(!logs.contains(secret), "a secret in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_and_a_new_password_end_sessions_and_the_cookie_is_guarded() {
    let cw = start();
    let r = login(&cw, "staff", STAFF_PW, "10.1.1.1").await;
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    let body = r.text().await.unwrap();
    assert!(!body.contains(STAFF_PW));
    let cookie = set.split(';').next().unwrap().to_string();
    assert_eq!(
        get_with_cookie(&cw, &cookie, "/api/ip-cameras/status")
            .await
            .status(),
        200
    );
    // Logout ends it on the server: the old cookie is refused.
    let out = reqwest::Client::new()
        .post(cw.url("/api/logout"))
        .header("cookie", cookie.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    assert_eq!(
        code_of(get_with_cookie(&cw, &cookie, "/api/ip-cameras/status").await).await,
        (401, "unauthorized".into())
    );

    // A new password written into the file by hand, then SIGHUP: the old session ends, the
    // new password logs in, the old one does not.
    let (cookie, _) = session(&cw, "staff", STAFF_PW).await;
    let mut req = cw
        .url("/ws")
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut mjpeg = get_with_cookie(&cw, &cookie, "/api/ip-cameras/mjpeg/a").await;
    assert_eq!(mjpeg.status(), 200);
    assert!(mjpeg.chunk().await.unwrap().is_some_and(|c| !c.is_empty()));
    let text = std::fs::read_to_string(&cw.config_path).unwrap();
    let mut config: Value = serde_json::from_str(&text).unwrap();
    config["server"]["auth"]["users"][0]["password_hash"] =
        hash_password("a-new-password-3").into();
    std::fs::write(
        &cw.config_path,
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    signal(cw.pid(), "HUP");
    let end = Instant::now() + Duration::from_secs(15);
    while get_with_cookie(&cw, &cookie, "/api/ip-cameras/status")
        .await
        .status()
        != 401
    {
        assert!(Instant::now() < end, "the old session lives on");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The socket opened with that session is closed by the server (it checks every 10 s).
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(c)) => return c.map(|c| c.reason.to_string()),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the socket of an ended session is closed");
    assert_eq!(closed.as_deref(), Some("session ended"));
    // So is the MJPEG stream (it checks as often).
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(_)) = mjpeg.chunk().await {}
    })
    .await
    .expect("the MJPEG stream of an ended session ends");
    assert_eq!(
        login(&cw, "staff", "a-new-password-3", "10.1.1.2")
            .await
            .status(),
        200
    );
    assert_eq!(
        login(&cw, "staff", STAFF_PW, "10.1.1.3").await.status(),
        401
    );
    // The file holds hashes only.
    let text = std::fs::read_to_string(&cw.config_path).unwrap();
    assert!(!text.contains(STAFF_PW) && !text.contains("a-new-password-3"));
    assert_eq!(text.matches("$argon2id$").count(), 2);
    // Old tokens work as they did, and no answer or metric holds a password.
    let metrics = reqwest::Client::new()
        .get(cw.url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("camwall_"));
    assert!(!metrics.contains(STAFF_PW) && !metrics.contains("a-new-password-3"));
    assert!(!cw.logs().contains("a-new-password-3"));
}

/// A restart (SIGTERM, as a service manager stops it) keeps the sessions, in a file only the
/// owner reads that holds no cookie; a logout before it stays a logout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_outlive_a_restart_and_logouts_stay() {
    let mut cw = start();
    let (kept, _) = session(&cw, "staff", STAFF_PW).await;
    let (ended, _) = session(&cw, "boss", BOSS_PW).await;
    let out = reqwest::Client::new()
        .post(cw.url("/api/logout"))
        .header("cookie", ended.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    cw.restart();
    let me: Value = get_with_cookie(&cw, &kept, "/api/session")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"], "staff", "{me}");
    assert_eq!(
        get_with_cookie(&cw, &kept, "/api/ip-cameras/status")
            .await
            .status(),
        200
    );
    assert_eq!(
        get_with_cookie(&cw, &ended, "/api/session").await.status(),
        401
    );
    let file = cw.dir.path().join(".camwall-sessions.json");
    let text = std::fs::read_to_string(&file).unwrap();
    for cookie in [&kept, &ended] {
        let value = cookie.split('=').nth(1).unwrap();
        assert!(!text.contains(value), "the file holds a cookie");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "readable by the owner only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_meet_429_and_unknown_names_cost_the_same() {
    let cw = start();
    // A failure costs the same whether the name exists or not: each is one argon2 check (an
    // unknown name's against a decoy hash), counted by the server. Each attempt comes from its
    // own address, four per existing name (under the throttle's five).
    let checks = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("camwall_password_checks_total"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let metrics = || async {
        reqwest::Client::new()
            .get(cw.url("/metrics"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for i in 0..8 {
        let before = checks(&metrics().await);
        let t = Instant::now();
        let r = login(
            &cw,
            &format!("nobody{i}"),
            "x-password",
            &format!("10.0.0.{i}"),
        )
        .await;
        unknown.push(t.elapsed().as_secs_f64());
        assert_eq!(code_of(r).await, (401, "bad_login".into()));
        let between = checks(&metrics().await);
        assert_eq!(
            between,
            before + 1,
            "an unknown name is checked as a known one"
        );
        let name = if i % 2 == 0 { "boss" } else { "staff" };
        let t = Instant::now();
        let r = login(&cw, name, "x-password", &format!("10.0.1.{i}")).await;
        wrong.push(t.elapsed().as_secs_f64());
        assert_eq!(code_of(r).await, (401, "bad_login".into()));
        assert_eq!(checks(&metrics().await), between + 1);
    }
    // And in time: the fastest of each kind (the least slowed by whatever else the machine
    // did) within 20 % on a quiet machine; the bound here is 2x, which a shortcut for unknown
    // names (microseconds against tens of milliseconds) breaks and a busy machine does not.
    let fastest = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (u, w) = (fastest(&unknown), fastest(&wrong));
    assert!(
        u * 2.0 >= w && w * 2.0 >= u,
        "unknown name {u:.3} s, wrong password {w:.3} s ({unknown:?}, {wrong:?})"
    );

    // Twelve wrong passwords in a row for staff: the throttle answers 429 with Retry-After.
    let mut throttled = None;
    for i in 0..12 {
        let r = login(&cw, "staff", "wrong", &format!("10.0.2.{i}")).await;
        if r.status() == 429 {
            throttled = r.headers()["retry-after"].to_str().ok().map(String::from);
        }
    }
    let retry: u64 = throttled.expect("a 429").parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // The right password waits for it too, then logs in.
    let r = login(&cw, "staff", STAFF_PW, "10.0.3.1").await;
    if r.status() == 429 {
        let wait: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(wait)).await;
        assert_eq!(
            login(&cw, "staff", STAFF_PW, "10.0.3.1").await.status(),
            200
        );
    } else {
        assert_eq!(r.status(), 200, "the wait had passed");
    }
    // From one address, five failures then 429 whatever the name.
    let mut codes = Vec::new();
    for i in 0..7 {
        codes.push(
            login(&cw, &format!("n{i}"), "x", "10.0.4.1")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(&codes[..5], &[401; 5]);
    assert_eq!(codes[5], 429, "{codes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_sends_a_person_to_login_shows_their_cameras_and_logs_out() {
    let cw = start();
    for id in ["a", "b"] {
        cw.wait_camera_with_token(id, ADMIN_TOKEN).await;
    }
    let mut b = Browser::open(&cw.url("/")).await;
    let report = "JSON.stringify({href: location.href, me: window.camwallMe, \
                  paths: window.camwall && window.camwall.paths()})";
    b.wait_for(
        "location.pathname === '/login' && window.camwallLoginReady === true",
        report,
        Duration::from_secs(20),
    )
    .await;
    b.eval(&format!(
        "(() => {{ document.getElementById('user').value = 'staff'; \
         document.getElementById('password').value = '{STAFF_PW}'; \
         document.getElementById('login').requestSubmit(); }})()"
    ))
    .await;
    // The wall, with `a` playing and no tile for `b`; the user's name and no settings link.
    b.wait_for(
        "location.pathname === '/' && !!window.camwall && !!window.camwall.paths().a \
         && !document.querySelector('[data-camera=b]') && window.camwallMe.user === 'staff' \
         && document.getElementById('settings-link').hidden",
        report,
        Duration::from_secs(30),
    )
    .await;
    b.click("#logout").await;
    b.wait_for(
        "location.pathname === '/login'",
        report,
        Duration::from_secs(10),
    )
    .await;
    // The session is over: the wall sends the browser back to the login page.
    b.eval("location.href = '/'").await;
    b.wait_for(
        "location.pathname === '/login'",
        report,
        Duration::from_secs(10),
    )
    .await;
    // An admin adds a user on the settings page.
    b.eval("location.href = '/login?next=%2Fsettings'").await;
    b.wait_for(
        "location.search.includes('settings') && window.camwallLoginReady === true",
        report,
        Duration::from_secs(10),
    )
    .await;
    b.eval(&format!(
        "(() => {{ document.getElementById('user').value = 'boss'; \
         document.getElementById('password').value = '{BOSS_PW}'; \
         document.getElementById('login').requestSubmit(); }})()"
    ))
    .await;
    b.wait_for(
        "location.pathname === '/settings' && !!window.settings && window.settings.ready \
         && !!document.querySelector('#users tr[data-user=staff]')",
        report,
        Duration::from_secs(20),
    )
    .await;
    b.eval(
        "(() => { const f = document.getElementById('user-form').elements; \
         f.name.value = 'night'; f.password.value = 'night-shift-pass'; f.role.value = 'viewer'; \
         document.querySelector('#user-cams input[value=b]').checked = true; \
         document.getElementById('user-form').requestSubmit(); })()",
    )
    .await;
    b.wait_for(
        "!!document.querySelector('#users tr[data-user=night]') \
         && document.querySelector('#users tr[data-user=night]').textContent.includes('b')",
        report,
        Duration::from_secs(10),
    )
    .await;
    let r = login(&cw, "night", "night-shift-pass", "10.3.3.3").await;
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["cameras"], json!(["b"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_users_over_the_api_and_changes_apply_at_once() {
    let cw = start();
    let (boss, _) = session(&cw, "boss", BOSS_PW).await;
    let (staff, _) = session(&cw, "staff", STAFF_PW).await;
    let call = |method: reqwest::Method, path: &str, cookie: &str, body: Option<Value>| {
        let r = reqwest::Client::new()
            .request(method, cw.url(path))
            .header("cookie", cookie);
        match body {
            Some(b) => r.json(&b),
            None => r,
        }
    };
    use reqwest::Method;
    // Viewers may not even list them; the list never shows a hash.
    let r = call(Method::GET, "/api/users", &staff, None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let list = call(Method::GET, "/api/users", &boss, None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        list.contains("\"staff\"") && !list.contains("argon2"),
        "{list}"
    );

    // Added with a password: it logs in, and the file holds its hash only.
    let temp =
        json!({"name": "temp", "password": "temporary-pass-1", "role": "viewer", "cameras": ["b"]});
    let short = json!({"name": "temp", "password": "short", "role": "viewer"});
    let r = call(Method::POST, "/api/users", &boss, Some(short))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["error"].as_str(), v["field"].as_str()),
        (Some("invalid_user"), Some("password"))
    );
    let r = call(Method::POST, "/api/users", &boss, Some(temp.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = call(Method::POST, "/api/users", &boss, Some(temp))
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(r).await, (409, "duplicate_user".into()));
    let (t, me) = session(&cw, "temp", "temporary-pass-1").await;
    assert_eq!(me["cameras"], json!(["b"]));
    let text = std::fs::read_to_string(&cw.config_path).unwrap();
    assert!(!text.contains("temporary-pass-1"));
    assert_eq!(text.matches("$argon2id$").count(), 3);

    // Its scope changed: the session ends at once; the password stays.
    let r = call(
        Method::PUT,
        "/api/users/temp",
        &boss,
        Some(json!({"role": "viewer", "cameras": ["a"]})),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        get_with_cookie(&cw, &t, "/api/ip-cameras/status")
            .await
            .status(),
        401
    );
    let (t, me) = session(&cw, "temp", "temporary-pass-1").await;
    assert_eq!(me["cameras"], json!(["a"]));
    // Removed: its session ends and it cannot log in.
    let r = call(Method::DELETE, "/api/users/temp", &boss, None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        get_with_cookie(&cw, &t, "/api/ip-cameras/status")
            .await
            .status(),
        401
    );
    assert_eq!(
        login(&cw, "temp", "temporary-pass-1", "10.2.2.2")
            .await
            .status(),
        401
    );
    let r = call(Method::DELETE, "/api/users/temp", &boss, None)
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(r).await, (404, "unknown_user".into()));
    // Staff's session was never touched.
    assert_eq!(
        get_with_cookie(&cw, &staff, "/api/ip-cameras/status")
            .await
            .status(),
        200
    );
    assert!(!cw.logs().contains("temporary-pass-1"));
}
