//! A camera's audio as it arrived: its codec, rate and channels for the status, and its last
//! compressed frames on the camera's clock, bounded in time and bytes like the GOP cache.
//! Nothing here decodes: listeners (a later output) take the frames as they are.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use crate::media::clock::{Stamp, MAX_BACK};

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

/// One compressed audio frame on the camera's clock.
#[derive(Debug, Clone)]
pub struct AudioFrame {
    pub data: bytes::Bytes,
    pub stamp: Stamp,
}

/// The longest span of audio kept (a GOP at a common 2 s keyframe interval, doubled).
const KEEP_US: i64 = 4_000_000;
/// The most bytes of audio kept, whatever the span (4 s of 48 kHz stereo L16 is 768 KB).
const MAX_BYTES: usize = 256 * 1024;

#[derive(Default)]
struct State {
    info: Option<AudioInfo>,
    frames: VecDeque<AudioFrame>,
    bytes: usize,
    /// The audio's first timestamp this session (in microseconds) and where the camera's
    /// clock stood then: later frames follow their own timestamps from there.
    origin: Option<(i64, i64)>,
    received: u64,
}

/// A camera's audio feed.
#[derive(Default)]
pub struct AudioFeed(Mutex<State>);

impl AudioFeed {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A session started, with this audio track (or none).
    pub fn start(&self, info: Option<AudioInfo>) {
        let mut st = self.state();
        *st = State {
            info,
            received: st.received,
            ..State::default()
        };
    }

    /// The session ended: no audio is kept from a source that is gone.
    pub fn stop(&self) {
        let received = self.state().received;
        *self.state() = State {
            received,
            ..State::default()
        };
    }

    pub fn info(&self) -> Option<AudioInfo> {
        self.state().info.clone()
    }

    /// Frames received since start, over all sessions.
    pub fn received(&self) -> u64 {
        self.state().received
    }

    /// The frames kept, oldest first.
    pub fn frames(&self) -> Vec<AudioFrame> {
        self.state().frames.iter().cloned().collect()
    }

    /// A frame arrived with timestamp `ts` (in the track's sample-rate ticks) while the
    /// camera's clock stood at `clock_us`. Its place on the camera's clock follows its own
    /// timestamps from the session's first frame, which is placed by arrival (the video and
    /// audio of one camera arrive together on one connection); a frame without a timestamp,
    /// or one that jumps, is placed by arrival.
    pub fn frame(&self, data: bytes::Bytes, ts: Option<i64>, clock_us: i64) {
        let mut st = self.state();
        let Some(rate) = st.info.as_ref().map(|i| i64::from(i.sample_rate.max(1))) else {
            return;
        };
        st.received += 1;
        let pts = match ts.map(|t| t.saturating_mul(1_000_000) / rate) {
            Some(us) => match st.origin {
                Some((first, at)) if (us - first + at - clock_us).abs() <= MAX_BACK_US => {
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
        st.frames.push_back(AudioFrame {
            data,
            stamp: Stamp::now(pts),
        });
        while let Some(first) = st.frames.front() {
            let old = pts - first.stamp.pts_us > KEEP_US;
            if !(old || st.bytes > MAX_BYTES) || st.frames.len() == 1 {
                break;
            }
            let gone = st.frames.pop_front().map_or(0, |f| f.data.len());
            st.bytes -= gone;
        }
    }
}

/// How far an audio frame's own timestamp may stray from the video clock before it is placed
/// again by arrival (a restarted or lying audio clock).
const MAX_BACK_US: i64 = MAX_BACK.as_micros() as i64 * 5;

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
        assert_eq!(feed.received(), 3);
        feed.stop();
        assert!(feed.info().is_none() && feed.frames().is_empty());
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
