//! The live wall's WebSocket (`GET /ws`): client messages, per-connection subscriptions, and
//! per-client adaptive quality. Protocol: docs/PROTOCOL.md.
//!
//! Each connection has a reader task (control messages, pongs) and a writer loop that owns the
//! subscriptions. Frames come from the tier broadcast channels of `fanout`; a receiver that
//! lags skips to the newest frame, so a client never has more than one frame pending per
//! camera and a slow client never holds up the pump or other clients.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamMap;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info_span, Instrument};
use warp::ws::{Message, WebSocket};

use crate::fanout::{self, Published};
use crate::hub::{Camera, CameraState, Hub, Tier};

/// Protocol version announced in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Control messages above this size get an `oversized` error (the socket stays open).
pub const MAX_CONTROL_MESSAGE: usize = 8 * 1024;
/// Messages above this size close the socket (tungstenite's limit: memory protection).
pub const MAX_WS_MESSAGE: usize = 64 * 1024;
/// A ping goes out this often; a client silent for [`DEAD_AFTER`] is dropped.
pub const PING_EVERY: Duration = Duration::from_secs(10);
pub const DEAD_AFTER: Duration = Duration::from_secs(30);
/// A single send blocked this long means the client is gone.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// Adaptation looks at windows of this length.
const WINDOW: Duration = Duration::from_secs(1);
/// Bounded queue from the reader task to the writer.
const CONTROL_QUEUE: usize = 32;
/// Sent-but-unacknowledged sequence numbers remembered per camera.
const MAX_TRACKED_IN_FLIGHT: usize = 64;

/// `quality` in a subscribe message: `"auto"` or a fixed JPEG quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualityReq {
    Auto,
    Fixed(u8),
}

impl<'de> Deserialize<'de> for QualityReq {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) if s == "auto" => Ok(Self::Auto),
            Value::Number(n) => match n.as_u64() {
                Some(q @ 1..=100) => Ok(Self::Fixed(q as u8)),
                _ => Err(serde::de::Error::custom(
                    "quality must be \"auto\" or 1..100",
                )),
            },
            _ => Err(serde::de::Error::custom(
                "quality must be \"auto\" or 1..100",
            )),
        }
    }
}

fn default_quality() -> QualityReq {
    QualityReq::Auto
}

/// Messages a client sends (JSON text).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    Subscribe {
        cameras: Vec<String>,
        #[serde(default = "default_quality")]
        quality: QualityReq,
        #[serde(default)]
        max_width: Option<u32>,
        #[serde(default)]
        max_fps: Option<f64>,
    },
    Unsubscribe {
        cameras: Vec<String>,
    },
    /// The client drew frame `seq` of `camera`; `latency_ms` is capture to display.
    Ack {
        camera: String,
        seq: u64,
        #[serde(default)]
        latency_ms: Option<f64>,
    },
}

/// Why a client message was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientError {
    pub code: &'static str,
    pub message: String,
}

/// Parses one client text message.
pub fn parse_client(text: &str) -> Result<ClientMsg, ClientError> {
    if text.len() > MAX_CONTROL_MESSAGE {
        return Err(ClientError {
            code: "oversized",
            message: format!("control messages are limited to {MAX_CONTROL_MESSAGE} bytes"),
        });
    }
    let value: Value = serde_json::from_str(text).map_err(|e| ClientError {
        code: "bad_json",
        message: format!("not JSON: {e}"),
    })?;
    let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
    if !matches!(kind, "subscribe" | "unsubscribe" | "ack") {
        return Err(ClientError {
            code: "unknown_type",
            message: format!(
                "unknown message type {:?}; expected subscribe, unsubscribe or ack",
                kind.chars().take(32).collect::<String>()
            ),
        });
    }
    serde_json::from_value(value).map_err(|e| ClientError {
        code: "bad_message",
        message: e.to_string(),
    })
}

/// One rung of the adaptation ladder: quality first, then size, then frame rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rung {
    pub quality: u8,
    pub scale: u8,
    /// Fraction of the source frame rate.
    pub fps_factor: f64,
}

/// The ladder for quality tiers `tiers` (best first): every tier at full size, then the last
/// one at 1/2 and 1/4 size, then 1/4 size at 1/2 and 1/4 of the frame rate.
pub fn ladder(tiers: &[u8]) -> Vec<Rung> {
    let mut out: Vec<Rung> = tiers
        .iter()
        .map(|&q| Rung {
            quality: q,
            scale: 1,
            fps_factor: 1.0,
        })
        .collect();
    let last = tiers.last().copied().unwrap_or(70);
    for (scale, fps_factor) in [(2, 1.0), (4, 1.0), (4, 0.5), (4, 0.25)] {
        out.push(Rung {
            quality: last,
            scale,
            fps_factor,
        });
    }
    out
}

