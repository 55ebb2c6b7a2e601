//! The relay: a camera's video to viewers on other nodes, and snapshots by request.
//!
//! The owner of a camera publishes its decoder configuration every second and on change
//! (`camwall.relay.<id>.cfg`, tiny, taken by every node so that a viewer there knows the camera
//! has video), and its access units (`.units`, already length-prefixed by the hub's feed) while
//! some node wants them (`.want`, repeated every second by a node with viewers, forgotten
//! after [`WANT_TTL`]). A node with viewers of a camera it does not ingest subscribes to its
//! units and feeds them into its own hub camera's video feed, so the WebSocket path serves them
//! unchanged. Subscriptions are bounded (the client's subscription capacity): a slow node drops
//! units and its viewers skip to the next keyframe, as for any slow viewer. Snapshots are a
//! request (`.snap`) answered by the owner from its tier cache.
//!
//! JPEG, per lane: a node whose viewers take a lane (a tier plus a rate cap) of a remote camera
//! subscribes to that lane's subject (`.jpeg.q<quality>s<scale>f<cap>`) and repeats `.jwant`
//! naming the lane. The owner takes one live lane of its own fan-out per lane some node wants
//! (so it encodes each lane once however many nodes and viewers take it, at most
//! [`MAX_LANES_PER_CAMERA`] per camera) and publishes its JPEGs there; a lane nobody has asked
//! for within [`WANT_TTL`] stops. The viewing node's fan-out passes them on (`hub::remote`):
//! nothing is decoded or encoded again there. Snapshots and long-polls are requests (`.snap`)
//! answered from the owner's TTL cache.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::config::{camera_of_stream, SUB_SUFFIX};
use crate::control::Manager;
use crate::hub::demand::StreamUse;
use crate::hub::{Camera, Encoded, FrameError, Hub, Output, Remote};
use crate::media::codec::Codec;
use crate::media::jpeg::Jpeg;
use crate::media::nal::NalFormat;
use crate::media::tier::{check_quality, Lane, Tier, MAX_LANES_PER_CAMERA, SCALES};

/// How long a node's wish for a camera's units lasts without being repeated.
pub const WANT_TTL: Duration = Duration::from_secs(3);
/// How often wants and configurations are repeated, and the relay set reconciled.
const EVERY: Duration = Duration::from_secs(1);
/// How long a snapshot waits for the owner's answer (a long-poll: beyond its wait).
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest long-poll an owner holds for another node.
const MAX_REMOTE_WAIT: Duration = Duration::from_secs(60);

/// A stream id as one subject token: a sub stream's `door.sub` is `door~sub` (`~` is in no
/// camera id, and `.` separates tokens).
fn token(stream: &str) -> String {
    stream.replace('.', "~")
}

fn subject(stream: &str, kind: &str) -> String {
    format!("camwall.relay.{}.{kind}", token(stream))
}

/// The stream id in a relay subject (`camwall.relay.<token>.<kind>`).
fn stream_of(subject: &str) -> Option<String> {
    let rest = subject.strip_prefix("camwall.relay.")?;
    rest.split_once('.').map(|(t, _)| t.replace('~', "."))
}

/// One node's relay state.
pub struct Relay {
    client: async_nats::Client,
    hub: Arc<Hub>,
    manager: Arc<Manager>,
    /// Cameras other nodes want units of, with when they last said so.
    wanted: Mutex<HashMap<String, Instant>>,
    /// Remote cameras: the configuration last applied.
    remote: Mutex<HashMap<String, Bytes>>,
    /// Running per-camera tasks: outbound (we own it) or inbound (we relay it in).
    tasks: Mutex<HashMap<String, (bool, CancellationToken)>>,
    /// Our streams that connect on demand (sub streams) other nodes use, with when they last
    /// said so; the hold keeps the stream connected meanwhile.
    used: Mutex<HashMap<String, (Instant, StreamUse)>>,
    /// Lanes of our cameras other nodes want, with when they last said so (at most
    /// [`MAX_LANES_PER_CAMERA`] per camera).
    jpeg_wanted: Mutex<HashMap<String, HashMap<Lane, Instant>>>,
    /// Running outbound JPEG lanes.
    jpeg_tasks: Mutex<HashMap<(String, Lane), CancellationToken>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A snapshot as it crosses NATS: the JPEG and what the HTTP answer says of it.
#[derive(Debug, Serialize, Deserialize)]
struct SnapMeta {
    seq: u64,
    captured_unix_ms: u64,
    width: u32,
    height: u32,
    quality: u8,
    etag: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapRequest {
    quality: u8,
    scale: u8,
    /// A long-poll: the ETag the client has, and how long to wait for another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    #[serde(default)]
    wait_ms: u64,
}

/// A lane as `.jwant` names it.
#[derive(Debug, Serialize, Deserialize)]
struct LaneWant {
    quality: u8,
    scale: u8,
    #[serde(default)]
    max_fps: Option<f64>,
}

impl LaneWant {
    fn of(lane: Lane) -> Self {
        Self {
            quality: lane.tier.quality,
            scale: lane.tier.scale,
            max_fps: lane.max_fps(),
        }
    }

