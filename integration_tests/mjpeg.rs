//! End-to-end tests of MJPEG streams, long-poll and the go2rtc-compatible paths.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn ffmpeg_cli_decodes_the_mjpeg_stream() {
    let cw = start_camwall(
        json!({"server": {}, "cameras": [lavfi("a", "testsrc2=size=320x240:rate=10")]}),
    );
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    let (status, n) = ffmpeg_grab(cw.url("/api/ip-cameras/mjpeg/a"), 8).await;
    assert!(status.success(), "ffmpeg failed: {status:?}");
    assert_eq!(n, 8, "ffmpeg decoded {n} frames");
    // The go2rtc path plays the same way.
    let (status, n) = ffmpeg_grab(cw.url("/api/stream.mjpeg?src=a"), 3).await;
    assert!(status.success(), "ffmpeg failed: {status:?}");
    assert_eq!(n, 3);
}

/// Has the ffmpeg CLI decode `frames` frames of `url` into PNG files; its exit status and the
/// number of files written.
async fn ffmpeg_grab(url: String, frames: u32) -> (std::process::ExitStatus, usize) {
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("timeout")
            .args(["20", "ffmpeg", "-loglevel", "error", "-y", "-i", &url])
            .args(["-frames:v", &frames.to_string()])
            .arg(dir.path().join("f%02d.png"))
            .status()
            .unwrap();
        (status, std::fs::read_dir(dir.path()).unwrap().count())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn ten_readers_get_the_source_rate_with_one_encode_per_frame() {
    let cw = start_camwall(
        json!({"server": {}, "cameras": [lavfi("a", "testsrc2=size=320x240:rate=10")]}),
    );
    cw.wait_camera("a", Duration::from_secs(15), |c| {
        c["fps"].as_f64().unwrap() > 5.0
    })
    .await;
    let before = cw.camera("a").await;
    let readers: Vec<_> = (0..10)
        .map(|_| {
            tokio::spawn(read_mjpeg_parts(
                cw.url("/api/ip-cameras/mjpeg/a?quality=65"),
                Duration::from_secs(3),
            ))
        })
        .collect();
    let mut counts = Vec::new();
    for r in readers {
        let (n, parts) = r.await.unwrap();
        for p in parts.iter().step_by(5) {
            assert_eq!(decode_rgb(p).0, 320);
        }
        counts.push(n);
    }
    let after = cw.camera("a").await;
    let frames = after["frames_in"].as_u64().unwrap() - before["frames_in"].as_u64().unwrap();
    for n in &counts {
        assert!(
            *n as f64 >= frames as f64 * 0.8,
            "reader got {n} of {frames}: {counts:?}"
        );
    }
    let tier = after["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["quality"] == 65)
        .unwrap()
        .clone();
    let encodes = tier["jpeg_encodes"].as_u64().unwrap();
    // One encode per source frame for ten readers (plus the first frame each reader got).
    assert!(
        encodes as f64 <= frames as f64 * 1.15 + 2.0,
        "{encodes} encodes for {frames} frames"
    );
}

#[tokio::test]
async fn a_stalled_reader_does_not_slow_the_others() {
    let cw = start_camwall(
        json!({"server": {}, "cameras": [lavfi("hd", "testsrc2=size=1280x720:rate=25")]}),
    );
    cw.wait_camera("hd", Duration::from_secs(15), |c| {
        c["fps"].as_f64().unwrap() > 20.0
    })
    .await;
    // A reader that sends its request and then never reads.
    let addr = cw.base.trim_start_matches("http://").to_string();
    let mut stalled = Vec::new();
    for _ in 0..5 {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET /api/ip-cameras/mjpeg/hd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        .unwrap();
        let mut first = [0u8; 16];
        s.read_exact(&mut first).unwrap();
        stalled.push(s);
    }
    let rss0 = rss_kib(cw.pid());
    // Six seconds of the camera: long past the point where the stalled readers' socket
    // buffers are full (about 2 MB/s each). Were they to hold the stream back, the fast
    // reader would stop getting frames there; the bound is only a safety net.
    let want = 150;
    let (n, _) = read_mjpeg_up_to(
        cw.url("/api/ip-cameras/mjpeg/hd"),
        want,
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(n, want, "the fast reader stopped getting frames");
    let grew = rss_kib(cw.pid()).saturating_sub(rss0);
    assert!(grew < 20 * 1024, "RSS grew by {grew} KiB");
    drop(stalled);
}

#[tokio::test]
async fn long_poll_answers_on_a_newer_frame_and_304_after_the_wait() {
    let cw = start_camwall(json!({"server": {}, "cameras": [
        lavfi("a", "testsrc2=size=160x120:rate=10"),
        lavfi("slow", "testsrc2=size=160x120:rate=1/20")
    ]}));
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    let first = get_frame(&cw, "a", "").await;
    let tag = first.headers()["etag"].to_str().unwrap().to_string();
    let seq: u64 = first.headers()["x-frame-seq"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let t0 = Instant::now();
    let q = format!("?after={}&wait_ms=20000", urlencode(&tag));
    let next = get_frame(&cw, "a", &q).await;
    assert_eq!(next.status(), 200);
    assert_ne!(next.headers()["etag"].to_str().unwrap(), tag);
    let seq2: u64 = next.headers()["x-frame-seq"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(seq2 > seq);
    // Answered by the next frame, long before the 20 s budget.
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    // A camera with no new frame: 304 once the wait is over, with the same tag.
    cw.wait_camera("slow", Duration::from_secs(15), |c| {
        c["state"] == "streaming"
    })
    .await;
    let s1 = get_frame(&cw, "slow", "").await;
    let stag = s1.headers()["etag"].to_str().unwrap().to_string();
    let t1 = Instant::now();
    let q = format!("?after={}&wait_ms=400", urlencode(&stag));
    let r = get_frame(&cw, "slow", &q).await;
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), stag);
    assert!(t1.elapsed() >= Duration::from_millis(400));
    assert_eq!(
        get_frame(&cw, "a", "?after=x&wait_ms=999999")
            .await
            .status(),
        400
    );
}

fn urlencode(s: &str) -> String {
    s.replace('"', "%22")
}

#[tokio::test]
async fn go2rtc_paths_answer_like_the_originals() {
    let cw = start_camwall(
        json!({"server": {"frame_cache_ttl_ms": 2000}, "cameras": [lavfi("a", "testsrc2=size=160x120:rate=5")]}),
    );
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    let orig = get_frame(&cw, "a", "").await;
    let alias = reqwest::get(cw.url("/api/frame.jpeg?src=a")).await.unwrap();
    assert_eq!(alias.status(), 200);
    assert_eq!(alias.headers()["content-type"], "image/jpeg");
    // Same frame from the same cache: same tag and bytes.
    assert_eq!(alias.headers()["etag"], orig.headers()["etag"]);
    assert_eq!(alias.bytes().await.unwrap(), orig.bytes().await.unwrap());
    for (path, status) in [
        ("/api/frame.jpeg", 400),
        ("/api/frame.jpeg?src=nope", 404),
        ("/api/stream.mjpeg?src=nope", 404),
        ("/api/stream.mjpeg", 400),
        ("/api/ip-cameras/mjpeg/nope", 404),
        ("/api/ip-cameras/mjpeg/a?max_fps=0", 400),
    ] {
        let r = reqwest::get(cw.url(path)).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}");
    }
    let (n, parts) = read_mjpeg_parts(
        cw.url("/api/stream.mjpeg?src=a&max_width=80"),
        Duration::from_secs(1),
    )
    .await;
    assert!(n >= 1);
    assert_eq!(decode_rgb(&parts[0]).0, 80);
}