/// Smallest downscale (1, 2, 4) that brings `src_width` within `max_width`.
pub fn scale_for_width(src_width: u32, max_width: Option<u32>) -> u8 {
    match max_width {
        Some(max) if src_width > 0 => crate::jpeg::SCALES
            .into_iter()
            .find(|&s| src_width.div_ceil(s as u32) <= max)
            .unwrap_or(4),
        _ => 1,
    }
}

/// What one window of sending looked like for one subscription.
#[derive(Debug, Default, Clone)]
pub struct WindowStats {
    pub sent: u32,
    pub skipped: u32,
    pub send_time: Duration,
    pub max_in_flight: usize,
    pub acking: bool,
    pub latency_sum_ms: f64,
    pub latency_n: u32,
}

/// Verdict on a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    Bad,
    Ok,
    Good,
}

impl WindowStats {
    pub fn verdict(&self) -> Drain {
        let offered = self.sent + self.skipped;
        let avg_send_ms = if self.sent > 0 {
            self.send_time.as_secs_f64() * 1000.0 / self.sent as f64
        } else {
            0.0
        };
        let latency = (self.latency_n > 0).then(|| self.latency_sum_ms / self.latency_n as f64);
        let bad = (self.skipped > 0 && self.skipped * 5 >= offered)
            || (self.acking && self.max_in_flight >= 4)
            || avg_send_ms > 50.0
            || latency.is_some_and(|l| l > 300.0);
        let good = self.skipped == 0
            && (!self.acking || self.max_in_flight <= 2)
            && avg_send_ms < 10.0
            && latency.is_none_or(|l| l < 150.0);
        if bad {
            Drain::Bad
        } else if good {
            Drain::Good
        } else {
            Drain::Ok
        }
    }
}

/// Moves a client along the ladder with hysteresis: down one rung on a bad window, up one
/// after `up_after` good windows in a row; flapping (down soon after an up) doubles
/// `up_after`, up to 30 s.
#[derive(Debug, Clone)]
pub struct Adapter {
    pub level: usize,
    max_level: usize,
    good_run: u32,
    up_after: u32,
    windows_since_up: u32,
}

impl Adapter {
    pub fn new(max_level: usize) -> Self {
        Self {
            level: 0,
            max_level,
            good_run: 0,
            up_after: 3,
            windows_since_up: u32::MAX,
        }
    }

    /// Feeds one window's verdict; returns true if the level changed.
    pub fn feed(&mut self, d: Drain) -> bool {
        self.windows_since_up = self.windows_since_up.saturating_add(1);
        match d {
            Drain::Bad => {
                self.good_run = 0;
                if self.level < self.max_level {
                    if self.windows_since_up <= 5 {
                        self.up_after = (self.up_after * 2).min(30);
                    }
                    self.level += 1;
                    return true;
                }
            }
            Drain::Good => {
                self.good_run += 1;
                if self.good_run >= self.up_after && self.level > 0 {
                    self.level -= 1;
                    self.good_run = 0;
                    self.windows_since_up = 0;
                    return true;
                }
                if self.windows_since_up > 60 {
                    self.up_after = 3;
                }
            }
            Drain::Ok => self.good_run = 0,
        }
        false
    }
}

/// One camera a connection watches.
struct Sub {
    cam: Arc<Camera>,
    quality: QualityReq,
    max_width: Option<u32>,
    max_fps: Option<f64>,
    adapter: Adapter,
    tier: Tier,
    fps_cap: Option<f64>,
    src_width: u32,
    last_sent_seq: u64,
    window: WindowStats,
    in_flight: VecDeque<u64>,
    last_state: Option<CameraState>,
}

