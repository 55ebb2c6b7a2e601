//! The camera worker: `run()` keeps one camera alive forever (backoff between attempts). A
//! session is read on the camera's own task when its source is async (RTSP through retina:
//! `run_task`), else on a thread of its own, blocking (`run_once`: FFmpeg). Sources meet it
//! through `seam` (re-exported here), so that this logic runs in tests without either.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use super::backoff::Backoff;
pub use super::seam::{
    NextEvent, Opener, SessionEnd, SessionError, Source, SourceEvent, TaskOpen, TaskSource,
    VideoStream,
};
use super::session::{DecodeOn, Publisher};
use crate::hub::Camera;
use crate::media::clock::Timeline;
use crate::obs::redact::redact_url;

/// Shortest time between two plays of a looping file.
const MIN_LOOP: Duration = Duration::from_millis(200);

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
        // Set when retina reads this camera only in part: FFmpeg reads it from then on.
        let mut ffmpeg_instead = false;
        cam.set_ffmpeg_instead(false);
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
            let task = (!ffmpeg_instead).then(|| opener.open_task(&cfg)).flatten();
            let res = match task {
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
                Err(SessionError::FfmpegInstead(why)) if !ffmpeg_instead => {
                    info!(%why, "this camera is read by FFmpeg");
                    ffmpeg_instead = true;
                    cam.set_ffmpeg_instead(true);
                    continue;
                }
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
    cam.audio().start(source.audio());
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
