//! camwall-bench: the benchmark harness's load generator. Starts real sources (GStreamer RTSP
//! serving pre-encoded clips, an MJPEG HTTP source), a release camwall, and WebSocket, polling
//! and MJPEG clients on 127.0.0.1; measures delivery, latency, CPU and memory per scenario, and
//! the floor (decode + one JPEG encode per frame with no server) to compare against.
//!
//! `scripts/bench` builds it and runs `camwall-bench all`; see BENCHMARKS.md.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
#[command(about = "camwall benchmark load generator")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every scenario and write results.json and results.md into --out.
    All {
        /// Directory with clip720.h264, clip1080.h264, mjpeg640.mjpeg (scripts/bench makes them).
        #[arg(long)]
        clips: PathBuf,
        /// The camwall binary to measure.
        #[arg(long)]
        camwall: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Smaller scenarios and shorter windows (under 2 minutes in all).
        #[arg(long)]
        quick: bool,
        /// Run only these scenarios (S1..S7, FLOOR), comma separated.
        #[arg(long)]
        only: Option<String>,
    },
    /// S2-like load for a long time with cameras killed and restarted at random; samples
    /// camwall's RSS, descriptors and threads each minute and says whether they stayed flat.
    Soak {
        #[arg(long)]
        clips: PathBuf,
        #[arg(long)]
        camwall: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        #[arg(long, default_value_t = 16)]
        cameras: usize,
    },
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p / 100.0).round() as usize;
    v[i.min(v.len() - 1)]
}

/// CPU ticks (user + system, 1/100 s) of a process.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