    /// The lane, if the request names a valid one (another node's bytes: checked, not trusted).
    fn lane(&self) -> Option<Lane> {
        let quality = check_quality(u64::from(self.quality)).ok()?;
        SCALES.contains(&self.scale).then_some(())?;
        let tier = Tier {
            quality,
            scale: self.scale,
        };
        Some(Lane::new(tier, self.max_fps))
    }
}

/// The subject lane `lane` of camera `camera` is published on.
fn lane_subject(camera: &str, lane: Lane) -> String {
    let cap = lane.max_fps().map_or_else(
        || "all".to_string(),
        |f| format!("{}", (f * 1000.0).round() as u64),
    );
    format!(
        "camwall.relay.{}.jpeg.q{}s{}f{cap}",
        token(camera),
        lane.tier.quality,
        lane.tier.scale
    )
}

/// Why a remote snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("the node ingesting this camera did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the node ingesting this camera cannot be reached: {0}")]
    Unreachable(String),
    #[error("the node ingesting this camera has no picture: {0}")]
    Owner(String),
}

impl Relay {
    pub fn new(client: async_nats::Client, hub: Arc<Hub>, manager: Arc<Manager>) -> Arc<Self> {
        Arc::new(Self {
            client,
            hub,
            manager,
            wanted: Mutex::new(HashMap::new()),
            remote: Mutex::new(HashMap::new()),
            tasks: Mutex::new(HashMap::new()),
            jpeg_wanted: Mutex::new(HashMap::new()),
            jpeg_tasks: Mutex::new(HashMap::new()),
            used: Mutex::new(HashMap::new()),
        })
    }

