//! End-to-end tests of decoding on demand: a real GStreamer RTSP H.264 camera and the real
//! binary. A camera nobody takes pictures from stops decoding (its video keeps flowing); a
//! snapshot, a JPEG subscriber warm it up; a video subscriber does not.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{json, Value};

/// A camera whose decoder goes cold 1.5 s after its last snapshot, started and gone cold.
async fn cold_camera() -> (RtspServer, Camwall, Value) {
    let rtsp = RtspServer::start(&["--pattern", "ball", "--size", "320x240", "--fps", "15"]);
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "cam", "url": rtsp.url(), "decode_linger_ms": 1500}
    ]}));
    let c = cw
        .wait_camera("cam", Duration::from_secs(20), |c| {
            c["state"] == "streaming" && c["decoding"] == false
        })
        .await;
    (rtsp, cw, c)
}

/// How much older than the request a cold snapshot's picture may be: the newest packet then
/// arrived up to one frame interval (67 ms at 15 fps) before it; a stale picture is at least
/// the linger time (1.5 s) old, the GOP's keyframe up to a second.
const NEWEST_SLACK_MS: u64 = 200;

fn n(c: &Value, key: &str) -> u64 {
    c[key].as_u64().unwrap_or_else(|| panic!("no {key} in {c}"))
}

fn units(c: &Value) -> u64 {
    c["video"]["units_in"].as_u64().expect("video.units_in")
}

