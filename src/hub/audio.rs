//! A camera's audio as it arrived: its codec, rate and channels for the status, its last
//! compressed frames on the camera's clock, bounded in time and bytes like the GOP cache, and
//! a broadcast of each frame to listeners (`hub::attach::Audio`). Nothing here decodes:
//! listeners take the frames as they are.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::media::clock::Stamp;

/// A camera's audio track, as the status and the probe show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AudioInfo {
    /// `aac`, `pcmu`, `pcma`, `g723`, `l16`.
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u16,
    /// The codec's configuration (AAC's AudioSpecificConfig), for a decoder; not shown.
    #[serde(skip)]
    pub description: Vec<u8>,
}

impl AudioInfo {
    /// The WebCodecs codec string of a track a browser can decode (`AudioDecoder`): AAC as
    /// `mp4a.40.<object type>` from its AudioSpecificConfig, G.711 as `ulaw`/`alaw`, Opus.
    /// `None` for the rest (G.723, G.726, L16), which no listener is sent.
    pub fn codec_string(&self) -> Option<String> {
        match self.codec.as_str() {
            "aac" => {
                // The object type is the config's first 5 bits (31: an escape, not in use
                // by cameras; read as plain AAC-LC).
                let aot = self.description.first().map_or(2, |b| b >> 3);
                let aot = if aot == 0 || aot == 31 { 2 } else { aot };
                Some(format!("mp4a.40.{aot}"))
            }
            "pcmu" => Some("ulaw".into()),
            "pcma" => Some("alaw".into()),
            "opus" => Some("opus".into()),
            _ => None,
        }
    }
}

/// One compressed audio frame on the camera's clock.
#[derive(Debug)]
pub struct AudioFrame {
    pub data: bytes::Bytes,
    pub stamp: Stamp,
    /// Per camera, increasing: a listener's gaps are frames it missed.
    pub seq: u64,
    /// The track it belongs to: a listener sends a new `audio_config` when this changes.
    pub info: Arc<AudioInfo>,
    /// The frame as a listener's wire message, built by the first listener and shared by the
    /// rest (as a video unit's).
    wire: OnceLock<bytes::Bytes>,
}

impl AudioFrame {
    pub fn new(data: bytes::Bytes, stamp: Stamp, seq: u64, info: Arc<AudioInfo>) -> Self {
        Self {
            data,
            stamp,
            seq,
            info,
            wire: OnceLock::new(),
        }
    }

    /// The wire message, built once by `build` for every listener.
    pub fn wire(&self, build: impl FnOnce(&Self) -> bytes::Bytes) -> bytes::Bytes {
        self.wire.get_or_init(|| build(self)).clone()
    }
}

/// The longest span of audio kept (a GOP at a common 2 s keyframe interval, doubled).
const KEEP_US: i64 = 4_000_000;
/// The most bytes of audio kept, whatever the span (4 s of 48 kHz stereo L16 is 768 KB).
const MAX_BYTES: usize = 256 * 1024;

/// Frames buffered in the broadcast: a second or two of audio. A listener further behind
/// misses frames (its player fills the gap) rather than holding older ones.
const BROADCAST_FRAMES: usize = 64;

#[derive(Default)]
struct State {
    info: Option<Arc<AudioInfo>>,
    frames: VecDeque<Arc<AudioFrame>>,
    bytes: usize,
    /// The audio's first timestamp this session (in microseconds) and where the camera's
    /// clock stood then: later frames follow their own timestamps from there.
    origin: Option<(i64, i64)>,
    received: u64,
    seq: u64,
}

/// A camera's audio feed.
pub struct AudioFeed {
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<AudioFrame>>,
}

impl Default for AudioFeed {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            tx: broadcast::channel(BROADCAST_FRAMES).0,
        }
    }
}

impl AudioFeed {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every frame from now on (see [`BROADCAST_FRAMES`]).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AudioFrame>> {
        self.tx.subscribe()
    }