    /// Runs the node-wide subscriptions and reconciles the per-camera tasks until `cancel`.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let subs = (
            self.client.subscribe("camwall.relay.*.want").await,
            self.client.subscribe("camwall.relay.*.cfg").await,
            self.client.subscribe("camwall.relay.*.snap").await,
            self.client.subscribe("camwall.relay.*.jwant").await,
            self.client.subscribe("camwall.relay.*.use").await,
        );
        let (Ok(mut wants), Ok(mut cfgs), Ok(mut snaps), Ok(mut jwants), Ok(mut uses)) = subs
        else {
            debug!("cluster: relay subscriptions failed");
            return;
        };
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = tick.tick() => self.reconcile(&cancel),
                Some(m) = wants.next() => {
                    if let Some(id) = stream_of(&m.subject).filter(|id| self.hub.stream(id).is_some()) {
                        lock(&self.wanted).insert(id, Instant::now());
                    }
                }
                Some(m) = uses.next() => self.stream_used(&m.subject),
                Some(m) = jwants.next() => self.lane_wanted(&m.subject, &m.payload),
                Some(m) = cfgs.next() => {
                    if let Some(id) = stream_of(&m.subject) {
                        self.config_arrived(&id, m.payload);
                    }
                }
                Some(m) = snaps.next() => {
                    let me = self.clone();
                    tokio::spawn(async move { me.answer_snapshot(m).await });
                }
            }
        }
        for (_, (_, t)) in lock(&self.tasks).drain() {
            t.cancel();
        }
        for (_, t) in lock(&self.jpeg_tasks).drain() {
            t.cancel();
        }
        lock(&self.used).clear();
    }

    /// Whether this node ingests stream `id` (a sub stream goes with its camera).
    fn ingests(&self, id: &str) -> bool {
        self.manager.ingests(camera_of_stream(id))
    }

    /// A node uses one of our sub streams (`.use`): keep it connected while it says so.
    fn stream_used(&self, subject: &str) {
        let Some(id) = stream_of(subject).filter(|id| self.ingests(id)) else {
            return;
        };
        let Some(out) = self.hub.stream(&id).filter(|_| id.ends_with(SUB_SUFFIX)) else {
            return;
        };
        let mut used = lock(&self.used);
        match used.get_mut(&id) {
            Some((t, _)) => *t = Instant::now(),
            None => {
                used.insert(id, (Instant::now(), out.camera.demand().use_stream()));
            }
        }
    }

    /// A node wants a lane of one of our cameras (`.jwant`).
    fn lane_wanted(&self, subject: &str, payload: &[u8]) {
        let Some(id) = stream_of(subject).filter(|id| self.ingests(id)) else {
            return;
        };
        if self.hub.stream(&id).is_none() {
            return;
        }
        let Some(lane) = serde_json::from_slice::<LaneWant>(payload)
            .ok()
            .and_then(|w| w.lane())
        else {
            debug!(camera = %id, "cluster: unreadable lane request ignored");
            return;
        };
        let mut wanted = lock(&self.jpeg_wanted);
        let lanes = wanted.entry(id).or_default();
        if lanes.len() < MAX_LANES_PER_CAMERA || lanes.contains_key(&lane) {
            lanes.insert(lane, Instant::now());
        }
    }

    /// Starts and stops the outbound JPEG lanes: one per lane some node wants of a camera we
    /// ingest.
    fn reconcile_jpeg(self: &Arc<Self>, cancel: &CancellationToken) {
        let now = Instant::now();
        let mut wanted = lock(&self.jpeg_wanted);
        for lanes in wanted.values_mut() {
            lanes.retain(|_, t| now.duration_since(*t) < WANT_TTL);
        }
        wanted.retain(|id, lanes| !lanes.is_empty() && self.ingests(id));
        let mut tasks = lock(&self.jpeg_tasks);
        tasks.retain(|(id, lane), t| {
            let keep = wanted.get(id).is_some_and(|l| l.contains_key(lane));
            if !keep {
                t.cancel();
            }
            keep
        });
        for (id, lanes) in wanted.iter() {
            let Some(out) = self.hub.stream(id) else {
                continue;
            };
            for lane in lanes.keys() {
                if tasks.contains_key(&(id.clone(), *lane)) {
                    continue;
                }
                let token = cancel.child_token();
                let (me, o, l, t) = (self.clone(), out.clone(), *lane, token.clone());
                tokio::spawn(async move { me.jpeg_outbound(o, l, t).await });
                tasks.insert((id.clone(), *lane), token);
            }
        }
    }

    /// Owner side: one live lane of our fan-out, its JPEGs published as they come.
    async fn jpeg_outbound(self: Arc<Self>, out: Output, lane: Lane, token: CancellationToken) {
        let cam = out.camera;
        // The fan-out may serve the nearest lane when the camera has as many as it may.
        let (_, mut rx) = out.fanout.subscribe(lane);
        let subject = lane_subject(cam.id(), lane);
        loop {
            let p = tokio::select! {
                biased;
                _ = token.cancelled() => return,
                _ = cam.removed().cancelled() => return,
                r = rx.recv() => match r {
                    Ok(p) => p,
                    // Latest wins, as for any viewer.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                },
            };
            let _ = self
                .client
                .publish(subject.clone(), ok_payload(&p.encoded))
                .await;
        }
    }

    /// Starts and stops per-camera tasks to match ownership and viewers.
    fn reconcile(self: &Arc<Self>, cancel: &CancellationToken) {
        let now = Instant::now();
        lock(&self.wanted).retain(|_, t| now.duration_since(*t) < WANT_TTL);
        self.reconcile_jpeg(cancel);
        lock(&self.used).retain(|_, (t, _)| now.duration_since(*t) < WANT_TTL);
        let mut tasks = lock(&self.tasks);
        let cams = self.hub.streams();
        lock(&self.remote).retain(|id, _| cams.iter().any(|c| c.id() == id));
        tasks.retain(|id, (_, t)| {
            let keep = cams.iter().any(|c| c.id() == id);
            if !keep {
                t.cancel();
            }
            keep
        });
        for cam in cams {
            let id = cam.id().to_string();
            let owned = self.ingests(&id);
            let want_inbound = !owned && cam.video().viewers() > 0;
            // A sub stream of another node's camera that viewers here use: its owner keeps
            // it connected while we say so.
            if !owned && id.ends_with(SUB_SUFFIX) && cam.demand().in_use_at(now) {
                let (client, used) = (self.client.clone(), subject(&id, "use"));
                tokio::spawn(async move { client.publish(used, Bytes::new()).await });
            }
            let running = tasks.get(&id).map(|(outbound, _)| *outbound);
            let wanted = if owned {
                Some(true)
            } else {
                want_inbound.then_some(false)
            };
            if running != wanted {
                if let Some((_, t)) = tasks.remove(&id) {
                    t.cancel();
                }
                if let Some(outbound) = wanted {
                    let token = cancel.child_token();
                    let me = self.clone();
                    let c = cam.clone();
                    let t = token.clone();
                    if outbound {
                        lock(&self.remote).remove(&id);
                        tokio::spawn(async move { me.outbound(c, t).await });
                    } else {
                        tokio::spawn(async move { me.inbound(c, t).await });
                    }
                    tasks.insert(id.clone(), (outbound, token));
                }
            }
        }
    }

    /// A remote camera's configuration: `[codec byte][width u32][height u32][description]`.
    fn config_arrived(&self, id: &str, payload: Bytes) {
        let Some(cam) = self.hub.stream(id).map(|o| o.camera) else {
            return;
        };
        if self.ingests(id) || payload.len() < 9 {
            return;
        }
        let codec = match payload[0] {
            4 => Codec::H264,
            5 => Codec::H265,
            _ => return,
        };
        let width = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
        let height = u32::from_be_bytes([payload[5], payload[6], payload[7], payload[8]]);
        let mut remote = lock(&self.remote);
        let same = remote
            .get(id)
            .is_some_and(|p| *p == payload && cam.video().codec() == Some(codec));
        if !same {
            cam.video()
                .start(codec, NalFormat::LengthPrefixed, &payload[9..]);
        }
        // The state is the heartbeat's to show (`cluster::show_remote_states`); the size is ours.
        cam.set_relayed(cam.state(), width, height, None);
        remote.insert(id.to_string(), payload);
    }

    /// Owner side: publish the configuration, and the units while someone wants them.
    async fn outbound(self: Arc<Self>, cam: Arc<Camera>, token: CancellationToken) {
        let mut rx = cam.video().subscribe().rx;
        let mut tick = tokio::time::interval(EVERY);
        let mut last_generation = 0;
        let mut need_key = true;
        let units = subject(cam.id(), "units");
        loop {
            let unit = tokio::select! {
                biased;
                _ = token.cancelled() => return,
                _ = tick.tick() => {
                    if let Some(c) = cam.video().subscribe().config {
                        last_generation = c.generation;
                        self.publish_config(cam.id(), &c.params).await;
                    }
                    continue;
                }
                r = rx.recv() => match r {
                    Ok(u) => u,
                    Err(RecvError::Lagged(_)) => {
                        need_key = true;
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                },
            };
            if unit.config.generation != last_generation {
                last_generation = unit.config.generation;
                self.publish_config(cam.id(), &unit.config.params).await;
            }
            if !lock(&self.wanted).contains_key(cam.id()) {
                need_key = true;
                continue;
            }
            if need_key && !unit.key {
                continue;
            }
            need_key = false;
            let mut b = BytesMut::with_capacity(9 + unit.data.len());
            b.put_u8(u8::from(unit.key));
            b.put_u64(unit.captured_unix_ms);
            b.put_slice(&unit.data);
            if self
                .client
                .publish(units.clone(), b.freeze())
                .await
                .is_err()
            {
                need_key = true;
            }
        }
    }

    async fn publish_config(&self, id: &str, p: &crate::media::h26x::VideoParams) {
        let mut b = BytesMut::with_capacity(9 + p.description.len());
        b.put_u8(match p.codec {
            Codec::H264 => 4,
            Codec::H265 => 5,
        });
        b.put_u32(p.width);
        b.put_u32(p.height);
        b.put_slice(&p.description);
        let _ = self.client.publish(subject(id, "cfg"), b.freeze()).await;
    }

    /// Viewer side: say we want the units, and feed them to the local feed.
    async fn inbound(self: Arc<Self>, cam: Arc<Camera>, token: CancellationToken) {
        let (data, want) = (subject(cam.id(), "units"), subject(cam.id(), "want"));
        pull(
            &self.client,
            data,
            want,
            Bytes::new(),
            token.cancelled(),
            |payload| {
                let p = &payload;
                if p.len() <= 9 {
                    return;
                }
                let captured = u64::from_be_bytes([p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]]);
                cam.video_unit_at(payload.slice(9..), captured);
            },
        )
        .await;
    }

    async fn answer_snapshot(&self, m: async_nats::Message) {
        let Some(reply) = m.reply.clone() else { return };
        let Some(id) = stream_of(&m.subject) else {
            return;
        };
        let Some(cam) = self
            .hub
            .stream(&id)
            .map(|o| o.camera)
            .filter(|_| self.ingests(&id))
        else {
            // Not ours: the owner answers.
            return;
        };
        let answer = match serde_json::from_slice::<SnapRequest>(&m.payload) {
            Err(e) => error_payload(&format!("bad request: {e}")),
            Ok(r) => {
                let tier = Tier {
                    quality: r.quality,
                    scale: r.scale,
                };
                let wait = Duration::from_millis(r.wait_ms).min(MAX_REMOTE_WAIT);
                let enc = match r.after {
                    Some(after) => cam.jpeg_after(tier, &after, wait).await,
                    None => cam.jpeg(tier).await,
                };
                match enc {
                    Ok(enc) => ok_payload(&enc),
                    Err(e) => error_payload(&e.to_string()),
                }
            }
        };
        let _ = self.client.publish(reply, answer).await;
    }

    /// A snapshot (or long-poll) of camera `id` from the node that ingests it.
    async fn ask_snapshot(
        client: async_nats::Client,
        id: String,
        tier: Tier,
        after: Option<(String, Duration)>,
    ) -> Result<Encoded, SnapshotError> {
        let wait = after.as_ref().map_or(Duration::ZERO, |(_, w)| *w);
        let req = serde_json::to_vec(&SnapRequest {
            quality: tier.quality,
            scale: tier.scale,
            after: after.map(|(a, _)| a),
            wait_ms: wait.as_millis() as u64,
        })
        .unwrap_or_default();
        let request = async_nats::Request::new()
            .payload(req.into())
            .timeout(Some(SNAPSHOT_TIMEOUT + wait));
        let m = match client.send_request(subject(&id, "snap"), request).await {
            Ok(m) => m,
            Err(e) if e.kind() == async_nats::RequestErrorKind::TimedOut => {
                return Err(SnapshotError::Timeout(SNAPSHOT_TIMEOUT + wait))
            }
            Err(e) => return Err(SnapshotError::Unreachable(e.kind().to_string())),
        };
        parse_answer(m.payload)
    }
}

