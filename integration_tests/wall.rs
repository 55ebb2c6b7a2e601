//! The wall page's views, tour, focus and zoom, keyboard, phone layout, stale tiles and the
//! settings page, in headless Chromium against the real binary. Screenshots are kept under
//! target/wall-screens/. Subscriptions are checked from the server (`viewers` per camera).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const VIEWER: &str = "viewer-token-0123456789";
const ADMIN: &str = "admin-token-0123456789ab";
const WAIT: Duration = Duration::from_secs(25);

async fn screenshot(b: &mut Browser, name: &str) {
    let shot = b
        .call("Page.captureScreenshot", json!({"format": "png"}))
        .await;
    let data = shot["data"].as_str().unwrap_or_default();
    use base64::Engine;
    if let Ok(png) = base64::engine::general_purpose::STANDARD.decode(data) {
        let dir = repo_root().join("target/wall-screens");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{name}.png")), png);
    }
}

/// Polls the status (with `token`) until `pred` holds, bounded.
async fn wait_status(
    cw: &Camwall,
    token: Option<&str>,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let end = Instant::now() + WAIT;
    loop {
        let mut r = reqwest::Client::new().get(cw.url("/api/ip-cameras/status"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let s: Value = r.send().await.unwrap().json().await.unwrap();
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < end, "never: {what}; status {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn viewers(s: &Value) -> Vec<(String, u64)> {
    s["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["viewers"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn watched(s: &Value) -> Vec<String> {
    viewers(s)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(id, _)| id)
        .collect()
}

fn cams(n: usize, size: &str) -> Vec<Value> {
    (1..=n)
        .map(|i| lavfi(&format!("c{i}"), &format!("testsrc2=size={size}:rate=5")))
        .collect()
}

#[tokio::test]
async fn a_view_shows_its_cameras_in_order_and_a_tour_subscribes_only_to_the_page_on_screen() {
    let cw = start_camwall(json!({"server": {}, "cameras": cams(6, "160x120"),
        "views": [{"id": "pair", "name": "Pair", "cameras": ["c3", "c1"], "columns": 1}]}));
    let mut b = Browser::open(&cw.url("/?view=pair&codec=jpeg")).await;
    let report = "JSON.stringify({shown: camwall.shown(), cols: camwall.cols(), sub: camwall.subscribed(), menu: [...document.querySelectorAll('#views option')].map(o => o.value)})";
    b.wait_for(
        "window.camwall && JSON.stringify(camwall.shown()) === '[\"c3\",\"c1\"]' && camwall.cols() === 1 && getComputedStyle(document.getElementById('wall')).gridTemplateColumns.split(' ').length === 1",
        report,
        WAIT,
    )
    .await;
    // Exactly its cameras on screen, in its order; the menu lists every view.
    let visible = b
        .eval("JSON.stringify([...document.querySelectorAll('.tile')].filter(t => t.offsetParent).map(t => t.dataset.camera))")
        .await;
    assert_eq!(visible, json!("[\"c3\",\"c1\"]"));
    assert_eq!(
        b.eval("[...document.querySelectorAll('#views option')].map(o => o.value).join()")
            .await,
        json!("all,pair")
    );
    let s = wait_status(&cw, None, "only the view's cameras watched", |s| {
        watched(s) == ["c1", "c3"]
    })
    .await;
    assert_eq!(watched(&s), ["c1", "c3"]);
    b.wait_for("[...document.querySelectorAll('.tile canvas')].filter(c => c.offsetParent).every(c => c.width === 160)", report, WAIT).await;
    screenshot(&mut b, "view-pair").await;

    // A tour of every camera, four per page: the server sees page one's cameras watched,
    // then page two's, never both.
    b.call(
        "Page.navigate",
        json!({"url": cw.url("/?view=all&tour=3&codec=jpeg")}),
    )
    .await;
    b.wait_for(
        "window.camwall && camwall.shown().length === 4 && camwall.page() === 0",
        report,
        WAIT,
    )
    .await;
    wait_status(&cw, None, "page one watched", |s| {
        watched(s) == ["c1", "c2", "c3", "c4"]
    })
    .await;
    b.wait_for(
        "camwall.page() === 1 && JSON.stringify(camwall.shown()) === '[\"c5\",\"c6\"]'",
        report,
        WAIT,
    )
    .await;
    screenshot(&mut b, "tour-page-2").await;
    wait_status(&cw, None, "page two watched", |s| {
        watched(s) == ["c5", "c6"]
    })
    .await;

    // A phone held upright: one column, nothing wider than the screen.
    b.call("Page.navigate", json!({"url": cw.url("/?codec=jpeg")}))
        .await;
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 360, "height": 740, "deviceScaleFactor": 1, "mobile": true}),
    )
    .await;
    b.wait_for(
        "window.camwall && camwall.shown().length === 6 && camwall.cols() === 1 && getComputedStyle(document.getElementById('wall')).gridTemplateColumns.split(' ').length === 1 && document.documentElement.scrollWidth <= 360 && document.body.scrollWidth <= 360",
        "JSON.stringify({cols: camwall.cols(), sw: document.documentElement.scrollWidth, w: innerWidth})",
        WAIT,
    )
    .await;
    screenshot(&mut b, "phone-360").await;
}

