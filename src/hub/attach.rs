//! The one way an output attaches to a stream (a camera's main or sub stream):
//! `stream.attach(want)`, where the want says what the output takes and decides the output's
//! type. Every output is bounded (a lane's broadcast holds one frame, a video receiver one
//! GOP's worth of units) and lets go of everything when it is dropped.
//!
//! Today's wants: [`Pictures`] (a live JPEG lane), [`Video`] (the camera's own access units
//! from the current GOP on), [`Audio`] (the camera's own audio frames) and [`Still`] (one
//! picture: a snapshot or a long-poll). The WebSocket session, WebRTC, MJPEG streams,
//! snapshots, long-polls and the cluster relay all attach here; the replay ring's writer is
//! `Video::Record` with `Audio`.
//!
//! Demand is counted from what is attached: a lane keeps its camera decoding at the lane's
//! rate while it lives (`fanout`), a still marks the snapshot linger, and every output but a
//! relay's tap holds a [`StreamUse`], which keeps a stream opened on demand (a sub stream)
//! connected.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::audio::AudioFrame;
use super::cache::{Encoded, FrameError};
use super::demand::StreamUse;
use super::fanout::Published;
use super::video::VideoUnit;
use super::Stream;
use crate::media::tier::{self, Lane, LaneAsk, Tier};

/// What an output asks of a stream; its type decides the output's.
pub trait Want {
    type Output;
    fn attach(self, stream: &Stream) -> Self::Output;
}

impl Stream {
    /// Attaches an output: see the module's documentation.
    pub fn attach<W: Want>(&self, want: W) -> W::Output {
        want.attach(self)
    }

    /// The lane that serves a live viewer's `ask` (the rules are `media::tier`'s), from the
    /// stream's picture width and its rate measured at `now`.
    pub fn lane(&self, ask: &LaneAsk, now: tokio::time::Instant) -> Lane {
        let cam = &self.camera;
        cam.qualities().lane(ask, cam.width(), cam.fps_at(now))
    }

    /// The tier of a single picture at `quality`, at most `max_width` wide.
    pub fn tier(&self, quality: u8, max_width: Option<u32>) -> Tier {
        Tier {
            quality,
            scale: tier::scale_for_width(self.camera.width(), max_width),
        }
    }
}

/// Live JPEG pictures of a lane (see [`Stream::lane`]).
#[derive(Debug, Clone, Copy)]
pub struct Pictures(pub Lane);

/// A lane's pictures for the replay ring (a camera kept as JPEGs): like [`Pictures`], but
/// neither a viewer in the status nor a use of the stream.
#[derive(Debug, Clone, Copy)]
pub struct RecordPictures(pub Lane);

/// A live JPEG lane: every frame its pump publishes, the newest only when the reader is late.
pub struct LaneOutput {
    lane: Lane,
    frames: BroadcastStream<Arc<Published>>,
    _use: Option<StreamUse>,
    _recorder: Option<super::video::Recorder>,
}

impl LaneOutput {
    /// The lane served: the one asked for, or the nearest existing one when the camera has
    /// as many lanes as it may.
    pub fn lane(&self) -> Lane {
        self.lane
    }
}

impl Want for Pictures {
    type Output = LaneOutput;

    fn attach(self, stream: &Stream) -> LaneOutput {
        LaneOutput::of(stream, self.0, false)
    }
}

impl LaneOutput {
    /// A receiver of `lane`: a viewer's (a use of the stream) or the replay ring's.
    fn of(stream: &Stream, lane: Lane, recording: bool) -> Self {
        let (lane, rx) = stream.fanout.subscribe(lane);
        LaneOutput {
            lane,
            frames: BroadcastStream::new(rx),
            _use: (!recording).then(|| stream.camera.demand().use_stream()),
            _recorder: recording.then(|| stream.fanout.recorder()),
        }
    }
}

impl Want for RecordPictures {
    type Output = LaneOutput;

    fn attach(self, stream: &Stream) -> LaneOutput {
        LaneOutput::of(stream, self.0, true)
    }
}

impl futures_util::Stream for LaneOutput {
    /// A frame, or how many the reader missed (it goes on with the newest).
    type Item = Result<Arc<Published>, BroadcastStreamRecvError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.frames).poll_next(cx)
    }
}

/// The camera's own access units from the current GOP on, keyframe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Video {
    /// A viewer: it keeps the stream connected while attached.
    Watch,
    /// A relay to other cluster nodes that forwards only while they say they use the stream
    /// (their use is counted where it arrives): attached for as long as this node owns the
    /// camera, it must not keep a stream opened on demand connected by itself.
    Tap,
    /// The replay ring's writer: attached for as long as the camera is recorded, it is
    /// neither a use of the stream nor a viewer in the status.
    Record,
}

/// The camera's video: its current GOP when attached, then every unit after it (no gap, no
/// repeat; each unit names the parameters it decodes with); a reader that falls a GOP behind
/// is told how many it missed.
pub struct VideoOutput {
    /// The current GOP, keyframe first (take it with `std::mem::take`).
    pub gop: Vec<Arc<VideoUnit>>,
    units: BroadcastStream<Arc<VideoUnit>>,
    _use: Option<StreamUse>,
    _recorder: Option<super::video::Recorder>,
}

impl Want for Video {
    type Output = VideoOutput;

    fn attach(self, stream: &Stream) -> VideoOutput {
        let video = stream.camera.video();
        let start = video.subscribe();
        VideoOutput {
            gop: start.gop,
            units: BroadcastStream::new(start.rx),
            _use: (self == Video::Watch).then(|| stream.camera.demand().use_stream()),
            _recorder: (self == Video::Record).then(|| video.recorder()),
        }
    }
}

