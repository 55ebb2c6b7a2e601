//! Prometheus metrics for `GET /metrics`: instruments updated where things happen (HTTP
//! requests, decode and encode times, frames sent and skipped per client kind), and the text
//! exposition of those plus the per-camera values the caller samples at scrape time.
//!
//! A leaf module: it reads nothing of the hub, the clients or the web layer; whoever scrapes
//! hands it a [`Scrape`]. Series of a removed camera are dropped with [`forget_camera`].

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CameraLabels {
    pub camera: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    camera: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    camera: String,
    quality: u8,
    scale: u8,
}

fn seconds_histogram() -> Histogram {
    // 0.1 ms to ~3 s.
    Histogram::new(exponential_buckets(0.0001, 2.5, 12))
}

/// Instruments that live as long as the process.
pub struct Metrics {
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub decode_seconds: Family<CameraLabels, Histogram, fn() -> Histogram>,
    pub encode_seconds: Family<CameraLabels, Histogram, fn() -> Histogram>,
    pub frames_sent: Family<KindLabels, Counter>,
    pub frames_skipped: Family<KindLabels, Counter>,
    pub audio_sent: Family<KindLabels, Counter>,
    pub audio_skipped: Family<KindLabels, Counter>,
    /// AAC to Opus transcodes running now (one per camera with WebRTC listeners).
    pub audio_transcodes: Gauge,
    /// Opus packets the transcodes made.
    pub audio_transcoded: Counter,
    pub bytes_sent: Family<KindLabels, Counter>,
    pub webrtc_sessions: Counter,
    pub webrtc_feedback: Family<KindLabels, Counter>,
    /// Login attempts by outcome (`ok`, `failed`, `throttled`).
    pub logins: Family<KindLabels, Counter>,
    /// Passwords checked against a hash (a user's, or the decoy for an unknown name).
    pub password_checks: Counter,
}

/// The process's instruments.
pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| Metrics {
        http_requests: Family::default(),
        http_seconds: Family::new_with_constructor(seconds_histogram),
        decode_seconds: Family::new_with_constructor(seconds_histogram),
        encode_seconds: Family::new_with_constructor(seconds_histogram),
        frames_sent: Family::default(),
        frames_skipped: Family::default(),
        audio_sent: Family::default(),
        audio_skipped: Family::default(),
        audio_transcodes: Gauge::default(),
        audio_transcoded: Counter::default(),
        bytes_sent: Family::default(),
        webrtc_sessions: Counter::default(),
        webrtc_feedback: Family::default(),
        logins: Family::default(),
        password_checks: Counter::default(),
    })
}

use super::pollers::{Pollers, MAX_POLLERS};

fn pollers() -> &'static Pollers {
    static P: OnceLock<Pollers> = OnceLock::new();
    P.get_or_init(|| Pollers::new(MAX_POLLERS))
}

/// Records a polled frame request: the client for the gauge, and the frame and its bytes when
/// a picture was sent (not for a 304).
pub fn polled(peer: Option<std::net::SocketAddr>, sent_bytes: Option<usize>) {
    if let Some(p) = peer {
        pollers().seen(p.ip(), Instant::now());
    }
    if let Some(bytes) = sent_bytes {
        let l = KindLabels { kind: "polling" };
        metrics().frames_sent.get_or_create(&l).inc();
        metrics().bytes_sent.get_or_create(&l).inc_by(bytes as u64);
    }
}

/// Records a frame sent to a live client of `kind` (a fixed label: `websocket`, `mjpeg`).
pub fn frame_sent(kind: &'static str, bytes: usize) {
    let l = KindLabels { kind };
    metrics().frames_sent.get_or_create(&l).inc();
    metrics().bytes_sent.get_or_create(&l).inc_by(bytes as u64);
}

/// Records `n` frames of `bytes` in all sent to live clients of `kind` (WebRTC counts in
/// batches).
pub fn frames_sent(kind: &'static str, n: u64, bytes: u64) {
    let l = KindLabels { kind };
    metrics().frames_sent.get_or_create(&l).inc_by(n);
    metrics().bytes_sent.get_or_create(&l).inc_by(bytes);
}

/// Records a login attempt's outcome (`ok`, `failed`, `throttled`).
pub fn login(outcome: &'static str) {
    metrics()
        .logins
        .get_or_create(&KindLabels { kind: outcome })
        .inc();
}

/// Records a password checked against a hash.
pub fn password_checked() {
    metrics().password_checks.inc();
}

/// Records a WebRTC session opened (an offer answered).
pub fn webrtc_opened() {
    metrics().webrtc_sessions.inc();
}

