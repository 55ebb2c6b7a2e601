//! One live-wall connection's logic, without the socket: subscriptions, acknowledgements,
//! retargeting along the ladder, camera events, and which published frames go out.
//!
//! Sans-I/O: the connection loop (`upgrade`) feeds it client text, hub events, frames from
//! its lanes and clock ticks (`now` is an input), and sends what [`Session::take_output`]
//! returns. Unit tests drive it with paused time and no socket. The wall clock is read only
//! to tell the client the server's time (`hello`, `pong`); adaptation judges by `now` alone.
//!
//! A camera whose codec the client decodes (`codecs` in subscribe) is served as video, the
//! camera's own access units (`video`), at the top two levels of the ladder (every unit, then
//! keyframes only); below them, and for everything else, as JPEG lanes.
//!
//! Which level each subscription gets is decided for the whole connection at once
//! (`link::share`): every subscription's rungs are priced from what was measured passing
//! through it, and the link's estimate (`link`) says how much fits.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::StreamMap;

use super::activity::ActivityWatch;
use super::adapt::WindowStats;
use super::audio::AudioOut;
use super::protocol::{self, ProtocolError, QualityReq, Request, SubscribeReq};
use super::replay::Replays;
use super::sub::Sub;
use super::video::VideoOut;
use crate::access::guard::Principal;
use crate::hub::streams;
use crate::hub::video::VideoUnit;
use crate::hub::{
    AudioFrame, AudioOutput, Camera, Hub, HubEvent, LaneOutput, Published, Still, VideoOutput,
};
use crate::link::share::Share;
use crate::link::LinkEstimate;
use crate::media::clock::unix_ms_now;
use crate::media::tier::{Rung, Tier};

/// Events about the connection (`link`, activity) go out once per window.
pub const WINDOW: Duration = Duration::from_secs(1);
/// The connection loop ticks this often.
pub const TICK: Duration = Duration::from_millis(250);
/// The link's sharing decides this often, and at any tick where a queue has grown past its
/// bound (a link that narrowed is answered within a tick or two).
pub const DECIDE_EVERY: Duration = Duration::from_millis(500);
/// What a socket holds unsent is kept to about this much of the link's time.
const UNSENT_TIME: Duration = Duration::from_millis(100);
/// While a connection starts, a queue longer than this still counts.
const STARTUP_QUEUE: Duration = Duration::from_secs(1);
/// A page reporting more chunks than this waiting in a tile's decoder, or this many frames
/// dropped undrawn in a second, cannot keep up (one or two are a burst of arrivals).
const DECODER_BACKLOG: u32 = 3;
const DECODER_DROPS: u32 = 3;
/// Sent-but-unacknowledged sequence numbers remembered per camera: ten seconds of a 25 fps
/// camera.
const MAX_TRACKED_IN_FLIGHT: usize = 256;
/// Messages remembered for the delivery rate, whichever camera they were of: ten seconds of
/// sixteen 25 fps cameras.
const MAX_SENT_LOG: usize = 4096;

/// Something to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Text(String),
    Binary(Bytes),
}

/// What the lanes delivered for one camera.
pub type LaneItem = Result<Arc<Published>, BroadcastStreamRecvError>;

/// What arrived for a watched camera.
pub enum Incoming {
    Jpeg(String, LaneItem),
    Video(String, Result<Arc<VideoUnit>, BroadcastStreamRecvError>),
    Audio(String, Result<Arc<AudioFrame>, BroadcastStreamRecvError>),
    /// A unit or picture of a camera replayed from the ring; `None`: its replay ended.
    Replay(String, Option<super::replay::Replayed>),
}

