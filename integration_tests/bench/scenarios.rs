//! The measured scenarios: a wall of WebSocket clients (with optional pollers and slow
//! clients) over a fixed window, JPEG or the cameras' own video (S9, S10), sequential snapshots
//! (S4), and time to first frame (S7, JPEG and video).
//! Each returns the JSON row that results.json and results.md are made from.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::clients::{frame_header, frame_kind, seed_poller, ws_client, PollStats, WsStats};
use crate::harness::proc_status;
use crate::http::Http;
use crate::procfs::{pct, CpuWindow};
use crate::sources::{rtsp_cams, start_camwall, start_rtsp, status, wait_streaming};

pub struct Ctx {
    pub clips: PathBuf,
    pub camwall: PathBuf,
    pub quick: bool,
    pub floor720: f64,
    /// The 720p clip's bytes per second as served (file size over its duration at 25 fps):
    /// the source bitrate of one camera that video rows compare their bytes out with.
    pub clip720_bytes_per_s: f64,
}

/// Per-camera source frames (decoded frames, or for video the access units camwall took in,
/// which its video seq numbers count), per-tier encodes, cache hits and bad units from the
/// status API.
fn counters(s: &Value, video: bool) -> (HashMap<String, u64>, u64, u64, u64) {
    let mut frames = HashMap::new();
    let mut encodes = 0;
    let mut hits = 0;
    let mut bad = 0;
    for c in s["cameras"].as_array().into_iter().flatten() {
        // A camera whose sub stream streams serves its thumbnails from it (S15): its
        // pictures are the ones counted.
        let sub = &c["streams"]["sub"];
        // Pictures published (the newest seq): `frames_published`, or for a binary older than
        // it `frames_in`, which counted them then (it now counts what the camera sent).
        let published = |c: &Value| {
            if c["frames_published"].is_u64() {
                c["frames_published"].clone()
            } else {
                c["frames_in"].clone()
            }
        };
        let n = if video {
            c["video"]["units_in"].clone()
        } else if sub["state"] == "streaming" {
            published(sub)
        } else {
            published(c)
        };
        frames.insert(
            c["id"].as_str().unwrap_or("").to_string(),
            n.as_u64().unwrap_or(0),
        );
        encodes += c["jpeg_encodes"].as_u64().unwrap_or(0);
        hits += c["cache_hits"].as_u64().unwrap_or(0);
        bad += c["video"]["units_bad"].as_u64().unwrap_or(0);
    }
    (frames, encodes, hits, bad)
}

