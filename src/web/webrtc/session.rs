//! One WebRTC session's task: moves datagrams, the camera's units and time into its
//! sans-I/O [`Peer`] and the peer's datagrams out through the shared socket, until the peer
//! ends, the session is deleted, the camera goes, or camwall shuts down.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::peer::{End, Next, Peer};
use super::WebRtc;
use crate::access::limits::{ClientKind, ClientSlot, SESSION_CHECK_EVERY};
use crate::hub::attach::{AudioOutput, VideoOutput};
use crate::hub::{Hub, HubEvent, Stream};
use crate::obs::metrics;

/// The finest step the session sleeps in (see `run`).
const PACE_TICK: std::time::Duration = std::time::Duration::from_millis(5);

/// What a session's task holds.
pub(super) struct Run {
    pub rtc: Arc<WebRtc>,
    pub id: String,
    pub peer: Peer,
    pub video: VideoOutput,
    /// The camera's audio (or its Opus transcode), when the viewer's answer has a section
    /// for it.
    pub audio: Option<AudioOutput>,
    pub inbox: mpsc::Receiver<super::Inbound>,
    pub end: CancellationToken,
    pub stream: Stream,
    pub hub: Arc<Hub>,
    pub slot: ClientSlot,
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// `at` rounded up to the process's PACE_TICK grid: every session's pacer wakes on the same
/// ticks, so one timer firing runs them all in turn instead of each waking a worker alone.
fn on_grid(at: std::time::Instant) -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(std::time::Instant::now);
    let tick = PACE_TICK.as_nanos();
    let since = at.saturating_duration_since(epoch).as_nanos();
    let up = since.div_ceil(tick) * tick;
    epoch + std::time::Duration::from_nanos(u64::try_from(up).unwrap_or(u64::MAX))
}

impl Run {
    pub async fn run(mut self) {
        let camera = self.stream.camera.id().to_string();
        let mut events = self.hub.events();
        // The GOP the attach gave is stale by the time the peer connects: it asks again.
        self.video.gop.clear();
        let mut reported = self.peer.counts;
        let mut decide = tokio::time::interval(super::adapt::DECIDE_EVERY);
        decide.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rung = super::adapt::Rung::Full;
        let mut checked = Instant::now();
        let why = loop {
            // Everything the peer has to send, then its deadline.
            let deadline = loop {
                match self.peer.poll(now()) {
                    Next::Transmit { proto, to, data } => self.rtc.send(proto, to, data).await,
                    Next::Wait(at) => break Ok(at),
                    Next::Ended(why) => break Err(why),
                }
            };
            let deadline = match deadline {
                Ok(at) => at,
                Err(why) => break why,
            };
            let now_std = now();
            if deadline <= now_std {
                self.peer.timeout(now_std);
                continue;
            }
            // str0m's pacer asks to be woken for every packet (0.5 ms apart at its start
            // rate): waking at most every PACE_TICK sends what came due in one go, a wake per
            // frame instead of one per packet, as browsers' own pacers work in 5 ms steps.
            // Until the connection is up, every flight of ICE and DTLS goes at once.
            let deadline = if self.peer.connected() {
                on_grid(deadline.max(now_std + PACE_TICK))
            } else {
                deadline
            };
            if self.peer.wants_gop() {
                let gop = self.stream.camera.video().gop();
                self.peer.send_gop(now(), &gop);
                continue;
            }
            report(&mut reported, &self.peer);
            tokio::select! {
                _ = self.end.cancelled() => self.peer.end(End::Closed),
                d = self.inbox.recv() => match d {
                    Some((proto, from, data)) => self.peer.receive(now(), proto, from, &data),
                    None => self.peer.end(End::Closed),
                },
                a = AudioOutput::next_or_never(&mut self.audio) => match a {
                    Some(Ok(frame)) => self.peer.send_audio(now(), &frame),
                    Some(Err(BroadcastStreamRecvError::Lagged(n))) => {
                        metrics::audio_frames_skipped(ClientKind::WebRtc.label(), n)
                    }
                    None => self.audio = None,
                },
                u = self.video.next() => match u {
                    Some(Ok(unit)) => self.peer.send_unit(now(), &unit),
                    Some(Err(BroadcastStreamRecvError::Lagged(_))) => self.peer.lagged(),
                    None => self.peer.end(End::Closed),
                },
                e = events.recv() => match e {
                    Ok(HubEvent::Removed(id)) if id == camera => self.peer.end(End::Closed),
                    Err(broadcast::error::RecvError::Lagged(_)) if self.hub.get(&camera).is_none() => {
                        self.peer.end(End::Closed)
                    }
                    Err(broadcast::error::RecvError::Closed) => self.peer.end(End::Closed),
                    _ => {}
                },
                _ = decide.tick() => {
                    // A logout, an expiry or a change of the user ends the session.
                    if checked.elapsed() >= SESSION_CHECK_EVERY {
                        checked = Instant::now();
                        if !self.slot.session_stands() {
                            debug!(camera = %camera, session = %self.id, "its login session ended");
                            self.peer.end(End::Closed);
                        }
                    }
                    self.peer.set_fps(self.stream.camera.fps_at(Instant::now()));
                    let now_rung = self.peer.adapt(now());
                    if now_rung != rung {
                        debug!(camera = %camera, session = %self.id, from = ?rung, to = ?now_rung,
                            estimate_bps = ?self.peer.estimate_bps, "WebRTC viewer changes rung");
                        rung = now_rung;
                    }
                }
                _ = tokio::time::sleep_until(Instant::from_std(deadline)) => self.peer.timeout(now()),
            }
        };
        report(&mut reported, &self.peer);
        self.rtc.forget(&self.id);
        let c = self.peer.counts;
        let log = |msg: &str| {
            info!(
                camera = %camera,
                session = %self.id,
                why = why.label(),
                units = c.units,
                bytes = c.bytes,
                gops_sent = c.gops_sent,
                keyframe_requests = c.keyframe_requests,
                nacks = c.nacks,
                skipped = c.units_skipped,
                "{msg}"
            )
        };
        if self.peer.connected() || why != End::NeverConnected {
            log("WebRTC session ended");
        } else {
            debug!(camera = %camera, session = %self.id, "WebRTC offer abandoned");
        }
        drop(self.slot);
    }
}

/// Adds what the peer did since the last report to the process's metrics.
fn report(last: &mut super::peer::Counts, peer: &Peer) {
    let c = peer.counts;
    if c == *last {
        return;
    }
    metrics::frames_sent(
        ClientKind::WebRtc.label(),
        c.units.saturating_sub(last.units),
        c.bytes.saturating_sub(last.bytes),
    );
    metrics::frames_skipped(
        ClientKind::WebRtc.label(),
        c.units_skipped.saturating_sub(last.units_skipped),
    );
    metrics::audio_frames_sent(
        ClientKind::WebRtc.label(),
        c.audio_frames.saturating_sub(last.audio_frames),
    );
    metrics::webrtc_feedback("nack", c.nacks.saturating_sub(last.nacks));
    metrics::webrtc_feedback(
        "keyframe_request",
        c.keyframe_requests.saturating_sub(last.keyframe_requests),
    );
    *last = c;
}
