//! End-to-end tests of other source kinds: HTTP MJPEG (passed through, not re-encoded) and
//! H.264 files whose picture size changes mid-stream, and FFmpeg device libraries loaded only
//! when a device camera needs them.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[tokio::test]
async fn http_mjpeg_frames_pass_through_without_reencoding() {
    let src = MjpegServer::start("testsrc2=size=320x240:rate=10", 2);
    let cw = start_camwall(json!({"server": {}, "cameras": [{"id": "mj", "url": src.url()}]}));
    let c = cw
        .wait_camera("mj", Duration::from_secs(20), |c| c["state"] == "streaming")
        .await;
    assert_eq!(c["codec"], "mjpeg");
    // Default quality (85) is below the source's: served as the camera sent it.
    for _ in 0..5 {
        let r = get_frame(&cw, "mj", "").await;
        assert_eq!(r.status(), 200);
        let body = r.bytes().await.unwrap();
        assert_eq!(decode_rgb(&body).0, 320);
        // The next request on a newer source frame than this one.
        let served = cw.camera("mj").await["frames_in"].as_u64().unwrap();
        cw.wait_camera("mj", Duration::from_secs(5), |c| {
            c["frames_in"].as_u64().unwrap() > served
        })
        .await;
    }
    assert_eq!(cw.camera("mj").await["jpeg_encodes"], 0);
    // A clearly lower quality is transcoded (once per frame).
    let r = get_frame(&cw, "mj", "?quality=30").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-jpeg-quality"], "30");
    let small = r.bytes().await.unwrap();
    assert_eq!(decode_rgb(&small).0, 320);
    assert_eq!(cw.camera("mj").await["jpeg_encodes"], 1);
}

#[tokio::test]
async fn h264_file_with_a_resolution_change_keeps_streaming() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.ts");
    let b = dir.path().join("b.ts");
    for (path, size) in [(&a, "320x240"), (&b, "480x272")] {
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=10"),
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-g",
            "10",
            "-bf",
            "0",
            "-pix_fmt",
            "yuv420p",
            path.to_str().unwrap(),
        ]);
    }
    // MPEG-TS segments concatenate byte-wise into one stream that changes size mid-way.
    let both = dir.path().join("both.ts");
    let mut bytes = std::fs::read(&a).unwrap();
    bytes.extend(std::fs::read(&b).unwrap());
    std::fs::write(&both, bytes).unwrap();
    let cw = start_camwall(json!({"server": {}, "cameras": [{"id": "f", "url": path_str(&both)}]}));
    cw.wait_camera("f", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    let mut sizes = HashSet::new();
    let end = Instant::now() + Duration::from_secs(8);
    while sizes.len() < 2 && Instant::now() < end {
        let r = get_frame(&cw, "f", "").await;
        if r.status() == 200 {
            let (w, h, _) = decode_rgb(&r.bytes().await.unwrap());
            sizes.insert((w, h));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sizes, HashSet::from([(320, 240), (480, 272)]));
    let c = cw.camera("f").await;
    assert_eq!(c["codec"], "h264");
    // The file plays in a loop: reaching its end is not a failure.
    assert_eq!(c["reconnects"], 0, "{c}");
}

fn maps_contain(pid: u32, lib: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap()
        .contains(lib)
}

#[tokio::test]
async fn device_libraries_load_only_when_a_device_camera_needs_them() {
    let src = MjpegServer::start("testsrc2=size=160x120:rate=10", 2);
    let cw = start_camwall(json!({"server": {}, "cameras": [{"id": "net", "url": src.url()}]}));
    cw.wait_camera("net", Duration::from_secs(20), |c| {
        c["state"] == "streaming"
    })
    .await;
    assert!(
        !maps_contain(cw.pid(), "libavdevice"),
        "a network camera alone loaded libavdevice"
    );
    let r = reqwest::Client::new()
        .post(cw.url("/api/ip-cameras"))
        .json(&lavfi("synth", "testsrc2=size=64x48:rate=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    cw.wait_camera("synth", Duration::from_secs(15), |c| {
        c["state"] == "streaming"
    })
    .await;
    assert!(maps_contain(cw.pid(), "libavdevice"));
    assert_eq!(cw.camera("net").await["state"], "streaming");
}

#[tokio::test]
async fn a_slow_camera_streams_steadily_and_shows_its_rate() {
    // One frame every 2 s against a 1 s stall timeout: the deadline must follow the camera.
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "slow", "url": "lavfi:testsrc2=size=64x48:rate=0.5", "stall_timeout_ms": 1000}
    ]}));
    cw.wait_camera("slow", Duration::from_secs(15), |c| {
        c["state"] == "streaming"
    })
    .await;
    // Four more frames (about 8 s), watched all along: never anything but streaming.
    let first = cw.camera("slow").await["frames_in"].as_u64().unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let mut fps_seen = Vec::new();
    loop {
        let c = cw.camera("slow").await;
        assert_eq!(c["state"], "streaming", "{c}");
        assert_eq!(c["reconnects"], 0, "{c}");
        let frames = c["frames_in"].as_u64().unwrap();
        if frames >= first + 2 {
            fps_seen.push(c["fps"].as_f64().unwrap());
        }
        if frames >= first + 4 {
            break;
        }
        assert!(Instant::now() < end, "the camera stopped sending: {c}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Between frames as well as at them, the rate is the camera's.
    assert!(!fps_seen.is_empty());
    assert!(fps_seen.iter().all(|&f| f == 0.5), "{fps_seen:?}");
}

/// A live HTTP MJPEG camera sending one small JPEG every `every` to each client (bounded).
fn slow_http_camera(every: Duration) -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let jpeg = gray_jpeg(90);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let jpeg = jpeg.clone();
            std::thread::spawn(move || {
                let mut s = s;
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.read(&mut [0u8; 4096]);
                let head = "HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=b\r\n\r\n";
                if s.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for _ in 0..100 {
                    let part = format!(
                        "--b\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                        jpeg.len()
                    );
                    if s.write_all(part.as_bytes()).is_err()
                        || s.write_all(&jpeg).is_err()
                        || s.write_all(b"\r\n").is_err()
                    {
                        return;
                    }
                    std::thread::sleep(every);
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_slow_live_camera_is_not_called_stalled() {
    let port = slow_http_camera(Duration::from_secs(2));
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "slow", "url": format!("http://127.0.0.1:{port}/v.mjpg"), "stall_timeout_ms": 1000}
    ]}));
    cw.wait_camera("slow", Duration::from_secs(15), |c| {
        c["state"] == "streaming"
    })
    .await;
    let first = cw.camera("slow").await["frames_in"].as_u64().unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let c = cw.camera("slow").await;
        assert_eq!(c["state"], "streaming", "{c}");
        assert_eq!(c["reconnects"], 0, "{c}");
        if c["frames_in"].as_u64().unwrap() >= first + 4 {
            break;
        }
        assert!(Instant::now() < end, "the camera stopped sending: {c}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