/// Records `n` pieces of WebRTC receiver feedback of `kind` (`nack`, `keyframe_request`).
pub fn webrtc_feedback(kind: &'static str, n: u64) {
    if n > 0 {
        metrics()
            .webrtc_feedback
            .get_or_create(&KindLabels { kind })
            .inc_by(n);
    }
}

/// Records frames a live client of `kind` skipped because it had not taken the previous one.
pub fn frames_skipped(kind: &'static str, n: u64) {
    metrics()
        .frames_skipped
        .get_or_create(&KindLabels { kind })
        .inc_by(n);
}

/// Records audio frames sent to live clients of `kind`.
pub fn audio_frames_sent(kind: &'static str, n: u64) {
    metrics()
        .audio_sent
        .get_or_create(&KindLabels { kind })
        .inc_by(n);
}

/// Records audio frames a live client of `kind` missed (it fell behind the broadcast).
pub fn audio_frames_skipped(kind: &'static str, n: u64) {
    metrics()
        .audio_skipped
        .get_or_create(&KindLabels { kind })
        .inc_by(n);
}

/// A camera's AAC to Opus transcode started (`true`) or stopped.
pub fn audio_transcode(running: bool) {
    let g = &metrics().audio_transcodes;
    if running {
        g.inc();
    } else {
        g.dec();
    }
}

/// Records Opus packets a transcode made.
pub fn audio_transcoded(n: u64) {
    metrics().audio_transcoded.inc_by(n);
}

/// Drops the series of a removed camera, so that cameras coming and going do not grow the
/// exposition forever.
pub fn forget_camera(camera: &str) {
    let l = CameraLabels {
        camera: camera.to_string(),
    };
    metrics().decode_seconds.remove(&l);
    metrics().encode_seconds.remove(&l);
}

pub fn observe_decode(camera: &str, d: Duration) {
    metrics()
        .decode_seconds
        .get_or_create(&CameraLabels {
            camera: camera.to_string(),
        })
        .observe(d.as_secs_f64());
}

pub fn observe_encode(camera: &str, d: Duration) {
    metrics()
        .encode_seconds
        .get_or_create(&CameraLabels {
            camera: camera.to_string(),
        })
        .observe(d.as_secs_f64());
}

/// The route template of a request path: bounded label values, no camera ids or tokens.
pub fn route_of(path: &str) -> &'static str {
    match path {
        "/health" => "/health",
        "/metrics" => "/metrics",
        "/ws" => "/ws",
        "/api/ip-cameras" => "/api/ip-cameras",
        "/api/ip-cameras/status" => "/api/ip-cameras/status",
        "/api/ip-cameras/initialize" => "/api/ip-cameras/initialize",
        "/api/frame.jpeg" => "/api/frame.jpeg",
        "/api/stream.mjpeg" => "/api/stream.mjpeg",
        p if p.starts_with("/api/ip-cameras/frame/") => "/api/ip-cameras/frame/{id}",
        p if p.starts_with("/api/ip-cameras/mjpeg/") => "/api/ip-cameras/mjpeg/{id}",
        p if p.starts_with("/api/ip-cameras/") => "/api/ip-cameras/{id}",
        p if p.starts_with("/api/") => "/api/other",
        _ => "static",
    }
}

/// Records one HTTP request (status and time to the response head).
pub fn observe_http(path: &str, method: &str, status: u16, elapsed: Duration) {
    let route = route_of(path);
    let m = metrics();
    m.http_requests
        .get_or_create(&HttpLabels {
            route,
            // Any method name is accepted on the wire: label values must stay a fixed set.
            method: match method {
                "GET" => "GET",
                "HEAD" => "HEAD",
                "POST" => "POST",
                "PUT" => "PUT",
                "PATCH" => "PATCH",
                "DELETE" => "DELETE",
                "OPTIONS" => "OPTIONS",
                _ => "other",
            },
            status,
        })
        .inc();
    m.http_seconds
        .get_or_create(&RouteLabels { route })
        .observe(elapsed.as_secs_f64());
}

/// One camera's values at scrape time.
#[derive(Debug, Clone, Default)]
pub struct CameraSample {
    pub id: String,
    /// The state's name as the status API spells it.
    pub state: &'static str,
    pub frames_in: u64,
    /// Source pictures dropped because they would not decode.
    pub frames_corrupt: u64,
    /// Pictures out of the decoder.
    pub frames_decoded: u64,
    /// Whether the decoder runs now.
    pub decoding: bool,
    /// How much the picture changes (0..1), if estimated.
    pub activity: Option<f32>,
    pub fps: f64,
    pub reconnects: u64,
    pub last_frame_age_ms: Option<u64>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// (quality, scale, encodes) per tier.
    pub tiers: Vec<(u8, u8, u64)>,
}