impl Remote for Relay {
    fn lane(&self, camera: &str, lane: Lane) -> watch::Receiver<Option<Encoded>> {
        let (tx, rx) = watch::channel(None);
        let (data, want) = (lane_subject(camera, lane), subject(camera, "jwant"));
        let asked = Bytes::from(serde_json::to_vec(&LaneWant::of(lane)).unwrap_or_default());
        let client = self.client.clone();
        tokio::spawn(async move {
            // Ends when the lane's pump drops its receiver.
            pull(&client, data, want, asked, tx.closed(), |payload| {
                if let Ok(e) = parse_answer(payload) {
                    tx.send_replace(Some(e));
                }
            })
            .await;
        });
        rx
    }

    fn snapshot(
        &self,
        camera: &str,
        tier: Tier,
        after: Option<(String, Duration)>,
    ) -> futures_util::future::BoxFuture<'static, Result<Encoded, FrameError>> {
        let ask = Self::ask_snapshot(self.client.clone(), camera.to_string(), tier, after);
        Box::pin(async move { ask.await.map_err(|e| FrameError::Remote(e.to_string())) })
    }
}

/// Viewer side: subscribes to `data` and hands each payload to `take`, saying on `want` (with
/// `asked`) every [`EVERY`] that this node still wants it (the owner stops relaying what
/// nobody wants), until `stop` resolves.
async fn pull(
    client: &async_nats::Client,
    data: String,
    want: String,
    asked: Bytes,
    stop: impl Future<Output = ()>,
    mut take: impl FnMut(Bytes),
) {
    let Ok(mut sub) = client.subscribe(data).await else {
        return;
    };
    let mut tick = tokio::time::interval(EVERY);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            _ = tick.tick() => {
                let _ = client.publish(want.clone(), asked.clone()).await;
            }
            m = sub.next() => match m {
                Some(m) => take(m.payload),
                None => break,
            },
        }
    }
    let _ = sub.unsubscribe().await;
}