fn status_kib(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A child process stopped by PID when dropped.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// GStreamer's RTSP server looping a pre-encoded clip on `mounts` paths /cam0.. .
fn start_rtsp(clip: &Path, mounts: usize) -> (Proc, u16) {
    start_rtsp_port(clip, mounts, 0)
}

/// The same on a given port (a restart after a kill).
fn start_rtsp_on(clip: &Path, mounts: usize, port: u16) -> Proc {
    start_rtsp_port(clip, mounts, port).0
}

fn start_rtsp_port(clip: &Path, mounts: usize, port: u16) -> (Proc, u16) {
    let port = port.to_string();
    let mut child = Command::new("/usr/bin/python3")
        .arg(repo_root().join("scripts/rtsp_test_server.py"))
        .args([
            "--port",
            &port,
            "--fps",
            "25",
            "--mounts",
            &mounts.max(2).to_string(),
        ])
        .arg("--clip")
        .arg(clip)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("RTSP test server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .expect("RTSP port");
    (Proc(child), port)
}

struct Camwall {
    _proc: Proc,
    base: String,
    pid: u32,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed on drop (the bench does not depend on the tempfile crate).
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "camwall-bench-{tag}-{}-{}",
                std::process::id(),
                fastrand::u32(..)
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn start_camwall(bin: &Path, cameras: Vec<Value>) -> Camwall {
    let dir = tempdir::Dir::new("cfg");
    // Every load-generator client comes from 127.0.0.1: lift the per-address and total caps
    // (defaults 32 and 256) above what any scenario opens, so the caps never shape a result.
    let cfg = json!({"server": {
        "public_dir": repo_root().join("public"),
        "limits": {"max_clients_per_ip": 4096, "max_ws_clients": 4096, "max_mjpeg_clients": 4096}
    }, "cameras": cameras});
    let path = dir.0.join("cameras.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&path)
        .args(["--listen", "127.0.0.1:0"])
        .env("CAMWALL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("camwall");
    let pid = child.id();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let base = loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("camwall exited");
        }
        if let Some(u) = line.trim().strip_prefix("camwall listening on ") {
            break u.to_string();
        }
    };
    Camwall {
        _proc: Proc(child),
        base,
        pid,
        _dir: dir,
    }
}

/// Minimal keep-alive HTTP/1.1 GET client: measures the server, not a client library.
struct Http {
    addr: String,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
}

struct HttpResp {
    status: u16,
    headers: HashMap<String, String>,
    body: Bytes,
}

impl Http {
    fn new(base: &str) -> Self {
        Self {
            addr: base.trim_start_matches("http://").to_string(),
            conn: None,
            buf: Vec::with_capacity(256 * 1024),
        }
    }

    async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> std::io::Result<HttpResp> {
        if self.conn.is_none() {
            let s = TcpStream::connect(&self.addr).await?;
            s.set_nodelay(true)?;
            self.conn = Some(s);
            self.buf.clear();
        }
        let conn = self.conn.as_mut().unwrap();
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        conn.write_all(req.as_bytes()).await?;
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let mut chunk = [0u8; 65536];
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                self.conn = None;
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while self.buf.len() < head_end + 4 + len {
            let mut chunk = [0u8; 65536];
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                self.conn = None;
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body = Bytes::copy_from_slice(&self.buf[head_end + 4..head_end + 4 + len]);
        self.buf.drain(..head_end + 4 + len);
        Ok(HttpResp {
            status,
            headers,
            body,
        })
    }
}

async fn status(base: &str) -> Value {
    let mut h = Http::new(base);
    match h.get("/api/ip-cameras/status", &[]).await {
        Ok(r) => serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

async fn wait_streaming(base: &str, n: usize, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        let s = status(base).await;
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

/// What one WebSocket client saw: per camera, (seq, latency ms, bytes) of every frame.
#[derive(Default, Clone)]
struct WsStats {
    frames: HashMap<String, Vec<(u64, f64, usize)>>,
    first_frame_ms: Option<f64>,
}

/// A wall-like client: subscribes, reads every frame, acknowledges it. `slow` reads at a tenth
/// of the rate (a sleep per message).
async fn ws_client(
    base: String,
    sub: Value,
    stop: Arc<AtomicBool>,
    slow: Option<Duration>,
) -> WsStats {
    let url = base.replace("http://", "ws://") + "/ws";
    let mut st = WsStats::default();
    let (mut ws, _) = match tokio_tungstenite::connect_async(url).await {
        Ok(c) => c,
        Err(e) => {
            // Counted as a client that got nothing, and said, so a refusal never hides.
            eprintln!("bench: a WebSocket client could not connect: {e}");
            return st;
        }
    };
    let t0 = Instant::now();
    let _ = ws.send(Message::text(sub.to_string())).await;
    while !stop.load(Ordering::Relaxed) {
        let msg = match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(_) => break,
            Err(_) => continue,
        };
        if let Message::Binary(b) = msg {
            let now = now_ms();
            if st.first_frame_ms.is_none() {
                st.first_frame_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
            }
            let n = u16::from_be_bytes([b[1], b[2]]) as usize;
            let h: Value = serde_json::from_slice(&b[3..3 + n]).unwrap_or(Value::Null);
            let cam = h["camera"].as_str().unwrap_or("").to_string();
            let seq = h["seq"].as_u64().unwrap_or(0);
            let latency = now.saturating_sub(h["ts"].as_u64().unwrap_or(now)) as f64;
            st.frames
                .entry(cam.clone())
                .or_default()
                .push((seq, latency, b.len()));
            let ack = json!({"type": "ack", "camera": cam, "seq": h["seq"]});
            let _ = ws.send(Message::text(ack.to_string())).await;
            if let Some(d) = slow {
                tokio::time::sleep(d).await;
            }
        }
    }
    st
}

#[derive(Default, Clone)]
struct PollStats {
    requests: u64,
    not_modified: u64,
    latencies: Vec<f64>,
}

/// The seed's poller (advanced_test): one request at a time, quality from latency, ETag.
async fn seed_poller(
    base: String,
    cam: String,
    stop: Arc<AtomicBool>,
    measuring: Arc<AtomicBool>,
) -> PollStats {
    let mut http = Http::new(&base);
    let mut st = PollStats::default();
    let mut etag = String::new();
    let mut quality = 85;
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let path = format!("/api/ip-cameras/frame/{cam}?quality={quality}");
        let hdrs: Vec<(&str, &str)> = if etag.is_empty() {
            vec![]
        } else {
            vec![("If-None-Match", etag.as_str())]
        };
        let Ok(r) = http.get(&path, &hdrs).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let rt = t0.elapsed().as_secs_f64() * 1000.0;
        if let Some(e) = r.headers.get("etag") {
            etag = e.clone();
        }
        if measuring.load(Ordering::Relaxed) {
            st.requests += 1;
            st.latencies.push(rt);
            if r.status == 304 {
                st.not_modified += 1;
            }
        }
        quality = if rt < 50.0 {
            85
        } else if rt <= 100.0 {
            80
        } else {
            70
        };
        tokio::time::sleep(
            Duration::from_secs_f64(rt.max(16.0) / 2.0 / 1000.0).max(Duration::from_millis(8)),
        )
        .await;
    }
    st
}

/// Per-camera source frames and per-tier encodes from the status API.
fn counters(s: &Value) -> (HashMap<String, u64>, u64, u64) {
    let mut frames = HashMap::new();
    let mut encodes = 0;
    let mut hits = 0;
    for c in s["cameras"].as_array().into_iter().flatten() {
        frames.insert(
            c["id"].as_str().unwrap_or("").to_string(),
            c["frames_in"].as_u64().unwrap_or(0),
        );
        encodes += c["jpeg_encodes"].as_u64().unwrap_or(0);
        hits += c["cache_hits"].as_u64().unwrap_or(0);
    }
    (frames, encodes, hits)
}

/// Measures camwall's CPU (% of one core) over a window.
struct CpuWindow {
    pid: u32,
    t0: Instant,
    ticks0: u64,
}
impl CpuWindow {
    fn start(pid: u32) -> Self {
        Self {
            pid,
            t0: Instant::now(),
            ticks0: cpu_ticks(pid),
        }
    }
    fn percent(&self) -> f64 {
        (cpu_ticks(self.pid) - self.ticks0) as f64 / self.t0.elapsed().as_secs_f64()
    }
}

/// Floor: decode the clip and JPEG-encode every frame once at `quality` with FFmpeg and
/// libjpeg-turbo alone (the same code camwall uses, no server). CPU ms per frame.
fn floor_ms_per_frame(clip: &Path, quality: u8, max_frames: usize) -> f64 {
    use ffmpeg_next as ffmpeg;
    camwall::init_ffmpeg().expect("ffmpeg");
    let mut input = ffmpeg::format::input(&clip).expect("open clip");
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .expect("video");
    let idx = stream.index();
    let mut ctx = ffmpeg::codec::context::Context::from_parameters(stream.parameters()).unwrap();
    ctx.set_threading(ffmpeg::threading::Config {
        kind: ffmpeg::threading::Type::Slice,
        count: 1,
        ..Default::default()
    });
    let mut dec = ctx.decoder().video().unwrap();
    let ticks0 = cpu_ticks(std::process::id());
    let t0 = Instant::now();
    let mut n = 0usize;
    let mut frame = ffmpeg::frame::Video::empty();
    let encode = |f: &ffmpeg::frame::Video| {
        let (ss, full) = camwall::media::frame::subsamp_of(f.format()).expect("yuv");
        let v = camwall::media::frame::DecodedVideo::new(f.clone(), ss, !full);
        let j = camwall::media::jpeg::encode_planes(&v.planes(), quality, 1).unwrap();
        std::hint::black_box(j);
    };
    for (s, packet) in input.packets() {
        if s.index() != idx {
            continue;
        }
        let _ = dec.send_packet(&packet);
        while dec.receive_frame(&mut frame).is_ok() {
            encode(&frame);
            n += 1;
        }
        if n >= max_frames {
            break;
        }
    }
    let cpu_s = (cpu_ticks(std::process::id()) - ticks0) as f64 / 100.0;
    // Short runs round to ticks: fall back to wall time on one thread, which is CPU time here.
    let secs = if cpu_s > 0.5 {
        cpu_s
    } else {
        t0.elapsed().as_secs_f64()
    };
    secs * 1000.0 / n.max(1) as f64
}

/// Serves `count` MJPEG cameras at /cam{i}, looping the JPEGs of `file` at `fps`: a source
/// that costs almost nothing (no live encoding).
async fn mjpeg_source(file: PathBuf, fps: f64) -> u16 {
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

struct Ctx {
    clips: PathBuf,
    camwall: PathBuf,
    quick: bool,
    floor720: f64,
}

/// Runs wall clients (and optional pollers) against `cams` for `secs`; returns the JSON row.
#[allow(clippy::too_many_arguments)]
async fn wall_scenario(
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
    let ids: Vec<String> = cameras
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    let cw = start_camwall(&ctx.camwall, cameras);
    if !wait_streaming(&cw.base, n_cams, Duration::from_secs(60)).await {
        return json!({"id": id, "setup": setup, "error": "cameras did not stream"});
    }
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
    let rss_before = status_kib(cw.pid, "VmRSS:");
    let s0 = status(&cw.base).await;
    measuring.store(true, Ordering::Relaxed);
    let cpu = CpuWindow::start(cw.pid);
    let t0 = Instant::now();
    let rss_peak = Arc::new(Mutex::new((0u64, 0u64)));
    let sampler = {
        let (pid, peak, stop) = (cw.pid, rss_peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (r, anon) = (status_kib(pid, "VmRSS:"), status_kib(pid, "RssAnon:"));
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
    let s1 = status(&cw.base).await;
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
    let (f0, e0, h0) = counters(&s0);
    let (f1, e1, h1) = counters(&s1);
    // Sequence numbers count published frames, so the window's source frames of a camera are
    // exactly the seqs in (frames_in before, frames_in after].
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
    json!({
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
        "rss_mb_before": rss_before as f64 / 1024.0,
        "rss_mb_peak": rss_peak.lock().unwrap().0 as f64 / 1024.0,
        // Heap and other private memory; the rest of RSS is shared-library pages (FFmpeg's
        // dependency tree), clean and shared with every other process using them.
        "rss_anon_mb_peak": rss_peak.lock().unwrap().1 as f64 / 1024.0,
        "rss_mb_peak_process": status_kib(cw.pid, "VmHWM:") as f64 / 1024.0,
        "encodes_per_source_frame": encodes as f64 / total_source.max(1) as f64,
        "mbytes_per_s": bytes as f64 / elapsed / 1e6,
        "poll": {
            "requests_per_s": polls.requests as f64 / elapsed,
            "p50_ms": pct(&mut poll_lat, 50.0),
            "p99_ms": pct(&mut poll_lat, 99.0),
            "share_304": polls.not_modified as f64 / polls.requests.max(1) as f64,
            "cache_hits": h1 - h0,
        },
    })
}

fn rtsp_cams(port: u16, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": format!("cam{i}"), "url": format!("rtsp://127.0.0.1:{port}/cam{i}")}))
        .collect()
}

async fn s4_snapshots(ctx: &Ctx, cams: usize, per_cam: usize) -> Value {
    let (_rtsp, port) = start_rtsp(&ctx.clips.join("clip720.h264"), cams);
    let cw = start_camwall(&ctx.camwall, rtsp_cams(port, cams));
    if !wait_streaming(&cw.base, cams, Duration::from_secs(60)).await {
        return json!({"id": "S4", "error": "cameras did not stream"});
    }
    let mut lat = Vec::new();
    let mut http = Http::new(&cw.base);
    let cpu = CpuWindow::start(cw.pid);
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

async fn s7_first_frame(ctx: &Ctx, tries: usize) -> Value {
    let (_rtsp, port) = start_rtsp(&ctx.clips.join("clip720.h264"), 1);
    let cw = start_camwall(&ctx.camwall, rtsp_cams(port, 1));
    if !wait_streaming(&cw.base, 1, Duration::from_secs(60)).await {
        return json!({"id": "S7", "error": "camera did not stream"});
    }
    let mut ws_t = Vec::new();
    let mut mjpeg_t = Vec::new();
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
            format!("GET /api/ip-cameras/mjpeg/cam0?quality={quality} HTTP/1.1\r\nHost: x\r\n\r\n")
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
    }
    json!({
        "id": "S7",
        "setup": format!("1 camera 720p25 RTSP streaming; {tries} new WebSocket subscriptions and MJPEG requests"),
        "ws_first_frame_ms": {"p50": pct(&mut ws_t, 50.0), "max": pct(&mut ws_t, 100.0)},
        "mjpeg_first_frame_ms": {"p50": pct(&mut mjpeg_t, 50.0), "max": pct(&mut mjpeg_t, 100.0)},
    })
}

fn f(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.is_nan() => "-".into(),
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
        None => "-".into(),
    }
}

fn markdown(results: &[Value], machine: &str) -> String {
    let mut md = String::new();
    md.push_str(&format!("Machine: {machine}\n\n"));
    md.push_str("| id | setup | delivered (min / mean) | latency p50 / p95 / p99 ms | first frame p50 ms | CPU % of a core | floor CPU % | CPU / floor | RSS peak MB (anon) | encodes / source frame | MB/s out |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results.iter().filter(|r| r.get("delivered_min").is_some()) {
        md.push_str(&format!(
            "| {} | {} | {:.1} % / {:.1} % | {} / {} / {} | {} | {} | {} | {} | {} ({}) | {} | {} |\n",
            r["id"].as_str().unwrap_or(""),
            r["setup"].as_str().unwrap_or(""),
            r["delivered_min"].as_f64().unwrap_or(0.0) * 100.0,
            r["delivered_mean"].as_f64().unwrap_or(0.0) * 100.0,
            f(&r["latency_ms"]["p50"]),
            f(&r["latency_ms"]["p95"]),
            f(&r["latency_ms"]["p99"]),
            f(&r["first_frame_ms"]["p50"]),
            f(&r["cpu_percent"]),
            f(&r["floor_cpu_percent"]),
            f(&r["cpu_vs_floor"]),
            f(&r["rss_mb_peak_process"]),
            f(&r["rss_anon_mb_peak"]),
            f(&r["encodes_per_source_frame"]),
            f(&r["mbytes_per_s"]),
        ));
    }
    md.push('\n');
    for r in results
        .iter()
        .filter(|r| r["poll"]["requests_per_s"].as_f64().unwrap_or(0.0) > 0.0)
    {
        let p = &r["poll"];
        md.push_str(&format!(
            "- {} polling: {} req/s, p50 {} ms, p99 {} ms, 304 share {:.0} %, cache hits {}\n",
            r["id"].as_str().unwrap_or(""),
            f(&p["requests_per_s"]),
            f(&p["p50_ms"]),
            f(&p["p99_ms"]),
            p["share_304"].as_f64().unwrap_or(0.0) * 100.0,
            p["cache_hits"]
        ));
    }
    for r in results {
        match r["id"].as_str() {
            Some("S4") => md.push_str(&format!(
                "- S4 snapshots ({}): {} requests, {} req/s, p50 {} ms, p99 {} ms, CPU {} %\n",
                r["setup"].as_str().unwrap_or(""),
                r["requests"],
                f(&r["requests_per_s"]),
                f(&r["p50_ms"]),
                f(&r["p99_ms"]),
                f(&r["cpu_percent"])
            )),
            Some("S7") => md.push_str(&format!(
                "- S7 time to first frame ({}): WebSocket p50 {} ms (max {}), MJPEG p50 {} ms (max {})\n",
                r["setup"].as_str().unwrap_or(""),
                f(&r["ws_first_frame_ms"]["p50"]),
                f(&r["ws_first_frame_ms"]["max"]),
                f(&r["mjpeg_first_frame_ms"]["p50"]),
                f(&r["mjpeg_first_frame_ms"]["max"])
            )),
            Some("FLOOR") => md.push_str(&format!(
                "- Floor: decode + one JPEG encode at q85, no server: {} ms per 720p frame, {} ms per 1080p frame (one core)\n",
                f(&r["ms_per_frame_720p"]),
                f(&r["ms_per_frame_1080p"])
            )),
            _ => {}
        }
        if let Some(e) = r.get("error") {
            md.push_str(&format!(
                "- {}: ERROR {e}\n",
                r["id"].as_str().unwrap_or("")
            ));
        }
    }
    md
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, v)| v.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {model}")
}

fn threads(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("Threads:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// Sends one HTTP request with a JSON body (the runtime camera API); returns the status.
async fn http_json(base: &str, method: &str, path: &str, body: &Value) -> u16 {
    let addr = base.trim_start_matches("http://");
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return 0;
    };
    let b = body.to_string();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
        b.len()
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// S2-like load for `minutes` with chaos: the RTSP server killed and restarted, cameras
/// disabled and enabled, cameras replaced. Samples camwall each minute.
async fn soak(clips: PathBuf, camwall_bin: PathBuf, out: PathBuf, minutes: u64, n: usize) {
    std::fs::create_dir_all(&out).unwrap();
    let clip = clips.join("clip720.h264");
    let (mut rtsp, port) = start_rtsp(&clip, n);
    // The RTSP server restarts on the same port: camwall's URLs stay valid.
    let cw = start_camwall(&camwall_bin, rtsp_cams(port, n));
    if !wait_streaming(&cw.base, n, Duration::from_secs(60)).await {
        eprintln!("cameras did not stream");
        return;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let auto = json!({"type": "subscribe", "cameras": ["*"], "quality": "auto"});
    let clients: Vec<_> = (0..4)
        .map(|_| tokio::spawn(soak_client(cw.base.clone(), auto.clone(), stop.clone())))
        .collect();
    let t0 = Instant::now();
    let mut rows = Vec::new();
    let mut next_sample = Duration::ZERO;
    let mut next_chaos = Duration::from_secs(20);
    let mut events = Vec::new();
    while t0.elapsed() < Duration::from_secs(minutes * 60) {
        if t0.elapsed() >= next_sample {
            let s = status(&cw.base).await;
            let streaming = s["cameras"].as_array().map_or(0, |c| {
                c.iter().filter(|c| c["state"] == "streaming").count()
            });
            let row = json!({
                "minute": next_sample.as_secs() / 60,
                "rss_mb": status_kib(cw.pid, "VmRSS:") as f64 / 1024.0,
                "rss_anon_mb": status_kib(cw.pid, "RssAnon:") as f64 / 1024.0,
                "fds": fds(cw.pid),
                "threads": threads(cw.pid),
                "streaming": streaming,
            });
            eprintln!("soak {row}");
            rows.push(row);
            next_sample += Duration::from_secs(60);
        }
        if t0.elapsed() >= next_chaos {
            let cam = format!("cam{}", fastrand::usize(..n));
            match fastrand::u8(..3) {
                0 => {
                    // Every camera loses its source at once, then it comes back.
                    drop(rtsp);
                    tokio::time::sleep(Duration::from_secs(fastrand::u64(2..8))).await;
                    rtsp = start_rtsp_on(&clip, n, port);
                    events.push(format!(
                        "{}s: RTSP server killed and restarted",
                        t0.elapsed().as_secs()
                    ));
                }
                1 => {
                    let path = format!("/api/ip-cameras/{cam}");
                    let a = http_json(&cw.base, "PATCH", &path, &json!({"enabled": false})).await;
                    tokio::time::sleep(Duration::from_secs(fastrand::u64(2..10))).await;
                    let b = http_json(&cw.base, "PATCH", &path, &json!({"enabled": null})).await;
                    events.push(format!(
                        "{}s: {cam} disabled and enabled ({a}, {b})",
                        t0.elapsed().as_secs()
                    ));
                }
                _ => {
                    let body = json!({"url": format!("rtsp://127.0.0.1:{port}/{cam}")});
                    let a =
                        http_json(&cw.base, "PUT", &format!("/api/ip-cameras/{cam}"), &body).await;
                    events.push(format!("{}s: {cam} replaced ({a})", t0.elapsed().as_secs()));
                }
            }
            next_chaos = t0.elapsed() + Duration::from_secs(fastrand::u64(20..60));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut frames = 0;
    for c in clients {
        frames += c.await.unwrap_or(0);
    }
    // Flat: the end against minute 3 (after warm-up), with room for allocator noise.
    let base = rows
        .iter()
        .find(|r| r["minute"] == 3)
        .or(rows.first())
        .cloned()
        .unwrap_or(Value::Null);
    let last = rows.last().cloned().unwrap_or(Value::Null);
    let num = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let flat = num(&last, "rss_anon_mb") <= num(&base, "rss_anon_mb") * 1.15 + 2.0
        && num(&last, "fds") <= num(&base, "fds") + 5.0
        && num(&last, "threads") <= num(&base, "threads") + 5.0;
    let mut md = format!(
        "Soak: {minutes} min, {n} cameras 720p25 RTSP, 4 wall clients (auto), {} chaos events, {frames} frames delivered. Flat: {}.\n\n| minute | RSS MB | anon MB | fds | threads | streaming |\n|---|---|---|---|---|---|\n",
        events.len(),
        if flat { "yes" } else { "NO" }
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {:.1} | {:.1} | {} | {} | {} |\n",
            r["minute"],
            num(r, "rss_mb"),
            num(r, "rss_anon_mb"),
            r["fds"],
            r["threads"],
            r["streaming"]
        ));
    }
    md.push_str("\nEvents:\n");
    for e in &events {
        md.push_str(&format!("- {e}\n"));
    }
    std::fs::write(out.join("soak.md"), &md).unwrap();
    let doc = json!({"rows": rows, "events": events, "flat": flat});
    std::fs::write(
        out.join("soak.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
    println!("{md}");
}

/// A wall client for the soak: reads and acknowledges frames, reconnecting if dropped;
/// returns how many frames it got.
async fn soak_client(base: String, sub: Value, stop: Arc<AtomicBool>) -> u64 {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let st = ws_client(base.clone(), sub.clone(), stop.clone(), None).await;
        n += st.frames.values().map(|v| v.len() as u64).sum::<u64>();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    n
}

#[tokio::main]
async fn main() {
    let (clips, camwall, out, quick, only) = match Cli::parse().cmd {
        Cmd::All {
            clips,
            camwall,
            out,
            quick,
            only,
        } => (clips, camwall, out, quick, only),
        Cmd::Soak {
            clips,
            camwall,
            out,
            minutes,
            cameras,
        } => {
            return soak(clips, camwall, out, minutes, cameras).await;
        }
    };
    let want = |id: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|x| x.trim().eq_ignore_ascii_case(id)))
    };
    std::fs::create_dir_all(&out).unwrap();
    let secs = if quick { 6 } else { 20 };
    eprintln!("floor: decoding and encoding the clips once, no server");
    let floor720 = floor_ms_per_frame(
        &clips.join("clip720.h264"),
        85,
        if quick { 150 } else { 250 },
    );
    let floor1080 = floor_ms_per_frame(
        &clips.join("clip1080.h264"),
        85,
        if quick { 100 } else { 250 },
    );
    let ctx = Ctx {
        clips: clips.clone(),
        camwall,
        quick,
        floor720,
    };
    let mut results = vec![
        json!({"id": "FLOOR", "ms_per_frame_720p": floor720, "ms_per_frame_1080p": floor1080}),
    ];
    let auto = json!({"type": "subscribe", "cameras": ["*"], "quality": "auto"});
    let clip720 = clips.join("clip720.h264");

    if want("S1") {
        eprintln!("S1: 5 cameras 720p25, 1 wall client + 1 seed poller per camera");
        let (_rtsp, port) = start_rtsp(&clip720, 5);
        results.push(
            wall_scenario(
                &ctx,
                "S1",
                "5 cameras 720p25 RTSP, 1 wall client (auto) + 1 seed poller per camera",
                rtsp_cams(port, 5),
                1,
                auto.clone(),
                1,
                0,
                secs,
            )
            .await,
        );
    }
    if want("S2") {
        let n = if ctx.quick { 8 } else { 16 };
        eprintln!("S2: {n} cameras 720p25, 4 wall clients");
        let (_rtsp, port) = start_rtsp(&clip720, n);
        results.push(
            wall_scenario(
                &ctx,
                "S2",
                &format!("{n} cameras 720p25 RTSP, 4 wall clients watching all"),
                rtsp_cams(port, n),
                4,
                auto.clone(),
                0,
                0,
                secs,
            )
            .await,
        );
    }
    if want("S3") {
        let n = if ctx.quick { 50 } else { 200 };
        eprintln!("S3: 1 camera 720p25, {n} clients at a fixed quality");
        let (_rtsp, port) = start_rtsp(&clip720, 1);
        let sub = json!({"type": "subscribe", "cameras": ["cam0"], "quality": 80});
        results.push(
            wall_scenario(
                &ctx,
                "S3",
                &format!("1 camera 720p25 RTSP, {n} WebSocket clients at quality 80"),
                rtsp_cams(port, 1),
                n,
                sub,
                0,
                0,
                secs,
            )
            .await,
        );
    }
    if want("S4") {
        eprintln!("S4: sequential snapshots");
        results.push(s4_snapshots(&ctx, if ctx.quick { 2 } else { 5 }, 1000).await);
    }
    if want("S5") {
        let slow = if ctx.quick { 20 } else { 50 };
        eprintln!("S5: {slow} slow clients + 1 fast, 4 cameras");
        let (_rtsp, port) = start_rtsp(&clip720, 4);
        let sub = json!({"type": "subscribe", "cameras": ["*"], "quality": 80});
        results.push(
            wall_scenario(&ctx, "S5", &format!("4 cameras 720p25 RTSP, 1 fast client + {slow} clients reading at 1/10 the rate, quality 80"), rtsp_cams(port, 4), 1, sub, 0, slow, secs)
                .await,
        );
    }
    if want("S6") {
        let n = if ctx.quick { 20 } else { 50 };
        eprintln!("S6: {n} HTTP MJPEG sources, 1 wall client");
        let port = mjpeg_source(clips.join("mjpeg640.mjpeg"), 15.0).await;
        let cams: Vec<Value> = (0..n).map(|i| json!({"id": format!("mj{i}"), "url": format!("http://127.0.0.1:{port}/cam{i}")})).collect();
        let sub = json!({"type": "subscribe", "cameras": ["*"], "quality": 85});
        let mut r = wall_scenario(
            &ctx,
            "S6",
            &format!("{n} HTTP MJPEG sources 640x480 15 fps, 1 wall client at full quality"),
            cams,
            1,
            sub,
            0,
            0,
            secs,
        )
        .await;
        // MJPEG sources are not decoded: the floor is the cost of receiving, which this does not model.
        r["floor_cpu_percent"] = Value::Null;
        r["cpu_vs_floor"] = Value::Null;
        results.push(r);
    }
    if want("S8") {
        // A thumbnail wall: every tile capped at 5 fps and a small width. The cap thins frames
        // before they are encoded, so "delivered" is ~20 % of the source by design; what this
        // row shows is the encodes per source frame and the CPU beside S2's.
        let n = if ctx.quick { 8 } else { 16 };
        eprintln!("S8: {n} cameras 720p25, 4 thumbnail wall clients at 5 fps");
        let (_rtsp, port) = start_rtsp(&clip720, n);
        let sub = json!({"type": "subscribe", "cameras": ["*"], "quality": 70, "max_width": 320, "max_fps": 5});
        results.push(
            wall_scenario(
                &ctx,
                "S8",
                &format!("{n} cameras 720p25 RTSP, 4 thumbnail wall clients (quality 70, max_width 320, max_fps 5)"),
                rtsp_cams(port, n),
                4,
                sub,
                0,
                0,
                secs,
            )
            .await,
        );
    }
    if want("S7") {
        eprintln!("S7: time to first frame");
        results.push(s7_first_frame(&ctx, if ctx.quick { 10 } else { 30 }).await);
    }
    let m = machine();
    let doc = json!({"machine": m, "date": now_ms(), "quick": quick, "results": results});
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
    let md = markdown(&results, &m);
    std::fs::write(out.join("results.md"), &md).unwrap();
    println!("{md}");
}