impl Sub {
    /// Tier and frame-rate cap for the current settings and level.
    fn target(&self, ladder: &[Rung]) -> (Tier, Option<f64>) {
        let min_scale = scale_for_width(self.src_width, self.max_width);
        let src_fps = self.cam.status_fps();
        match self.quality {
            QualityReq::Fixed(q) => (
                Tier {
                    quality: q,
                    scale: min_scale,
                },
                self.max_fps,
            ),
            QualityReq::Auto => {
                let rung = ladder[self.adapter.level.min(ladder.len() - 1)];
                // From the rounded source rate, so that viewers on the same rung share one
                // lane (measured rates wobble: 24.9, 25.1).
                let fps = (rung.fps_factor < 1.0 && src_fps > 0.0)
                    .then_some(src_fps.round().max(1.0) * rung.fps_factor);
                let cap = match (fps, self.max_fps) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                (
                    Tier {
                        quality: rung.quality,
                        scale: rung.scale.max(min_scale),
                    },
                    cap,
                )
            }
        }
    }
}

/// Serves one WebSocket connection until it closes, dies, or the server shuts down.
pub async fn serve(
    socket: WebSocket,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    mut events: tokio::sync::broadcast::Receiver<crate::control::HubEvent>,
    peer: String,
) {
    let span = info_span!("ws", %peer);
    async move {
        debug!("connected");
        let (mut tx, mut rx) = socket.split();
        let last_heard = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let (cmd_tx, mut cmd_rx) = mpsc::channel::<Result<String, &'static str>>(CONTROL_QUEUE);
        let heard = last_heard.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = rx.next().await {
                heard.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                let item = if msg.is_text() {
                    Ok(msg.to_str().unwrap_or_default().to_string())
                } else if msg.is_binary() {
                    Err("binary messages are not accepted; send JSON text")
                } else if msg.is_close() {
                    break;
                } else {
                    continue;
                };
                if cmd_tx.send(item).await.is_err() {
                    break;
                }
            }
        });

        let mut conn = Conn {
            hub: hub.clone(),
            ladder: ladder(&hub.settings.quality_tiers),
            subs: HashMap::new(),
            streams: StreamMap::new(),
            out: Vec::new(),
        };
        let cams: Vec<crate::hub::CameraInfo> = hub.cameras().iter().map(|c| c.info()).collect();
        conn.text(json!({
            "type": "hello",
            "version": PROTOCOL_VERSION,
            "cameras": cams,
            "quality_tiers": hub.settings.quality_tiers,
        }));
        let mut ticker = tokio::time::interval(WINDOW / 2);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_window = Instant::now();
        let mut last_ping = Instant::now();
        let mut events_open = true;
        'conn: loop {
            // Control answers first; they are small and bounded by the client's own messages.
            for m in conn.out.drain(..) {
                if send_timed(&mut tx, m).await.is_none() {
                    break 'conn;
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    let _ = tx.send(Message::close_with(1001u16, "server shutting down")).await;
                    break;
                }
                ev = events.recv(), if events_open => match ev {
                    Ok(crate::control::HubEvent::Added(info)) => conn.text(json!({"type": "camera_added", "camera": info})),
                    Ok(crate::control::HubEvent::Removed(id)) => {
                        conn.subs.remove(&id);
                        conn.streams.remove(&id);
                        conn.text(json!({"type": "camera_removed", "camera": id}));
                    }
                    // Missed some: the client re-reads the whole list.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let cams: Vec<crate::hub::CameraInfo> = conn.hub.cameras().iter().map(|c| c.info()).collect();
                        conn.text(json!({"type": "hello", "version": PROTOCOL_VERSION, "cameras": cams, "quality_tiers": conn.hub.settings.quality_tiers}));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => events_open = false,
                },
                cmd = cmd_rx.recv() => match cmd {
                    None => break,
                    Some(Ok(text)) => conn.handle_text(&text).await,
                    Some(Err(msg)) => conn.error("bad_message", msg, None),
                },
                _ = ticker.tick() => {
                    conn.poll_states();
                    if last_window.elapsed() >= WINDOW {
                        last_window = Instant::now();
                        conn.adapt();
                    }
                    if last_ping.elapsed() >= PING_EVERY {
                        last_ping = Instant::now();
                        let silent = epoch.elapsed().saturating_sub(Duration::from_millis(last_heard.load(Ordering::Relaxed)));
                        if silent > DEAD_AFTER {
                            debug!("no answer to pings; dropping");
                            break;
                        }
                        conn.out.push(Message::ping(Vec::new()));
                    }
                }
                Some((id, item)) = conn.streams.next() => {
                    match item {
                        Ok(p) => {
                            if let Some(msg) = conn.admit(&id, &p) {
                                let Some(took) = send_timed(&mut tx, msg).await else { break };
                                crate::metrics::frame_sent(crate::auth::ClientKind::WebSocket, p.ws_message.len());
                                conn.sent(&id, p.encoded.seq, took);
                            }
                        }
                        Err(BroadcastStreamRecvError::Lagged(n)) => {
                            crate::metrics::frames_skipped(crate::auth::ClientKind::WebSocket, n);
                            conn.skipped(&id, n);
                        }
                    }
                }
            }
        }
        reader.abort();
        debug!("disconnected");
    }
    .instrument(span)
    .await
}

