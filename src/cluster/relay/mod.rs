//! The relay: a camera's video to viewers on other nodes, and snapshots by request (and
//! replay spans and pictures, `replay`).
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
//! JPEG, per lane (`pictures`): a node whose viewers take a lane (a tier plus a rate cap) of a
//! remote camera subscribes to that lane's subject (`.jpeg.q<quality>s<scale>f<cap>`, the cap
//! in thousandths of a frame per second or `all`) and repeats `.jwant` naming the lane. The owner takes one live lane of its own fan-out per lane
//! some node wants (so it encodes each lane once however many nodes and viewers take it, at
//! most 16 per camera) and publishes its JPEGs there; a lane nobody has asked for within
//! [`WANT_TTL`] stops. The viewing node's fan-out passes them on (`hub::remote`): nothing is
//! decoded or encoded again there. Snapshots and long-polls are requests (`.snap`) answered
//! from the owner's TTL cache.
//!
//! Audio (`audio`): the track announced beside the video's configuration, the frames relayed
//! only while some node listens.
//!
//! Streams, not only cameras: a sub stream travels as its own stream (token `<id>~sub`), and a
//! node that uses another node's sub stream repeats `.use` so that its owner keeps it
//! connected (it connects on demand).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::config::{camera_of_stream, SUB_SUFFIX};
use crate::control::Manager;
use crate::hub::demand::StreamUse;
use crate::hub::{Audio, Camera, Hub, Video};
use crate::media::clock::Stamp;
use crate::media::codec::Codec;
use crate::media::nal::NalFormat;
use crate::media::tier::Lane;

mod audio;
mod pictures;
mod replay;