#[tokio::test]
async fn focus_asks_for_full_size_zooms_and_escape_returns_and_the_keyboard_reaches_every_tile() {
    let cw = start_camwall(json!({"server": {}, "cameras": cams(4, "640x360"),
        "views": [{"id": "four", "cameras": ["c1", "c2", "c3", "c4"], "columns": 4}]}));
    cw.wait_camera("c2", WAIT, |c| c["state"] == "streaming")
        .await;
    let mut b = Browser::open(&cw.url("/?view=four&codec=jpeg")).await;
    let report = "JSON.stringify({shown: camwall.shown(), sub: camwall.subscribed(), f: camwall.focused(), z: camwall.zoom(), active: document.activeElement && document.activeElement.dataset.camera})";
    b.wait_for(
        "window.camwall && camwall.subscribed().length === 4",
        report,
        WAIT,
    )
    .await;
    // Small tiles get half size.
    let scales = |s: &Value, id: &str| -> Vec<u64> {
        s["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["scale"].as_u64().unwrap())
            .collect()
    };
    let s = wait_status(&cw, None, "c2 tiles at half size", |s| {
        scales(s, "c2").contains(&2)
    })
    .await;
    assert!(!scales(&s, "c2").contains(&1), "{s}");

    // Keyboard: a digit jumps to a tile, arrows reach every tile in order.
    let key = |k: &str| {
        format!(
            "document.dispatchEvent(new KeyboardEvent('keydown', {{key: '{k}', bubbles: true}}))"
        )
    };
    b.eval(&key("1")).await;
    let mut reached = vec![b.eval("document.activeElement.dataset.camera").await];
    for _ in 0..3 {
        b.eval(&key("ArrowRight")).await;
        reached.push(b.eval("document.activeElement.dataset.camera").await);
    }
    assert_eq!(
        reached,
        [json!("c1"), json!("c2"), json!("c3"), json!("c4")]
    );
    let labels = b.eval("[...document.querySelectorAll('.tile')].every(t => t.tabIndex === 0 && /^c\\d, /.test(t.getAttribute('aria-label')))").await;
    assert_eq!(labels, json!(true));
    b.eval(&key("ArrowLeft")).await;
    b.eval(&key("ArrowLeft")).await;
    // Enter focuses c2: only it stays subscribed, at full size (no max_width).
    b.eval(&key("Enter")).await;
    b.wait_for(
        "camwall.focused() === 'c2' && JSON.stringify(camwall.subscribed()) === '[\"c2\"]'",
        report,
        WAIT,
    )
    .await;
    wait_status(&cw, None, "full size asked for c2", |s| {
        scales(s, "c2").contains(&1) && watched(s) == ["c2"]
    })
    .await;
    // Wheel zooms the focused picture; Escape returns to the wall, unzoomed.
    b.eval("(() => { const t = document.querySelector('.tile.focus'); const r = t.getBoundingClientRect(); t.dispatchEvent(new WheelEvent('wheel', {deltaY: -400, clientX: r.left + r.width / 2, clientY: r.top + r.height / 2, bubbles: true, cancelable: true})); })()").await;
    b.wait_for("camwall.zoom() > 1 && /scale/.test(document.querySelector('.tile.focus .pic').style.transform)", report, WAIT).await;
    screenshot(&mut b, "focus-zoom").await;
    b.eval(&key("Escape")).await;
    b.wait_for(
        "camwall.focused() === null && camwall.zoom() === 1 && camwall.subscribed().length === 4",
        report,
        WAIT,
    )
    .await;
    wait_status(&cw, None, "every tile watched again", |s| {
        watched(s).len() == 4
    })
    .await;
}

#[tokio::test]
async fn the_settings_page_tests_and_adds_a_camera_that_an_open_wall_shows_and_viewers_are_told_no()
{
    let cw = start_camwall(json!({
        "server": {"auth": {"viewer_tokens": [VIEWER], "admin_tokens": [ADMIN]}},
        "cameras": [lavfi("first", "testsrc2=size=160x120:rate=5")]
    }));
    let mut wall = Browser::open(&cw.url(&format!("/?codec=jpeg&token={ADMIN}"))).await;
    wall.wait_for(
        "window.camwall && camwall.shown().length === 1",
        "JSON.stringify(camwall.shown())",
        WAIT,
    )
    .await;
    wall.eval("window.__sameDocument = true").await;

    let mut b = Browser::open(&cw.url(&format!("/settings?token={ADMIN}"))).await;
    let report = "JSON.stringify({ready: window.settings && settings.ready, admin: window.settings && settings.admin, access: document.getElementById('access').textContent, errs: [...document.querySelectorAll('.err')].map(e => e.dataset.for + ':' + e.textContent).filter(x => !x.endsWith(':')), probe: document.getElementById('probe-result').textContent})";
    b.wait_for("window.settings && settings.ready && settings.admin && document.querySelector('#cameras tbody tr[data-camera=first]') !== null", report, WAIT).await;
    // A bad URL: the probe's error goes next to the URL field.
    let (_l, port) = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        drop(l);
        ((), p)
    };
    let fill = |id: &str, url: &str| {
        format!("(() => {{ const f = document.getElementById('cam-form').elements; f.id.value = '{id}'; f.url.value = '{url}'; document.getElementById('probe').click(); }})()")
    };
    b.eval(&fill("bad", &format!("rtsp://user:pw@127.0.0.1:{port}/x")))
        .await;
    b.wait_for(
        "/refused|unreachable/.test(document.querySelector('.err[data-for=\"url\"]').textContent)",
        report,
        WAIT,
    )
    .await;
    screenshot(&mut b, "settings-probe-error").await;
    // A lavfi camera: tested first (its size shows), then saved.
    b.eval(&fill("added", "lavfi:testsrc=size=320x240:rate=5"))
        .await;
    b.wait_for("/320×240/.test(document.getElementById('probe-result').textContent) && document.querySelector('#probe-result img') !== null && document.querySelector('.err[data-for=\"url\"]').textContent === ''", report, WAIT).await;
    screenshot(&mut b, "settings-probe-ok").await;
    b.eval("document.getElementById('save').click()").await;
    b.wait_for(
        "document.querySelector('#cameras tbody tr[data-camera=added]') !== null",
        report,
        WAIT,
    )
    .await;
    // The open wall shows it without a reload.
    wall.wait_for(
        "camwall.shown().includes('added') && window.__sameDocument === true",
        "JSON.stringify(camwall.shown())",
        WAIT,
    )
    .await;

    // A viewer token: the API says 403 and the page says so, without the actions.
    b.call(
        "Page.navigate",
        json!({"url": cw.url(&format!("/settings?token={VIEWER}"))}),
    )
    .await;
    b.wait_for("window.settings && settings.ready && !settings.admin && /403/.test(document.getElementById('access').textContent)", report, WAIT).await;
    assert_eq!(
        b.eval("[...document.querySelectorAll('section.admin, td.admin')].every(e => getComputedStyle(e).display === 'none')").await,
        json!(true)
    );
    screenshot(&mut b, "settings-viewer").await;
    let r = reqwest::Client::new()
        .post(cw.url("/api/ip-cameras"))
        .bearer_auth(VIEWER)
        .json(&json!({"id": "x", "url": "lavfi:testsrc2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_camera_killed_mid_view_shows_its_age_then_its_error() {
    let mut rtsp = RtspServer::start(&["--size", "320x240", "--fps", "10"]);
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "cam", "url": rtsp.url(), "stall_timeout_ms": 4000}
    ]}));
    cw.wait_camera("cam", WAIT, |c| c["state"] == "streaming")
        .await;
    let mut b = Browser::open(&cw.url("/?codec=jpeg")).await;
    let report = "JSON.stringify([...document.querySelectorAll('.tile')].map(t => [t.className, t.querySelector('.age').textContent, t.querySelector('.msg').textContent]))";
    b.wait_for("document.querySelector('.tile canvas') && document.querySelector('.tile canvas').width === 320 && document.querySelector('.tile .age').hidden", report, WAIT).await;
    rtsp.kill();
    // First the picture's age over it, then the camera's error (no credentials in it).
    b.wait_for("!document.querySelector('.tile .age').hidden && /\\d+ s old/.test(document.querySelector('.tile .age').textContent)", report, WAIT).await;
    screenshot(&mut b, "stale-age").await;
    b.wait_for("/(stalled|refused|failed|ended|timed out)/.test(document.querySelector('.tile .msg').textContent)", report, WAIT).await;
    screenshot(&mut b, "stale-error").await;
}

