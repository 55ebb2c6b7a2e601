//! One WebRTC viewer of one camera, sans-I/O: the str0m `Rtc` that answered its offer, which
//! of the camera's access units it is sent (never one whose reference it missed), their RTP
//! times on the camera's clock, the current GOP sent again from its keyframe when the viewer
//! asks for a picture (PLI/FIR), and when the viewer is gone (never connected, consent lost,
//! closed). Time, datagrams and units are inputs; transmissions and deadlines are outputs, so
//! every rule runs on a made-up clock in the unit tests. The socket loop is `session`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::BweKind;
use str0m::change::SdpOffer;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::media::{Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcConfig};

use super::adapt::{Adapt, Rung, Sample};
use super::audio::{AudioSend, AudioTrack};
use super::negotiate::{
    inactive_audio, one_stream, pick_audio_pt, pick_pt, sending_mid, sending_video_mid,
};
use super::packetize;
use super::rtp_clock::RtpClock;
use crate::hub::video::VideoUnit;
use crate::hub::AudioFrame;
use crate::media::codec::Codec;

/// A peer that has not connected within this long after its answer is dropped (an offer
/// made and abandoned).
pub const CONNECT_WITHIN: Duration = Duration::from_secs(15);
/// A connected peer heard nothing from this long is gone (consent freshness, RFC 7675:
/// browsers check consent every 5 s and send RTCP every second; 30 s is the RFC's limit).
pub const CONSENT_LOST_AFTER: Duration = Duration::from_secs(20);
/// Bytes waiting in the pacer past which a viewer skips to the next keyframe: a link that
/// cannot carry the camera costs at most this much memory, about one GOP of a 720p camera.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;
/// RTP packets kept for retransmission on NACK.
const NACK_HISTORY_PACKETS: usize = 600;
/// The rate str0m paces at before the receiver's feedback says more: high enough that the
/// GOP a new viewer starts with goes out within a few hundred milliseconds.
const START_RATE_BPS: u64 = 20_000_000;
/// After a GOP sent at once has left at the start rate, how long before the pacer's queue
/// is read as the path's again.
const BURST_SETTLE: Duration = Duration::from_millis(500);

/// Why a peer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// No ICE connection within [`CONNECT_WITHIN`].
    NeverConnected,
    /// Nothing heard for [`CONSENT_LOST_AFTER`].
    ConsentLost,
    /// The peer closed (DTLS close, ICE disconnected) or str0m failed.
    Closed,
}

impl End {
    pub fn label(self) -> &'static str {
        match self {
            Self::NeverConnected => "never_connected",
            Self::ConsentLost => "consent_lost",
            Self::Closed => "closed",
        }
    }
}

/// An offer that cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("the offer is not SDP camwall can read: {0}")]
    Malformed(String),
    #[error("the offer has no video section that receives")]
    NoVideo,
    #[error("the offer takes no {0} video with packetization-mode 1, which this camera sends")]
    NoCodec(&'static str),
}

/// What the peer asks of its socket loop next.
#[derive(Debug)]
pub enum Next {
    Transmit {
        proto: Protocol,
        to: SocketAddr,
        data: Vec<u8>,
    },
    /// Nothing to send before this instant (or an input).
    Wait(Instant),
    Ended(End),
}

/// Counters for metrics and the session's log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub units: u64,
    pub bytes: u64,
    pub gops_sent: u64,
    pub keyframe_requests: u64,
    pub nacks: u64,
    pub units_skipped: u64,
    pub audio_frames: u64,
}

/// What a viewer is sent: the camera's video codec, and its audio when it has a track
/// WebRTC takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sends {
    pub video: Codec,
    pub audio: Option<AudioSend>,
}

/// How a peer is set up: shared by every session of the process.
#[derive(Clone)]
pub struct Setup {
    pub provider: Arc<CryptoProvider>,
    pub cert: DtlsCert,
}