/// How long a node's wish for a camera's units lasts without being repeated.
pub const WANT_TTL: Duration = Duration::from_secs(3);
/// How often wants and configurations are repeated, and the relay set reconciled.
const EVERY: Duration = Duration::from_secs(1);
/// Most snapshot and long-poll requests of other nodes answered at once.
const MAX_ANSWERS: usize = 256;

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
    /// 64 per camera; the fan-out encodes at most 16 of them).
    jpeg_wanted: Mutex<HashMap<String, HashMap<Lane, Instant>>>,
    /// Running outbound JPEG lanes.
    jpeg_tasks: Mutex<HashMap<(String, Lane), CancellationToken>>,
    /// Places for snapshot and long-poll answers being worked on for other nodes.
    answering: Arc<tokio::sync::Semaphore>,
    /// Our cameras other nodes listen to, with when they last said so.
    audio_wanted: Mutex<HashMap<String, Instant>>,
    /// Running inbound audio of remote cameras listened to here.
    audio_tasks: Mutex<HashMap<String, CancellationToken>>,
    /// This node's replay ring, which answers for the cameras it ingests.
    replay: Option<Arc<crate::replay::Replay>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Relay {
    pub fn new(
        client: async_nats::Client,
        hub: Arc<Hub>,
        manager: Arc<Manager>,
        replay: Option<Arc<crate::replay::Replay>>,
    ) -> Arc<Self> {
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
            answering: Arc::new(tokio::sync::Semaphore::new(MAX_ANSWERS)),
            audio_wanted: Mutex::new(HashMap::new()),
            audio_tasks: Mutex::new(HashMap::new()),
            replay,
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
        let audio_subs = (
            self.client.subscribe("camwall.relay.*.awant").await,
            self.client.subscribe("camwall.relay.*.acfg").await,
        );
        let replay_subs = (
            self.client.subscribe("camwall.relay.*.rspan").await,
            self.client.subscribe("camwall.relay.*.rat").await,
        );
        let (Ok(mut wants), Ok(mut cfgs), Ok(mut snaps), Ok(mut jwants), Ok(mut uses)) = subs
        else {
            debug!("cluster: relay subscriptions failed");
            return;
        };
        let (Ok(mut awants), Ok(mut acfgs)) = audio_subs else {
            debug!("cluster: relay subscriptions failed");
            return;
        };
        let (Ok(rspans), Ok(rats)) = replay_subs else {
            debug!("cluster: relay subscriptions failed");
            return;
        };
        let mut replays = futures_util::stream::select(rspans, rats);
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
                Some(m) = awants.next() => self.audio_wanted(&m.subject),
                Some(m) = acfgs.next() => {
                    if let Some(id) = stream_of(&m.subject) {
                        self.audio_config_arrived(&id, &m.payload);
                    }
                }
                Some(m) = jwants.next() => self.lane_wanted(&m.subject, &m.payload),
                Some(m) = cfgs.next() => {
                    if let Some(id) = stream_of(&m.subject) {
                        self.config_arrived(&id, m.payload);
                    }
                }
                // Replay requests: as bounded as snapshots (a picture at an instant decodes up
                // to a GOP on the owner).
                Some(m) = replays.next() => {
                    if let Ok(place) = self.answering.clone().try_acquire_owned() {
                        let me = self.clone();
                        tokio::spawn(async move {
                            me.answer_replay(m).await;
                            drop(place);
                        });
                    }
                }
                Some(m) = snaps.next() => {
                    // Bounded: past that many at once (long-polls wait up to a minute), a
                    // request is not answered and its node times out.
                    if let Ok(place) = self.answering.clone().try_acquire_owned() {
                        let me = self.clone();
                        tokio::spawn(async move {
                            me.answer_snapshot(m).await;
                            drop(place);
                        });
                    }
                }
            }
        }
        for (_, (_, t)) in lock(&self.tasks).drain() {
            t.cancel();
        }
        for (_, t) in lock(&self.jpeg_tasks).drain() {
            t.cancel();
        }
        for (_, t) in lock(&self.audio_tasks).drain() {
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

    /// Starts and stops per-camera tasks to match ownership and viewers.
    fn reconcile(self: &Arc<Self>, cancel: &CancellationToken) {
        let now = Instant::now();
        lock(&self.wanted).retain(|_, t| now.duration_since(*t) < WANT_TTL);
        self.reconcile_jpeg(cancel);
        self.reconcile_audio(cancel);
        lock(&self.used).retain(|_, (t, _)| now.duration_since(*t) < WANT_TTL);
        let mut tasks = lock(&self.tasks);
        let cams = self.hub.streams();
        let ids: std::collections::HashSet<&str> = cams.iter().map(|c| c.id()).collect();
        lock(&self.remote).retain(|id, _| ids.contains(id.as_str()));
        tasks.retain(|id, (_, t)| {
            // A task that ended by itself makes way for a new one.
            let keep = !t.is_cancelled() && ids.contains(id.as_str());
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
        // Whatever ends it, its entry goes at the next reconcile.
        let _ended = token.clone().drop_guard();
        // A tap: other nodes' use of the stream is counted where it arrives (`.use`).
        let Some(stream) = self.hub.stream(cam.id()) else {
            return;
        };
        let mut rx = stream.attach(Video::Tap);
        // The camera's audio as it came: published only while another node listens.
        let mut sound = Some(stream.attach(Audio));
        let (sound_subject, acfg) = (subject(cam.id(), "audio"), subject(cam.id(), "acfg"));
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
                    if let Some(info) = cam.audio().info() {
                        let _ = self.client.publish(acfg.clone(), audio::config_payload(&info)).await;
                    }
                    continue;
                }
                f = crate::hub::AudioOutput::next_or_never(&mut sound) => {
                    match f {
                        Some(Ok(f)) if self.audio_listened(cam.id()) => {
                            let p = audio::frame_payload(&f);
                            let _ = self.client.publish(sound_subject.clone(), p).await;
                        }
                        // The feed is gone (the camera with it): no more audio to wait for.
                        None => sound = None,
                        _ => {}
                    }
                    continue;
                }
                r = rx.next() => match r {
                    Some(Ok(u)) => u,
                    Some(Err(_lagged)) => {
                        need_key = true;
                        continue;
                    }
                    None => return,
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
            let mut b = BytesMut::with_capacity(UNIT_HEADER + unit.data.len());
            b.put_u8(u8::from(unit.key));
            b.put_u64(unit.stamp.captured_unix_ms);
            b.put_i64(unit.stamp.pts_us);
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
        self.pull_until(&cam, ("units", "want"), token, |payload| {
            if let Some(stamp) = unit_stamp(&payload) {
                cam.relayed_unit(payload.slice(UNIT_HEADER..), stamp);
            }
        })
        .await;
    }

    /// Viewer side of one of a camera's relays (`kinds`: its data and want subjects): each
    /// payload to `take` until `token` is cancelled (or the subscription ends, which cancels
    /// it so the next reconcile may start another).
    async fn pull_until(
        &self,
        cam: &Camera,
        kinds: (&str, &str),
        token: CancellationToken,
        take: impl FnMut(Bytes),
    ) {
        let _ended = token.clone().drop_guard();
        let (data, want) = (subject(cam.id(), kinds.0), subject(cam.id(), kinds.1));
        pull(
            &self.client,
            data,
            want,
            Bytes::new(),
            token.cancelled(),
            take,
        )
        .await;
    }
}

/// A relayed unit's header: `[key u8][captured Unix ms u64][pts µs i64]`, then the unit.
const UNIT_HEADER: usize = 17;

/// The owner's stamp of a relayed unit (`None`: too short to hold one and a unit).
fn unit_stamp(p: &[u8]) -> Option<Stamp> {
    let head = p.get(1..UNIT_HEADER).filter(|_| p.len() > UNIT_HEADER)?;
    let (captured, pts) = head.split_at(8);
    Some(Stamp {
        captured_unix_ms: u64::from_be_bytes(captured.try_into().ok()?),
        pts_us: i64::from_be_bytes(pts.try_into().ok()?),
    })
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
}
