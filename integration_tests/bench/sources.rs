//! What the benchmark measures against: camwall started from the shared harness with the
//! client caps lifted, pre-encoded RTSP clips, and a looping MJPEG source that costs almost
//! nothing; plus waiting until every camera streams.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::harness::{spawn_camwall, write_config, Camwall, RtspServer};

/// GStreamer's RTSP server looping a pre-encoded clip on `mounts` paths /cam0.. .
pub fn start_rtsp(clip: &Path, mounts: usize) -> RtspServer {
    start_rtsp_on(clip, mounts, 0)
}

/// The same on a given port (0: any; a restart after a kill reuses the old one).
pub fn start_rtsp_on(clip: &Path, mounts: usize, port: u16) -> RtspServer {
    let mounts = mounts.max(2).to_string();
    let clip = clip.to_string_lossy();
    RtspServer::start_on(port, &["--fps", "25", "--mounts", &mounts, "--clip", &clip])
}

/// `n` small live RTSP cameras (320x180 10 fps) sharing the `mounts` encodes of one GStreamer
/// server: what S22 scales to hundreds without hundreds of encoders.
pub fn small_rtsp(n: usize, mounts: usize) -> (RtspServer, Vec<Value>) {
    let m = mounts.max(2).to_string();
    let rtsp = RtspServer::start(&["--size", "320x180", "--fps", "10", "--mounts", &m]);
    let cams = (0..n)
        .map(|i| {
            json!({"id": format!("cam{i}"),
                   "url": format!("rtsp://127.0.0.1:{}/cam{}", rtsp.port, i % mounts.max(2))})
        })
        .collect();
    (rtsp, cams)
}

/// The same cameras read by FFmpeg's RTSP reader instead of retina (the A/B of S9F, S10F).
pub fn with_ffmpeg_ingest(mut cams: Vec<Value>) -> Vec<Value> {
    for c in &mut cams {
        c["ingest"] = json!("ffmpeg");
    }
    cams
}

pub fn rtsp_cams(port: u16, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": format!("cam{i}"), "url": format!("rtsp://127.0.0.1:{port}/cam{i}")}))
        .collect()
}

/// Starts the camwall binary under test, logging warnings only, with replay off (the
/// scenarios measure viewing; S21 measures the replay ring with [`start_camwall_with`]).
pub fn start_camwall(bin: &Path, cameras: Vec<Value>) -> Camwall {
    start_camwall_with(bin, cameras, json!({"replay": {"minutes": 0}}))
}

/// [`start_camwall`] with `server` fields of the caller's (`replay`).
pub fn start_camwall_with(bin: &Path, cameras: Vec<Value>, server: Value) -> Camwall {
    // Every load-generator client comes from 127.0.0.1: lift the per-address and total caps
    // (defaults 32, 64 connections, and 256) above what any scenario opens, so the caps never
    // shape a result.
    // `camwall.test` (mapped to 127.0.0.1 in Chromium) is S19's insecure-origin page.
    let mut cfg = json!({"server": {
        "allowed_hosts": ["camwall.test"],
        "limits": {"max_clients_per_ip": 4096, "max_ws_clients": 4096, "max_mjpeg_clients": 4096,
                   "max_connections_per_ip": 8192, "max_cameras": 1024}
    }, "cameras": cameras});
    if let Some(extra) = server.as_object() {
        for (k, v) in extra {
            cfg["server"][k] = v.clone();
        }
    }
    let (dir, path) = write_config(cfg);
    drop_unknown_fields(bin, &path);
    spawn_camwall(bin, dir, path, "warn")
}

/// A camwall older than a config field refuses it: for A/B runs against an earlier binary,
/// the fields it names as unknown (settings the benchmark only raises) are taken out.
fn drop_unknown_fields(bin: &Path, path: &Path) {
    for _ in 0..4 {
        let Ok(out) = std::process::Command::new(bin)
            .arg("check-config")
            .arg("--config")
            .arg(path)
            .output()
        else {
            return;
        };
        let err = String::from_utf8_lossy(&out.stderr);
        let Some(field) = err
            .split("unknown field `")
            .nth(1)
            .and_then(|r| r.split('`').next())
        else {
            return;
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let Ok(mut cfg) = serde_json::from_str::<Value>(&text) else {
            return;
        };
        let mut removed = false;
        if let Some(o) = cfg["server"]["limits"].as_object_mut() {
            removed |= o.remove(field).is_some();
        }
        if let Some(o) = cfg["server"].as_object_mut() {
            removed |= o.remove(field).is_some();
        }
        if !removed {
            return;
        }
        eprintln!("bench: this camwall does not know `{field}`; left out of its config");
        let _ = std::fs::write(path, serde_json::to_string_pretty(&cfg).unwrap_or_default());
    }
}

/// The status API's answer; `Null` while camwall cannot answer.
pub async fn status(cw: &Camwall) -> Value {
    cw.try_status().await.unwrap_or(Value::Null)
}

pub async fn wait_streaming(cw: &Camwall, n: usize, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        let s = status(cw).await;
        let ok = s["cameras"].as_array().is_some_and(|c| {
            c.iter()
                .filter(|c| c["state"] == "streaming" && c["fps"].as_f64().unwrap_or(0.0) > 0.0)
                .count()
                >= n
        });
        if ok {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// Serves MJPEG cameras at any path, looping the JPEGs of `file` at `fps`: a source that
/// costs almost nothing (no live encoding).
pub async fn mjpeg_source(file: PathBuf, fps: f64) -> u16 {
    let data = std::fs::read(&file).expect("mjpeg file");
    let mut jpegs = Vec::new();
    let mut start = None;
    for i in 0..data.len().saturating_sub(1) {
        if data[i] == 0xFF && data[i + 1] == 0xD8 && start.is_none() {
            start = Some(i);
        }
        if data[i] == 0xFF && data[i + 1] == 0xD9 {
            if let Some(s) = start.take() {
                jpegs.push(Bytes::copy_from_slice(&data[s..i + 2]));
            }
        }
    }
    let jpegs = Arc::new(jpegs);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let jpegs = jpegs.clone();
            tokio::spawn(async move {
                let mut req = [0u8; 2048];
                let _ = sock.read(&mut req).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\nCache-Control: no-cache\r\n\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / fps));
                let mut i = fastrand::usize(..jpegs.len().max(1));
                loop {
                    tick.tick().await;
                    let j = &jpegs[i % jpegs.len()];
                    i += 1;
                    let part = format!(
                        "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                        j.len()
                    );
                    if sock.write_all(part.as_bytes()).await.is_err()
                        || sock.write_all(j).await.is_err()
                        || sock.write_all(b"\r\n").await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}
