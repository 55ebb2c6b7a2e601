//! Fault tests: broken, lying, stalled, unreachable and unauthorized cameras hurt only
//! themselves; many clients coming and going leave no trace.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// A fake HTTP camera: each connection gets `respond(stream)`; runs until the test ends.
fn fake_http_camera(respond: fn(std::net::TcpStream)) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.read(&mut buf);
                respond(s);
            });
        }
    });
    port
}

fn mjpeg_part(s: &mut std::net::TcpStream, jpeg: &[u8]) -> std::io::Result<()> {
    write!(
        s,
        "--b\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    )?;
    s.write_all(jpeg)?;
    s.write_all(b"\r\n")
}

const MJPEG_HEAD: &str =
    "HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=b\r\n\r\n";

#[tokio::test]
async fn broken_lying_and_stalled_cameras_hurt_only_themselves() {
    // Garbage: an HTTP 200 followed by random bytes.
    let garbage = fake_http_camera(|mut s| {
        let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n");
        let mut x = 0x2545F4914F6CDD1Du64;
        for _ in 0..2000 {
            let mut chunk = [0u8; 512];
            for b in chunk.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if s.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    // Closes mid-frame: headers and half a JPEG, then gone.
    let mid_frame = fake_http_camera(|mut s| {
        let j = gray_jpeg(100);
        let _ = s.write_all(MJPEG_HEAD.as_bytes());
        let _ = write!(
            s,
            "--b\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            j.len()
        );
        let _ = s.write_all(&j[..j.len() / 2]);
    });
    // Stalls: three good frames, then silence with the socket open.
    let stall = fake_http_camera(|mut s| {
        let j = gray_jpeg(100);
        let _ = s.write_all(MJPEG_HEAD.as_bytes());
        for _ in 0..3 {
            let _ = mjpeg_part(&mut s, &j);
            // Paced like a camera; then the stall under test, longer than the test runs.
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let cw = start_camwall(json!({"server": {}, "cameras": [
        lavfi("good", "testsrc2=size=160x120:rate=10"),
        {"id": "garbage", "url": format!("http://127.0.0.1:{garbage}/video"), "open_timeout_ms": 3000},
        {"id": "midframe", "url": format!("http://127.0.0.1:{mid_frame}/video.mjpg")},
        {"id": "stall", "url": format!("http://127.0.0.1:{stall}/video.mjpg"), "stall_timeout_ms": 1000},
        {"id": "nxdomain", "url": "rtsp://camera.does-not-exist.invalid/stream"}
    ]}));
    for id in ["garbage", "midframe", "nxdomain"] {
        let c = cw
            .wait_camera(id, Duration::from_secs(20), |c| {
                c["state"] == "backoff" && c["last_error"].is_string()
            })
            .await;
        assert!(c["reconnects"].as_u64().unwrap() >= 1, "{c}");
    }
    // The stalled camera streamed its frames, then was declared lost.
    let c = cw
        .wait_camera("stall", Duration::from_secs(20), |c| {
            c["frames_in"].as_u64().unwrap() >= 3 && c["state"] == "backoff"
        })
        .await;
    assert!(c["last_error"].as_str().unwrap().contains("stalled"), "{c}");
    // The healthy camera kept its full rate through all of it, and camwall still serves.
    cw.wait_camera("good", Duration::from_secs(5), |c| {
        c["state"] == "streaming" && c["fps"].as_f64().unwrap() >= 8.0
    })
    .await;
    assert_eq!(get_frame(&cw, "good", "").await.status(), 200);
    assert_eq!(get_frame(&cw, "garbage", "").await.status(), 503);
}

#[tokio::test]
async fn wrong_rtsp_credentials_say_unauthorized_and_back_off_slower() {
    let rtsp = RtspServer::start(&[
        "--size",
        "160x120",
        "--fps",
        "10",
        "--user",
        "viewer",
        "--password",
        "right-pw: s@fe/100%!",
    ]);
    // The right password has characters a URL must percent-encode; the reader decodes them.
    let right = "right-pw%3A%20s%40fe%2F100%25!";
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "wrong", "url": format!("rtsp://viewer:wrong-pw@127.0.0.1:{}/cam", rtsp.port)},
        {"id": "right", "url": format!("rtsp://viewer:{right}@127.0.0.1:{}/cam", rtsp.port)}
    ]}));
    let c = cw
        .wait_camera("wrong", Duration::from_secs(20), |c| {
            c["state"] == "unauthorized"
        })
        .await;
    assert!(
        c["last_error"].as_str().unwrap().contains("unauthorized"),
        "{c}"
    );
    // 4x the normal first delay of 0.5 s, less 20 % jitter.
    assert!(c["retry_in_ms"].as_u64().unwrap() >= 1000, "{c}");
    cw.wait_camera("right", Duration::from_secs(20), |c| {
        c["state"] == "streaming"
    })
    .await;
    let all = cw.status().await.to_string();
    assert!(!all.contains("wrong-pw") && !all.contains("right-pw"));
    assert!(!cw.logs().contains("right-pw") && !cw.logs().contains("wrong-pw"));
    assert!(!cw.logs().contains("s@fe") && !cw.logs().contains("s%40fe"));
}

#[tokio::test]
async fn sixty_four_cameras_with_half_unreachable() {
    let mut cams = Vec::new();
    for i in 0..32 {
        cams.push(lavfi(&format!("up{i}"), "testsrc2=size=64x48:rate=5"));
        cams.push(
            json!({"id": format!("down{i}"), "url": format!("rtsp://127.0.0.1:{}/x", free_port())}),
        );
    }
    let cw = start_camwall(json!({"server": {}, "cameras": cams}));
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let s = cw.status().await;
        let cams = s["cameras"].as_array().unwrap();
        let up_ok = cams
            .iter()
            .filter(|c| c["id"].as_str().unwrap().starts_with("up"))
            .filter(|c| c["state"] == "streaming" && c["fps"].as_f64().unwrap() >= 4.0)
            .count();
        let down_backoff = cams
            .iter()
            .filter(|c| c["id"].as_str().unwrap().starts_with("down") && c["state"] == "backoff")
            .count();
        if up_ok == 32 && down_backoff == 32 {
            break;
        }
        assert!(
            Instant::now() < end,
            "{up_ok} of 32 streaming at full rate, {down_backoff} of 32 in backoff"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_thousand_websocket_connects_leave_no_trace() {
    let cw = start_camwall(
        json!({"server": {}, "cameras": [lavfi("a", "testsrc2=size=64x48:rate=10")]}),
    );
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    // Warm up once so that lazily created state (tier channel, buffers) is in the baseline.
    {
        let mut ws = ws_connect(&cw).await;
        ws_send(&mut ws, json!({"type": "subscribe", "cameras": ["a"]})).await;
        let mut t = Vec::new();
        next_frame(&mut ws, &mut t, Duration::from_secs(5))
            .await
            .unwrap();
    }
    // The baseline is taken once camwall has closed that connection on its side.
    cw.wait_ws_clients(0).await;
    let (fd0, rss0) = (open_fds(cw.pid()), rss_kib(cw.pid()));
    for i in 0..1000 {
        let mut ws = ws_connect(&cw).await;
        if i % 10 == 0 {
            ws_send(
                &mut ws,
                json!({"type": "subscribe", "cameras": ["a"], "quality": 50}),
            )
            .await;
        }
        drop(ws);
    }
    // Connections close asynchronously: wait (bounded) for the descriptors to come back.
    let end = Instant::now() + Duration::from_secs(10);
    while open_fds(cw.pid()) > fd0 + 2 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (fd1, rss1) = (open_fds(cw.pid()), rss_kib(cw.pid()));
    assert!(fd1 <= fd0 + 2, "open descriptors {fd0} -> {fd1}");
    assert!(rss1 < rss0 + 10 * 1024, "RSS {rss0} KiB -> {rss1} KiB");
    assert_eq!(cw.status().await["cameras"][0]["state"], "streaming");
}

#[tokio::test]
async fn open_errors_say_what_is_wrong() {
    // Accepts connections (the kernel does) and never says a word.
    let (_silent, silent_port) = silent_listener();
    let closed = free_port();
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "nxdomain", "url": "rtsp://viewer:secret-pw@no-such-host.invalid/x"},
        {"id": "closed", "url": format!("rtsp://127.0.0.1:{closed}/x")},
        {"id": "silent", "url": format!("rtsp://127.0.0.1:{silent_port}/x"), "open_timeout_ms": 1500},
        {"id": "silent-http", "url": format!("http://127.0.0.1:{silent_port}/x.mjpg"), "open_timeout_ms": 1500}
    ]}));
    let expect = [
        ("nxdomain", "cannot resolve host no-such-host.invalid"),
        ("closed", "connection refused"),
        ("silent", "no media within 1500 ms"),
        ("silent-http", "no media within 1500 ms"),
    ];
    for (id, words) in expect {
        let c = cw
            .wait_camera(id, Duration::from_secs(20), |c| {
                c["state"] == "backoff" && c["last_error"].is_string()
            })
            .await;
        let error = c["last_error"].as_str().unwrap();
        assert!(error.contains(words), "{id}: {error:?}, wanted {words:?}");
    }
    assert!(!cw.status().await.to_string().contains("secret-pw"));
    assert!(!cw.logs().contains("secret-pw"));
}

