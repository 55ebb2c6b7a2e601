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
//! JPEG: a node whose viewers need a remote camera's pictures (a JPEG lane, an MJPEG client:
//! the camera's local demand) repeats `.jwant`; the owner then takes one live lane of its best
//! tier (so it encodes once however many nodes take it) and publishes its JPEGs on `.jpeg`;
//! the viewing node publishes them into its own hub camera as source JPEGs, and its lanes pass
//! them through (or derive lower tiers) as for an MJPEG camera.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::control::Manager;
use crate::hub::{Camera, Encoded, Hub};
use crate::media::codec::Codec;
use crate::media::frame::Picture;
use crate::media::jpeg::Jpeg;
use crate::media::nal::NalFormat;
use crate::media::tier::Tier;

/// How long a node's wish for a camera's units lasts without being repeated.
pub const WANT_TTL: Duration = Duration::from_secs(3);
/// How often wants and configurations are repeated, and the relay set reconciled.
const EVERY: Duration = Duration::from_secs(1);
/// How long a snapshot waits for the owner's answer.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(3);

fn subject(camera: &str, kind: &str) -> String {
    format!("camwall.relay.{camera}.{kind}")
}

/// The camera id in a relay subject (`camwall.relay.<id>.<kind>`).
fn camera_of(subject: &str) -> Option<&str> {
    let rest = subject.strip_prefix("camwall.relay.")?;
    rest.rsplit_once('.').map(|(id, _)| id)
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
    /// Cameras other nodes want JPEGs of, with when they last said so.
    jpeg_wanted: Mutex<HashMap<String, Instant>>,
    /// Running JPEG relays per camera: outbound or inbound, as `tasks`.
    jpeg_tasks: Mutex<HashMap<String, (bool, CancellationToken)>>,
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
        })
    }

    /// Runs the node-wide subscriptions and reconciles the per-camera tasks until `cancel`.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let subs = (
            self.client.subscribe("camwall.relay.*.want").await,
            self.client.subscribe("camwall.relay.*.cfg").await,
            self.client.subscribe("camwall.relay.*.snap").await,
            self.client.subscribe("camwall.relay.*.jwant").await,
        );
        let (Ok(mut wants), Ok(mut cfgs), Ok(mut snaps), Ok(mut jwants)) = subs else {
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
                    if let Some(id) = camera_of(&m.subject).filter(|id| self.hub.get(id).is_some()) {
                        lock(&self.wanted).insert(id.to_string(), Instant::now());
                    }
                }
                Some(m) = jwants.next() => {
                    if let Some(id) = camera_of(&m.subject).filter(|id| self.hub.get(id).is_some()) {
                        lock(&self.jpeg_wanted).insert(id.to_string(), Instant::now());
                    }
                }
                Some(m) = cfgs.next() => {
                    if let Some(id) = camera_of(&m.subject) {
                        self.config_arrived(id, m.payload);
                    }
                }
                Some(m) = snaps.next() => {
                    let me = self.clone();
                    tokio::spawn(async move { me.answer_snapshot(m).await });
                }
            }
        }
        for (_, (_, t)) in lock(&self.tasks)
            .drain()
            .chain(lock(&self.jpeg_tasks).drain())
        {
            t.cancel();
        }
    }

    /// Starts and stops the JPEG relays: outbound where we own a camera other nodes want
    /// pictures of, inbound where our viewers want pictures of a camera we do not own.
    fn reconcile_jpeg(self: &Arc<Self>, cams: &[Arc<Camera>], cancel: &CancellationToken) {
        let now = Instant::now();
        lock(&self.jpeg_wanted).retain(|_, t| now.duration_since(*t) < WANT_TTL);
        let mut tasks = lock(&self.jpeg_tasks);
        tasks.retain(|id, (_, t)| {
            let keep = cams.iter().any(|c| c.id() == id);
            if !keep {
                t.cancel();
            }
            keep
        });
        for cam in cams {
            let id = cam.id();
            let owned = self.manager.ingests(id);
            let wanted = if owned {
                lock(&self.jpeg_wanted).contains_key(id).then_some(true)
            } else {
                cam.demand().wanted().then_some(false)
            };
            let running = tasks.get(id).map(|(outbound, _)| *outbound);
            if running == wanted {
                continue;
            }
            if let Some((_, t)) = tasks.remove(id) {
                t.cancel();
            }
            if let Some(outbound) = wanted {
                let token = cancel.child_token();
                let (me, c, t) = (self.clone(), cam.clone(), token.clone());
                if outbound {
                    tokio::spawn(async move { me.jpeg_outbound(c, t).await });
                } else {
                    tokio::spawn(async move { me.jpeg_inbound(c, t).await });
                }
                tasks.insert(id.to_string(), (outbound, token));
            }
        }
    }

    /// Owner side: one live lane of the best tier, its JPEGs published as they come.
    async fn jpeg_outbound(self: Arc<Self>, cam: Arc<Camera>, token: CancellationToken) {
        let Some(fanout) = self.hub.fanout(cam.id()) else {
            return;
        };
        let tier = Tier {
            quality: self.hub.qualities().best(),
            scale: 1,
        };
        let (_, mut rx) = fanout.subscribe(crate::media::tier::Lane::new(tier, None));
        let out = subject(cam.id(), "jpeg");
        loop {
            let p = tokio::select! {
                biased;
                _ = token.cancelled() => return,
                r = rx.recv() => match r {
                    Ok(p) => p,
                    // Latest wins, as for any viewer.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                },
            };
            let j = &p.encoded.jpeg;
            let mut b = BytesMut::with_capacity(17 + j.data.len());
            b.put_u64(p.encoded.captured_unix_ms);
            b.put_u32(j.width);
            b.put_u32(j.height);
            b.put_u8(j.quality);
            b.put_slice(&j.data);
            let _ = self.client.publish(out.clone(), b.freeze()).await;
        }
    }

    /// Viewer side: say we want pictures, and publish the owner's JPEGs into our camera.
    async fn jpeg_inbound(self: Arc<Self>, cam: Arc<Camera>, token: CancellationToken) {
        self.pull(&cam, "jpeg", "jwant", &token, |cam, payload| {
            let p = &payload;
            if p.len() <= 17 {
                return;
            }
            let width = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
            let height = u32::from_be_bytes([p[12], p[13], p[14], p[15]]);
            let quality = Some(p[16]);
            let captured = u64::from_be_bytes([p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]]);
            let data = payload.slice(17..);
            cam.publish_at(width, height, Picture::Jpeg { data, quality }, captured);
        })
        .await;
    }

    /// Viewer side: subscribes to camera `cam`'s `data` subject and hands each payload to
    /// `take`, saying on `want` every [`EVERY`] that this node still wants it (the owner
    /// stops relaying what nobody wants), until `token` ends it.
    async fn pull(
        &self,
        cam: &Arc<Camera>,
        data: &str,
        want: &str,
        token: &CancellationToken,
        mut take: impl FnMut(&Camera, Bytes),
    ) {
        let Ok(mut sub) = self.client.subscribe(subject(cam.id(), data)).await else {
            return;
        };
        let want = subject(cam.id(), want);
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => break,
                _ = tick.tick() => {
                    let _ = self.client.publish(want.clone(), Bytes::new()).await;
                }
                m = sub.next() => match m {
                    Some(m) => take(cam, m.payload),
                    None => break,
                },
            }
        }
        let _ = sub.unsubscribe().await;
    }

    /// Starts and stops per-camera tasks to match ownership and viewers.
    fn reconcile(self: &Arc<Self>, cancel: &CancellationToken) {
        let now = Instant::now();
        lock(&self.wanted).retain(|_, t| now.duration_since(*t) < WANT_TTL);
        self.reconcile_jpeg(&self.hub.cameras(), cancel);
        let mut tasks = lock(&self.tasks);
        let cams = self.hub.cameras();
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
            let owned = self.manager.ingests(&id);
            let want_inbound = !owned && cam.video().viewers() > 0;
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
        let Some(cam) = self.hub.get(id) else { return };
        if self.manager.ingests(id) || payload.len() < 9 {
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
        cam.set_relayed(cam.state(), width, height);
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
        self.pull(&cam, "units", "want", &token, |cam, payload| {
            let p = &payload;
            if p.len() <= 9 {
                return;
            }
            let captured = u64::from_be_bytes([p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]]);
            cam.video_unit_at(payload.slice(9..), captured);
        })
        .await;
    }

    async fn answer_snapshot(&self, m: async_nats::Message) {
        let Some(reply) = m.reply.clone() else { return };
        let Some(id) = camera_of(&m.subject) else {
            return;
        };
        let Some(cam) = self.hub.get(id).filter(|_| self.manager.ingests(id)) else {
            // Not ours: the owner answers.
            return;
        };
        let answer = match serde_json::from_slice::<SnapRequest>(&m.payload) {
            Err(e) => error_payload(&format!("bad request: {e}")),
            Ok(r) => match cam
                .jpeg(Tier {
                    quality: r.quality,
                    scale: r.scale,
                })
                .await
            {
                Ok(enc) => ok_payload(&enc),
                Err(e) => error_payload(&e.to_string()),
            },
        };
        let _ = self.client.publish(reply, answer).await;
    }

    /// A snapshot of camera `id` from the node that ingests it.
    pub async fn snapshot(&self, id: &str, tier: Tier) -> Result<Encoded, SnapshotError> {
        let req = serde_json::to_vec(&SnapRequest {
            quality: tier.quality,
            scale: tier.scale,
        })
        .unwrap_or_default();
        let ask = self.client.request(subject(id, "snap"), req.into());
        let m = match tokio::time::timeout(SNAPSHOT_TIMEOUT, ask).await {
            Err(_) => return Err(SnapshotError::Timeout(SNAPSHOT_TIMEOUT)),
            Ok(Err(e)) => return Err(SnapshotError::Unreachable(e.kind().to_string())),
            Ok(Ok(m)) => m,
        };
        parse_answer(m.payload)
    }
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
        assert_eq!(camera_of(&subject("door-1", "units")), Some("door-1"));
        assert_eq!(camera_of("other.subject"), None);
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
}
