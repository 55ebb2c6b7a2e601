//! Replay end to end: a GStreamer RTSP camera cycling solid red, green and blue, camwall
//! recording it into its ring on disk, and what comes back: the picture at an instant seen
//! live (same colour), a clip that ffprobe and ffmpeg read as the span asked, the ring found
//! again after a `kill -9`, the oldest minute dropped, and a camera whose directory cannot be
//! written losing its replay but not its live picture.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// The colour a solid picture shows: 'r', 'g', 'b', or '?' for anything else (a transition).
fn colour(jpeg: &[u8]) -> char {
    let (w, h, px) = decode_rgb(jpeg);
    let i = (h / 2 * w + w / 2) * 3;
    match (px[i] > 180, px[i + 1] > 180, px[i + 2] > 180) {
        (true, false, false) => 'r',
        (false, true, false) => 'g',
        (false, false, true) => 'b',
        _ => '?',
    }
}

/// A camera of solid colours, each `secs` long, 1 s GOPs.
fn colour_camera(secs: u32) -> RtspServer {
    let secs = secs.to_string();
    RtspServer::start(&["--colors", &secs, "--size", "320x240", "--fps", "15"])
}

/// Live snapshots for `dur`: (capture time, colour) of each new picture.
async fn watch_live(cw: &Camwall, id: &str, dur: Duration) -> Vec<(u64, char)> {
    let mut seen = Vec::new();
    let end = Instant::now() + dur;
    let mut last = 0;
    while Instant::now() < end {
        let r = get_frame(cw, id, "").await;
        if r.status() == 200 {
            let t: u64 = r.headers()["x-capture-time"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let body = r.bytes().await.unwrap();
            if t != last {
                seen.push((t, colour(&body)));
                last = t;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    seen
}

/// Instants well inside one colour: both neighbours seen live show it too.
fn steady(seen: &[(u64, char)]) -> Vec<(u64, char)> {
    seen.windows(3)
        .filter(|w| w[0].1 == w[1].1 && w[1].1 == w[2].1 && w[1].1 != '?')
        .map(|w| w[1])
        .collect()
}

async fn at(cw: &Camwall, id: &str, t: u64) -> reqwest::Response {
    get_frame(cw, id, &format!("?at={t}")).await
}

async fn replay_span(cw: &Camwall, id: &str) -> Value {
    reqwest::get(cw.url(&format!("/api/ip-cameras/{id}/replay")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn error_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    (status, v["error"].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instants_seen_live_come_back_with_their_colour_and_a_clip_is_the_span() {
    let cam = colour_camera(8);
    let cw = start_camwall(json!({"server": {}, "cameras": [{"id": "c", "url": cam.url()}]}));
    cw.wait_camera("c", Duration::from_secs(20), |c| c["state"] == "streaming")
        .await;
    let seen = watch_live(&cw, "c", Duration::from_secs(27)).await;
    let colours: String = seen.iter().map(|s| s.1).collect();
    for c in ['r', 'g', 'b'] {
        assert!(colours.contains(c), "the camera showed {colours}");
    }
    // The last second may not be on disk yet: batches go once a second.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let span = replay_span(&cw, "c").await;
    let (from, to) = (span["from"].as_u64().unwrap(), span["to"].as_u64().unwrap());
    assert!(
        from <= seen[0].0 + 1500,
        "the ring starts with the camera: {span} {seen:?}"
    );
    assert!(to >= seen.last().unwrap().0, "{span}");
    assert!(span["bytes"].as_u64().unwrap() > 10_000, "{span}");
    let status = cw.camera("c").await;
    assert_eq!(status["replay"]["from"], span["from"], "{status}");

    let mut checked = 0;
    for (t, c) in steady(&seen) {
        let r = at(&cw, "c", t).await;
        assert_eq!(r.status(), 200, "at {t}");
        let shown: u64 = r.headers()["x-frame-time"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            shown <= t && t - shown < 1000,
            "asked {t}, got the picture of {shown}"
        );
        assert_eq!(colour(&r.bytes().await.unwrap()), c, "at {t}");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} steady instants");
    let small = get_frame(
        &cw,
        "c",
        &format!("?at={}&max_width=160", seen[seen.len() / 2].0),
    )
    .await;
    assert_eq!(small.headers()["x-frame-width"], "160");
    let (code, err) = error_of(at(&cw, "c", from - 3_600_000).await).await;
    assert_eq!((code, err.as_str()), (404, "not_in_replay"));
    let (code, err) = error_of(get_frame(&cw, "c", "?at=yesterday").await).await;
    assert_eq!((code, err.as_str()), (400, "bad_parameter"));

    // A 15 s clip from a second in.
    let (cf, ct) = (from + 1000, from + 16_000);
    let r = reqwest::get(cw.url(&format!("/api/ip-cameras/c/clip.mp4?from={cf}&to={ct}")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "video/mp4");
    let mp4 = r.bytes().await.unwrap();
    let file = cw.dir.path().join("clip.mp4");
    std::fs::write(&file, &mp4).unwrap();
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames:format=duration",
        ])
        .args(["-of", "json"])
        .arg(&file)
        .output()
        .unwrap();
    let p: Value = serde_json::from_slice(&probe.stdout).unwrap();
    let st = &p["streams"][0];
    assert_eq!(st["codec_name"], "h264", "{p}");
    assert_eq!(
        (st["width"].as_u64(), st["height"].as_u64()),
        (Some(320), Some(240))
    );
    let dur: f64 = p["format"]["duration"].as_str().unwrap().parse().unwrap();
    // From the keyframe at or before `from` (1 s GOPs): 15 to 16 s.
    assert!((14.5..=16.5).contains(&dur), "clip lasts {dur} s: {p}");
    let frames: f64 = st["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(
        (frames - dur * 15.0).abs() <= 8.0,
        "{frames} frames in {dur} s"
    );
    let decode = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        decode.status.success() && decode.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&decode.stderr)
    );

    let bad = |q: String| {
        let url = cw.url(&format!("/api/ip-cameras/c/clip.mp4?{q}"));
        async move { error_of(reqwest::get(url).await.unwrap()).await }
    };
    assert_eq!(
        bad(format!("from={cf}&to={cf}")).await,
        (400, "bad_parameter".into())
    );
    assert_eq!(
        bad(format!("from={cf}&to={}", cf + 601_000)).await,
        (400, "bad_parameter".into())
    );
    assert_eq!(
        bad("from=1&to=2".into()).await,
        (404, "not_in_replay".into())
    );
    let r = reqwest::get(cw.url("/api/ip-cameras/nope/replay"))
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (404, "unknown_camera".into()));
}

/// A binary message's JSON header (any kind: video units and JPEG frames).
fn header_of(data: &[u8]) -> Value {
    let n = u16::from_be_bytes([data[1], data[2]]) as usize;
    serde_json::from_slice(&data[3..3 + n]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_replays_start_at_a_keyframe_run_at_their_speed_and_come_back_live() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let cam = colour_camera(8);
    let cw = start_camwall(json!({"server": {}, "cameras": [{"id": "c", "url": cam.url()}]}));
    cw.wait_camera("c", Duration::from_secs(20), |c| c["state"] == "streaming")
        .await;
    let seen = watch_live(&cw, "c", Duration::from_secs(20)).await;
    let steady = steady(&seen);
    assert!(steady.len() > 8, "{seen:?}");

    // The camera's video at 2x from an instant: a keyframe at or before it first (1 s GOPs),
    // then units whose camera time runs twice as fast as the wall's.
    let (t, _) = steady[steady.len() / 4];
    let mut ws = ws_connect(&cw).await;
    let asked = Instant::now();
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": ["c"], "codecs": ["h264"], "at": t, "speed": 2}),
    )
    .await;
    let config = next_text(&mut ws, Duration::from_secs(10), |v| {
        v["type"] == "video_config"
    })
    .await
    .expect("a video_config");
    assert_eq!(config["replay"], true, "{config}");
    let mut units: Vec<(Value, Instant)> = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while units.len() < 150 {
        let left = end.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next()).await;
        let Ok(Some(Ok(msg))) = msg else {
            panic!("{} units of the replay came", units.len());
        };
        if let Message::Binary(b) = msg {
            units.push((header_of(&b), Instant::now()));
        }
    }
    let first = &units[0].0;
    assert_eq!(
        (first["kind"].as_str(), first["key"].as_bool()),
        (Some("video"), Some(true)),
        "{first}"
    );
    let ts0 = first["ts"].as_u64().unwrap();
    assert!(ts0 <= t && t - ts0 <= 1100, "asked {t}, started at {ts0}");
    let (last, got_last) = units.last().unwrap();
    let camera_ms = (last["pts"].as_i64().unwrap() - first["pts"].as_i64().unwrap()) / 1000;
    assert!(
        camera_ms > 9000,
        "150 units span {camera_ms} ms of the camera"
    );
    // Paced: no unit comes before its time at 2x (a lower bound a busy machine cannot break),
    // and far sooner than at 1x (2.5 s of slack for a busy one).
    let wall_ms = got_last.duration_since(asked).as_millis() as i64;
    assert!(
        wall_ms + 50 >= camera_ms / 2,
        "{camera_ms} ms of camera in {wall_ms} ms"
    );
    assert!(
        wall_ms < camera_ms / 2 + 2500,
        "{camera_ms} ms of camera in {wall_ms} ms"
    );

    // A client that takes JPEG only: the same instant as pictures of the colour seen live.
    let mut jws = ws_connect(&cw).await;
    let (t2, _) = steady[steady.len() / 2];
    ws_send(
        &mut jws,
        json!({"type": "subscribe", "cameras": ["c"], "at": t2, "quality": 70}),
    )
    .await;
    let mut texts = Vec::new();
    let mut matched = 0;
    let mut frames = 0;
    while matched < 5 {
        let f = next_frame(&mut jws, &mut texts, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| {
                panic!("{frames} replayed JPEGs, {matched} of a known colour; {texts:?}")
            });
        frames += 1;
        let ts = f.header["ts"].as_u64().unwrap();
        if frames == 1 {
            assert!(ts <= t2 && t2 - ts <= 1100, "asked {t2}, started at {ts}");
            assert_eq!(f.header["quality"], 70, "{}", f.header);
        }
        assert!(ts + 1100 >= t2 && ts < t2 + 20_000, "asked {t2}, got {ts}");
        if let Some(want) = colour_at(&seen, ts) {
            assert_eq!(colour(&f.jpeg), want, "at {ts}");
            matched += 1;
        }
        assert!(frames < 300, "no replayed JPEG matched a steady colour");
    }
    // "at": null is live again.
    ws_send(
        &mut jws,
        json!({"type": "subscribe", "cameras": ["c"], "at": null}),
    )
    .await;
    let live_from = seen.last().unwrap().0;
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let f = next_frame(&mut jws, &mut texts, Duration::from_secs(10))
            .await
            .expect("live frames after the replay");
        if f.header["ts"].as_u64().unwrap() > live_from {
            break;
        }
        assert!(Instant::now() < end, "still replaying: {}", f.header);
    }
    assert!(!texts.iter().any(|t| t["type"] == "error"), "{texts:?}");
}

/// Bytes of the segment files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let mut n = 0;
    for cam in std::fs::read_dir(dir).unwrap().flatten() {
        for f in std::fs::read_dir(cam.path()).unwrap().flatten() {
            n += f.metadata().unwrap().len();
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ring_survives_kill_9_and_keeps_about_its_minute() {
    let cam = colour_camera(8);
    let store = tempfile::tempdir().unwrap();
    let replay_dir = store.path().join("replay");
    let config = json!({"server": {"replay": {"dir": path_str(&replay_dir), "minutes": 1}},
        "cameras": [{"id": "c", "url": cam.url()}]});
    let mut first = start_camwall(config.clone());
    first
        .wait_camera("c", Duration::from_secs(20), |c| c["state"] == "streaming")
        .await;
    let seen = watch_live(&first, "c", Duration::from_secs(5)).await;
    let (t0, c0) = *steady(&seen).first().expect("a steady instant");
    // Until the instant is on disk, then no chance to close anything.
    let end = Instant::now() + Duration::from_secs(10);
    while replay_span(&first, "c").await["to"].as_u64().unwrap_or(0) < t0 + 1000 {
        assert!(Instant::now() < end, "never written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal(first.pid(), "KILL");
    let _ = first.child.take().map(|mut c| c.wait());

    let second = start_camwall(config);
    let r = at(&second, "c", t0).await;
    assert_eq!(
        r.status(),
        200,
        "an instant from before the kill: {}",
        second.logs()
    );
    assert_eq!(colour(&r.bytes().await.unwrap()), c0);

    // The ring keeps a minute: the instant goes once it is older than that.
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let span = replay_span(&second, "c").await;
        if span["from"].as_u64().is_some_and(|f| f > t0 + 5000) {
            let (from, to) = (span["from"].as_u64().unwrap(), span["to"].as_u64().unwrap());
            assert!(
                (55_000..=63_000).contains(&(to - from)),
                "the ring spans {} ms",
                to - from
            );
            let on_disk = dir_bytes(&replay_dir);
            let listed = span["bytes"].as_u64().unwrap();
            assert!(
                on_disk.abs_diff(listed) < listed / 10 + 100_000,
                "{on_disk} on disk, {listed} listed"
            );
            break;
        }
        assert!(Instant::now() < end, "nothing evicted: {span}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (code, err) = error_of(at(&second, "c", t0).await).await;
    assert_eq!((code, err.as_str()), (404, "not_in_replay"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_that_cannot_be_written_stops_replay_and_not_the_camera() {
    // A server per camera: two sessions opened at the same instant on one GStreamer media
    // are a test of GStreamer, not of camwall.
    let (cam, other) = (colour_camera(8), colour_camera(8));
    let store = tempfile::tempdir().unwrap();
    let replay_dir = store.path().join("replay");
    std::fs::create_dir_all(&replay_dir).unwrap();
    // A file where the camera's directory would go: no write can succeed, even as root.
    std::fs::write(replay_dir.join("c"), b"in the way").unwrap();
    let cw = start_camwall(json!({"server": {"replay": {"dir": path_str(&replay_dir)}},
        "cameras": [{"id": "c", "url": cam.url()}, {"id": "off", "url": other.url(), "replay": false}]}));
    let c = cw
        .wait_camera("c", Duration::from_secs(20), |c| {
            c["replay"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot write"))
        })
        .await;
    assert_eq!(c["state"], "streaming", "{c}");
    cw.wait_log("replay stopped", Duration::from_secs(5)).await;
    let seq = |r: &reqwest::Response| {
        r.headers()["x-frame-seq"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let a = seq(&get_frame(&cw, "c", "").await);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get_frame(&cw, "c", "").await;
        assert_eq!(r.status(), 200);
        if seq(&r) > a + 5 {
            break;
        }
        assert!(Instant::now() < end, "live pictures stopped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = reqwest::get(cw.url("/api/ip-cameras/off/replay"))
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (404, "replay_off".into()));
    assert!(!cw.logs().contains("panicked"));
}

/// The colour seen live around `ts`, when every picture within 700 ms of it showed the same.
fn colour_at(seen: &[(u64, char)], ts: u64) -> Option<char> {
    let near: Vec<char> = seen
        .iter()
        .filter(|(t, _)| t.abs_diff(ts) <= 700)
        .map(|s| s.1)
        .collect();
    (near.len() >= 2 && near.iter().all(|c| *c == near[0] && *c != '?')).then(|| near[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_focused_tile_scrubs_back_says_it_is_not_live_and_comes_back() {
    scrub_back("/", "webcodecs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jpeg_tile_scrubs_back_over_its_websocket() {
    scrub_back("/?codec=jpeg", "jpeg").await;
}

/// The wall at `page`, its tile on `path`: focused, dragged back, shows the recorded colours
/// (over the WebSocket: the bar's stills stay hidden), marks and saves a clip, steps back
/// with ←, and comes back live.
async fn scrub_back(page: &str, path: &str) {
    let cam = colour_camera(8);
    let cw = start_camwall(json!({"server": {}, "cameras": [{"id": "c", "url": cam.url()}]}));
    cw.wait_camera("c", Duration::from_secs(20), |c| c["state"] == "streaming")
        .await;
    let seen = watch_live(&cw, "c", Duration::from_secs(20)).await;
    let mut b = Browser::open(&cw.url(page)).await;
    let report = "JSON.stringify({paths: window.camwall && window.camwall.paths(), \
                  replay: window.camwall && window.camwall.replay()})";
    b.wait_for(
        &format!("!!window.camwall && window.camwall.paths().c === '{path}'"),
        report,
        Duration::from_secs(30),
    )
    .await;
    b.click("[data-camera=c]").await;
    b.wait_for(
        "!!window.camwall.replay() && !!window.camwall.replay().span \
         && window.camwall.replay().span.from !== null",
        report,
        Duration::from_secs(15),
    )
    .await;
    // Dragged back (the range input's change, as a drag ends) to an instant seen live.
    let (t, _) = steady(&seen)[steady(&seen).len() / 4];
    b.eval(&format!(
        "(() => {{ const r = document.querySelector('[data-camera=c] .scrub'); \
         r.value = {t}; r.dispatchEvent(new Event('change')); }})()"
    ))
    .await;
    // The tile shows recorded pictures of that time, in the colour they had live.
    let probe = "(() => { const cv = document.querySelector('[data-camera=c] canvas'); \
                 const px = cv.getContext('2d').getImageData(cv.width / 2, cv.height / 2, 1, 1).data; \
                 const r = window.camwall.replay(); \
                 return {ts: r.shownTs, label: r.label, px: [px[0], px[1], px[2]], stills: r.stills, \
                 replaying: document.querySelector('[data-camera=c]').classList.contains('replaying')}; })()";
    let end = Instant::now() + Duration::from_secs(20);
    let mut matched = 0;
    while matched < 3 {
        assert!(
            Instant::now() < end,
            "no recorded picture matched: {}",
            b.eval(probe).await
        );
        let p = b.eval(probe).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some(ts) = p["ts"].as_u64() else { continue };
        assert!(ts + 1500 >= t && ts < t + 20_000, "asked {t}, shows {ts}");
        assert!(p["label"].as_str().unwrap().starts_with("REPLAY"), "{p}");
        assert_eq!(p["replaying"], true, "{p}");
        assert_eq!(p["stills"], false, "{p}");
        let Some(want) = colour_at(&seen, ts) else {
            continue;
        };
        let px: Vec<u64> = p["px"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let shown = match (px[0] > 180, px[1] > 180, px[2] > 180) {
            (true, false, false) => 'r',
            (false, true, false) => 'g',
            (false, false, true) => 'b',
            _ => '?',
        };
        assert_eq!(shown, want, "at {ts}: {p}");
        matched += 1;
    }
    // "mark", then a little later "save clip" is the span from the mark to what is shown.
    b.click("[data-camera=c] .replay .mark").await;
    b.wait_for(
        "window.camwall.replay().mark !== null && window.camwall.replay().shownTs > window.camwall.replay().mark + 1500",
        report,
        Duration::from_secs(10),
    )
    .await;
    let r = b.eval("window.camwall.replay()").await;
    let mark = r["mark"].as_u64().unwrap();
    let href = r["clip"].as_str().unwrap().to_string();
    assert!(href.contains(&format!("from={mark}&")), "{href}");
    let clip = reqwest::get(&href).await.unwrap();
    assert_eq!(clip.status(), 200, "{href}");
    assert_eq!(clip.headers()["content-type"], "video/mp4");
    assert!(clip.bytes().await.unwrap().len() > 1000);
    // ← moves the replay 10 s back (to the ring's start at the most).
    let shown = b
        .eval("window.camwall.replay().shownTs")
        .await
        .as_u64()
        .unwrap();
    b.eval(
        "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowLeft', bubbles: true}))",
    )
    .await;
    b.wait_for(
        &format!(
            "window.camwall.replay().at < {} && window.camwall.replay().at >= {}",
            shown - 1000,
            shown - 10_000
        ),
        report,
        Duration::from_secs(5),
    )
    .await;
    // "live" comes back.
    let drawn = |v: Value| v["c"].as_u64().unwrap_or(0);
    b.click("[data-camera=c] .replay .live").await;
    b.wait_for(
        "window.camwall.replay().live && window.camwall.replay().label === 'LIVE' \
         && !document.querySelector('[data-camera=c]').classList.contains('replaying')",
        report,
        Duration::from_secs(10),
    )
    .await;
    let before = drawn(b.eval("window.camwall.drawn()").await);
    b.wait_for(
        &format!("window.camwall.drawn().c > {}", before + 10),
        report,
        Duration::from_secs(15),
    )
    .await;
}

/// ffprobe's view of an MP4's video stream and its whole-file decode by ffmpeg (errors).
fn probe_clip(file: &Path) -> (Value, String) {
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,codec_tag_string,width,height:format=duration",
        ])
        .args(["-of", "json"])
        .arg(file)
        .output()
        .unwrap();
    let decode = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    (
        serde_json::from_slice(&probe.stdout).unwrap_or_default(),
        String::from_utf8_lossy(&decode.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h265_camera_comes_back_as_pictures_and_as_an_hvc1_clip() {
    let cam = RtspServer::start(&["--codec", "h265", "--size", "320x240", "--fps", "15"]);
    let cw = start_camwall(json!({"server": {}, "cameras": [{"id": "h", "url": cam.url()}]}));
    cw.wait_camera("h", Duration::from_secs(20), |c| c["state"] == "streaming")
        .await;
    let (from, to, _) = cw.wait_replay_span("h", 4000).await;
    let r = at(&cw, "h", from + 1500).await;
    assert_eq!(r.status(), 200);
    let (w, h, _) = decode_rgb(&r.bytes().await.unwrap());
    assert_eq!((w, h), (320, 240));
    let mp4 = reqwest::get(cw.url(&format!("/api/ip-cameras/h/clip.mp4?from={from}&to={to}")))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let file = cw.dir.path().join("h.mp4");
    std::fs::write(&file, &mp4).unwrap();
    let (p, errors) = probe_clip(&file);
    let st = &p["streams"][0];
    assert_eq!(
        (st["codec_name"].as_str(), st["codec_tag_string"].as_str()),
        (Some("hevc"), Some("hvc1")),
        "{p}"
    );
    assert!(errors.is_empty(), "{errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mjpeg_cameras_keep_their_jpegs_and_raw_sources_only_when_asked() {
    let mjpeg = MjpegServer::start("testsrc2=size=320x240:rate=10", 3);
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "m", "url": mjpeg.url()},
        {"id": "asked", "url": "lavfi:testsrc2=size=160x120:rate=15", "replay": true},
        lavfi("raw", "testsrc2=size=160x120:rate=15"),
    ]}));
    let (_, _, m) = cw.wait_replay_span("m", 3000).await;
    let (_, _, asked) = cw.wait_replay_span("asked", 3000).await;
    assert_eq!(
        replay_span(&cw, "raw").await["from"],
        Value::Null,
        "a raw source keeps nothing unasked"
    );
    // The MJPEG camera's own JPEGs (10 a second), passed back as they came.
    let t = m["from"].as_u64().unwrap() + 1500;
    let r = at(&cw, "m", t).await;
    assert_eq!(r.status(), 200);
    let shown: u64 = r.headers()["x-frame-time"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(shown <= t && t - shown < 500, "asked {t}, got {shown}");
    assert_eq!(decode_rgb(&r.bytes().await.unwrap()).0, 320);
    let half = get_frame(&cw, "m", &format!("?at={t}&max_width=160")).await;
    assert_eq!(half.headers()["x-frame-width"], "160");
    // The raw source asked for it: JPEGs, at most 5 a second.
    let t = asked["from"].as_u64().unwrap() + 1500;
    let r = at(&cw, "asked", t).await;
    assert_eq!(r.status(), 200);
    // Pictures of one second, asked every 50 ms: at most 5 different ones (and the one before).
    let mut times = std::collections::BTreeSet::new();
    for i in 0..20 {
        let r = at(&cw, "asked", t + i * 50).await;
        times.insert(r.headers()["x-frame-time"].to_str().unwrap().to_string());
    }
    assert!(
        (4..=7).contains(&times.len()),
        "{} pictures in a second of a 15 fps source",
        times.len()
    );
    // No clip of JPEGs: a clear error, not an empty MP4.
    let (f, to) = (m["from"].as_u64().unwrap(), m["to"].as_u64().unwrap());
    let r = reqwest::get(cw.url(&format!("/api/ip-cameras/m/clip.mp4?from={f}&to={to}")))
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (400, "not_video".into()));
}
