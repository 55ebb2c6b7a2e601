//! Status answers: `GET /health`, `GET /api/ip-cameras/status`, `POST .../initialize` and the
//! `GET /metrics` scrape (sampling the hub and the client caps for the metrics module).

use serde::Serialize;
use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::Reply;

use super::state::WebState;
use crate::access::guard::Principal;
use crate::access::limits::ClientKind;
use crate::hub::{CameraState, CameraStatus, Hub, StreamKind};
use crate::obs::metrics::{self, CameraSample, Scrape};

/// A JSON answer that must not be cached.
pub fn json_ok<T: Serialize>(value: &T) -> Response {
    let mut res = warp::reply::json(value).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    uptime_s: u64,
    /// True when anyone who can reach the server may use it (no token, not on loopback).
    open_access: bool,
    cameras: HealthCameras,
    /// WebRTC's UDP port and sessions; `null` when WebRTC is off.
    webrtc: Option<HealthWebRtc>,
}

#[derive(Serialize)]
struct HealthWebRtc {
    udp: u16,
    sessions: usize,
    opened: u64,
}

#[derive(Serialize)]
struct HealthCameras {
    total: usize,
    enabled: usize,
    streaming: usize,
}

pub fn health(s: &WebState) -> Response {
    let cams = s.hub.cameras();
    let streaming = cams
        .iter()
        .filter(|c| c.state() == CameraState::Streaming)
        .count();
    json_ok(&Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: s.hub.uptime().as_secs(),
        open_access: s.open_access,
        cameras: HealthCameras {
            total: cams.len(),
            enabled: cams.iter().filter(|c| c.config().enabled).count(),
            streaming,
        },
        webrtc: s.webrtc.as_ref().map(|w| HealthWebRtc {
            udp: w.local_addr().port(),
            sessions: w.sessions(),
            opened: w.opened(),
        }),
    })
}

#[derive(Serialize)]
pub struct StatusBody {
    uptime_s: u64,
    /// The tier rules, so that pages need not copy them.
    quality_tiers: Vec<u8>,
    scales: [u8; 3],
    cameras: Vec<CameraEntry>,
}

/// A camera's status plus its live viewers (WebSocket and MJPEG, JPEG lanes and video), so
/// that a wall that subscribes only to the cameras on screen can be seen doing so.
#[derive(Serialize)]
struct CameraEntry {
    #[serde(flatten)]
    status: CameraStatus,
    viewers: usize,
    /// Each stream on its own: `main` (what the top-level fields show) and `sub` when the
    /// camera has one (opened only while used: `idle` otherwise).
    streams: Streams,
}

#[derive(Serialize)]
struct Streams {
    main: StreamStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<StreamStatus>,
}

/// One stream's own session as the status shows it. No field carries a credential.
#[derive(Serialize)]
struct StreamStatus {
    url: String,
    state: CameraState,
    width: u32,
    height: u32,
    fps: f64,
    codec: Option<String>,
    frames_in: u64,
    frames_published: u64,
    decoder: crate::hub::demand::DecodeMode,
    reconnects: u64,
    last_error: Option<String>,
    last_frame_age_ms: Option<u64>,
    viewers: usize,
}

impl StreamStatus {
    /// From a status already taken (the main stream's is the camera's own).
    fn of(st: &CameraStatus, stream: &crate::hub::Stream) -> Self {
        Self {
            url: st.url.clone(),
            state: st.state,
            width: st.width,
            height: st.height,
            fps: st.fps,
            codec: st.codec.clone(),
            frames_in: st.frames_in,
            frames_published: st.frames_published,
            decoder: st.decoder,
            reconnects: st.reconnects,
            last_error: st.last_error.clone(),
            last_frame_age_ms: st.last_frame_age_ms,
            viewers: stream.viewers(),
        }
    }
}

pub fn status_body(hub: &Hub) -> StatusBody {
    StatusBody {
        uptime_s: hub.uptime().as_secs(),
        quality_tiers: hub.qualities().as_slice().to_vec(),
        scales: crate::media::tier::SCALES,
        cameras: hub
            .cameras()
            .iter()
            .filter_map(|c| {
                let main = hub.stream_of(c.id(), StreamKind::Main)?;
                let status = c.status();
                let main_status = StreamStatus::of(&status, &main);
                let sub = hub
                    .sub(c.id())
                    .map(|s| StreamStatus::of(&s.camera.status(), &s));
                Some(CameraEntry {
                    status,
                    viewers: main_status.viewers + sub.as_ref().map_or(0, |s| s.viewers),
                    streams: Streams {
                        main: main_status,
                        sub,
                    },
                })
            })
            .collect(),
    }
}