impl futures_util::Stream for VideoOutput {
    type Item = Result<Arc<VideoUnit>, BroadcastStreamRecvError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.units).poll_next(cx)
    }
}

/// The camera's own audio frames from now on, as they came (no decode). Audio keeps no
/// stream connected by itself: a listener also watches the camera.
#[derive(Debug, Clone, Copy)]
pub struct Audio;

/// A camera's audio: every frame after the attach, each naming its track; a listener that
/// falls behind the broadcast is told how many it missed and goes on with the newest.
pub struct AudioOutput {
    frames: BroadcastStream<Arc<AudioFrame>>,
    /// For [`Opus`]: keeps the camera's transcode running while this output lives.
    _transcode: Option<super::transcode::Hold>,
}

impl Want for Audio {
    type Output = AudioOutput;

    fn attach(self, stream: &Stream) -> AudioOutput {
        AudioOutput {
            frames: BroadcastStream::new(stream.camera.audio().subscribe()),
            _transcode: None,
        }
    }
}

/// The camera's AAC as Opus frames (48 kHz, 20 ms), for listeners that cannot take AAC
/// (WebRTC): the camera's one transcode runs while any such output lives.
#[derive(Debug, Clone, Copy)]
pub struct Opus;

impl Want for Opus {
    type Output = AudioOutput;

    fn attach(self, stream: &Stream) -> AudioOutput {
        let (frames, hold) = stream.camera.opus().listen(stream.camera.audio());
        AudioOutput {
            frames: BroadcastStream::new(frames),
            _transcode: Some(hold),
        }
    }
}

impl AudioOutput {
    /// The next frame of `audio`, or never when there is none (a viewer without sound, or
    /// one whose camera's feed ended): a `select!` branch that stays quiet.
    pub async fn next_or_never(
        audio: &mut Option<AudioOutput>,
    ) -> Option<Result<Arc<AudioFrame>, BroadcastStreamRecvError>> {
        use futures_util::StreamExt;
        match audio {
            Some(a) => a.next().await,
            None => std::future::pending().await,
        }
    }
}

impl futures_util::Stream for AudioOutput {
    type Item = Result<Arc<AudioFrame>, BroadcastStreamRecvError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.frames).poll_next(cx)
    }
}

/// One picture at `tier` through the TTL cache (a snapshot); with `after` (an ETag and a
/// wait), the first picture whose tag differs within the wait (a long-poll).
#[derive(Debug, Clone)]
pub struct Still {
    pub tier: Tier,
    pub after: Option<(String, Duration)>,
}

impl Want for Still {
    /// The picture, once it is there (the stream stays in use while it is awaited).
    type Output = BoxFuture<'static, Result<Encoded, FrameError>>;

    fn attach(self, stream: &Stream) -> Self::Output {
        let cam = stream.camera.clone();
        let used = cam.demand().use_stream();
        Box::pin(async move {
            let _used = used;
            match self.after {
                Some((etag, wait)) => cam.jpeg_after(self.tier, &etag, wait).await,
                None => cam.jpeg(self.tier).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::camera::tests::publish;
    use crate::hub::Hub;
    use crate::media::tier::LaneQuality;
    use futures_util::StreamExt;
    use tokio::time::Instant;

    fn hub() -> Hub {
        let cfg = crate::config::parse(
            r#"{"cameras":[{"id":"a","url":"rtsp://x/main","sub":{"url":"rtsp://x/sub"}}]}"#,
        )
        .unwrap();
        Hub::new(&cfg)
    }

    #[tokio::test(start_paused = true)]
    async fn every_output_counts_as_a_use_of_its_stream_while_it_lives() {
        let hub = hub();
        let sub = hub.sub("a").unwrap();
        let in_use = || sub.camera.demand().in_use_at(Instant::now());
        assert!(!in_use(), "nothing attached");
        let video = sub.attach(Video::Watch);
        assert!(in_use(), "a video viewer keeps the sub stream connected");
        drop(video);
        assert!(!in_use());
        let tap = sub.attach(Video::Tap);
        assert!(
            !in_use(),
            "a relay's tap does not keep it connected by itself"
        );
        drop(tap);
        let ask = LaneAsk {
            quality: LaneQuality::Fixed(71),
            max_width: None,
            max_fps: Some(5.0),
        };
        let lane = sub.lane(&ask, Instant::now());
        assert_eq!(lane.tier.quality, 70, "snapped by media::tier");
        let pictures = sub.attach(Pictures(lane));
        assert_eq!(pictures.lane(), lane);
        assert!(
            in_use() && sub.camera.demand().wanted(),
            "a lane wants pictures"
        );
        drop(pictures);
        assert_eq!(sub.viewers(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lane_output_yields_the_pumps_frames_and_a_still_answers_once() {
        let hub = hub();
        let main = hub.stream("a").unwrap();
        let tier = Tier {
            quality: 90,
            scale: 1,
        };
        let mut frames = main.attach(Pictures(Lane::new(tier, None)));
        tokio::task::yield_now().await;
        let seq = publish(&main.camera);
        let got = frames.next().await.unwrap().unwrap();
        assert_eq!((got.encoded.seq, got.tier), (seq, tier));
        let still = main.attach(Still { tier, after: None }).await.unwrap();
        assert_eq!(
            still.seq, seq,
            "the newest picture, from the same tier cache"
        );
        assert_eq!(
            main.camera.cache().stats().jpeg_encodes,
            0,
            "passed through"
        );
    }
}