/// An HTTP MJPEG camera sending `frames` in a loop, paced at about 25 fps, to every client.
fn multipart_camera(frames: Vec<Vec<u8>>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let frames = std::sync::Arc::new(frames);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let frames = frames.clone();
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.read(&mut buf);
                if s.write_all(MJPEG_HEAD.as_bytes()).is_err() {
                    return;
                }
                // Bounded: about four minutes, longer than any test using it.
                for j in frames.iter().cycle().take(6000) {
                    if mjpeg_part(&mut s, j).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(40));
                }
            });
        }
    });
    port
}

/// A JPEG a strict decoder takes: it decodes and its data ends with EOI (libjpeg-turbo only
/// warns about a cut-short picture and fills the rest with grey).
fn assert_whole_jpeg(what: &str, data: &[u8]) {
    assert!(
        data.len() > 4 && data[..2] == [0xFF, 0xD8] && data[data.len() - 2..] == [0xFF, 0xD9],
        "{what}: {} bytes, not a whole JPEG",
        data.len()
    );
    if let Err(e) = turbojpeg::decompress(data, turbojpeg::PixelFormat::RGB) {
        panic!("{what}: does not decode: {e}");
    }
}

#[tokio::test]
async fn corrupt_mjpeg_frames_never_reach_viewers() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("f%03d.jpg");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-frames:v",
        "40",
        "-q:v",
        "3",
        pattern.to_str().unwrap(),
    ]);
    let mut frames = Vec::new();
    for i in 1..=40 {
        let mut j = std::fs::read(dir.path().join(format!("f{i:03}.jpg"))).unwrap();
        if i % 10 == 0 {
            // Cut short, as a camera on a dropped link sends it.
            j.truncate(j.len() * 2 / 3);
        }
        frames.push(j);
    }
    let port = multipart_camera(frames);
    let cw = start_camwall(json!({"server": {"frame_cache_ttl_ms": 0}, "cameras": [
        {"id": "bad", "url": format!("http://127.0.0.1:{port}/video.mjpg")}
    ]}));
    cw.wait_camera("bad", Duration::from_secs(20), |c| {
        c["state"] == "streaming"
    })
    .await;
    // Every snapshot, each on a newer source frame than the last.
    for i in 0..60 {
        let r = get_frame(&cw, "bad", "").await;
        assert_eq!(r.status(), 200);
        let body = r.bytes().await.unwrap();
        assert_whole_jpeg(&format!("snapshot {i}"), &body);
        let seen = cw.camera("bad").await["frames_in"].as_u64().unwrap();
        cw.wait_camera("bad", Duration::from_secs(5), |c| {
            c["frames_in"].as_u64().unwrap() > seen
        })
        .await;
    }
    // Every frame of an MJPEG stream, over more than one loop of the clip.
    let mut res = reqwest::get(cw.url("/api/ip-cameras/mjpeg/bad"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut buf: Vec<u8> = Vec::new();
    let mut parts = 0;
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while parts < 60 {
        let chunk = tokio::time::timeout_at(end, res.chunk()).await;
        let Ok(Ok(Some(chunk))) = chunk else {
            panic!("the stream ended after {parts} frames")
        };
        buf.extend_from_slice(&chunk);
        while let Some(h_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..h_end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
            if buf.len() < h_end + 4 + len + 2 {
                break;
            }
            assert_whole_jpeg(
                &format!("stream frame {parts}"),
                &buf[h_end + 4..h_end + 4 + len],
            );
            parts += 1;
            buf.drain(..h_end + 4 + len + 2);
        }
    }
    let c = cw.camera("bad").await;
    assert!(c["frames_corrupt"].as_u64().unwrap() > 0, "{c}");
    assert_eq!(
        c["state"], "streaming",
        "a bad frame is no reason to reconnect"
    );
    let metrics = reqwest::get(cw.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("camwall_camera_frames_corrupt_total{camera=\"bad\"}"))
        .unwrap_or_else(|| panic!("no corrupt-frame counter in\n{metrics}"));
    assert_ne!(line.rsplit(' ').next(), Some("0"), "{line}");
}
