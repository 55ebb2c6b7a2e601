//! Tests of one WebRTC viewer on a made-up clock: a str0m client offers `recvonly` video, the
//! two exchange datagrams in memory, and the tests watch what the client receives: the GOP
//! at start, live units on the camera's clock, the GOP again for a picture request (once per
//! GOP), and the peer's end when the client goes silent or never connects.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceCreds, Input, Output, Rtc, RtcConfig};

use super::*;
use crate::hub::video::{VideoConfig, VideoUnit};
use crate::media::clock::Stamp;
use crate::media::h26x::fixtures::{H264_TINY_PPS, H264_TINY_SPS};
use crate::media::h26x::VideoParams;
use crate::web::webrtc::adapt::Rung;

const CLIENT: &str = "127.0.0.1:5000";
const SERVER: &str = "127.0.0.1:6000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn setup() -> Setup {
    let provider = Arc::new(str0m::crypto::from_feature_flags());
    let cert = provider.dtls_provider.generate_certificate().unwrap();
    Setup { provider, cert }
}

fn config() -> Arc<VideoConfig> {
    Arc::new(VideoConfig {
        params: Arc::new(
            VideoParams::from_parameter_sets(Codec::H264, [H264_TINY_SPS, H264_TINY_PPS]).unwrap(),
        ),
        generation: 1,
    })
}

/// A small unit: an IDR slice for a keyframe, else a non-IDR slice, `seq` x 40 ms on the
/// camera's clock.
pub(super) fn unit(seq: u64, key: bool) -> Arc<VideoUnit> {
    sized(seq, key, 6)
}

/// A unit of `bytes` (an IDR slice for a keyframe), 40 ms after the one before.
fn sized(seq: u64, key: bool, bytes: usize) -> Arc<VideoUnit> {
    let mut nal = vec![if key { 0x65 } else { 0x41 }, 0x88];
    nal.resize(bytes, seq as u8 | 1);
    let mut data = (nal.len() as u32).to_be_bytes().to_vec();
    data.extend_from_slice(&nal);
    Arc::new(VideoUnit::new(
        seq,
        key,
        Bytes::from(data),
        Stamp {
            pts_us: seq as i64 * 40_000,
            captured_unix_ms: 1_000,
        },
        config(),
    ))
}

/// A browser-like receiver and the camwall peer that answered it, on one clock.
pub(super) struct Pair {
    pub(super) now: Instant,
    pub(super) client: Rtc,
    pub(super) peer: Peer,
    /// RTP times of the video frames the client received, in order.
    pub(super) frames: Vec<u64>,
    /// RTP times and payloads of the audio frames the client received, in order.
    pub(super) audio: Vec<(u64, Vec<u8>)>,
    client_connected: bool,
    /// The client's datagrams reach the peer (false: it vanished).
    client_talks: bool,
    ended: Option<End>,
    /// A narrow path from the peer to the client, when set.
    link: Option<Bottleneck>,
}

/// A path of `bps` from the peer to the client: packets leave one after another at that
/// rate and take 10 ms on the way; one that would wait more than 200 ms is dropped.
struct Bottleneck {
    bps: f64,
    free_at: Instant,
    queue: std::collections::VecDeque<(Instant, Vec<u8>)>,
}

impl Bottleneck {
    fn push(&mut self, now: Instant, data: Vec<u8>) {
        let start = self.free_at.max(now);
        if start - now > Duration::from_millis(200) {
            return;
        }
        self.free_at = start + Duration::from_secs_f64(data.len() as f64 * 8.0 / self.bps);
        self.queue
            .push_back((self.free_at + Duration::from_millis(10), data));
    }

    fn due(&mut self, now: Instant) -> Option<Vec<u8>> {
        match self.queue.front() {
            Some((at, _)) if *at <= now => self.queue.pop_front().map(|(_, d)| d),
            _ => None,
        }
    }
}

fn client_offer(now: Instant) -> (Rtc, String, SdpPendingOffer) {
    client_offer_with(now, false)
}

/// A browser-like offer: `recvonly` video, and `recvonly` audio (Opus, PCMU, PCMA) first when
/// `audio`, as a page that wants sound makes it.
pub(super) fn client_offer_with(now: Instant, audio: bool) -> (Rtc, String, SdpPendingOffer) {
    let mut rtc = RtcConfig::new()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(audio, false)
        .enable_pcmu(audio, false)
        .enable_pcma(audio, false)
        .build(now);
    rtc.add_local_candidate(Candidate::host(addr(CLIENT), "udp").unwrap());
    let mut change = rtc.sdp_api();
    if audio {
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    }
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    (rtc, offer.to_sdp_string(), pending)
}