    /// Listeners now (WebSocket clients, WebRTC sessions, a transcode, the cluster relay).
    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }

    /// The track of a camera ingested by another node, as its owner announced it: kept
    /// when it is the same, else started anew (listeners see the new track).
    pub fn relayed_track(&self, info: AudioInfo) {
        if self.state().info.as_deref() != Some(&info) {
            self.start(Some(info));
        }
    }

    /// A frame relayed from the camera's owner, on the owner's clock (which relayed video
    /// units keep too).
    pub fn relayed_frame(&self, data: bytes::Bytes, stamp: Stamp) {
        let mut st = self.state();
        let Some(info) = st.info.clone() else {
            return;
        };
        st.seq += 1;
        let frame = Arc::new(AudioFrame::new(data, stamp, st.seq, info));
        drop(st);
        let _ = self.tx.send(frame);
    }

    /// A session started, with this audio track (or none).
    pub fn start(&self, info: Option<AudioInfo>) {
        let mut st = self.state();
        *st = State {
            info: info.map(Arc::new),
            received: st.received,
            seq: st.seq,
            ..State::default()
        };
    }

    /// The session ended: no audio is kept from a source that is gone.
    pub fn stop(&self) {
        let mut st = self.state();
        *st = State {
            received: st.received,
            seq: st.seq,
            ..State::default()
        };
    }

    pub fn info(&self) -> Option<AudioInfo> {
        self.state().info.as_deref().cloned()
    }

    /// Frames received since start, over all sessions.
    pub fn received(&self) -> u64 {
        self.state().received
    }

    /// The frames kept, oldest first.
    pub fn frames(&self) -> Vec<Arc<AudioFrame>> {
        self.state().frames.iter().cloned().collect()
    }

    /// A frame arrived with timestamp `ts` (in the track's sample-rate ticks) while the
    /// camera's clock stood at `clock_us` (the video's, moved on to the frame's arrival). Its
    /// place on the camera's clock follows its own timestamps from the session's first frame,
    /// which is placed by arrival (the video and audio of one camera arrive together on one
    /// connection); a frame without a timestamp, or one that strays, is placed by arrival.
    pub fn frame(&self, data: bytes::Bytes, ts: Option<i64>, clock_us: i64) {
        let mut st = self.state();
        let Some(info) = st.info.clone() else {
            return;
        };
        let rate = i64::from(info.sample_rate.max(1));
        st.received += 1;
        let pts = match ts.map(|t| t.saturating_mul(1_000_000) / rate) {
            Some(us) => match st.origin {
                Some((first, at)) if (us - first + at - clock_us).abs() <= MAX_DRIFT_US => {
                    at + (us - first)
                }
                _ => {
                    st.origin = Some((us, clock_us));
                    clock_us
                }
            },
            None => clock_us,
        };
        st.bytes += data.len();
        st.seq += 1;
        let frame = Arc::new(AudioFrame::new(data, Stamp::now(pts), st.seq, info));
        st.frames.push_back(frame.clone());
        while let Some(first) = st.frames.front() {
            let old = pts - first.stamp.pts_us > KEEP_US;
            if !(old || st.bytes > MAX_BYTES) || st.frames.len() == 1 {
                break;
            }
            let gone = st.frames.pop_front().map_or(0, |f| f.data.len());
            st.bytes -= gone;
        }
        drop(st);
        // No listener is not an error.
        let _ = self.tx.send(frame);
    }
}

