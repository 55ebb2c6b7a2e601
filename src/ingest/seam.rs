//! The seam between a camera's source and its worker: how a source is opened (`Opener`), read
//! (`Source` on a session thread, `TaskSource` on the camera's task), what it yields
//! (`SourceEvent`) and how a session ends (`SessionEnd`, `SessionError`). The worker, the
//! session's publisher and every source (FFmpeg, retina, scripted ones in tests) meet here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ffmpeg_next as ffmpeg;
use tokio_util::sync::CancellationToken;

use super::source::OpenError;
use crate::config::CameraConfig;
use crate::hub::demand::Demand;
use crate::hub::{AudioInfo, SessionFailure};
use crate::media::clock::TimeBase;
use crate::media::frame::Picture;
use crate::media::h26x::Codec;
use crate::media::nal::NalFormat;

/// Opens a camera's source. Called on the session thread: it may block, up to the camera's
/// open timeout or until `cancel` fires.
pub trait Opener: Send + Sync {
    fn open(
        &self,
        config: &CameraConfig,
        cancel: &CancellationToken,
    ) -> Result<Box<dyn Source>, SessionError>;

    /// Opens `config`'s source to be read on the camera's task, when it is read that way;
    /// `None`: it is read on a thread, through [`Opener::open`].
    fn open_task(&self, _config: &CameraConfig) -> Option<TaskOpen> {
        None
    }
}

/// A future that opens a source read on the camera's task.
pub type TaskOpen = Pin<Box<dyn Future<Output = Result<Box<dyn TaskSource>, SessionError>> + Send>>;
/// The next event of such a source.
pub type NextEvent<'a> =
    Pin<Box<dyn Future<Output = Result<SourceEvent, SessionError>> + Send + 'a>>;

/// An opened source read on the camera's task: as [`Source`], but it waits without blocking.
pub trait TaskSource: Send {
    fn codec(&self) -> &str;
    /// The next picture, unit or audio frame, the end of the source, or a failure.
    fn next_event(&mut self) -> NextEvent<'_>;
    fn video(&self) -> Option<VideoStream> {
        None
    }
    /// The audio track read beside the video, if any.
    fn audio(&self) -> Option<AudioInfo> {
        None
    }
    fn set_demand(&mut self, _demand: Arc<Demand>) {}
    fn time_base(&self) -> TimeBase {
        TimeBase::MICROS
    }
}

/// An opened source. Lives and dies on the session thread, so it need not be `Send`.
pub trait Source {
    /// The codec's name as the status shows it (`h264`, `mjpeg`).
    fn codec(&self) -> &str;
    /// Blocks until the next picture, the end of the source, or a failure. An error returned
    /// after shutdown began counts as the shutdown, not as a failure.
    fn next_event(&mut self) -> Result<SourceEvent, SessionError>;
    /// The compressed video stream, for H.264/H.265 sources whose access units go to video
    /// viewers as they are (`SourceEvent::Video`).
    fn video(&self) -> Option<VideoStream> {
        None
    }
    /// The audio track passed on beside the video (`SourceEvent::Audio`), if any.
    fn audio(&self) -> Option<AudioInfo> {
        None
    }
    /// The camera's demand for decoded pictures: a source that decodes reports that it decodes
    /// every picture (and counts them), one that never does reports it. A stream decoded on
    /// demand ([`VideoStream::on_demand`]) leaves it to the worker's decoder.
    fn set_demand(&mut self, _demand: Arc<Demand>) {}
    /// The unit of the timestamps its events carry (`ts`). Sources without a clock of their
    /// own leave their events' `ts` empty: they are stamped by arrival.
    fn time_base(&self) -> TimeBase {
        TimeBase::MICROS
    }
}

/// An H.264/H.265 stream as the source delivers it.
#[derive(Debug, Clone)]
pub struct VideoStream {
    pub codec: Codec,
    /// The framing of its access units (RTSP: Annex B; MP4: length-prefixed).
    pub format: NalFormat,
    /// Parameter sets out of band (avcC/hvcC or Annex B), possibly empty.
    pub extradata: Vec<u8>,
    /// The source does not decode it: the worker decodes the camera's video feed while its
    /// pictures are wanted (decoding on demand, `on_demand`). Otherwise the source decodes
    /// every picture itself.
    pub on_demand: bool,
}

/// What an opened source yields.
pub enum SourceEvent {
    /// A picture to publish, with the source's timestamp of the unit it came from.
    Picture {
        width: u32,
        height: u32,
        picture: Picture,
        ts: Option<i64>,
    },
    /// The source ended (a file or a finite lavfi graph).
    Eof,
    /// Shutdown interrupted the source.
    Cancelled,
    /// The source sent a picture that would not decode; it was dropped (and is counted).
    Corrupt,
    /// One access unit of the video stream, as it arrived (before any decoding), with the
    /// source's presentation timestamp (in [`Source::time_base`]).
    Video { data: bytes::Bytes, ts: Option<i64> },
    /// One compressed audio frame, as it arrived, with its timestamp in the audio's own clock
    /// ticks ([`AudioInfo::sample_rate`]).
    Audio { data: bytes::Bytes, ts: Option<i64> },
}

/// Why a session ended without an error.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The source ended (a file or finite lavfi graph): camwall plays it again.
    Eof,
    /// Shutdown.
    Cancelled,
}

/// Why a session failed. Messages carry no credentials.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("open failed: {0}")]
    Open(OpenError),
    /// The open deadline passed: the source connected (or did not) but sent no media.
    #[error("open timed out: no media within {} ms", .0.as_millis())]
    OpenTimeout(Duration),
    #[error("open failed: cannot resolve host {0}")]
    Unresolved(String),
    #[error("open failed: connection refused")]
    Refused,
    #[error("open failed: host unreachable")]
    Unreachable,
    #[error("unauthorized: the camera refused the credentials")]
    Unauthorized,
    #[error("the source has no video stream")]
    NoVideo,
    #[error("no decoder for codec {0}")]
    Decoder(String),
    #[error("stalled: no packet for {0:?}")]
    Stalled(Duration),
    #[error("read failed: {0}")]
    Read(ffmpeg::Error),
    #[error("the source ended before its first frame")]
    EndedTooSoon,
    #[error("the session thread panicked")]
    Panicked,
    #[error("cannot start a session thread: {0}")]
    Spawn(std::io::Error),
    #[error("read failed: {0}")]
    ReadRtsp(String),
    /// The RTSP reader cannot read this camera; FFmpeg's may.
    #[error("{0} (to read this camera with FFmpeg instead, set \"ingest\": \"ffmpeg\")")]
    Rtsp(String),
    /// The RTSP reader reads this camera only in part (its Opus audio): the worker reads it
    /// with FFmpeg at once, which keeps all of it.
    #[error("{0}: read by FFmpeg instead")]
    FfmpegInstead(String),
}

impl SessionError {
    /// Errors that fast retries will not fix get a slower backoff.
    pub(super) fn is_slow(&self) -> bool {
        matches!(
            self,
            Self::Unauthorized | Self::NoVideo | Self::Decoder(_) | Self::Rtsp(_)
        )
    }
}

impl SessionFailure for SessionError {
    fn is_unauthorized(&self) -> bool {
        matches!(self, Self::Unauthorized)
    }
}