fn h264() -> Sends {
    Sends {
        video: Codec::H264,
        audio: None,
    }
}

fn creds() -> IceCreds {
    IceCreds {
        ufrag: "ufrag123".into(),
        pass: "a-password-of-some-length".into(),
    }
}

impl Pair {
    fn new() -> Self {
        Self::with(h264(), false).0
    }

    /// A pair whose peer sends `sends` to a client that offers audio when `audio`; also
    /// the answer's SDP.
    pub(super) fn with(sends: Sends, audio: bool) -> (Self, String) {
        let now = Instant::now();
        let (mut client, offer, pending) = client_offer_with(now, audio);
        let (peer, answer_sdp) =
            Peer::answer(&setup(), &offer, sends, &[addr(SERVER)], None, creds(), now).unwrap();
        let answer = SdpAnswer::from_sdp_string(&answer_sdp).unwrap();
        client.sdp_api().accept_answer(pending, answer).unwrap();
        let pair = Pair {
            now,
            client,
            peer,
            frames: Vec::new(),
            audio: Vec::new(),
            client_connected: false,
            client_talks: true,
            ended: None,
            link: None,
        };
        (pair, answer_sdp)
    }

    /// Runs both sides until neither has anything to do before `until`, moving the clock to
    /// each deadline in turn.
    fn run_until(&mut self, until: Instant) {
        let mut rounds_here = 0;
        for _ in 0..1_000_000 {
            let mut busy = false;
            let mut next = until;
            if let Some(link) = self.link.as_mut() {
                while let Some(data) = link.due(self.now) {
                    busy = true;
                    let r = Receive::new(Protocol::Udp, addr(SERVER), addr(CLIENT), &data).unwrap();
                    self.client
                        .handle_input(Input::Receive(self.now, r))
                        .unwrap();
                }
                if let Some((at, _)) = link.queue.front() {
                    next = next.min(*at);
                }
            }
            loop {
                match self.client.poll_output().unwrap() {
                    Output::Transmit(t) => {
                        busy = true;
                        if self.client_talks {
                            let data: Vec<u8> = t.contents.into();
                            self.peer
                                .receive(self.now, Protocol::Udp, addr(CLIENT), &data);
                        }
                    }
                    Output::Event(Event::Connected) => self.client_connected = true,
                    Output::Event(Event::MediaData(d)) if d.mid == self.peer.mid => {
                        self.frames.push(d.time.numer())
                    }
                    Output::Event(Event::MediaData(d)) => {
                        self.audio.push((d.time.numer(), d.data.to_vec()))
                    }
                    Output::Event(_) => {}
                    Output::Timeout(t) => {
                        next = next.min(t);
                        break;
                    }
                }
            }
            loop {
                match self.peer.poll(self.now) {
                    Next::Transmit { data, .. } => {
                        busy = true;
                        if let Some(link) = self.link.as_mut() {
                            link.push(self.now, data);
                            continue;
                        }
                        let r =
                            Receive::new(Protocol::Udp, addr(SERVER), addr(CLIENT), &data).unwrap();
                        self.client
                            .handle_input(Input::Receive(self.now, r))
                            .unwrap();
                    }
                    Next::Wait(t) => {
                        next = next.min(t);
                        break;
                    }
                    Next::Ended(e) => {
                        self.ended = Some(e);
                        return;
                    }
                }
            }
            if busy {
                // What was delivered may be answered at the same instant.
                rounds_here += 1;
                if rounds_here < 20 {
                    continue;
                }
            }
            rounds_here = 0;
            if next >= until {
                self.now = until;
                self.peer.timeout(self.now);
                self.client.handle_input(Input::Timeout(self.now)).unwrap();
                return;
            }
            // At least a millisecond on: a deadline of "now" (a pacer) must not spin.
            self.now = next.max(self.now + Duration::from_millis(1));
            self.peer.timeout(self.now);
            self.client.handle_input(Input::Timeout(self.now)).unwrap();
        }
        panic!("the pair never settled");
    }

