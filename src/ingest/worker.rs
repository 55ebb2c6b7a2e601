//! The camera worker: `run()` keeps one camera alive forever (backoff between attempts). A
//! session is read on the camera's own task when its source is async (RTSP through retina:
//! `run_task`), else on a thread of its own, blocking (`run_once`: FFmpeg). The source is a
//! trait (`Opener`, `Source`, `TaskSource`) so that this logic runs in tests without either.

use crate::media::h26x::Codec;
use crate::media::nal::NalFormat;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ffmpeg_next as ffmpeg;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use super::backoff::Backoff;
use super::session::{DecodeOn, Publisher};
use super::source::OpenError;
use crate::config::CameraConfig;
use crate::hub::demand::Demand;
use crate::hub::{AudioInfo, Camera, SessionFailure};
use crate::media::clock::{TimeBase, Timeline};
use crate::media::frame::Picture;
use crate::obs::redact::redact_url;

/// Shortest time between two plays of a looping file.
const MIN_LOOP: Duration = Duration::from_millis(200);

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
}

impl SessionError {
    /// Errors that fast retries will not fix get a slower backoff.
    fn is_slow(&self) -> bool {
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

/// Keeps `cam` running until `cancel` fires: connect, stream, back off, and again.
/// `generation` identifies this worker; a replaced worker stops touching the camera.
/// Waits use tokio's clock, so tests can run this loop on paused time.
pub async fn run(
    cam: Arc<Camera>,
    opener: Arc<dyn Opener>,
    cancel: CancellationToken,
    generation: u64,
) {
    let span = tracing::info_span!("camera", id = %cam.id());
    async move {
        let mut backoff = Backoff::new();
        // The camera's clock outlives its sessions: a reconnect goes on from where it was.
        let mut timeline = Timeline::new();
        info!(url = %redact_url(&cam.config().url), "camera starting");
        loop {
            // A replaced worker leaves the camera to its successor.
            if cancel.is_cancelled() || !cam.is_current(generation) {
                break;
            }
            cam.set_connecting();
            let started = Instant::now();
            let frames_before = cam.frames_in();
            let cfg = cam.config();
            let res = match opener.open_task(&cfg) {
                // Read on this task: no thread.
                Some(open) => run_task(&cam, open, &cancel, generation, &mut timeline).await,
                None => {
                    let (c, o, tok) = (cam.clone(), opener.clone(), cancel.clone());
                    let span = tracing::Span::current();
                    // A session blocks for its whole life: a thread of its own, so sessions
                    // never take the blocking pool that JPEG encodes and file I/O share.
                    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
                    let mut clock = std::mem::take(&mut timeline);
                    let spawned = std::thread::Builder::new()
                        .name(format!("cam-{}", cam.id()))
                        .spawn(move || {
                            let r =
                                span.in_scope(|| run_once(&c, &*o, &tok, generation, &mut clock));
                            let _ = done_tx.send((r, clock));
                        });
                    match spawned {
                        Ok(_) => match done_rx.await {
                            Ok((r, clock)) => {
                                timeline = clock;
                                r
                            }
                            // The sender is dropped without a send only by a panic.
                            Err(_) => Err(SessionError::Panicked),
                        },
                        Err(e) => Err(SessionError::Spawn(e)),
                    }
                }
            };
            let session = started.elapsed();
            let error = match res {
                Ok(SessionEnd::Cancelled) => break,
                Ok(SessionEnd::Eof) if cam.frames_in() > frames_before => {
                    debug!("source ended; playing it again");
                    // A one-frame file would otherwise be reopened in a tight loop.
                    if let Some(rest) = MIN_LOOP.checked_sub(session) {
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(rest) => {}
                        }
                    }
                    continue;
                }
                Ok(SessionEnd::Eof) => SessionError::EndedTooSoon,
                Err(e) => e,
            };
            if cancel.is_cancelled() || !cam.is_current(generation) {
                break;
            }
            let delay = backoff.next_delay(session, error.is_slow());
            warn!(error = %redact_url(&error.to_string()), retry_in_ms = delay.as_millis() as u64, "camera session ended");
            cam.set_backoff(&error, delay);
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
                _ = cam.kicked() => debug!("backoff cut short by initialize"),
            }
        }
        if cam.is_current(generation) {
            cam.set_stopped();
        }
        debug!("camera stopped");
    }
    .instrument(span)
    .await
}