/// One viewer's peer connection.
pub struct Peer {
    rtc: Rtc,
    mid: Mid,
    pt: Pt,
    codec: Codec,
    /// Where datagrams for this peer arrive (its host candidate).
    local: SocketAddr,
    /// Where ICE-TCP connections for it arrive (its passive TCP candidate).
    local_tcp: Option<SocketAddr>,
    created: Instant,
    connected: bool,
    last_heard: Instant,
    ended: Option<End>,
    clock: RtpClock,
    /// Sending waits for a keyframe (start, after a lag or a skip).
    need_key: bool,
    last_seq: u64,
    /// The GOP is to be sent from its keyframe (connected, or a picture request).
    gop_asked: bool,
    /// The start's GOP was sent.
    started: bool,
    /// The next RTP sequence number (extended: str0m counts the wraps).
    next_seq: u64,
    /// The keyframe of the GOP last sent again: a picture request is answered once per GOP.
    resent_key: Option<u64>,
    /// Only keyframes are sent (the link cannot carry the camera).
    pub keyframes_only: bool,
    pub counts: Counts,
    /// The receiver-fed estimate of what the path carries (TWCC or REMB), bits per second.
    pub estimate_bps: Option<f64>,
    /// Loss the receiver last reported.
    loss: Option<f32>,
    adapt: Adapt,
    /// A GOP sent at once queues in the pacer by design: the queue says nothing of the path
    /// until this instant.
    burst_until: Option<Instant>,
    /// The audio section, when the offer has one and the camera's track can be sent.
    audio: Option<AudioTrack>,
    /// Where the camera's clock met this viewer's wall clock (the first media written): the
    /// sender reports of both sections map RTP times through it, so the browser can line
    /// audio up with video.
    anchor: Option<(Instant, i64)>,
}

impl Peer {
    /// Answers `offer` for a camera sending `sends`, with host candidates `candidates` (the
    /// first is where datagrams arrive) and ICE credentials `creds` (the socket loop routes
    /// STUN by their ufrag). Returns the peer and the SDP answer. An audio section the camera
    /// cannot fill is answered without a codec (inactive); the video still plays.
    pub fn answer(
        setup: &Setup,
        offer: &str,
        sends: Sends,
        candidates: &[SocketAddr],
        tcp: Option<SocketAddr>,
        creds: IceCreds,
        now: Instant,
    ) -> Result<(Self, String), OfferError> {
        let codec = sends.video;
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| OfferError::Malformed(e.to_string()))?;
        let local = *candidates
            .first()
            .ok_or_else(|| OfferError::Malformed("no local candidate".into()))?;
        let mut rtc = RtcConfig::new()
            .set_crypto_provider(setup.provider.clone())
            .set_dtls_cert(setup.cert.clone())
            .set_local_ice_credentials(creds)
            .set_ice_lite(true)
            .clear_codecs()
            .enable_h264(codec == Codec::H264)
            .enable_h265(codec == Codec::H265)
            // Every audio codec browsers take, whatever the camera sends: str0m answers an
            // audio section with none in common without a payload type, which is no SDP at
            // all. A section that will not carry the camera's track is made inactive below.
            .enable_pcmu(true, false)
            .enable_pcma(true, false)
            .enable_opus(true, false)
            .enable_bwe(Some(str0m::bwe::Bitrate::bps(START_RATE_BPS)))
            .set_send_buffer_video(NACK_HISTORY_PACKETS)
            // The payloads are built once per unit for every viewer (`packetize`): str0m
            // numbers, paces, encrypts and resends them.
            .set_rtp_mode(true)
            // Nothing is received but RTCP: the stats feed the metrics once a second.
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(now);
        for addr in candidates {
            if let Ok(c) = Candidate::host(*addr, "udp") {
                rtc.add_local_candidate(c);
            }
        }
        // ICE over TCP where UDP is blocked: passive, on the HTTP port (RFC 6544).
        if let Some(addr) = tcp {
            let c = Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(str0m::net::TcpType::Passive)
                .build();
            if let Ok(c) = c {
                rtc.add_local_candidate(c);
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| OfferError::Malformed(e.to_string()))?;
        let answer = answer.to_sdp_string();
        // str0m tells of the offer's media only once connected; the answer names them now.
        let mid = sending_video_mid(&answer).ok_or(OfferError::NoVideo)?;
        let pt = pick_pt(&rtc, mid, codec).ok_or(OfferError::NoCodec(codec.name()))?;
        // RFC 3550 asks for a random start; the SSRC str0m drew is random.
        let next_seq = first_seq(&mut rtc, mid);
        let audio = sends.audio.and_then(|send| {
            let mid = sending_mid(&answer, "audio")?;
            let pt = pick_audio_pt(&rtc, mid, send.rtc_codec())?;
            Some(AudioTrack::new(mid, pt, send, first_seq(&mut rtc, mid)))
        });
        let answer = match audio {
            Some(_) => one_stream(&answer),
            None => inactive_audio(&answer),
        };
        let peer = Self {
            rtc,
            mid,
            pt,
            codec,
            local,
            local_tcp: tcp,
            created: now,
            connected: false,
            last_heard: now,
            ended: None,
            clock: RtpClock::default(),
            need_key: true,
            last_seq: 0,
            gop_asked: false,
            started: false,
            next_seq,
            resent_key: None,
            keyframes_only: false,
            counts: Counts::default(),
            estimate_bps: None,
            loss: None,
            adapt: Adapt::default(),
            burst_until: None,
            audio,
            anchor: None,
        };
        Ok((peer, answer))
    }