#[tokio::test]
async fn busy_tiles_are_marked_sorted_first_and_the_most_active_one_is_focused() {
    let (_still, _moving, cw) = still_and_moving();
    let mut b = Browser::open(&cw.url("/?codec=jpeg")).await;
    let report = "JSON.stringify({shown: camwall.shown(), act: camwall.activity(), active: camwall.active(), f: camwall.focused()})";
    // The busy camera's tile is marked, with a border as strong as its level; the still one
    // is not.
    b.wait_for(
        "window.camwall && JSON.stringify(camwall.active()) === '[\"moving\"]' && camwall.activity().still < 0.15",
        report,
        WAIT,
    )
    .await;
    let border = b
        .eval("getComputedStyle(document.querySelector('.tile[data-camera=moving]'), '::after').borderTopWidth")
        .await;
    assert_ne!(
        border,
        json!("1px"),
        "the border follows the level: {border}"
    );
    screenshot(&mut b, "activity").await;
    // Sorting by activity puts it first (config order: still, moving).
    assert_eq!(
        b.eval("JSON.stringify(camwall.shown())").await,
        json!("[\"still\",\"moving\"]")
    );
    b.eval("(() => { const c = document.getElementById('sort-activity'); c.checked = true; c.dispatchEvent(new Event('change')); return 1 })()")
        .await;
    b.wait_for(
        "JSON.stringify(camwall.shown()) === '[\"moving\",\"still\"]'",
        report,
        WAIT,
    )
    .await;
    // "Most active" focuses it.
    b.eval("(document.getElementById('most-active').click(), 1)")
        .await;
    b.wait_for("camwall.focused() === 'moving'", report, WAIT)
        .await;
}