/// Sends one message; `None` if the client is gone or stalled past [`SEND_TIMEOUT`].
async fn send_timed(
    tx: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    msg: Message,
) -> Option<Duration> {
    let t0 = Instant::now();
    match tokio::time::timeout(SEND_TIMEOUT, tx.send(msg)).await {
        Ok(Ok(())) => Some(t0.elapsed()),
        _ => None,
    }
}

struct Conn {
    hub: Arc<Hub>,
    ladder: Vec<Rung>,
    subs: HashMap<String, Sub>,
    streams: StreamMap<String, BroadcastStream<Arc<Published>>>,
    /// Control messages waiting to go out (bounded by what one client message can cause).
    out: Vec<Message>,
}

impl Conn {
    fn text(&mut self, v: Value) {
        self.out.push(Message::text(v.to_string()));
    }

    fn error(&mut self, code: &str, message: &str, camera: Option<&str>) {
        let mut v = json!({"type": "error", "code": code, "message": message});
        if let Some(c) = camera {
            v["camera"] = json!(c);
        }
        self.text(v);
    }

    async fn handle_text(&mut self, text: &str) {
        let msg = match parse_client(text) {
            Ok(m) => m,
            Err(e) => return self.error(e.code, &e.message, None),
        };
        match msg {
            ClientMsg::Subscribe {
                cameras,
                quality,
                max_width,
                max_fps,
            } => {
                if max_fps.is_some_and(|f| !(f.is_finite() && f > 0.0)) {
                    return self.error("bad_message", "max_fps must be a positive number", None);
                }
                for id in self.expand(&cameras) {
                    self.subscribe(&id, quality, max_width, max_fps).await;
                }
            }
            ClientMsg::Unsubscribe { cameras } => {
                for id in self.expand(&cameras) {
                    self.subs.remove(&id);
                    self.streams.remove(&id);
                }
            }
            ClientMsg::Ack {
                camera,
                seq,
                latency_ms,
            } => {
                if let Some(sub) = self.subs.get_mut(&camera) {
                    sub.window.acking = true;
                    while sub.in_flight.front().is_some_and(|&s| s <= seq) {
                        sub.in_flight.pop_front();
                    }
                    if let Some(l) = latency_ms.filter(|l| l.is_finite() && *l >= 0.0) {
                        sub.window.latency_sum_ms += l;
                        sub.window.latency_n += 1;
                    }
                }
            }
        }
    }

    /// `["*"]` means every camera; unknown ids get an error event each.
    fn expand(&mut self, ids: &[String]) -> Vec<String> {
        if ids.iter().any(|i| i == "*") {
            return self
                .hub
                .cameras()
                .iter()
                .map(|c| c.id().to_string())
                .collect();
        }
        let mut out = Vec::new();
        for id in ids.iter().take(1024) {
            if self.hub.get(id).is_some() {
                out.push(id.clone());
            } else {
                let shown: String = id.chars().take(64).collect();
                self.error(
                    "unknown_camera",
                    &format!("no camera with id {shown:?}"),
                    Some(&shown),
                );
            }
        }
        out
    }

    async fn subscribe(
        &mut self,
        id: &str,
        quality: QualityReq,
        max_width: Option<u32>,
        max_fps: Option<f64>,
    ) {
        let Some(cam) = self.hub.get(id) else { return };
        let src_width = cam.status_width();
        let prev = self.subs.remove(id);
        let mut sub = Sub {
            cam: cam.clone(),
            quality,
            max_width,
            max_fps,
            adapter: Adapter::new(self.ladder.len() - 1),
            tier: Tier {
                quality: 0,
                scale: 0,
            },
            fps_cap: None,
            src_width,
            // Sequence numbers belong to one camera object: a camera removed and added again
            // starts over.
            last_sent_seq: prev
                .as_ref()
                .filter(|p| Arc::ptr_eq(&p.cam, &cam))
                .map_or(0, |p| p.last_sent_seq),
            window: WindowStats::default(),
            in_flight: VecDeque::new(),
            last_state: None,
        };
        if let (Some(p), QualityReq::Auto) = (&prev, quality) {
            sub.adapter = p.adapter.clone();
        }
        self.subs.insert(id.to_string(), sub);
        self.retarget(id, true);
        // The newest frame right away, not at the camera's next frame (a 1 fps camera would
        // otherwise keep a new tile blank for up to a second).
        let Some(sub) = self.subs.get(id) else { return };
        let tier = sub.tier;
        if !cam.config().enabled {
            return;
        }
        if let Ok(e) = cam.jpeg(tier).await {
            if let Some(sub) = self.subs.get_mut(id) {
                if e.seq > sub.last_sent_seq {
                    sub.last_sent_seq = e.seq;
                    self.out
                        .push(Message::binary(fanout::frame_message(id, tier, &e)));
                }
            }
        }
    }