    pub fn connected(&self) -> bool {
        self.connected
    }

    /// A datagram (or an ICE-TCP frame) from `source`.
    pub fn receive(&mut self, now: Instant, proto: Protocol, source: SocketAddr, data: &[u8]) {
        let local = match (proto, self.local_tcp) {
            (Protocol::Tcp, Some(tcp)) => tcp,
            _ => self.local,
        };
        let Ok(r) = Receive::new(proto, source, local, data) else {
            return;
        };
        if self.rtc.handle_input(Input::Receive(now, r)).is_ok() {
            self.last_heard = now;
        }
    }

    /// The deadline the peer asked for has come.
    pub fn timeout(&mut self, now: Instant) {
        if self.rtc.handle_input(Input::Timeout(now)).is_err() {
            self.end(End::Closed);
        }
    }

    /// Ends the peer (a `DELETE`, shutdown, or a rule here).
    pub fn end(&mut self, why: End) {
        if self.ended.is_none() {
            self.ended = Some(why);
            self.rtc.disconnect();
        }
    }

    /// Whether the camera's current GOP is to be sent from its keyframe now.
    pub fn wants_gop(&self) -> bool {
        self.connected && self.gop_asked && self.ended.is_none()
    }

    /// Sends `gop` (the camera's current GOP, keyframe first, up to its newest unit) at
    /// once; live units go on after its newest. A GOP sent already is not sent again.
    pub fn send_gop(&mut self, now: Instant, gop: &[Arc<VideoUnit>]) {
        self.gop_asked = false;
        let Some(first) = gop.first().filter(|u| u.key) else {
            // No GOP yet: the next keyframe starts the picture.
            self.need_key = true;
            return;
        };
        if self.started {
            // A picture request: once per GOP.
            if self.resent_key == Some(first.seq) {
                return;
            }
            self.resent_key = Some(first.seq);
        }
        self.started = true;
        let units: Vec<&Arc<VideoUnit>> = if self.keyframes_only {
            vec![first]
        } else {
            gop.iter().collect()
        };
        let newest = units[units.len() - 1];
        let times = self.clock.burst(units.len(), newest.stamp.pts_us);
        for (u, t) in units.iter().zip(times) {
            self.write(now, u, t);
        }
        self.counts.gops_sent += 1;
        let bits: usize = units.iter().map(|u| u.data.len() * 8).sum();
        self.burst_until =
            Some(now + Duration::from_secs_f64(bits as f64 / START_RATE_BPS as f64) + BURST_SETTLE);
        self.need_key = false;
        self.last_seq = newest.seq;
    }

