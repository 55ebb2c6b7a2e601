//! The camera worker: `run()` keeps one camera alive forever (backoff between attempts),
//! `run_once()` is one blocking session from open to failure, on a thread of its own. The
//! source is a trait (`Opener`, `Source`) so that this logic runs in tests without FFmpeg.

use crate::media::h26x::Codec;
use crate::media::nal::NalFormat;
use std::sync::Arc;
use std::time::Duration;

use ffmpeg_next as ffmpeg;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use super::backoff::Backoff;
use super::on_demand::OnDemandDecoder;
use super::source::OpenError;
use crate::config::CameraConfig;
use crate::hub::demand::Demand;
use crate::hub::video::FeedPicture;
use crate::hub::{Camera, SessionFailure};
use crate::media::clock::{Stamp, TimeBase, Timeline};
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
}

impl SessionError {
    /// Errors that fast retries will not fix get a slower backoff.
    fn is_slow(&self) -> bool {
        matches!(self, Self::Unauthorized | Self::NoVideo | Self::Decoder(_))
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
            let (c, o, tok) = (cam.clone(), opener.clone(), cancel.clone());
            let span = tracing::Span::current();
            // A session blocks for its whole life: a thread of its own, so sessions never
            // take the blocking pool that JPEG encodes and file I/O share.
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            let mut clock = std::mem::take(&mut timeline);
            let spawned = std::thread::Builder::new()
                .name(format!("cam-{}", cam.id()))
                .spawn(move || {
                    let r = span.in_scope(|| run_once(&c, &*o, &tok, generation, &mut clock));
                    let _ = done_tx.send((r, clock));
                });
            let res = match spawned {
                Ok(_) => match done_rx.await {
                    Ok((r, clock)) => {
                        timeline = clock;
                        r
                    }
                    // The sender is dropped without a send only by a panic.
                    Err(_) => Err(SessionError::Panicked),
                },
                Err(e) => Err(SessionError::Spawn(e)),
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

/// One session: open, then publish what the source yields until an error, the end, or
/// shutdown. Units and pictures are placed on the camera's `clock` (`media::clock`).
pub fn run_once(
    cam: &Camera,
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
    cam.set_codec(source.codec());
    info!(codec = source.codec(), "source opened");
    let video = source.video();
    if let Some(v) = &video {
        cam.video().start(v.codec, v.format, &v.extradata);
    }
    source.set_demand(cam.demand().clone());
    clock.new_session();
    let base = source.time_base();
    // Pictures of a source whose units are stamped take their unit's place on the clock;
    // pictures of other sources (MJPEG, raw) are the units themselves.
    let units_stamped = video.is_some();
    // No GOP outlives the session it came from, and no decoder runs after it.
    struct StopVideo<'a>(&'a Camera);
    impl Drop for StopVideo<'_> {
        fn drop(&mut self) {
            self.0.video().stop();
            self.0.demand().session_ended();
        }
    }
    let _stop_video = StopVideo(cam);
    // A stream decoded on demand is decoded here, from the units as the feed keeps them (its
    // GOP is the camera's only one), and its decoder answers the feed's cold snapshots.
    // Declared after `_stop_video`, so dropped first: a snapshot's warm-up cannot set the
    // demand's mode after the session's end turned it off.
    let mut decoder = video.filter(|v| v.on_demand).map(|_| {
        let d = OnDemandDecoder::new(cam.id(), cam.demand().clone());
        cam.video().set_decoder(d.seam());
        d
    });
    let mut decoded = Vec::new();

    // The camera's own cap: frames beyond it are dropped before anything is spent on them.
    let mut thinner = crate::media::tier::Thinner::new(cfg.max_fps);
    loop {
        match source.next_event() {
            Ok(SourceEvent::Picture {
                width,
                height,
                picture,
                ts,
            }) => {
                if !cam.is_current(generation) {
                    continue;
                }
                let now = tokio::time::Instant::now();
                let pts = if units_stamped {
                    clock.map(ts).or(clock.head()).unwrap_or(0)
                } else {
                    clock.stamp(ts, base, now)
                };
                if thinner.admit(now) {
                    cam.publish(width, height, picture, Stamp::now(pts));
                }
            }
            Ok(SourceEvent::Corrupt) => cam.count_corrupt(),
            Ok(SourceEvent::Video { data, ts }) => {
                if cam.is_current(generation) {
                    let now = tokio::time::Instant::now();
                    let pts = clock.stamp(ts, base, now);
                    cam.video_unit(data, Stamp::now(pts));
                    if let Some(d) = decoder.as_mut() {
                        d.unit(cam.video(), &mut decoded);
                        publish_decoded(cam, &mut decoded, &mut thinner, now);
                    }
                }
            }
            Ok(SourceEvent::Eof) => {
                if let Some(d) = decoder.as_mut().filter(|_| cam.is_current(generation)) {
                    d.drain(&mut decoded);
                    publish_decoded(cam, &mut decoded, &mut thinner, tokio::time::Instant::now());
                }
                return Ok(SessionEnd::Eof);
            }
            Ok(SourceEvent::Cancelled) => return Ok(SessionEnd::Cancelled),
            Err(_) if cancel.is_cancelled() => return Ok(SessionEnd::Cancelled),
            Err(e) => return Err(e),
        }
    }
}

/// Publishes the pictures the on-demand decoder made, within the camera's rate cap. They carry
/// their units' stamps: already on the camera's clock.
fn publish_decoded(
    cam: &Camera,
    decoded: &mut Vec<FeedPicture>,
    thinner: &mut crate::media::tier::Thinner,
    now: Instant,
) {
    for p in decoded.drain(..) {
        if thinner.admit(now) {
            cam.publish(p.width, p.height, p.picture, p.stamp);
        }
    }
}