/// The value of the sample line that starts with `prefix`.
fn sample(text: &str, prefix: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in metrics:\n{text}"))
        .trim()
        .to_string()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Waits until the camera's video has moved on by `more` units, so that time has passed for
/// the camera without measuring it.
async fn units_grow(cw: &Camwall, from: &Value, more: u64) -> Value {
    let base = units(from);
    cw.wait_camera("cam", Duration::from_secs(10), |c| units(c) >= base + more)
        .await
}

#[tokio::test]
async fn an_unwatched_camera_stops_decoding_and_a_snapshot_gets_a_fresh_picture() {
    let (_rtsp, cw, cold) = cold_camera().await;
    let m = cw.metrics().await;
    assert_eq!(sample(&m, "camwall_camera_decoding{camera=\"cam\"}"), "0");
    let decode_count = sample(&m, "camwall_decode_seconds_count{camera=\"cam\"}");

    // A second of video (15 units) later: nothing decoded, nothing published, yet what the
    // camera sent is counted.
    let later = units_grow(&cw, &cold, 15).await;
    assert_eq!(
        n(&later, "frames_decoded"),
        n(&cold, "frames_decoded"),
        "{later}"
    );
    assert_eq!(
        n(&later, "frames_published"),
        n(&cold, "frames_published"),
        "{later}"
    );
    assert!(
        n(&later, "frames_in") >= n(&cold, "frames_in") + 15,
        "{later}"
    );
    assert_eq!(later["decoding"], false);
    // Not decoded, but live: the rate and freshness follow the camera's own units. The rate
    // shows once units span a second; a busy machine may have bunched these 15.
    let later = cw
        .wait_camera("cam", Duration::from_secs(10), |c| {
            c["fps"].as_f64().unwrap_or(0.0) > 5.0
        })
        .await;
    assert_eq!(
        n(&later, "frames_decoded"),
        n(&cold, "frames_decoded"),
        "{later}"
    );
    assert!(
        later["last_frame_age_ms"].as_u64().unwrap_or(u64::MAX) < 1000,
        "{later}"
    );
    assert_eq!(
        sample(
            &cw.metrics().await,
            "camwall_decode_seconds_count{camera=\"cam\"}"
        ),
        decode_count,
        "no decode time while cold"
    );

    // A snapshot now: the newest packet's picture when it was asked for (decoded from the
    // kept GOP), not the old one from before the decoder stopped, nor the GOP's keyframe.
    let asked = unix_ms();
    let res = get_frame(&cw, "cam", "").await;
    assert_eq!(res.status(), 200);
    let header = |k: &str| -> u64 { res.headers()[k].to_str().unwrap().parse().unwrap() };
    let (seq, captured) = (header("x-frame-seq"), header("x-capture-time"));
    assert!(
        captured + NEWEST_SLACK_MS >= asked,
        "captured at {captured}, asked at {asked}"
    );
    assert!(
        seq > n(&cold, "frames_published"),
        "seq {seq} is not newer than {cold}"
    );
    let (w, h, _) = decode_rgb(&res.bytes().await.unwrap());
    assert_eq!((w, h), (320, 240));
    // The snapshot decoded the GOP itself; the source's decoder follows at its next packet
    // and stays on for the linger time.
    let warm = cw
        .wait_camera("cam", Duration::from_secs(5), |c| c["decoding"] == true)
        .await;
    assert!(n(&warm, "frames_decoded") > n(&cold, "frames_decoded"));

    // Nobody asks again: cold after the linger, and it stays still.
    let cold_again = cw
        .wait_camera("cam", Duration::from_secs(10), |c| c["decoding"] == false)
        .await;
    let still = units_grow(&cw, &cold_again, 15).await;
    assert_eq!(
        n(&still, "frames_decoded"),
        n(&cold_again, "frames_decoded"),
        "{still}"
    );
}

#[tokio::test]
async fn concurrent_cold_snapshots_share_one_fresh_picture() {
    let (_rtsp, cw, cold) = cold_camera().await;
    let asked = unix_ms();
    let (a, b) = tokio::join!(get_frame(&cw, "cam", ""), get_frame(&cw, "cam", ""));
    let seq = |r: &reqwest::Response| r.headers()["x-frame-seq"].to_str().unwrap().to_string();
    let captured = |r: &reqwest::Response| -> u64 {
        r.headers()["x-capture-time"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    assert!(captured(&a) + NEWEST_SLACK_MS >= asked && captured(&b) + NEWEST_SLACK_MS >= asked);
    assert_eq!(seq(&a), seq(&b), "one warm-up answers both");
    assert!(seq(&a).parse::<u64>().unwrap() > n(&cold, "frames_published"));
}

#[tokio::test]
async fn a_jpeg_subscriber_keeps_the_camera_decoding_and_a_video_subscriber_does_not() {
    let (_rtsp, cw, cold) = cold_camera().await;

    // A video viewer takes the camera's own H.264: no decoding for it.
    let mut video = ws_connect(&cw).await;
    ws_send(
        &mut video,
        json!({"type": "subscribe", "cameras": ["cam"], "codecs": ["h264"]}),
    )
    .await;
    next_text(&mut video, Duration::from_secs(10), |v| {
        v["type"] == "video_config"
    })
    .await
    .expect("video_config for the video subscriber");
    let watched = units_grow(&cw, &cold, 30).await;
    assert_eq!(watched["decoding"], false, "{watched}");
    assert_eq!(
        n(&watched, "frames_decoded"),
        n(&cold, "frames_decoded"),
        "{watched}"
    );
    drop(video);

    // A JPEG viewer needs pictures: decoding while it is subscribed, past the linger time.
    let mut jpeg = ws_connect(&cw).await;
    ws_send(&mut jpeg, json!({"type": "subscribe", "cameras": ["cam"]})).await;
    let mut texts = Vec::new();
    let first = next_frame(&mut jpeg, &mut texts, Duration::from_secs(10))
        .await
        .expect("a JPEG frame");
    let warm = cw
        .wait_camera("cam", Duration::from_secs(10), |c| c["decoding"] == true)
        .await;
    // Three seconds of video (twice the linger) later, still decoding, and frames still come.
    let end = Instant::now() + Duration::from_secs(30);
    let mut last = first.seq();
    let mut seen = 0;
    while seen < 45 && Instant::now() < end {
        if let Some(f) = next_frame(&mut jpeg, &mut texts, Duration::from_secs(5)).await {
            assert!(f.seq() > last);
            last = f.seq();
            seen += 1;
        }
    }
    assert_eq!(seen, 45, "frames kept coming to the JPEG subscriber");
    let during = cw.camera("cam").await;
    assert_eq!(during["decoding"], true, "{during}");
    assert!(n(&during, "frames_decoded") > n(&warm, "frames_decoded"));
    drop(jpeg);
    cw.wait_camera("cam", Duration::from_secs(20), |c| c["decoding"] == false)
        .await;
}

#[tokio::test]
async fn an_mjpeg_client_keeps_the_camera_decoding_while_connected() {
    let (_rtsp, cw, cold) = cold_camera().await;
    let mut stream = reqwest::get(cw.url("/api/ip-cameras/mjpeg/cam"))
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    stream.chunk().await.unwrap().expect("the first part");
    let warm = cw
        .wait_camera("cam", Duration::from_secs(10), |c| c["decoding"] == true)
        .await;
    // Three seconds of video (twice the linger) later, still decoding.
    let later = units_grow(&cw, &warm, 45).await;
    assert_eq!(later["decoding"], true, "{later}");
    assert!(n(&later, "frames_decoded") > n(&warm, "frames_decoded"));
    assert!(n(&later, "frames_published") > n(&cold, "frames_published"));
    drop(stream);
    cw.wait_camera("cam", Duration::from_secs(20), |c| c["decoding"] == false)
        .await;
}

#[tokio::test]
async fn a_one_fps_thumbnail_of_a_25_fps_camera_decodes_keyframes_only() {
    // 25 fps with a keyframe every 25 frames: 1 s GOPs.
    let rtsp = RtspServer::start(&["--pattern", "ball", "--size", "320x240", "--fps", "25"]);
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "cam", "url": rtsp.url(), "decode_linger_ms": 0}
    ]}));
    cw.wait_camera("cam", Duration::from_secs(20), |c| {
        c["state"] == "streaming"
    })
    .await;
    let mut thumb = ws_connect(&cw).await;
    ws_send(
        &mut thumb,
        json!({"type": "subscribe", "cameras": ["cam"], "quality": 70, "max_fps": 1}),
    )
    .await;
    let mut texts = Vec::new();
    next_frame(&mut thumb, &mut texts, Duration::from_secs(10))
        .await
        .expect("a thumbnail frame");
    let start = cw
        .wait_camera("cam", Duration::from_secs(20), |c| {
            c["decoder"] == "keyframes"
        })
        .await;
    // Six seconds of the camera's video (150 units) later: about one picture a second.
    let later = units_grow(&cw, &start, 150).await;
    assert_eq!(later["decoder"], "keyframes", "{later}");
    let decoded = n(&later, "frames_decoded") - n(&start, "frames_decoded");
    let units = units(&later) - units(&start);
    assert!(
        (3..=units / 25 + 2).contains(&decoded),
        "{decoded} pictures decoded for {units} units: {later}"
    );
    // The tile still gets pictures, each one a new keyframe.
    let mut got = 0;
    for _ in 0..3 {
        if next_frame(&mut thumb, &mut texts, Duration::from_secs(5))
            .await
            .is_some()
        {
            got += 1;
        }
    }
    assert_eq!(got, 3, "the thumbnail keeps updating");

    // A 5 fps viewer needs more than keyframes: every picture is decoded.
    let mut live = ws_connect(&cw).await;
    ws_send(
        &mut live,
        json!({"type": "subscribe", "cameras": ["cam"], "quality": 70, "max_fps": 5}),
    )
    .await;
    let full = cw
        .wait_camera("cam", Duration::from_secs(20), |c| c["decoder"] == "full")
        .await;
    let later = units_grow(&cw, &full, 50).await;
    assert!(
        n(&later, "frames_decoded") - n(&full, "frames_decoded") >= 40,
        "{later}"
    );
    drop(live);
    cw.wait_camera("cam", Duration::from_secs(20), |c| {
        c["decoder"] == "keyframes"
    })
    .await;
}
