//! A WebRTC viewer's audio: what a camera's track goes out as (G.711 and Opus as they came,
//! AAC as the camera's one Opus transcode), and the section that carries it, one RTP packet
//! per frame on the camera's clock.

use std::time::Instant;

use str0m::format::Codec as RtcCodec;
use str0m::media::{Mid, Pt};
use str0m::rtp::RtpWrite;
use str0m::Rtc;

use crate::hub::{AudioFrame, AudioInfo};

/// The codec a viewer's audio section sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioSend {
    Pcmu,
    Pcma,
    Opus,
}

impl AudioSend {
    /// How a camera's track reaches WebRTC viewers, and whether it needs the AAC to Opus
    /// transcode; `None` for a codec browsers' WebRTC cannot take (G.723, L16).
    pub fn for_track(info: &AudioInfo) -> Option<(Self, bool)> {
        match info.codec.as_str() {
            "pcmu" if info.sample_rate == 8000 => Some((Self::Pcmu, false)),
            "pcma" if info.sample_rate == 8000 => Some((Self::Pcma, false)),
            "opus" => Some((Self::Opus, false)),
            "aac" => Some((Self::Opus, true)),
            _ => None,
        }
    }

    /// The RTP clock rate (RFC 3551; RFC 7587 for Opus).
    pub fn rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma => 8000,
            Self::Opus => 48_000,
        }
    }

    pub fn rtc_codec(self) -> RtcCodec {
        match self {
            Self::Pcmu => RtcCodec::PCMU,
            Self::Pcma => RtcCodec::PCMA,
            Self::Opus => RtcCodec::Opus,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Pcmu => "pcmu",
            Self::Pcma => "pcma",
            Self::Opus => "opus",
        }
    }
}

/// The audio section of one viewer.
pub struct AudioTrack {
    pub mid: Mid,
    pt: Pt,
    send: AudioSend,
    next_seq: u64,
    /// The first frame's camera time and the RTP time it was given: later frames follow the
    /// camera's clock from there, so gaps stay gaps.
    origin: Option<(i64, u64)>,
    last_rtp: Option<u64>,
    pub frames: u64,
}

impl AudioTrack {
    pub fn new(mid: Mid, pt: Pt, send: AudioSend, first_seq: u64) -> Self {
        Self {
            mid,
            pt,
            send,
            next_seq: first_seq,
            origin: None,
            last_rtp: None,
            frames: 0,
        }
    }

    pub fn send(&self) -> AudioSend {
        self.send
    }

    /// Queues `frame` as one RTP packet; `wallclock` is its camera time on the viewer's
    /// shared wall clock (the sender reports map both sections' RTP times through it).
    pub fn write(&mut self, rtc: &mut Rtc, frame: &AudioFrame, wallclock: Instant) {
        let rate = i64::from(self.send.rate());
        let pts = frame.stamp.pts_us;
        let (t0, r0) = *self.origin.get_or_insert((pts, self.next_seq % (1 << 15)));
        let mut rtp = (r0 as i64 + (pts - t0) * rate / 1_000_000).max(0) as u64;
        if let Some(last) = self.last_rtp {
            if rtp <= last {
                // A frame that does not move the clock on (a camera's clock went back) goes
                // just after the last: the receiver's buffer must never see time reverse.
                rtp = last + 1;
            }
        }
        self.last_rtp = Some(rtp);
        let mut api = rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(self.mid, None) else {
            return;
        };
        let write = RtpWrite::new(
            self.pt,
            self.next_seq.into(),
            rtp as u32,
            wallclock,
            frame.data.to_vec(),
        );
        stream.write_rtp(write);
        self.next_seq += 1;
        self.frames += 1;
    }
}