    pub(super) fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    pub(super) fn connect(&mut self) {
        for _ in 0..50 {
            if self.peer.connected() && self.client_connected {
                return;
            }
            self.run_for(Duration::from_millis(100));
        }
        panic!("no connection");
    }

    fn send(&mut self, u: &Arc<VideoUnit>) {
        self.peer.send_unit(self.now, u);
        self.run_for(Duration::from_millis(40));
    }

    pub(super) fn send_gop(&mut self, gop: &[Arc<VideoUnit>]) {
        assert!(self.peer.wants_gop(), "the peer asks for the GOP");
        self.peer.send_gop(self.now, gop);
        self.run_for(Duration::from_millis(40));
    }

    fn ask_picture(&mut self) {
        let mid = self.client_mid();
        let mut api = self.client.direct_api();
        api.stream_rx_by_mid(mid, None)
            .expect("the client receives")
            .request_keyframe(KeyframeRequestKind::Pli);
        self.run_for(Duration::from_millis(40));
    }

    fn client_mid(&mut self) -> Mid {
        self.peer.mid
    }
}

#[test]
fn a_viewer_starts_with_the_gop_at_once_then_follows_the_cameras_clock() {
    let mut p = Pair::new();
    assert!(!p.peer.wants_gop(), "nothing is sent before the connection");
    p.connect();
    let gop = [unit(10, true), unit(11, false), unit(12, false)];
    p.send_gop(&gop);
    assert_eq!(p.frames.len(), 3, "the whole GOP arrives: {:?}", p.frames);
    let steps: Vec<u64> = p.frames.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(steps, [1, 1], "the GOP is stamped one tick apart");
    p.send(&unit(12, false));
    assert_eq!(p.frames.len(), 3, "a unit of the GOP is not sent twice");
    p.send(&unit(13, false));
    p.send(&unit(14, false));
    let steps: Vec<u64> = p.frames.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        steps,
        [1, 1, 3600, 3600],
        "live units 40 ms apart at 90 kHz"
    );
    assert_eq!(p.peer.counts.units, 5);
}

#[test]
fn a_picture_request_is_answered_with_the_gop_once_per_gop() {
    let mut p = Pair::new();
    p.connect();
    let gop = [unit(1, true), unit(2, false)];
    p.send_gop(&gop);
    p.send(&unit(3, false));
    assert_eq!(p.frames.len(), 3);
    p.ask_picture();
    assert_eq!(p.peer.counts.keyframe_requests, 1);
    let gop = [unit(1, true), unit(2, false), unit(3, false)];
    p.send_gop(&gop);
    assert_eq!(p.frames.len(), 6, "the GOP again, from its keyframe");
    assert!(
        p.frames.windows(2).all(|w| w[1] > w[0]),
        "RTP time never goes back: {:?}",
        p.frames
    );
    p.ask_picture();
    p.send_gop(&gop);
    assert_eq!(p.frames.len(), 6, "once per GOP");
    p.send(&unit(4, true));
    p.ask_picture();
    p.send_gop(&[unit(4, true)]);
    assert_eq!(p.frames.len(), 8, "a new GOP may be sent again");
    p.send(&unit(5, false));
    assert_eq!(p.frames.len(), 9, "live units go on");
}

#[test]
fn keyframes_only_and_lags_resume_at_a_keyframe() {
    let mut p = Pair::new();
    p.connect();
    p.send_gop(&[unit(1, true)]);
    p.peer.lagged();
    p.send(&unit(3, false));
    assert_eq!(
        p.frames.len(),
        1,
        "after a lag a delta unit has no reference"
    );
    p.send(&unit(4, true));
    p.send(&unit(5, false));
    assert_eq!(p.frames.len(), 3);
    p.peer.keyframes_only = true;
    p.send(&unit(6, false));
    p.send(&unit(7, true));
    assert_eq!(p.frames.len(), 4, "keyframes only");
    assert_eq!(p.peer.counts.units_skipped, 2);
}