/// The state of one connection.
pub struct Session {
    hub: Arc<Hub>,
    /// Who is watching: the guard's answer at the upgrade. Cameras outside its scope do not
    /// exist for this connection (not listed, not announced, not subscribable).
    who: Principal,
    ladder: Vec<Rung>,
    subs: HashMap<String, Sub>,
    /// The client's path, judged once for all its subscriptions, and how they share it.
    link: LinkEstimate,
    share: Share,
    /// What sending looked like since the last decision.
    window: WindowStats,
    last_decision: Instant,
    /// When the link was last found full: frames sent before then tell of the queue already
    /// answered, and are not held against the rungs chosen then.
    congested_at: Option<Instant>,
    /// Frames sent and not yet known delivered, of every camera, in the order sent (when,
    /// bytes): one socket delivers in order, so an ack of any frame says every frame sent
    /// before it arrived. This is what the delivery rate counts, whatever became of the
    /// camera's own record (a stream switch clears that).
    sent_log: VecDeque<(Instant, usize)>,
    /// The JPEG lane or video attached for each camera served now (one per camera).
    streams: StreamMap<String, LaneOutput>,
    video_streams: StreamMap<String, VideoOutput>,
    /// The cameras the client listens to (it listed audio codecs): their main stream's audio.
    audio_streams: StreamMap<String, AudioOutput>,
    listening: HashMap<String, (Arc<Camera>, AudioOut)>,
    /// Cameras subscribed with `at`: played back from the replay ring instead of live.
    replays: Replays,
    out: Vec<Out>,
    last_window: Instant,
    activity: ActivityWatch,
}

impl Session {
    /// A new connection: `hello` is the first thing out.
    pub fn new(hub: Arc<Hub>, who: Principal, now: Instant) -> Self {
        let mut s = Self {
            ladder: hub.qualities().ladder(),
            hub,
            who,
            subs: HashMap::new(),
            link: LinkEstimate::default(),
            share: Share::default(),
            window: WindowStats::default(),
            last_decision: now,
            congested_at: None,
            sent_log: VecDeque::new(),
            streams: StreamMap::new(),
            video_streams: StreamMap::new(),
            audio_streams: StreamMap::new(),
            listening: HashMap::new(),
            replays: Replays::default(),
            out: Vec::new(),
            last_window: now,
            activity: ActivityWatch::default(),
        };
        s.hello();
        s
    }

    fn hello(&mut self) {
        let cameras: Vec<_> = self
            .hub
            .infos()
            .into_iter()
            .filter(|c| self.who.scope.allows(&c.id))
            .collect();
        let v = protocol::hello(&cameras, self.hub.qualities(), unix_ms_now());
        self.text(v);
    }