/// Runs wall clients (and optional pollers) against `cams` for `secs`; returns the JSON row.
#[allow(clippy::too_many_arguments)]
pub async fn wall_scenario(
    ctx: &Ctx,
    id: &str,
    setup: &str,
    cameras: Vec<Value>,
    clients: usize,
    sub: Value,
    pollers_per_camera: usize,
    slow_clients: usize,
    secs: u64,
) -> Value {
    let n_cams = cameras.len();
    let video = sub["codecs"].as_array().is_some_and(|c| !c.is_empty());
    let ids: Vec<String> = cameras
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    let started = Instant::now();
    let cw = start_camwall(&ctx.camwall, cameras);
    if !wait_streaming(&cw, n_cams, Duration::from_secs(60)).await {
        return json!({"id": id, "setup": setup, "error": "cameras did not stream"});
    }
    // From the process start to every camera streaming (S22: 200 and 500 cameras).
    let startup_s = started.elapsed().as_secs_f64();
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..clients + slow_clients {
        let slow = (i >= clients).then(|| Duration::from_millis(400));
        tasks.push(tokio::spawn(ws_client(
            cw.base.clone(),
            sub.clone(),
            stop.clone(),
            slow,
        )));
    }
    let mut pollers = Vec::new();
    for cam in &ids {
        for _ in 0..pollers_per_camera {
            pollers.push(tokio::spawn(seed_poller(
                cw.base.clone(),
                cam.clone(),
                stop.clone(),
                measuring.clone(),
            )));
        }
    }
    // Warm up: every client connected, tiers settled.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_before = proc_status(cw.pid(), "VmRSS:");
    let s0 = status(&cw).await;
    measuring.store(true, Ordering::Relaxed);
    let cpu = CpuWindow::start(cw.pid());
    let t0 = Instant::now();
    let rss_peak = Arc::new(Mutex::new((0u64, 0u64)));
    let sampler = {
        let (pid, peak, stop) = (cw.pid(), rss_peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (r, anon) = (proc_status(pid, "VmRSS:"), proc_status(pid, "RssAnon:"));
                {
                    let mut p = peak.lock().unwrap();
                    *p = (p.0.max(r), p.1.max(anon));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(secs)).await;
    measuring.store(false, Ordering::Relaxed);
    let cpu_pct = cpu.percent();
    let elapsed = t0.elapsed().as_secs_f64();
    let threads = proc_status(cw.pid(), "Threads:");
    let s1 = status(&cw).await;
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<WsStats> = Vec::new();
    for t in tasks {
        all.push(t.await.unwrap_or_default());
    }
    let mut polls = PollStats::default();
    for p in pollers {
        let p = p.await.unwrap_or_default();
        polls.requests += p.requests;
        polls.not_modified += p.not_modified;
        polls.latencies.extend(p.latencies);
    }
    let _ = sampler.await;
    let (f0, e0, h0, b0) = counters(&s0, video);
    let (f1, e1, h1, b1) = counters(&s1, video);
    // Sequence numbers count published frames, so the window's source frames of a camera are
    // exactly the seqs in (frames_published before, frames_published after]. Video seqs count access units
    // the same way against `video.units_in` (a unit too broken to convert takes no seq: the
    // row's `video.units_bad` says whether that happened).
    let window: HashMap<&String, (u64, u64)> = f1
        .iter()
        .map(|(k, v)| (k, (f0.get(k).copied().unwrap_or(0), *v)))
        .collect();
    let total_source: u64 = window.values().map(|(a, b)| b - a).sum();
    let mut ratios = Vec::new();
    let mut lat = Vec::new();
    let mut bytes = 0usize;
    for st in all.iter().take(clients) {
        for (cam, (a, b)) in &window {
            let got: Vec<_> = st
                .frames
                .get(*cam)
                .map(|v| v.iter().filter(|(s, _, _)| s > a && s <= b).collect())
                .unwrap_or_default();
            lat.extend(got.iter().map(|(_, l, _)| *l));
            bytes += got.iter().map(|(_, _, n)| *n).sum::<usize>();
            ratios.push(if b == a {
                1.0
            } else {
                got.len() as f64 / (b - a) as f64
            });
        }
    }
    let min_delivered = ratios.iter().cloned().fold(f64::INFINITY, f64::min);
    let mut ttff: Vec<f64> = all.iter().filter_map(|s| s.first_frame_ms).collect();
    let encodes = e1 - e0;
    let floor_cpu = ctx.floor720 * total_source as f64 / elapsed / 10.0; // % of a core
    let mut poll_lat = polls.latencies.clone();
    let other_kind: u64 = all.iter().map(|s| s.other_kind).sum();
    let mut row = json!({
        "id": id,
        "setup": setup,
        "cameras": n_cams,
        "clients": clients,
        "slow_clients": slow_clients,
        "seconds": elapsed,
        "source_fps_total": total_source as f64 / elapsed,
        "delivered_min": min_delivered,
        "delivered_mean": ratios.iter().sum::<f64>() / ratios.len().max(1) as f64,
        "latency_ms": {"p50": pct(&mut lat, 50.0), "p95": pct(&mut lat, 95.0), "p99": pct(&mut lat, 99.0)},
        "first_frame_ms": {"p50": pct(&mut ttff, 50.0), "max": pct(&mut ttff, 100.0)},
        "cpu_percent": cpu_pct,
        "floor_cpu_percent": floor_cpu,
        "cpu_vs_floor": cpu_pct / floor_cpu,
        "startup_s": startup_s,
        "threads": threads,
        "rss_mb_before": rss_before as f64 / 1024.0,
        "rss_mb_peak": rss_peak.lock().unwrap().0 as f64 / 1024.0,
        // Heap and other private memory; the rest of RSS is shared-library pages (FFmpeg's
        // dependency tree), clean and shared with every other process using them.
        "rss_anon_mb_peak": rss_peak.lock().unwrap().1 as f64 / 1024.0,
        "rss_mb_peak_process": proc_status(cw.pid(), "VmHWM:") as f64 / 1024.0,
        "encodes_per_source_frame": encodes as f64 / total_source.max(1) as f64,
        "mbytes_per_s": bytes as f64 / elapsed / 1e6,
        "poll": {
            "requests_per_s": polls.requests as f64 / elapsed,
            "p50_ms": pct(&mut poll_lat, 50.0),
            "p99_ms": pct(&mut poll_lat, 99.0),
            "share_304": polls.not_modified as f64 / polls.requests.max(1) as f64,
            "cache_hits": h1 - h0,
        },
    });
    if video {
        // camwall decodes every camera but encodes only for JPEG viewers: the decode + encode
        // floor does not model this row; the passthrough floor (main) does.
        row["floor_cpu_percent"] = Value::Null;
        row["cpu_vs_floor"] = Value::Null;
        let source = ctx.clip720_bytes_per_s * n_cams as f64;
        row["video"] = json!({
            // Since the camera started, not only in the window: a bad unit before the window
            // would shift seqs against `units_in` as much as one inside it.
            "units_bad": b1,
            "units_bad_in_window": b1 - b0,
            "jpeg_frames_to_video_clients": other_kind,
            "source_bytes_per_s": source,
            // Whole binary messages (header and payload), per client, over the sources' bitrate.
            "bytes_per_client_over_source": bytes as f64 / clients.max(1) as f64 / elapsed / source,
        });
    }
    row
}

pub async fn s4_snapshots(ctx: &Ctx, cams: usize, per_cam: usize) -> Value {
    let rtsp = start_rtsp(&ctx.clips.join("clip720.h264"), cams);
    let port = rtsp.port;
    let cw = start_camwall(&ctx.camwall, rtsp_cams(port, cams));
    if !wait_streaming(&cw, cams, Duration::from_secs(60)).await {
        return json!({"id": "S4", "error": "cameras did not stream"});
    }
    let mut lat = Vec::new();
    let mut http = Http::new(&cw.base);
    let cpu = CpuWindow::start(cw.pid());
    let t0 = Instant::now();
    for i in 0..cams {
        for _ in 0..per_cam {
            let t = Instant::now();
            let r = http
                .get(&format!("/api/ip-cameras/frame/cam{i}"), &[])
                .await
                .expect("GET");
            assert_eq!(r.status, 200);
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    json!({
        "id": "S4",
        "setup": format!("{cams} cameras 720p25 RTSP, {per_cam} sequential GET frame per camera"),
        "requests": lat.len(),
        "requests_per_s": lat.len() as f64 / elapsed,
        "p50_ms": pct(&mut lat, 50.0),
        "p99_ms": pct(&mut lat, 99.0),
        "cpu_percent": cpu.percent(),
    })
}

pub async fn s7_first_frame(ctx: &Ctx, tries: usize) -> Value {
    let rtsp = start_rtsp(&ctx.clips.join("clip720.h264"), 1);
    let port = rtsp.port;
    let cw = start_camwall(&ctx.camwall, rtsp_cams(port, 1));
    if !wait_streaming(&cw, 1, Duration::from_secs(60)).await {
        return json!({"id": "S7", "error": "camera did not stream"});
    }
    let mut ws_t = Vec::new();
    let mut mjpeg_t = Vec::new();
    let mut video_t = Vec::new();
    let mut video_not_key = 0usize;
    let mut video_none = 0usize;
    for q in 0..tries {
        // Each try a new quality: the measure includes an encode, not only a cache hit.
        let quality = 60 + (q % 30) as u64;
        let url = cw.base.replace("http://", "ws://") + "/ws";
        let t0 = Instant::now();
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        ws.send(Message::text(
            json!({"type": "subscribe", "cameras": ["cam0"], "quality": quality}).to_string(),
        ))
        .await
        .unwrap();
        while let Some(Ok(m)) = ws.next().await {
            if m.is_binary() {
                ws_t.push(t0.elapsed().as_secs_f64() * 1000.0);
                break;
            }
        }
        let t0 = Instant::now();
        let mut s = TcpStream::connect(cw.base.trim_start_matches("http://"))
            .await
            .unwrap();
        s.write_all(
            format!("GET /api/ip-cameras/mjpeg/cam0?quality={quality} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        while let Ok(n) = s.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(2).any(|w| w == [0xFF, 0xD9]) {
                mjpeg_t.push(t0.elapsed().as_secs_f64() * 1000.0);
                break;
            }
        }
        match first_video_frame(&cw.base).await {
            Some((ms, true)) => video_t.push(ms),
            Some((_, false)) => video_not_key += 1,
            None => video_none += 1,
        }
    }
    // A cold page load in headless Chromium: navigation start to the first camera picture
    // painted on a canvas (WebCodecs for H.264; `?codec=jpeg` for the JPEG path).
    let page = |q: &'static str| {
        let base = cw.base.clone();
        async move {
            let mut out = Vec::new();
            let mut kind = String::new();
            for _ in 0..3 {
                let mut b = crate::browser::Browser::open(&format!("{base}/{q}")).await;
                b.wait_for(
                    "!!window.camwallFirstPaint",
                    "JSON.stringify(window.camwallFirstPaint || null)",
                    Duration::from_secs(20),
                )
                .await;
                let v = b.eval("window.camwallFirstPaint").await;
                if let Some(ms) = v["ms"].as_f64() {
                    out.push(ms);
                }
                kind = v["kind"].as_str().unwrap_or_default().to_string();
            }
            (out, kind)
        }
    };
    let (mut page_video, page_video_kind) = page("").await;
    let (mut page_jpeg, page_jpeg_kind) = page("?codec=jpeg").await;
    json!({
        "id": "S7",
        "page_first_paint_ms": {"p50": pct(&mut page_video, 50.0), "max": pct(&mut page_video, 100.0), "kind": page_video_kind},
        "page_first_paint_jpeg_ms": {"p50": pct(&mut page_jpeg, 50.0), "max": pct(&mut page_jpeg, 100.0), "kind": page_jpeg_kind},
        "setup": format!("1 camera 720p25 RTSP streaming; {tries} new WebSocket subscriptions (JPEG, then video), MJPEG requests"),
        "ws_first_frame_ms": {"p50": pct(&mut ws_t, 50.0), "max": pct(&mut ws_t, 100.0)},
        "mjpeg_first_frame_ms": {"p50": pct(&mut mjpeg_t, 50.0), "max": pct(&mut mjpeg_t, 100.0)},
        "video_first_key_ms": {"p50": pct(&mut video_t, 50.0), "max": pct(&mut video_t, 100.0)},
        "video_subscriptions": tries,
        // A first video frame that is not a keyframe cannot be decoded: a server bug if any.
        "video_first_not_key": video_not_key,
        "video_no_frame": video_none,
    })
}

/// A new video subscription to cam0: ms from sending `subscribe` to the first binary video
/// frame, and whether that frame is a keyframe (it must be: a decoder starts at one). None
/// when no video frame came within 10 s.
async fn first_video_frame(base: &str) -> Option<(f64, bool)> {
    let url = base.replace("http://", "ws://") + "/ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
    let sub =
        json!({"type": "subscribe", "cameras": ["cam0"], "quality": "auto", "codecs": ["h264"]});
    let t0 = Instant::now();
    ws.send(Message::text(sub.to_string())).await.ok()?;
    let end = t0 + Duration::from_secs(10);
    loop {
        let left = end.checked_duration_since(Instant::now())?;
        let m = tokio::time::timeout(left, ws.next()).await.ok()??.ok()?;
        if let Message::Binary(b) = m {
            let h = frame_header(&b)?;
            if frame_kind(&h) == "video" {
                let ms = t0.elapsed().as_secs_f64() * 1000.0;
                return Some((ms, h["key"].as_bool() == Some(true)));
            }
        }
    }
}