/// Every camera state a sample may name (each gets a 0/1 series).
pub const CAMERA_STATES: [&str; 7] = [
    "connecting",
    "streaming",
    "backoff",
    "unauthorized",
    "disabled",
    "stopped",
    "idle",
];

/// What the caller samples for a scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub cameras: Vec<CameraSample>,
    /// Connected live clients by kind label.
    pub clients: Vec<(&'static str, usize)>,
}

/// The text exposition of every metric.
/// The cluster node name every series carries (`node="..."`), set once by a cluster node.
static NODE_LABEL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Labels every series of this process with `node` (cluster mode; alone, no label).
pub fn set_node_label(node: &str) {
    let _ = NODE_LABEL.set(node.to_string());
}

pub fn render(scrape: &Scrape) -> String {
    let mut reg = match NODE_LABEL.get() {
        Some(node) => Registry::with_prefix_and_labels(
            "camwall",
            std::iter::once((
                std::borrow::Cow::Borrowed("node"),
                std::borrow::Cow::Owned(node.clone()),
            )),
        ),
        None => Registry::with_prefix("camwall"),
    };
    let m = metrics();
    reg.register(
        "http_requests",
        "HTTP requests by route, method and status",
        m.http_requests.clone(),
    );
    reg.register(
        "http_request_seconds",
        "Time to the response head, by route",
        m.http_seconds.clone(),
    );
    reg.register(
        "decode_seconds",
        "Time to decode one packet, by camera",
        m.decode_seconds.clone(),
    );
    reg.register(
        "encode_seconds",
        "Time to encode one JPEG, by camera",
        m.encode_seconds.clone(),
    );
    reg.register(
        "frames_sent",
        "Frames sent to live clients, by kind",
        m.frames_sent.clone(),
    );
    reg.register(
        "frames_skipped",
        "Frames a live client skipped because it had not taken the previous one, by kind",
        m.frames_skipped.clone(),
    );
    reg.register(
        "audio_frames_sent",
        "The cameras' own audio frames sent to live clients, by kind",
        m.audio_sent.clone(),
    );
    reg.register(
        "audio_frames_skipped",
        "Audio frames a live client missed because it fell behind, by kind",
        m.audio_skipped.clone(),
    );
    reg.register(
        "audio_transcodes",
        "AAC to Opus transcodes running now, one per camera that WebRTC listeners hear",
        m.audio_transcodes.clone(),
    );
    reg.register(
        "audio_transcoded_frames",
        "Opus packets made from cameras' AAC for WebRTC listeners",
        m.audio_transcoded.clone(),
    );
    reg.register(
        "bytes_sent",
        "Frame bytes sent to live clients, by kind",
        m.bytes_sent.clone(),
    );
    reg.register(
        "webrtc_sessions_opened",
        "WebRTC sessions whose offer was answered",
        m.webrtc_sessions.clone(),
    );
    reg.register(
        "webrtc_feedback",
        "WebRTC receiver feedback: NACKs and keyframe requests (PLI, FIR)",
        m.webrtc_feedback.clone(),
    );
    reg.register(
        "logins",
        "Login attempts by outcome (ok, failed, throttled)",
        m.logins.clone(),
    );
    reg.register(
        "password_checks",
        "Passwords checked against an argon2id hash (an unknown name's against a decoy)",
        m.password_checks.clone(),
    );

    let state = Family::<StateLabels, Gauge>::default();
    let frames_in = Family::<CameraLabels, Counter>::default();
    let frames_corrupt = Family::<CameraLabels, Counter>::default();
    let frames_decoded = Family::<CameraLabels, Counter>::default();
    let decoding = Family::<CameraLabels, Gauge>::default();
    let fps = Family::<CameraLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let activity = Family::<CameraLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let reconnects = Family::<CameraLabels, Counter>::default();
    let age = Family::<CameraLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let encodes = Family::<TierLabels, Counter>::default();
    let hits = Family::<CameraLabels, Counter>::default();
    let misses = Family::<CameraLabels, Counter>::default();
    for s in &scrape.cameras {
        let c = CameraLabels {
            camera: s.id.clone(),
        };
        for st in CAMERA_STATES {
            let on = s.state == st;
            state
                .get_or_create(&StateLabels {
                    camera: s.id.clone(),
                    state: st.into(),
                })
                .set(i64::from(on));
        }
        frames_in.get_or_create(&c).inc_by(s.frames_in);
        frames_corrupt.get_or_create(&c).inc_by(s.frames_corrupt);
        frames_decoded.get_or_create(&c).inc_by(s.frames_decoded);
        decoding.get_or_create(&c).set(i64::from(s.decoding));
        fps.get_or_create(&c).set(s.fps);
        if let Some(a) = s.activity {
            activity.get_or_create(&c).set(f64::from(a));
        }
        reconnects.get_or_create(&c).inc_by(s.reconnects);
        age.get_or_create(&c).set(
            s.last_frame_age_ms
                .map_or(f64::NAN, |ms| ms as f64 / 1000.0),
        );
        hits.get_or_create(&c).inc_by(s.cache_hits);
        misses.get_or_create(&c).inc_by(s.cache_misses);
        for &(quality, scale, n) in &s.tiers {
            encodes
                .get_or_create(&TierLabels {
                    camera: s.id.clone(),
                    quality,
                    scale,
                })
                .inc_by(n);
        }
    }
    reg.register("camera_state", "1 for the state each camera is in", state);
    reg.register(
        "camera_frames_in",
        "Frames received from each camera",
        frames_in,
    );
    reg.register(
        "camera_frames_corrupt",
        "Pictures from each camera dropped because they would not decode",
        frames_corrupt,
    );
    reg.register(
        "camera_frames_decoded",
        "Pictures decoded from each camera (its decoder runs only while pictures are wanted)",
        frames_decoded,
    );
    reg.register(
        "camera_decoding",
        "1 while a camera's decoder runs",
        decoding,
    );
    reg.register("camera_fps", "Measured frame rate of each camera", fps);
    reg.register(
        "camera_activity",
        "How much each camera's picture changes (0..1), from compressed frame sizes: a cue, not motion detection",
        activity,
    );
    reg.register(
        "camera_reconnects",
        "Failed sessions of each camera",
        reconnects,
    );
    reg.register(
        "camera_last_frame_age_seconds",
        "Age of each camera's newest frame",
        age,
    );
    reg.register("jpeg_encodes", "JPEG encodes by camera and tier", encodes);
    reg.register("cache_hits", "Frame requests served from the cache", hits);
    reg.register(
        "cache_misses",
        "Frame requests that needed an encode",
        misses,
    );
    let clients = Family::<KindLabels, Gauge>::default();
    for &(kind, n) in &scrape.clients {
        clients.get_or_create(&KindLabels { kind }).set(n as i64);
    }
    clients
        .get_or_create(&KindLabels { kind: "polling" })
        .set(pollers().active(Instant::now()) as i64);
    reg.register(
        "clients",
        "Connected live clients by kind; polling: addresses that polled in the last 10 s",
        clients,
    );
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates() {
        assert_eq!(
            route_of("/api/ip-cameras/frame/door"),
            "/api/ip-cameras/frame/{id}"
        );
        assert_eq!(route_of("/api/ip-cameras/door"), "/api/ip-cameras/{id}");
        assert_eq!(route_of("/api/ip-cameras/status"), "/api/ip-cameras/status");
        assert_eq!(route_of("/wall.js"), "static");
        assert_eq!(route_of("/api/zzz"), "/api/other");
    }

    #[test]
    fn removed_cameras_leave_the_exposition() {
        observe_encode("gone-cam", Duration::from_millis(1));
        observe_decode("gone-cam", Duration::from_millis(1));
        let sample = |id: &str| CameraSample {
            id: id.into(),
            state: "streaming",
            frames_corrupt: 3,
            frames_decoded: 7,
            decoding: true,
            activity: Some(0.5),
            ..Default::default()
        };
        let text = render(&Scrape {
            cameras: vec![sample("gone-cam")],
            clients: vec![("websocket", 2)],
        });
        assert!(text.contains("camwall_camera_frames_decoded_total{camera=\"gone-cam\"} 7"));
        assert!(text.contains("camwall_camera_decoding{camera=\"gone-cam\"} 1"));
        assert!(text.contains("camwall_camera_activity{camera=\"gone-cam\"} 0.5"));
        assert!(
            text.contains("camwall_camera_frames_corrupt_total{camera=\"gone-cam\"} 3"),
            "{text}"
        );
        assert!(text.contains("camwall_encode_seconds_count{camera=\"gone-cam\"}"));
        assert!(text.contains("camwall_camera_state{camera=\"gone-cam\",state=\"streaming\"} 1"));
        assert!(text.contains("camwall_clients{kind=\"websocket\"} 2"));
        forget_camera("gone-cam");
        let text = render(&Scrape::default());
        assert!(!text.contains("gone-cam"), "{text}");
    }
}