#[test]
fn a_path_that_cannot_carry_the_camera_gets_its_keyframes_then_full_video_when_it_can() {
    let mut p = Pair::new();
    p.connect();
    p.send_gop(&[sized(0, true, 40_000)]);
    // About 1.9 Mbit/s: 40 KB keyframes once a second, 8 KB between, over 0.5 Mbit/s.
    p.link = Some(Bottleneck {
        bps: 500_000.0,
        free_at: p.now,
        queue: Default::default(),
    });
    p.peer.set_fps(25.0);
    let mut seq = 1;
    let mut play = |p: &mut Pair, seconds: u64| {
        let mut rungs = Vec::new();
        for _ in 0..seconds * 25 {
            let key = seq % 25 == 0;
            p.send(&sized(seq, key, if key { 40_000 } else { 8_000 }));
            if seq % 12 == 0 {
                rungs.push(p.peer.adapt(p.now));
            }
            seq += 1;
        }
        rungs
    };
    let rungs = play(&mut p, 10);
    assert_eq!(
        rungs.last(),
        Some(&Rung::Keyframes),
        "a path a quarter of the camera: {rungs:?}"
    );
    let before = p.frames.len();
    let rungs = play(&mut p, 4);
    assert!(rungs.iter().all(|r| *r == Rung::Keyframes), "{rungs:?}");
    assert!(
        (2..=5).contains(&(p.frames.len() - before)),
        "keyframes reach the viewer: {}",
        p.frames.len() - before
    );
    // The path widens: back to full video, resuming at a keyframe.
    p.link = None;
    let rungs = play(&mut p, 60);
    assert_eq!(rungs.last(), Some(&Rung::Full), "{rungs:?}");
    let before = p.frames.len();
    play(&mut p, 2);
    assert!(p.frames.len() - before >= 49, "every frame again");
}

#[test]
fn a_viewer_that_goes_silent_is_dropped_by_consent() {
    let mut p = Pair::new();
    p.connect();
    p.send_gop(&[unit(1, true)]);
    p.run_for(CONSENT_LOST_AFTER * 2);
    assert_eq!(p.ended, None, "a client that talks stays");
    p.client_talks = false;
    let silent_since = p.now;
    p.run_for(CONSENT_LOST_AFTER * 2);
    assert_eq!(p.ended, Some(End::ConsentLost));
    assert!(p.now - silent_since <= CONSENT_LOST_AFTER + Duration::from_secs(2));
}

#[test]
fn an_offer_never_connected_ends() {
    let mut p = Pair::new();
    p.client_talks = false;
    p.run_for(CONNECT_WITHIN * 2);
    assert_eq!(p.ended, Some(End::NeverConnected));
    assert!(!p.peer.connected());
}

#[test]
fn offers_without_video_or_not_sdp_are_refused() {
    let now = Instant::now();
    let err = |offer: &str| {
        Peer::answer(&setup(), offer, h264(), &[addr(SERVER)], None, creds(), now)
            .err()
            .unwrap()
    };
    assert!(matches!(err("hello"), OfferError::Malformed(_)));
    let mut rtc = RtcConfig::new()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .build(now);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (audio_only, _) = change.apply().unwrap();
    assert_eq!(err(&audio_only.to_sdp_string()), OfferError::NoVideo);
    let (_, h264_offer, _) = client_offer(now);
    let h265 = Peer::answer(
        &setup(),
        &h264_offer,
        Sends {
            video: Codec::H265,
            audio: None,
        },
        &[addr(SERVER)],
        None,
        creds(),
        now,
    );
    assert!(
        matches!(
            h265.err(),
            Some(OfferError::NoVideo | OfferError::NoCodec(_))
        ),
        "an H.264-only offer for an H.265 camera"
    );
}

#[test]
fn the_rtp_clock_is_the_cameras_after_a_burst_and_never_goes_back() {
    let mut c = RtpClock::default();
    assert_eq!(c.burst(3, 80_000), [0, 1, 2]);
    assert_eq!(c.live(120_000), 2 + 3600, "40 ms after the burst's newest");
    assert_eq!(
        c.live(120_000),
        2 + 3601,
        "a repeated pts still moves forward"
    );
    assert_eq!(c.burst(2, 120_000), [3604, 3605]);
    assert_eq!(c.live(160_000), 3605 + 3600);
    let mut fresh = RtpClock::default();
    assert_eq!(fresh.live(5_000_000), 0, "a live start is time zero");
    assert_eq!(fresh.live(5_040_000), 3600);
}

#[test]
fn the_answer_names_the_video_section_that_sends() {
    let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\n\
               m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=inactive\r\n\
               m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v\r\na=sendonly\r\n";
    assert_eq!(sending_video_mid(sdp), Some(Mid::from("v")));
    assert_eq!(
        sending_video_mid("v=0\r\nm=video 9 X 96\r\na=mid:0\r\na=recvonly\r\n"),
        None
    );
}