#[tokio::test]
async fn an_open_wall_follows_an_edit_of_its_view() {
    let cw = start_camwall(json!({"server": {}, "cameras": cams(3, "160x120"),
        "views": [{"id": "pair", "cameras": ["c3", "c1"], "columns": 1}]}));
    let mut b = Browser::open(&cw.url("/?view=pair&codec=jpeg")).await;
    let report = "JSON.stringify({shown: camwall.shown(), cols: camwall.cols(), menu: [...document.querySelectorAll('#views option')].map(o => o.value)})";
    b.wait_for(
        "window.camwall && JSON.stringify(camwall.shown()) === '[\"c3\",\"c1\"]'",
        report,
        WAIT,
    )
    .await;
    // Edited through the API (as the settings page does), and a new view added: the open
    // wall shows the edited view and lists the new one without a reload.
    let client = reqwest::Client::new();
    let r = client
        .put(cw.url("/api/views/pair"))
        .json(&json!({"cameras": ["c2"], "columns": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let r = client
        .post(cw.url("/api/views"))
        .json(&json!({"id": "gate", "cameras": ["c1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    b.eval("window.__sameDocument = true").await;
    b.wait_for(
        "JSON.stringify(camwall.shown()) === '[\"c2\"]' && [...document.querySelectorAll('#views option')].map(o => o.value).join() === 'all,pair,gate' && window.__sameDocument === true",
        report,
        WAIT,
    )
    .await;
}