    /// What to send now, in order.
    pub fn take_output(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.out)
    }

    fn text(&mut self, v: impl serde::Serialize) {
        if let Ok(t) = serde_json::to_string(&v) {
            self.out.push(Out::Text(t));
        }
    }

    /// A message the client sent that cannot be taken.
    pub fn refuse(&mut self, e: ProtocolError) {
        self.text(e.event());
    }

    #[cfg(test)]
    /// Cameras watched now.
    pub fn watching(&self) -> usize {
        self.subs.len()
    }

    /// One client text message.
    pub async fn on_text(&mut self, text: &str, now: Instant) {
        match protocol::parse_client(text) {
            Err(e) => self.refuse(e),
            Ok(Request::Subscribe(req)) => self.subscribe(req, now).await,
            Ok(Request::Unsubscribe(ids)) => {
                for id in self.expand(&ids) {
                    self.drop_sub(&id);
                }
            }
            Ok(Request::VideoError { camera, message }) => {
                if let Some(sub) = self.subs.get_mut(&camera) {
                    tracing::debug!(%camera, %message, "the client's video decoder failed; JPEG from now on");
                    sub.video_failed = true;
                    self.retarget(&camera, now);
                }
            }
            // `latency_ms` is the client's clock minus the server's: it is wrong by however
            // far apart the two clocks are, so it is accepted and not judged.
            Ok(Request::Decoder {
                camera,
                queue,
                dropped,
            }) => {
                if let Some(sub) = self.subs.get_mut(&camera) {
                    if queue > DECODER_BACKLOG || dropped >= DECODER_DROPS {
                        sub.viewer_busy = true;
                    }
                }
            }
            Ok(Request::Ack { camera, seq, .. }) => {
                if let Some(sub) = self.subs.get_mut(&camera) {
                    self.window.acking = true;
                    // Acknowledging a frame settles every earlier one of the camera (the client
                    // skips frames that a newer one replaced); the round trip is the
                    // acknowledged frame's.
                    let mut acked = None;
                    while let Some(&(s, sent_at, bytes)) = sub.in_flight.front() {
                        if s > seq {
                            break;
                        }
                        sub.in_flight.pop_front();
                        if s == seq {
                            acked = Some((sent_at, bytes));
                        }
                    }
                    let Some((sent_at, bytes)) = acked else {
                        return;
                    };
                    if self.congested_at.is_none_or(|at| sent_at >= at) {
                        // A large frame takes longer to cross without waiting anywhere.
                        let rtt = now.saturating_duration_since(sent_at);
                        self.window.rtt_sum += rtt.saturating_sub(self.link.transmission(bytes));
                        self.window.rtt_n += 1;
                    }
                    let mut delivered = 0;
                    while let Some(&(t, b)) = self.sent_log.front() {
                        if t > sent_at {
                            break;
                        }
                        self.sent_log.pop_front();
                        delivered += b;
                    }
                    self.link.acked(now, sent_at, delivered);
                }
            }
            Ok(Request::Ping { t0 }) => self.text(protocol::pong(t0, unix_ms_now())),
            Ok(Request::Activity(ids)) => {
                let ids = if ids.iter().any(|i| i == "*") {
                    ids
                } else {
                    self.expand(&ids)
                };
                self.activity.ask(ids);
            }
        }
    }

    /// A camera came, changed or went; a listener that lagged gets the whole list again.
    pub fn on_event(&mut self, ev: Result<HubEvent, RecvError>) {
        let allows = |id: &str| self.who.scope.allows(id);
        match ev {
            Ok(HubEvent::Added(info)) if allows(&info.id) => {
                self.text(protocol::camera_added(&info))
            }
            Ok(HubEvent::Changed(info)) if allows(&info.id) => {
                self.text(protocol::camera_changed(&info))
            }
            Ok(HubEvent::Removed(id)) if allows(&id) => {
                self.drop_sub(&id);
                self.text(protocol::camera_removed(&id));
            }
            Err(RecvError::Lagged(_)) => self.hello(),
            // Closed, or a camera outside the scope.
            _ => {}
        }
    }

    fn drop_sub(&mut self, id: &str) {
        self.replays.stop(id);
        self.subs.remove(id);
        self.streams.remove(id);
        self.video_streams.remove(id);
        self.audio_streams.remove(id);
        self.listening.remove(id);
    }

    /// `["*"]` means every camera; unknown ids get an error event each.
    fn expand(&mut self, ids: &[String]) -> Vec<String> {
        if ids.iter().any(|i| i == "*") {
            return self
                .hub
                .cameras()
                .iter()
                .map(|c| c.id().to_string())
                .filter(|id| self.who.scope.allows(id))
                .collect();
        }
        let mut out = Vec::new();
        for id in ids {
            if self.hub.get(id).is_some() && self.who.scope.allows(id) {
                out.push(id.clone());
            } else {
                self.refuse(ProtocolError::UnknownCamera(id.chars().take(64).collect()));
            }
        }
        out
    }

    async fn subscribe(&mut self, req: SubscribeReq, now: Instant) {
        let ids = self.expand(&req.cameras);
        if let Some((at, speed)) = req.replay {
            return self.subscribe_replay(&ids, &req, at, speed);
        }
        for id in &ids {
            self.replays.stop(id);
            let Some(choice) = streams::choose(&self.hub, id, req.stream, req.max_width) else {
                continue;
            };
            let prev = self.subs.remove(id);
            let fallback = choice.fallback();
            let link_streams = Sub::link_streams_for(
                &self.hub,
                id,
                (req.quality, req.stream, !req.codecs.is_empty()),
                req.max_width,
            );
            let mut sub = Sub {
                src_width: choice.stream.camera.width(),
                // Sequence numbers belong to one camera object: a camera removed and added
                // again starts over.
                last_sent_seq: prev
                    .as_ref()
                    .filter(|p| Arc::ptr_eq(p.cam(), &choice.stream.camera))
                    .map_or(0, |p| p.last_sent_seq),
                stream: choice.stream,
                quality: req.quality,
                max_width: req.max_width,
                max_fps: req.max_fps,
                level: 0,
                reason: None,
                meters: prev.as_ref().map(|p| p.meters.clone()).unwrap_or_default(),
                link_streams,
                viewer_busy: false,
                lane: None,
                in_flight: VecDeque::new(),
                last_state: None,
                video_failed: prev.as_ref().is_some_and(|p| p.video_failed),
                codecs: req.codecs.clone(),
                video: None,
                seen_codec: None,
                stream_req: req.stream,
                serving: choice.kind,
                fallback,
                sub_use: None,
            };
            sub.keep_sub(&self.hub, id, choice.wants_sub);
            // A new subscription starts its streams afresh.
            self.streams.remove(id);
            self.video_streams.remove(id);
            if let (Some(p), QualityReq::Auto) = (&prev, req.quality) {
                if p.codecs == req.codecs {
                    sub.level = p.level.min(sub.max_level(&self.ladder));
                    sub.reason = p.reason;
                }
            }
            self.subs.insert(id.clone(), sub);
            self.listen(id, &req.audio);
            // The level kept may be served by the other stream.
            self.restream(id, now);
            self.retarget(id, now);
        }
        // The newest frame of each right away, not at the camera's next frame (a 1 fps camera
        // would otherwise keep a new tile blank for up to a second), fetched concurrently so
        // a wall of many cameras fills at once.
        let (wanted, stills): (Vec<(String, Tier)>, Vec<_>) = ids
            .iter()
            .filter_map(|id| {
                let sub = self.subs.get(id)?;
                let tier = sub.lane?.tier;
                let still = sub.stream.attach(Still { tier, after: None });
                sub.cam()
                    .config()
                    .enabled
                    .then(|| ((id.clone(), tier), still))
            })
            .unzip();
        let firsts = futures_util::future::join_all(stills).await;
        for ((id, tier), first) in wanted.into_iter().zip(firsts) {
            let first = first.ok();
            let (Some(e), Some(sub)) = (first, self.subs.get_mut(&id)) else {
                continue;
            };
            if e.seq > sub.last_sent_seq {
                sub.last_sent_seq = e.seq;
                self.out
                    .push(Out::Binary(protocol::frame_message(&id, tier, &e)));
            }
        }
    }

    /// What goes to this client for an audio frame of `id`.
    pub fn admit_audio(&mut self, id: &str, frame: &AudioFrame) -> Vec<Out> {
        let Some((config, frame)) = self
            .listening
            .get_mut(id)
            .and_then(|(_, a)| a.admit(id, frame))
        else {
            return Vec::new();
        };
        let config = config.map(|c| Out::Text(c.to_string()));
        config.into_iter().chain([Out::Binary(frame)]).collect()
    }

    /// The next frame from any watched lane, video or audio feed (pending forever while
    /// nothing is watched).
    pub async fn next_frame(&mut self) -> Option<Incoming> {
        if self.streams.is_empty()
            && self.video_streams.is_empty()
            && self.audio_streams.is_empty()
            && self.replays.is_empty()
        {
            std::future::pending::<()>().await;
        }
        tokio::select! {
            Some((id, item)) = self.streams.next(), if !self.streams.is_empty() => {
                Some(Incoming::Jpeg(id, item))
            }
            Some((id, item)) = self.video_streams.next(), if !self.video_streams.is_empty() => {
                Some(Incoming::Video(id, item))
            }
            Some((id, item)) = self.audio_streams.next(), if !self.audio_streams.is_empty() => {
                Some(Incoming::Audio(id, item))
            }
            Some((id, unit)) = self.replays.next(), if !self.replays.is_empty() => {
                Some(Incoming::Replay(id, unit))
            }
            else => None,
        }
    }

    /// What goes to this client for an access unit of `id`: a `video_config` when the
    /// parameters are new to it, then the unit; nothing while it waits for a keyframe.
    pub fn admit_video(&mut self, id: &str, unit: &VideoUnit) -> Vec<Out> {
        let Some(sub) = self.subs.get_mut(id) else {
            return Vec::new();
        };
        sub.meter_mut().unit(unit);
        let Some(v) = sub.video.as_mut() else {
            return Vec::new();
        };
        v.admit(id, unit)
            .into_iter()
            .map(|o| match o {
                VideoOut::Config(c) => Out::Text(c.to_string()),
                VideoOut::Unit(b) => Out::Binary(b),
            })
            .collect()
    }

    /// The client fell `n` access units behind `id`'s video: it resumes at the next keyframe.
    pub fn video_lagged(&mut self, id: &str, n: u64) {
        if let Some(v) = self.subs.get_mut(id).and_then(|s| s.video.as_mut()) {
            v.lagged();
        }
        self.skipped(id, n);
    }

    /// Whether a published frame goes to this client now; the message if so.
    pub fn admit(&mut self, id: &str, p: &Published) -> Option<Bytes> {
        let sub = self.subs.get_mut(id)?;
        // The lane already thinned to its rate cap (before encoding).
        if Some(p.tier) != sub.lane.map(|l| l.tier) || p.encoded.seq <= sub.last_sent_seq {
            return None;
        }
        sub.meter_mut().jpeg(p.tier, p.encoded.jpeg.data.len());
        Some(p.wire(|p| protocol::frame_message(id, p.tier, &p.encoded)))
    }

    /// A frame of `bytes` went out: its send began at `started` and took `took`.
    pub fn sent(&mut self, id: &str, seq: u64, bytes: usize, started: Instant, took: Duration) {
        let Some(sub) = self.subs.get_mut(id) else {
            return;
        };
        if sub.video.is_none() {
            sub.last_sent_seq = seq;
        }
        self.window.sent += 1;
        self.window.send_time += took;
        if self.window.acking {
            if sub.in_flight.len() >= MAX_TRACKED_IN_FLIGHT {
                sub.in_flight.pop_front();
            }
            sub.in_flight.push_back((seq, started, bytes));
            if self.sent_log.len() >= MAX_SENT_LOG {
                self.sent_log.pop_front();
            }
            self.sent_log.push_back((started, bytes));
        }
    }

    /// The client had not taken `n` frames of `id` when newer ones came.
    pub fn skipped(&mut self, id: &str, n: u64) {
        if self.subs.contains_key(id) {
            self.window.skipped = self
                .window
                .skipped
                .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        }
    }

    /// A clock tick: state events for watched cameras, and once per [`WINDOW`] the adaptation.
    pub fn on_tick(&mut self, now: Instant) {
        let ids: Vec<String> = self.subs.keys().cloned().collect();
        for id in &ids {
            self.restream(id, now);
        }
        self.poll_states();
        // A camera's video starts after its source opens, and stops or changes with it.
        let moved: Vec<String> = self
            .subs
            .iter()
            .filter(|(_, s)| s.cam().video().codec() != s.seen_codec)
            .map(|(id, _)| id.clone())
            .collect();
        for id in moved {
            self.retarget(&id, now);
        }
        let since = now.saturating_duration_since(self.last_decision);
        if since >= DECIDE_EVERY || (since >= TICK && self.queue_over_bound(now)) {
            self.last_decision = now;
            self.adapt(now);
        }
        if now.saturating_duration_since(self.last_window) >= WINDOW {
            self.last_window = now;
            if let (Some(rtt), Some(min)) = (self.link.srtt(), self.link.min_rtt()) {
                self.text(protocol::link(rtt, min, self.link.rate_bps()));
            }
            // Levels change once a second: looked at once a window, not at every tick.
            let (subs, scope) = (&self.subs, &self.who.scope);
            let events = self.activity.tick(
                &self.hub,
                |id| scope.allows(id),
                |id| subs.contains_key(id),
                now,
            );
            for e in events {
                self.text(e);
            }
        }
    }

    /// A state event for each watched camera whose state changed.
    fn poll_states(&mut self) {
        let mut events = Vec::new();
        for (id, sub) in self.subs.iter_mut() {
            let state = sub.cam().state();
            if sub.last_state != Some(state) {
                sub.last_state = Some(state);
                events.push(protocol::state(id, state, sub.cam().last_error()));
            }
        }
        for e in events {
            self.text(e);
        }
    }
}

mod judge;
mod target;

#[cfg(test)]
#[path = "session_audio_tests.rs"]
mod audio_tests;
#[path = "session_listen.rs"]
mod listen;
#[path = "session_replay.rs"]
mod replay_subs;

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
#[cfg(test)]
#[path = "session_video_tests.rs"]
mod video_tests;