    /// Recomputes the tier of `id`; on a change, moves to the new tier's channel and tells
    /// the client.
    fn retarget(&mut self, id: &str, force: bool) {
        let Some(sub) = self.subs.get_mut(id) else {
            return;
        };
        let (tier, cap) = sub.target(&self.ladder);
        if !force && tier == sub.tier && cap == sub.fps_cap {
            return;
        }
        let moved = tier != sub.tier || cap != sub.fps_cap;
        sub.tier = tier;
        sub.fps_cap = cap;
        if moved || force {
            let rx = fanout::subscribe(&sub.cam, fanout::Lane::new(tier, cap));
            self.streams
                .insert(id.to_string(), BroadcastStream::new(rx));
        }
        let w = sub.src_width.div_ceil(tier.scale as u32);
        let v = json!({
            "type": "tier",
            "camera": id,
            "quality": tier.quality,
            "scale": tier.scale,
            "width": w,
            "max_fps": cap,
            "auto": sub.quality == QualityReq::Auto,
            "level": sub.adapter.level,
        });
        self.text(v);
    }

    /// Whether a published frame goes to this client now; the message if so.
    fn admit(&mut self, id: &str, p: &Published) -> Option<Message> {
        let sub = self.subs.get_mut(id)?;
        // The lane already thinned to the fps cap (before encoding).
        if p.tier != sub.tier || p.encoded.seq <= sub.last_sent_seq {
            return None;
        }
        Some(Message::binary(p.ws_message.clone()))
    }

    fn sent(&mut self, id: &str, seq: u64, took: Duration) {
        let Some(sub) = self.subs.get_mut(id) else {
            return;
        };
        sub.last_sent_seq = seq;
        sub.window.sent += 1;
        sub.window.send_time += took;
        if sub.window.acking {
            if sub.in_flight.len() >= MAX_TRACKED_IN_FLIGHT {
                sub.in_flight.pop_front();
            }
            sub.in_flight.push_back(seq);
            sub.window.max_in_flight = sub.window.max_in_flight.max(sub.in_flight.len());
        }
    }

    fn skipped(&mut self, id: &str, n: u64) {
        if let Some(sub) = self.subs.get_mut(id) {
            sub.window.skipped = sub.window.skipped.saturating_add(n as u32);
        }
    }

    /// Once per window: judge each auto subscription and move it along the ladder.
    fn adapt(&mut self) {
        let ids: Vec<String> = self.subs.keys().cloned().collect();
        for id in ids {
            let Some(sub) = self.subs.get_mut(&id) else {
                continue;
            };
            let acking = sub.window.acking;
            let window = std::mem::take(&mut sub.window);
            sub.window.acking = acking;
            let w = sub.cam.status_width();
            let size_changed = w != sub.src_width;
            sub.src_width = w;
            let verdict = window.verdict();
            let changed = sub.quality == QualityReq::Auto && sub.adapter.feed(verdict);
            tracing::trace!(camera = %id, ?window, ?verdict, level = sub.adapter.level, "window");
            if changed || size_changed {
                self.retarget(&id, false);
            }
        }
    }