/// How far an audio frame's own timestamp may stray from where the video's clock stands
/// before it is placed again by arrival: a restarted or lying audio clock, or a video clock
/// that jumped (a new generation), would otherwise leave sound and picture apart for good.
/// Audio arrives beside the video it was captured with, so arrival jitter and B-frame
/// reordering stay well inside it.
const MAX_DRIFT_US: i64 = 500_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn pcmu() -> AudioInfo {
        AudioInfo {
            codec: "pcmu".into(),
            sample_rate: 8000,
            channels: 1,
            description: Vec::new(),
        }
    }

    #[test]
    fn frames_follow_their_own_clock_from_the_first() {
        let feed = AudioFeed::default();
        feed.frame(bytes::Bytes::from_static(b"x"), Some(0), 5);
        assert!(feed.frames().is_empty(), "no track, nothing kept");
        feed.start(Some(pcmu()));
        // 160 samples at 8 kHz are 20 ms; arrival jitter in the video clock does not matter.
        feed.frame(bytes::Bytes::from_static(b"a"), Some(8000), 1_000_000);
        feed.frame(bytes::Bytes::from_static(b"b"), Some(8160), 1_003_000);
        let f = feed.frames();
        assert_eq!(f[0].stamp.pts_us, 1_000_000);
        assert_eq!(f[1].stamp.pts_us, 1_020_000);
        // A jump of a minute is placed by arrival.
        feed.frame(bytes::Bytes::from_static(b"c"), Some(8000 * 70), 1_040_000);
        assert_eq!(feed.frames()[2].stamp.pts_us, 1_040_000);
        // So is audio that drifted more than half a second from the video's clock (the
        // video jumped): 20 ms on by its own clock, but the video stands 0.8 s further.
        feed.frame(
            bytes::Bytes::from_static(b"d"),
            Some(8000 * 70 + 160),
            1_860_000,
        );
        assert_eq!(feed.frames()[3].stamp.pts_us, 1_860_000);
        // Within it, the audio's own clock rules.
        feed.frame(
            bytes::Bytes::from_static(b"e"),
            Some(8000 * 70 + 320),
            2_000_000,
        );
        assert_eq!(feed.frames()[4].stamp.pts_us, 1_880_000);
        assert_eq!(feed.received(), 5);
        feed.stop();
        assert!(feed.info().is_none() && feed.frames().is_empty());
    }

    #[test]
    fn listeners_get_each_frame_with_its_track() {
        let feed = AudioFeed::default();
        let mut rx = feed.subscribe();
        feed.start(Some(pcmu()));
        feed.frame(bytes::Bytes::from_static(b"a"), Some(0), 0);
        feed.frame(bytes::Bytes::from_static(b"b"), Some(160), 0);
        let (a, b) = (rx.try_recv().unwrap(), rx.try_recv().unwrap());
        assert_eq!(a.seq + 1, b.seq);
        assert_eq!(&b.data[..], b"b");
        assert_eq!(b.stamp.pts_us, 20_000);
        assert_eq!(a.info.codec_string().as_deref(), Some("ulaw"));
        // A new session's track is a new one: listeners see it change.
        feed.start(Some(pcmu()));
        feed.frame(bytes::Bytes::from_static(b"c"), Some(0), 0);
        let c = rx.try_recv().unwrap();
        assert!(!Arc::ptr_eq(&c.info, &b.info) && c.seq > b.seq);
    }

    #[test]
    fn codec_strings_are_what_webcodecs_takes() {
        let aac = |description: Vec<u8>| AudioInfo {
            codec: "aac".into(),
            sample_rate: 48000,
            channels: 1,
            description,
        };
        // AudioSpecificConfig 0x1188: AAC-LC (object type 2), 48 kHz, mono.
        assert_eq!(
            aac(vec![0x11, 0x88]).codec_string().as_deref(),
            Some("mp4a.40.2")
        );
        assert_eq!(
            aac(vec![0x2b, 0x08]).codec_string().as_deref(),
            Some("mp4a.40.5")
        );
        assert_eq!(aac(vec![]).codec_string().as_deref(), Some("mp4a.40.2"));
        let mut g726 = pcmu();
        g726.codec = "g726".into();
        assert_eq!(g726.codec_string(), None);
    }

    #[test]
    fn kept_audio_is_bounded_in_time_and_bytes() {
        let feed = AudioFeed::default();
        feed.start(Some(pcmu()));
        for i in 0..1000i64 {
            feed.frame(
                bytes::Bytes::from(vec![0u8; 160]),
                Some(i * 160),
                i * 20_000,
            );
        }
        let f = feed.frames();
        let span = f.last().map(|l| l.stamp.pts_us).unwrap_or(0) - f[0].stamp.pts_us;
        assert!(span <= KEEP_US, "{span}");
        assert!(f.len() >= 199, "{}", f.len());
        feed.start(Some(pcmu()));
        for i in 0..100i64 {
            feed.frame(
                bytes::Bytes::from(vec![0u8; 16_000]),
                Some(i * 160),
                i * 20_000,
            );
        }
        let bytes: usize = feed.frames().iter().map(|f| f.data.len()).sum();
        assert!(bytes <= MAX_BYTES, "{bytes}");
    }
}
