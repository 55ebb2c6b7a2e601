//! Test helpers over the shared process harness (`harness.rs`): status and metrics polls, test
//! sources (ffmpeg MJPEG camera), WebSocket frame parsing, and headless Chromium.
#![allow(dead_code)]

mod browser;
mod harness;
pub mod link;
pub mod whep;

#[allow(unused_imports)]
pub use browser::*;
pub use harness::*;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

impl Camwall {
    /// The Prometheus text of `/metrics` (no token).
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Polls `/metrics` until `pred` holds (bounded by `timeout`); returns that text.
    pub async fn wait_metrics(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let end = Instant::now() + timeout;
        loop {
            let m = self.metrics().await;
            if pred(&m) {
                return m;
            }
            assert!(Instant::now() < end, "metrics never showed {what}:\n{m}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn camera(&self, id: &str) -> Value {
        let s = self.status().await;
        find_camera(&s, id).unwrap_or_else(|| panic!("no camera {id} in {s}"))
    }

    /// Polls the status until `pred` holds for camera `id` (bounded by `timeout`).
    pub async fn wait_camera(
        &self,
        id: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let end = Instant::now() + timeout;
        loop {
            // A camera may not exist yet (added by a reload or an API call still under way):
            // that is "not yet", not a failure.
            let s = self.status().await;
            if let Some(c) = find_camera(&s, id).filter(|c| pred(c)) {
                return c;
            }
            if Instant::now() > end {
                panic!(
                    "camera {id} never reached the condition; last status {s}\nlogs:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `GET /api/ip-cameras/{id}/replay` until the ring holds at least `ms` of camera
    /// `id` (bounded by 30 s); its span, and the answer.
    pub async fn wait_replay_span(&self, id: &str, ms: u64) -> (u64, u64, Value) {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let r = reqwest::get(self.url(&format!("/api/ip-cameras/{id}/replay"))).await;
            let v: Value = match r {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => Value::Null,
            };
            if let (Some(f), Some(t)) = (v["from"].as_u64(), v["to"].as_u64()) {
                if t >= f + ms {
                    return (f, t, v);
                }
            }
            assert!(Instant::now() < end, "{id} never kept {ms} ms: {v}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits (bounded) until camwall counts `n` WebSocket clients: connections open and close
    /// asynchronously to the client's side of them.
    pub async fn wait_ws_clients(&self, n: u64) {
        let want = format!("camwall_clients{{kind=\"websocket\"}} {n}");
        for _ in 0..100 {
            let m = reqwest::get(self.url("/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if m.lines().any(|l| l == want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("camwall never counted {n} WebSocket clients");
    }
}

/// Decodes a JPEG to RGB: (width, height, pixels).
pub fn decode_rgb(data: &[u8]) -> (usize, usize, Vec<u8>) {
    let img = turbojpeg::decompress(data, turbojpeg::PixelFormat::RGB).expect("valid JPEG");
    (img.width, img.height, img.pixels)
}

pub async fn get_frame(cam: &Camwall, id: &str, query: &str) -> reqwest::Response {
    reqwest::get(cam.url(&format!("/api/ip-cameras/frame/{id}{query}")))
        .await
        .unwrap()
}

/// Two RTSP H.264 test cameras showing the same still pattern, the second one scrolling it
/// (moving content for the activity estimate), and a camwall reading them as `still` and
/// `moving`.
pub fn still_and_moving() -> (RtspServer, RtspServer, Camwall) {
    let args = ["--pattern", "smpte100", "--size", "320x240", "--fps", "15"];
    let still = RtspServer::start(&args);
    let moving = RtspServer::start(&[&args[..], &["--speed", "4"]].concat());
    let cw = start_camwall(serde_json::json!({"server": {}, "cameras": [
        {"id": "still", "url": still.url()},
        {"id": "moving", "url": moving.url()}
    ]}));
    (still, moving, cw)
}

/// A listener that accepts TCP connections and never answers: a camera stuck connecting.
pub fn silent_listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// An HTTP MJPEG camera: the ffmpeg CLI encoding a lavfi pattern and serving it as
/// `multipart/x-mixed-replace` to one client at a time (restarted when that client leaves).
pub struct MjpegServer {
    pub port: u16,
    /// The ffmpeg serving now, `None` between two; `stopped` tells the serving thread to end.
    /// The child is killed through its handle, under the lock, so that a PID already reaped
    /// (and maybe reused by another test's process) is never signalled.
    current: std::sync::Arc<Mutex<(Option<Child>, bool)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MjpegServer {
    /// `graph` is a lavfi filtergraph; `qscale` the MJPEG -q:v (2 = best).
    pub fn start(graph: &str, qscale: u32) -> Self {
        let port = free_port();
        let current = std::sync::Arc::new(Mutex::new((None::<Child>, false)));
        let (graph, shared) = (graph.to_string(), current.clone());
        // ffmpeg's HTTP server takes one client and exits: serve again while the test runs.
        let thread = std::thread::spawn(move || loop {
            {
                let mut cur = shared.lock().unwrap();
                if cur.1 {
                    return;
                }
                let child = Command::new("ffmpeg")
                    .args(["-loglevel", "error", "-re", "-f", "lavfi", "-i", &graph])
                    .args([
                        "-c:v",
                        "mjpeg",
                        "-q:v",
                        &qscale.to_string(),
                        "-f",
                        "mpjpeg",
                        "-listen",
                        "1",
                    ])
                    .arg(format!("http://127.0.0.1:{port}/stream.mjpg"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn();
                let Ok(child) = child else { return };
                cur.0 = Some(child);
            }
            // Polled rather than waited on, so that the lock is free for Drop to kill it.
            loop {
                {
                    let mut cur = shared.lock().unwrap();
                    match cur.0.as_mut().map(|c| c.try_wait()) {
                        Some(Ok(None)) => {}
                        _ => {
                            cur.0 = None;
                            break;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // Not a wait for anything: keeps an ffmpeg that fails at once from spinning.
            std::thread::sleep(Duration::from_millis(50));
        });
        // Wait until it listens, without connecting: a probe would be ffmpeg's one client.
        let end = Instant::now() + Duration::from_secs(10);
        while !listening(port) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        MjpegServer {
            port,
            current,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/stream.mjpg", self.port)
    }
}

impl Drop for MjpegServer {
    fn drop(&mut self) {
        if let Ok(mut cur) = self.current.lock() {
            cur.1 = true;
            if let Some(mut c) = cur.0.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs the ffmpeg CLI with `args`, panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    run_ok(
        "ffmpeg",
        &[&["-loglevel", "error", "-y"][..], args].concat(),
    );
}

/// Runs `program` with `args`, panicking with its stderr on failure.
pub fn run_ok(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A frame received over the WebSocket: its header and JPEG.
#[derive(Debug, Clone)]
pub struct WsFrame {
    pub header: Value,
    pub jpeg: Vec<u8>,
}

impl WsFrame {
    pub fn camera(&self) -> &str {
        self.header["camera"].as_str().unwrap()
    }
    pub fn seq(&self) -> u64 {
        self.header["seq"].as_u64().unwrap()
    }
}

/// Splits a binary frame message: version byte, u16 header length, JSON header, JPEG.
pub fn parse_frame(data: &[u8]) -> WsFrame {
    assert_eq!(data[0], 1, "protocol version");
    let n = u16::from_be_bytes([data[1], data[2]]) as usize;
    let header: Value = serde_json::from_slice(&data[3..3 + n]).expect("JSON header");
    let jpeg = data[3 + n..].to_vec();
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "JPEG starts at SOI");
    WsFrame { header, jpeg }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn ws_connect(cw: &Camwall) -> Ws {
    let url = cw.base.replace("http://", "ws://") + "/ws";
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect");
    ws
}

/// Connects over a socket with a small receive buffer, so that a client that reads slowly
/// pushes back on the server quickly.
pub async fn ws_connect_small_buffer(
    cw: &Camwall,
    rcvbuf: u32,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let addr: std::net::SocketAddr = cw.base.trim_start_matches("http://").parse().unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(rcvbuf).unwrap();
    let stream = sock.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/ws");
    let (ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("ws handshake");
    ws
}

/// Reads messages until a frame arrives (texts are collected into `texts`), bounded by `timeout`.
pub async fn next_frame<S>(ws: &mut S, texts: &mut Vec<Value>, timeout: Duration) -> Option<WsFrame>
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let end = tokio::time::Instant::now() + timeout;
    loop {
        let msg = tokio::time::timeout_at(end, ws.next()).await.ok()??.ok()?;
        match msg {
            Message::Binary(b) => return Some(parse_frame(&b)),
            Message::Text(t) => texts.push(serde_json::from_str(&t).expect("server text is JSON")),
            _ => {}
        }
    }
}

/// Reads text messages until one satisfies `pred` (frames are counted and dropped).
pub async fn next_text<S>(
    ws: &mut S,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Option<Value>
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let end = tokio::time::Instant::now() + timeout;
    loop {
        let msg = tokio::time::timeout_at(end, ws.next()).await.ok()??.ok()?;
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("server text is JSON");
            if pred(&v) {
                return Some(v);
            }
        }
    }
}

pub async fn ws_send<S>(ws: &mut S, v: Value)
where
    S: futures_util::Sink<tokio_tungstenite::tungstenite::Message> + Unpin,
    S::Error: std::fmt::Debug,
{
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(v.to_string()))
        .await
        .unwrap();
}

impl Camwall {
    /// The status API's answer, read with a viewer token.
    pub async fn status_with_token(&self, token: &str) -> Value {
        reqwest::Client::new()
            .get(self.url("/api/ip-cameras/status"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until camera `id` streams, reading the status with a token.
    pub async fn wait_camera_with_token(&self, id: &str, token: &str) {
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            let s = self.status_with_token(token).await;
            if s["cameras"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["id"] == id && c["state"] == "streaming")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("camera {id} never streamed");
    }
}

/// A camera entry for a synthetic FFmpeg source.
pub fn lavfi(id: &str, graph: &str) -> Value {
    serde_json::json!({"id": id, "url": format!("lavfi:{graph}")})
}

/// Camera `id` in a status answer, if it is there.
fn find_camera(status: &Value, id: &str) -> Option<Value> {
    status["cameras"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
}

/// A 64x48 grey JPEG of luma `y` (quality 80), for HTTP test cameras.
pub fn gray_jpeg(y: u8) -> Vec<u8> {
    let luma = vec![y; 64 * 48];
    let c = vec![128u8; 32 * 24];
    let img = turbojpeg::YuvPlanesImage {
        y_plane: &luma[..],
        u_plane: &c[..],
        v_plane: &c[..],
        width: 64,
        height: 48,
        y_stride: 64,
        u_stride: 32,
        v_stride: 32,
        subsamp: turbojpeg::Subsamp::Sub2x2,
    };
    turbojpeg::compress_yuv_planes(&img, 80).unwrap().to_vec()
}

/// `camwall check-config --config <path>`: its exit status and output.
pub fn check_config(path: impl AsRef<std::path::Path>) -> std::process::Output {
    Command::new(camwall_bin())
        .arg("check-config")
        .arg("--config")
        .arg(path.as_ref())
        .output()
        .expect("run camwall check-config")
}

/// Runs camwall on `path` (on a free port) expecting it to stop at start: its exit status and
/// output.
pub fn start_refused(path: impl AsRef<std::path::Path>) -> std::process::Output {
    Command::new(camwall_bin())
        .arg("--config")
        .arg(path.as_ref())
        .arg("--listen")
        .arg("127.0.0.1:0")
        .output()
        .expect("run camwall")
}

/// A video viewer of camera `cam` on `cw` at a small tile (320 wide), checked to get the
/// camera's [`SUB`] stream's own H.264 (its `video_config` is 320x180).
pub async fn sub_stream_video_viewer(cw: &Camwall, cam: &str) -> Ws {
    let mut ws = ws_connect(cw).await;
    ws_send(
        &mut ws,
        serde_json::json!({"type": "subscribe", "cameras": [cam], "codecs": ["h264"], "max_width": 320}),
    )
    .await;
    let cfg = next_text(&mut ws, Duration::from_secs(20), |v| {
        v["type"] == "video_config" && v["width"] == 320
    })
    .await
    .expect("a video_config of the sub stream within 20 s");
    assert_eq!(cfg["height"], 180, "{cfg}");
    ws
}

/// A main stream (800x448) and a sub stream (320x180) of one camera, as GStreamer test cameras.
/// A 720p25 H.264 camera in High profile, what most IP cameras send.
pub const HIGH_720P: [&str; 8] = [
    "--pattern",
    "ball",
    "--size",
    "1280x720",
    "--fps",
    "25",
    "--profile",
    "high",
];
pub const MAIN: [&str; 6] = ["--pattern", "ball", "--size", "800x448", "--fps", "15"];
pub const SUB: [&str; 6] = ["--pattern", "smpte100", "--size", "320x180", "--fps", "15"];

/// The state of a camera's sub stream in its status.
pub fn sub_state(c: &Value) -> &str {
    c["streams"]["sub"]["state"].as_str().unwrap_or("")
}

/// Reads frames (and events) until one has width `w` after a `tier` event naming `stream`
/// (and `fallback`), within 30 s.
pub async fn until_served(ws: &mut Ws, stream: &str, fallback: bool, w: u64) {
    let end = Instant::now() + Duration::from_secs(30);
    let mut tier_seen = false;
    let mut texts = Vec::new();
    while Instant::now() < end {
        let f = next_frame(ws, &mut texts, Duration::from_secs(5)).await;
        for t in texts.drain(..) {
            if t["type"] == "tier" {
                tier_seen = t["stream"] == stream && t["fallback"] == fallback;
            }
        }
        if let Some(f) = f {
            if tier_seen && f.header["width"] == w {
                let (fw, _, _) = decode_rgb(&f.jpeg);
                assert_eq!(fw as u64, w, "the JPEG is as wide as its header says");
                return;
            }
        }
    }
    panic!("never served from {stream} (fallback {fallback}) at width {w}");
}

/// Counts complete JPEG parts in a multipart body read for `dur`, checking each one decodes.
pub async fn read_mjpeg_parts(url: String, dur: Duration) -> (usize, Vec<Vec<u8>>) {
    read_mjpeg_up_to(url, usize::MAX, dur).await
}

/// Reads an MJPEG stream until `max` parts came or `dur` passed.
pub async fn read_mjpeg_up_to(url: String, max: usize, dur: Duration) -> (usize, Vec<Vec<u8>>) {
    let mut res = reqwest::get(&url).await.unwrap();
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        ct.starts_with("multipart/x-mixed-replace; boundary=camwallframe"),
        "{ct}"
    );
    let mut buf: Vec<u8> = Vec::new();
    let mut parts = Vec::new();
    let end = tokio::time::Instant::now() + dur;
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(end, res.chunk()).await {
        buf.extend_from_slice(&chunk);
        // Parse as many complete parts as the buffer holds.
        while let Some(h_end) = find_bytes(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..h_end]).to_string();
            assert!(head.starts_with("--camwallframe"), "{head}");
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .expect("Content-Length")
                .trim()
                .parse()
                .unwrap();
            if buf.len() < h_end + 4 + len + 2 {
                break;
            }
            parts.push(buf[h_end + 4..h_end + 4 + len].to_vec());
            buf.drain(..h_end + 4 + len + 2);
        }
        if parts.len() >= max {
            break;
        }
    }
    (parts.len(), parts)
}

pub fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The port of a camwall's `http://127.0.0.1:PORT` address.
pub fn port_of(cw: &Camwall) -> String {
    cw.base
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string()
}

/// The strongest frequency of `samples` between 50 Hz and 4 kHz, in 5 Hz steps (Goertzel
/// over each candidate: a spectral peak, not a zero-crossing count that noise could fool).
pub fn peak_hz(samples: &[i16], rate: u32) -> f64 {
    let x: Vec<f64> = samples.iter().map(|s| f64::from(*s)).collect();
    let power = |hz: f64| {
        let w = 2.0 * std::f64::consts::PI * hz / f64::from(rate);
        let (mut s1, mut s2) = (0.0, 0.0);
        for v in &x {
            let s0 = v + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2
    };
    (10..=800)
        .map(|i| f64::from(i) * 5.0)
        .map(|hz| (hz, power(hz)))
        .fold(
            (0.0, f64::MIN),
            |best, c| if c.1 > best.1 { c } else { best },
        )
        .0
}

/// The root mean square of 16-bit samples (a sine at full scale: about 23,000).
pub fn loudness(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

/// `camwall hash-password` of `password`: what `server.auth.users[].password_hash` takes.
pub fn hash_password(password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(camwall_bin())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "hash-password failed");
    let h = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(h.starts_with("$argon2id$"), "{h}");
    h
}

/// `POST /api/login` as `user` (from `from`, sent as `X-Forwarded-For` when camwall trusts the
/// loopback proxy).
pub async fn login(cw: &Camwall, user: &str, password: &str, from: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(cw.url("/api/login"))
        .header("x-forwarded-for", from)
        .json(&serde_json::json!({"user": user, "password": password}))
        .send()
        .await
        .unwrap()
}

/// Logs in; the session cookie (`camwall_session=...`) and the answer.
pub async fn session(cw: &Camwall, user: &str, password: &str) -> (String, Value) {
    let r = login(cw, user, password, "10.9.9.9").await;
    assert_eq!(r.status(), 200, "login {user}");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = set.split(';').next().unwrap().to_string();
    (cookie, r.json().await.unwrap())
}

/// `GET path` with the session `cookie`.
pub async fn get_with_cookie(cw: &Camwall, cookie: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(cw.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}