    /// Sends a state event for each watched camera whose state changed.
    fn poll_states(&mut self) {
        let mut events = Vec::new();
        for (id, sub) in self.subs.iter_mut() {
            let state = sub.cam.state();
            if sub.last_state != Some(state) {
                sub.last_state = Some(state);
                events.push(json!({
                    "type": "state",
                    "camera": id,
                    "state": state,
                    "error": sub.cam.last_error(),
                }));
            }
        }
        for e in events {
            self.text(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_client_messages() {
        assert!(matches!(
            parse_client(
                r#"{"type":"subscribe","cameras":["a"],"quality":"auto","max_width":320}"#
            ),
            Ok(ClientMsg::Subscribe {
                quality: QualityReq::Auto,
                max_width: Some(320),
                ..
            })
        ));
        assert!(matches!(
            parse_client(r#"{"type":"subscribe","cameras":["*"],"quality":70}"#),
            Ok(ClientMsg::Subscribe {
                quality: QualityReq::Fixed(70),
                ..
            })
        ));
        assert_eq!(parse_client("nope").unwrap_err().code, "bad_json");
        assert_eq!(
            parse_client(r#"{"type":"dance"}"#).unwrap_err().code,
            "unknown_type"
        );
        assert_eq!(parse_client(r#"[1,2]"#).unwrap_err().code, "unknown_type");
        assert_eq!(
            parse_client(r#"{"type":"subscribe","cameras":["a"],"quality":0}"#)
                .unwrap_err()
                .code,
            "bad_message"
        );
        assert_eq!(
            parse_client(r#"{"type":"subscribe","cameras":["a"],"extra":1}"#)
                .unwrap_err()
                .code,
            "bad_message"
        );
        let big = format!(
            r#"{{"type":"ack","camera":"{}","seq":1}}"#,
            "x".repeat(9000)
        );
        assert_eq!(parse_client(&big).unwrap_err().code, "oversized");
    }

    #[test]
    fn ladder_goes_quality_then_size_then_fps() {
        let l = ladder(&[85, 80, 70]);
        let q: Vec<_> = l.iter().map(|r| (r.quality, r.scale)).collect();
        assert_eq!(
            q,
            vec![
                (85, 1),
                (80, 1),
                (70, 1),
                (70, 2),
                (70, 4),
                (70, 4),
                (70, 4)
            ]
        );
        assert_eq!(l[6].fps_factor, 0.25);
    }

    #[test]
    fn max_width_picks_the_smallest_sufficient_downscale() {
        assert_eq!(scale_for_width(1920, None), 1);
        assert_eq!(scale_for_width(1920, Some(1920)), 1);
        assert_eq!(scale_for_width(1920, Some(960)), 2);
        assert_eq!(scale_for_width(1920, Some(500)), 4);
        assert_eq!(scale_for_width(1920, Some(10)), 4);
        assert_eq!(scale_for_width(0, Some(10)), 1);
    }

    #[test]
    fn verdicts() {
        let good = WindowStats {
            sent: 25,
            ..Default::default()
        };
        assert_eq!(good.verdict(), Drain::Good);
        let lagging = WindowStats {
            sent: 10,
            skipped: 15,
            ..Default::default()
        };
        assert_eq!(lagging.verdict(), Drain::Bad);
        let backlog = WindowStats {
            sent: 25,
            acking: true,
            max_in_flight: 6,
            ..Default::default()
        };
        assert_eq!(backlog.verdict(), Drain::Bad);
        let slow_send = WindowStats {
            sent: 2,
            send_time: Duration::from_millis(200),
            ..Default::default()
        };
        assert_eq!(slow_send.verdict(), Drain::Bad);
        let meh = WindowStats {
            sent: 25,
            skipped: 1,
            ..Default::default()
        };
        assert_eq!(meh.verdict(), Drain::Ok);
    }

    #[test]
    fn adapter_steps_down_fast_and_up_slowly_without_flapping() {
        let mut a = Adapter::new(6);
        assert!(a.feed(Drain::Bad));
        assert!(a.feed(Drain::Bad));
        assert_eq!(a.level, 2);
        assert!(!a.feed(Drain::Good));
        assert!(!a.feed(Drain::Good));
        assert!(a.feed(Drain::Good));
        assert_eq!(a.level, 1);
        // Bad right after stepping up: back down, and the next step up takes longer.
        assert!(a.feed(Drain::Bad));
        let mut n = 0;
        while !a.feed(Drain::Good) {
            n += 1;
        }
        assert!(n >= 5, "stepped up after {n} good windows");
        // Ok windows break a good run.
        let mut b = Adapter::new(6);
        b.feed(Drain::Bad);
        b.feed(Drain::Good);
        b.feed(Drain::Good);
        b.feed(Drain::Ok);
        assert!(!b.feed(Drain::Good));
        for _ in 0..10 {
            b.feed(Drain::Bad);
        }
        assert_eq!(b.level, 6);
    }
}