fn ok_payload(enc: &Encoded) -> Bytes {
    let meta = serde_json::to_vec(&SnapMeta {
        seq: enc.seq,
        captured_unix_ms: enc.captured_unix_ms,
        width: enc.jpeg.width,
        height: enc.jpeg.height,
        quality: enc.jpeg.quality,
        etag: enc.etag.clone(),
    })
    .unwrap_or_default();
    let mut b = BytesMut::with_capacity(3 + meta.len() + enc.jpeg.data.len());
    b.put_u8(0);
    b.put_u16(meta.len() as u16);
    b.put_slice(&meta);
    b.put_slice(&enc.jpeg.data);
    b.freeze()
}

fn error_payload(message: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(1 + message.len());
    b.put_u8(1);
    b.put_slice(message.as_bytes());
    b.freeze()
}

fn parse_answer(p: Bytes) -> Result<Encoded, SnapshotError> {
    let bad = || SnapshotError::Owner("unreadable answer".into());
    match p.first() {
        Some(0) if p.len() >= 3 => {
            let n = usize::from(u16::from_be_bytes([p[1], p[2]]));
            let meta: SnapMeta =
                serde_json::from_slice(p.get(3..3 + n).ok_or_else(bad)?).map_err(|_| bad())?;
            Ok(Encoded {
                seq: meta.seq,
                captured_unix_ms: meta.captured_unix_ms,
                jpeg: Jpeg {
                    data: p.slice(3 + n..),
                    width: meta.width,
                    height: meta.height,
                    quality: meta.quality,
                },
                encoded_at: Instant::now(),
                etag: meta.etag,
            })
        }
        Some(1) => Err(SnapshotError::Owner(
            String::from_utf8_lossy(&p[1..]).into_owned(),
        )),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_the_camera() {
        assert_eq!(
            stream_of(&subject("door-1", "units")).as_deref(),
            Some("door-1")
        );
        let sub = subject("door-1.sub", "jwant");
        assert_eq!(sub, "camwall.relay.door-1~sub.jwant");
        assert_eq!(stream_of(&sub).as_deref(), Some("door-1.sub"));
        assert_eq!(stream_of("other.subject"), None);
    }

    #[test]
    fn snapshot_answers_round_trip() {
        let enc = Encoded {
            seq: 7,
            captured_unix_ms: 123,
            jpeg: Jpeg {
                data: Bytes::from_static(&[0xff, 0xd8, 1, 2]),
                width: 320,
                height: 240,
                quality: 80,
            },
            encoded_at: Instant::now(),
            etag: "\"x\"".into(),
        };
        let back = parse_answer(ok_payload(&enc)).unwrap();
        assert_eq!((back.seq, back.jpeg.width, back.jpeg.height), (7, 320, 240));
        assert_eq!(back.jpeg.data, enc.jpeg.data);
        assert_eq!(back.etag, "\"x\"");
        let e = parse_answer(error_payload("camera has no frame yet")).unwrap_err();
        assert!(e.to_string().contains("no frame yet"), "{e}");
        assert!(parse_answer(Bytes::from_static(&[0, 0])).is_err());
    }

    #[test]
    fn lane_requests_are_checked_and_name_their_subject() {
        let lane = Lane::new(
            Tier {
                quality: 70,
                scale: 2,
            },
            Some(5.0),
        );
        let asked = serde_json::to_vec(&LaneWant::of(lane)).unwrap();
        let back: LaneWant = serde_json::from_slice(&asked).unwrap();
        assert_eq!(back.lane(), Some(lane));
        assert_eq!(
            lane_subject("door", lane),
            "camwall.relay.door.jpeg.q70s2f5000"
        );
        let full = Lane::new(lane.tier, None);
        assert_eq!(
            lane_subject("door", full),
            "camwall.relay.door.jpeg.q70s2fall"
        );
        for bad in [
            r#"{"quality":0,"scale":1}"#,
            r#"{"quality":101,"scale":1}"#,
            r#"{"quality":80,"scale":3}"#,
        ] {
            let w: LaneWant = serde_json::from_str(bad).unwrap();
            assert_eq!(w.lane(), None, "{bad}");
        }
        assert!(serde_json::from_str::<LaneWant>(r#"{"quality":"x"}"#).is_err());
    }
}