/// How often an open on-demand stream checks whether it is still used (the linger's
/// resolution).
const USE_POLL: Duration = Duration::from_millis(200);
/// How often a closed on-demand stream looks for a user it was not woken for (none should
/// come unannounced: uses, holds and snapshots wake it).
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// Keeps a stream that opens on demand (a camera's sub stream) alive while it is used: closed
/// (state `idle`) until a viewer, lane or snapshot uses it, then [`run`] until nobody has used
/// it for the camera's `decode_linger_ms`.
pub async fn run_on_demand(
    cam: Arc<Camera>,
    opener: Arc<dyn Opener>,
    cancel: CancellationToken,
    generation: u64,
) {
    loop {
        cam.set_idle();
        // Closed: wait for a user (woken by it; the slow check is only a safety net).
        loop {
            if cancel.is_cancelled() || !cam.is_current(generation) {
                return;
            }
            let woken = cam.demand().next_use();
            tokio::pin!(woken);
            // Registered before the check: a use that comes in between still wakes us.
            woken.as_mut().enable();
            if cam.demand().in_use_at(Instant::now()) {
                break;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = &mut woken => {}
                _ = tokio::time::sleep(IDLE_CHECK) => {}
            }
        }
        debug!(camera = %cam.id(), "stream used: opening");
        let session = cancel.child_token();
        let watch = {
            let (cam, session) = (cam.clone(), session.clone());
            async move {
                let mut last_used = Instant::now();
                loop {
                    tokio::select! {
                        _ = session.cancelled() => return,
                        _ = tokio::time::sleep(USE_POLL) => {}
                    }
                    let now = Instant::now();
                    if cam.demand().in_use_at(now) {
                        last_used = now;
                    } else if now.saturating_duration_since(last_used)
                        >= Duration::from_millis(cam.config().decode_linger_ms)
                    {
                        debug!(camera = %cam.id(), "stream unused: closing");
                        session.cancel();
                        return;
                    }
                }
            }
        };
        let runner = {
            let (cam, opener, session) = (cam.clone(), opener.clone(), session.clone());
            async move {
                run(cam, opener, session.clone(), generation).await;
                // Replaced or shut down: the watch ends with it.
                session.cancel();
            }
        };
        tokio::join!(runner, watch);
        if cancel.is_cancelled() || !cam.is_current(generation) {
            return;
        }
    }
}

/// One session on its own thread: open, then publish what the source yields until an error,
/// the end, or shutdown. Units and pictures are placed on the camera's `clock`
/// (`media::clock`).
pub fn run_once(
    cam: &Arc<Camera>,
    opener: &dyn Opener,
    cancel: &CancellationToken,
    generation: u64,
    clock: &mut Timeline,
) -> Result<SessionEnd, SessionError> {
    let cfg = cam.config();
    let mut source = match opener.open(&cfg, cancel) {
        Ok(s) => s,
        // Shutdown interrupts a blocked open: that is no failure of the camera.
        Err(_) if cancel.is_cancelled() => return Ok(SessionEnd::Cancelled),
        Err(e) => return Err(e),
    };
    let mut publisher = Publisher::start(
        cam,
        generation,
        clock,
        source.codec(),
        source.video(),
        source.time_base(),
        DecodeOn::SessionThread,
    );
    source.set_demand(cam.demand().clone());
    loop {
        if let Some(end) = publisher.event(source.next_event(), cancel) {
            return end;
        }
    }
}

/// One session on the camera's task: as [`run_once`], with the source's waits awaited and the
/// decoding on demand done by the decode pool.
async fn run_task(
    cam: &Arc<Camera>,
    open: TaskOpen,
    cancel: &CancellationToken,
    generation: u64,
    clock: &mut Timeline,
) -> Result<SessionEnd, SessionError> {
    let mut source = tokio::select! {
        _ = cancel.cancelled() => return Ok(SessionEnd::Cancelled),
        opened = open => match opened {
            Ok(s) => s,
            Err(_) if cancel.is_cancelled() => return Ok(SessionEnd::Cancelled),
            Err(e) => return Err(e),
        },
    };
    let mut publisher = Publisher::start(
        cam,
        generation,
        clock,
        source.codec(),
        source.video(),
        source.time_base(),
        DecodeOn::Pool,
    );
    cam.audio().start(source.audio());
    source.set_demand(cam.demand().clone());
    let end = loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break Ok(SessionEnd::Cancelled),
            event = source.next_event() => event,
        };
        if let Some(end) = publisher.event(event, cancel) {
            break end;
        }
    };
    publisher.finish().await;
    end
}