    /// A live unit of the camera, in order.
    pub fn send_unit(&mut self, now: Instant, unit: &VideoUnit) {
        self.adapt.unit(unit);
        if !self.connected || self.gop_asked || unit.seq <= self.last_seq {
            return;
        }
        let queued = self.queued_bytes();
        if self.need_key || self.keyframes_only || queued > MAX_QUEUED_BYTES {
            if !unit.key || queued > MAX_QUEUED_BYTES {
                // A unit whose reference was not sent cannot be decoded; one the pacer
                // cannot take in time is better skipped to the next keyframe.
                self.need_key |= !self.keyframes_only;
                self.counts.units_skipped += 1;
                return;
            }
            self.need_key = false;
        }
        let t = self.clock.live(unit.stamp.pts_us);
        self.write(now, unit, t);
        self.last_seq = unit.seq;
    }

    /// What the audio section sends, when there is one.
    pub fn audio(&self) -> Option<AudioSend> {
        self.audio.as_ref().map(AudioTrack::send)
    }

    /// An audio frame of the camera (its own, or the Opus transcode of its AAC), in order.
    /// Audio needs no keyframe: it goes from the connection on.
    pub fn send_audio(&mut self, now: Instant, frame: &AudioFrame) {
        if !self.connected || self.ended.is_some() {
            return;
        }
        let Some(send) = self.audio() else {
            return;
        };
        // A camera that came back with another codec: its frames do not fit the section.
        if frame.info.codec != send.label() || frame.info.sample_rate != send.rate() {
            return;
        }
        let wallclock = self.wallclock(now, frame.stamp.pts_us);
        if let Some(track) = self.audio.as_mut() {
            track.write(&mut self.rtc, frame, wallclock);
            self.counts.audio_frames = track.frames;
        }
    }

    /// The instant on this viewer's wall clock of camera time `pts_us`: anchored where the
    /// first media met the clock, never after `now` (str0m's sender reports take only past
    /// instants).
    fn wallclock(&mut self, now: Instant, pts_us: i64) -> Instant {
        let (at, pts0) = *self.anchor.get_or_insert((now, pts_us));
        let d = pts_us - pts0;
        let t = if d >= 0 {
            at + Duration::from_micros(d as u64)
        } else {
            at.checked_sub(Duration::from_micros(d.unsigned_abs()))
                .unwrap_or(at)
        };
        t.min(now)
    }

    /// Units were missed (the broadcast overtook this viewer): resume at a keyframe.
    pub fn lagged(&mut self) {
        self.need_key = true;
    }

    /// Bytes waiting in the pacer.
    pub fn queued_bytes(&mut self) -> usize {
        let mid = self.mid;
        let mut api = self.rtc.direct_api();
        api.stream_tx_by_mid(mid, None)
            .and_then(|s| s.queue_info().map(|q| q.byte_size()))
            .unwrap_or(0)
    }

    /// The camera's frame rate (for cost guesses before its bitrate is measured).
    pub fn set_fps(&mut self, fps: f64) {
        self.adapt.set_fps(fps);
    }

    /// Decides whether the path carries the camera's full video or only its keyframes, from
    /// the receiver's estimate, the pacer's queue and reported loss. Returns the rung.
    pub fn adapt(&mut self, now: Instant) -> Rung {
        if !self.connected || self.burst_until.is_some_and(|t| now < t) {
            return self.adapt.rung();
        }
        let sample = Sample {
            estimate_bps: self.estimate_bps,
            queued_for: self.queue_delay(now),
            loss: self.loss.take(),
        };
        let rung = self.adapt.decide(sample);
        let keyframes = rung == Rung::Keyframes;
        if self.keyframes_only && !keyframes {
            // The deltas since the last keyframe sent were not: full video resumes at a
            // keyframe.
            self.need_key = true;
        }
        self.keyframes_only = keyframes;
        rung
    }

    /// How long the oldest unsent packet has waited in the pacer.
    fn queue_delay(&mut self, now: Instant) -> Duration {
        let mid = self.mid;
        let mut api = self.rtc.direct_api();
        api.stream_tx_by_mid(mid, None)
            .and_then(|s| s.queue_info().and_then(|q| q.first_unsent()))
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }

    /// Numbers the unit's shared payloads in this viewer's sequence and queues them in the
    /// pacer, the last with the marker bit.
    fn write(&mut self, now: Instant, unit: &VideoUnit, rtp_ticks: u64) {
        let codec = self.codec;
        let payloads = unit.rtp(|u| packetize::payloads(codec, u, packetize::MAX_PAYLOAD));
        let Some((last, _)) = payloads.split_last() else {
            return;
        };
        let (mid, pt) = (self.mid, self.pt);
        let wallclock = self.wallclock(now, unit.stamp.pts_us);
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, None) else {
            return;
        };
        // RTP time is the 90 kHz clock's low 32 bits, wrapping as RFC 3550 has it.
        let time = rtp_ticks as u32;
        let mut len = 0;
        for p in payloads.iter() {
            let write = RtpWrite::new(pt, self.next_seq.into(), time, wallclock, p.clone())
                .marker(std::ptr::eq(p, last))
                .nackable(true);
            stream.write_rtp(write);
            self.next_seq += 1;
            len += p.len();
        }
        self.counts.units += 1;
        self.counts.bytes += len as u64;
    }

    /// What to do next: a datagram to send, a deadline, or the end.
    pub fn poll(&mut self, now: Instant) -> Next {
        if let Some(end) = self.ended {
            return Next::Ended(end);
        }
        if !self.connected && now.saturating_duration_since(self.created) >= CONNECT_WITHIN {
            self.end(End::NeverConnected);
            return Next::Ended(End::NeverConnected);
        }
        if self.connected && now.saturating_duration_since(self.last_heard) >= CONSENT_LOST_AFTER {
            self.end(End::ConsentLost);
            return Next::Ended(End::ConsentLost);
        }
        loop {
            if !self.rtc.is_alive() {
                self.end(End::Closed);
                return Next::Ended(End::Closed);
            }
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    return Next::Transmit {
                        proto: t.proto,
                        to: t.destination,
                        data: t.contents.into(),
                    }
                }
                Ok(Output::Timeout(at)) => {
                    let own = if self.connected {
                        self.last_heard + CONSENT_LOST_AFTER
                    } else {
                        self.created + CONNECT_WITHIN
                    };
                    return Next::Wait(at.min(own));
                }
                Ok(Output::Event(e)) => {
                    self.event(e);
                    if let Some(end) = self.ended {
                        return Next::Ended(end);
                    }
                }
                Err(_) => {
                    self.end(End::Closed);
                    return Next::Ended(End::Closed);
                }
            }
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Connected => {
                self.connected = true;
                self.gop_asked = true;
            }
            // ICE's own consent check (no binding request for a while) or ours, whichever
            // comes first.
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.end(End::ConsentLost)
            }
            Event::Closed => self.end(End::Closed),
            Event::KeyframeRequest(_) => {
                // Cameras do not take keyframe requests: the GOP from its keyframe is the
                // picture the viewer lacks (once per GOP: see `send_gop`).
                self.counts.keyframe_requests += 1;
                self.gop_asked = true;
            }
            Event::EgressBitrateEstimate(
                BweKind::Twcc { estimate, .. } | BweKind::Remb { estimate, .. },
            ) => self.estimate_bps = Some(estimate.as_f64()),
            Event::MediaEgressStats(s) => {
                self.counts.nacks = s.nacks;
                if s.loss.is_some() {
                    self.loss = s.loss;
                }
            }
            _ => {}
        }
    }
}

/// A start for the viewer's sequence numbers, below 2^15 so the first packets cannot wrap
/// into a second roll-over count.
fn first_seq(rtc: &mut Rtc, mid: Mid) -> u64 {
    let ssrc = rtc
        .direct_api()
        .stream_tx_by_mid(mid, None)
        .map_or(0, |s| *s.ssrc());
    u64::from(ssrc % (1 << 15))
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "peer_audio_tests.rs"]
mod audio_tests;