/// `GET /api/ip-cameras/status`. In a cluster every camera also names the `node` ingesting
/// it; one ingested elsewhere shows the state the cluster gave the camera from that node's
/// report, or `unavailable` when no node can be reached for it (`node` null). `node` at the
/// top names the answering node.
pub fn status(s: &WebState, who: &Principal) -> Response {
    let body = status_body(&s.hub);
    let mut v = match &s.cluster {
        None => serde_json::to_value(&body).unwrap_or_default(),
        Some(c) => clustered(&body, c),
    };
    // Only the cameras the asker may see: the others' names must not leak.
    if let Some(cams) = v
        .get_mut("cameras")
        .and_then(serde_json::Value::as_array_mut)
    {
        cams.retain(|c| who.scope.allows(c["id"].as_str().unwrap_or_default()));
    }
    if let Some(r) = &s.replay {
        with_replay(&mut v, r);
    }
    json_ok(&v)
}

/// Each recorded camera's replay span, bytes and error (`replay`).
fn with_replay(v: &mut serde_json::Value, r: &crate::replay::Replay) {
    if let Some(cams) = v
        .get_mut("cameras")
        .and_then(serde_json::Value::as_array_mut)
    {
        for cam in cams {
            let id = cam["id"].as_str().unwrap_or_default().to_string();
            cam["replay"] = serde_json::to_value(r.span(&id)).unwrap_or_default();
        }
    }
}

fn clustered(body: &impl Serialize, c: &crate::cluster::Cluster) -> serde_json::Value {
    let mut v = serde_json::to_value(body).unwrap_or_default();
    if let Some(cams) = v
        .get_mut("cameras")
        .and_then(serde_json::Value::as_array_mut)
    {
        for cam in cams {
            let id = cam["id"].as_str().unwrap_or_default().to_string();
            let node = c.placement(&id);
            // Nobody's report to show: the camera waits (`connecting` to its viewers), and
            // status says why.
            if node.is_none() {
                cam["state"] = "unavailable".into();
            }
            cam["node"] = node.into();
        }
    }
    v["node"] = c.node().into();
    v
}

/// `GET /api/cluster`: the nodes, with the cameras each ingests, its viewers and CPU.
pub fn cluster(s: &WebState) -> Response {
    match &s.cluster {
        Some(c) => json_ok(&c.status()),
        None => super::error::ApiError::not_clustered().into_response(),
    }
}

pub fn initialize(s: &WebState) -> Response {
    #[derive(Serialize)]
    struct Body {
        restarted: Vec<String>,
        #[serde(flatten)]
        status: StatusBody,
    }
    let mut restarted = Vec::new();
    for cam in s.hub.cameras() {
        // Only a camera waiting out a backoff is woken; one connecting or streaming is left
        // alone, so calling this twice changes nothing.
        if matches!(
            cam.state(),
            CameraState::Backoff | CameraState::Unauthorized
        ) {
            cam.kick();
            restarted.push(cam.id().to_string());
        }
    }
    let body = Body {
        restarted,
        status: status_body(&s.hub),
    };
    match &s.cluster {
        None => json_ok(&body),
        Some(c) => json_ok(&clustered(&body, c)),
    }
}

/// The Prometheus text exposition.
pub fn metrics(s: &WebState) -> Response {
    let scrape = Scrape {
        cameras: s
            .hub
            .cameras()
            .iter()
            .map(|c| {
                let st = c.status();
                CameraSample {
                    state: st.state.name(),
                    frames_in: st.frames_in,
                    frames_corrupt: st.frames_corrupt,
                    frames_decoded: st.frames_decoded,
                    decoding: st.decoding,
                    activity: st.activity,
                    fps: st.fps,
                    reconnects: st.reconnects,
                    last_frame_age_ms: st.last_frame_age_ms,
                    cache_hits: st.cache_hits,
                    cache_misses: st.cache_misses,
                    tiers: st
                        .tiers
                        .iter()
                        .map(|t| (t.quality, t.scale, t.jpeg_encodes))
                        .collect(),
                    id: st.id,
                }
            })
            .collect(),
        clients: ClientKind::ALL
            .into_iter()
            .map(|k| (k.label(), s.limits.count(k)))
            .collect(),
    };
    let mut r = Response::new(metrics::render(&scrape).into());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
