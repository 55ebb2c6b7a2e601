//! The camera worker: `run()` keeps one camera alive forever (backoff between attempts),
//! `run_once()` is one blocking FFmpeg session from open to failure, on a blocking thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ffmpeg_next as ffmpeg;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use super::backoff::Backoff;
use super::source::{self, Deadline, OpenError, SourceKind};
use crate::frame::{subsamp_of, DecodedVideo, Picture};
use crate::hub::Camera;
use crate::jpeg;
use crate::redact::redact_url;

/// Shortest time between two plays of a looping file.
const MIN_LOOP: Duration = Duration::from_millis(200);

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
    #[error("open timed out after {0:?}")]
    OpenTimeout(Duration),
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
}

impl SessionError {
    /// Errors that fast retries will not fix get a slower backoff.
    fn is_slow(&self) -> bool {
        matches!(self, Self::Unauthorized | Self::NoVideo | Self::Decoder(_))
    }
}

/// Keeps `cam` running until `cancel` fires: connect, stream, back off, and again.
/// `generation` identifies this worker; a replaced worker stops touching the camera.
pub async fn run(cam: Arc<Camera>, cancel: CancellationToken, generation: u64) {
    let span = tracing::info_span!("camera", id = %cam.id());
    async move {
        let mut backoff = Backoff::new();
        info!(url = %redact_url(&cam.config().url), "camera starting");
        loop {
            // A replaced worker leaves the camera to its successor.
            if cancel.is_cancelled() || !cam.is_current(generation) {
                break;
            }
            cam.set_connecting();
            let started = Instant::now();
            let frames_before = cam.frames_in();
            let (c, tok) = (cam.clone(), cancel.clone());
            let span = tracing::Span::current();
            // FFmpeg blocks for the whole session: a thread of its own, so sessions never
            // take the blocking pool that JPEG encodes and file I/O share.
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            let spawned = std::thread::Builder::new()
                .name(format!("cam-{}", cam.id()))
                .spawn(move || {
                    let r = span.in_scope(|| run_once(&c, &tok, generation));
                    let _ = done_tx.send(r);
                });
            let res = match spawned {
                Ok(_) => done_rx.await.map_err(|_| "the session thread panicked".to_string()),
                Err(e) => Err(format!("cannot start a session thread: {e}")),
            };
            let session = started.elapsed();
            let (msg, slow, unauthorized) = match res {
                Ok(Ok(SessionEnd::Cancelled)) => break,
                Ok(Ok(SessionEnd::Eof)) if cam.frames_in() > frames_before => {
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
                Ok(Ok(SessionEnd::Eof)) => (SessionError::EndedTooSoon.to_string(), false, false),
                Ok(Err(e)) => (
                    e.to_string(),
                    e.is_slow(),
                    matches!(e, SessionError::Unauthorized),
                ),
                Err(e) => (e, false, false),
            };
            if cancel.is_cancelled() || !cam.is_current(generation) {
                break;
            }
            let delay = backoff.next_delay(session, slow);
            warn!(error = %crate::redact::redact_text(&msg), retry_in_ms = delay.as_millis() as u64, "camera session ended");
            cam.set_backoff(&msg, delay, unauthorized);
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
                _ = cam.kick.notified() => debug!("backoff cut short by initialize"),
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

/// Paces sources that have no clock of their own (files, lavfi) to their timestamps.
#[derive(Default)]
struct Pacer {
    /// Wall time and timestamp (seconds) the clock counts from.
    origin: Option<(Instant, f64)>,
    last_pts: f64,
}

impl Pacer {
    /// Sleeps until `pts_s` is due. Returns false if cancelled meanwhile.
    fn wait(&mut self, pts_s: f64, cancel: &CancellationToken) -> bool {
        let now = Instant::now();
        // Forward jumps up to a minute are real (a timelapse source at one frame per 20 s);
        // beyond that the timestamp is broken and waiting for it would freeze the camera.
        let jumped = pts_s < self.last_pts || pts_s - self.last_pts > 60.0;
        self.last_pts = pts_s;
        let (t0, p0) = match self.origin {
            Some(o) if !jumped => o,
            // First packet, or a timestamp jump (a loop, a concatenated file, a broken
            // timestamp): restart the clock here instead of sleeping long or bursting.
            _ => {
                self.origin = Some((now, pts_s));
                return true;
            }
        };
        let ahead = pts_s - p0;
        if ahead - now.duration_since(t0).as_secs_f64() < -1.0 {
            // More than a second late (the reader was held up): do not burst to catch up.
            self.origin = Some((now, pts_s));
            return true;
        }
        let due = t0 + Duration::from_secs_f64(ahead.max(0.0));
        while let Some(left) = due.checked_duration_since(Instant::now()) {
            if cancel.is_cancelled() {
                return false;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
        !cancel.is_cancelled()
    }
}

/// One session: open, then read, decode and publish until an error, the end, or shutdown.
pub fn run_once(
    cam: &Camera,
    cancel: &CancellationToken,
    generation: u64,
) -> Result<SessionEnd, SessionError> {
    let cfg = cam.config();
    let kind = SourceKind::of(&cfg.url);
    let open_timeout = Duration::from_millis(cfg.open_timeout_ms);
    let stall_timeout = Duration::from_millis(cfg.stall_timeout_ms);
    let deadline = Arc::new(Deadline::new(cancel.clone()));
    deadline.extend(open_timeout);

    let options = source::input_options(kind, &cfg.options, stall_timeout);
    let mut input = match source::open(&cfg.url, options, deadline.clone()) {
        Ok(i) => i,
        Err(_) if cancel.is_cancelled() => return Ok(SessionEnd::Cancelled),
        Err(_) if deadline.expired() => return Err(SessionError::OpenTimeout(open_timeout)),
        Err(OpenError::Ffmpeg(ffmpeg::Error::HttpUnauthorized)) => {
            return Err(SessionError::Unauthorized)
        }
        Err(e) => return Err(SessionError::Open(e)),
    };

    let (index, params, time_base, nominal_fps) = {
        let stream = input
            .streams()
            .best(ffmpeg::media::Type::Video)
            .ok_or(SessionError::NoVideo)?;
        let rate = stream.avg_frame_rate();
        let fps = f64::from(rate.numerator()) / f64::from(rate.denominator().max(1));
        let fps = if fps.is_finite() && fps > 0.0 && fps <= 240.0 {
            fps
        } else {
            25.0
        };
        (stream.index(), stream.parameters(), stream.time_base(), fps)
    };
    // Only the video stream is read: audio and data packets are dropped inside libavformat.
    // SAFETY: `input` owns a valid context; `streams` holds `nb_streams` valid pointers.
    unsafe {
        let ctx = input.as_mut_ptr();
        for i in 0..(*ctx).nb_streams as usize {
            if i != index {
                (**(*ctx).streams.add(i)).discard = ffmpeg::ffi::AVDiscard::AVDISCARD_ALL;
            }
        }
    }
    let codec_id = params.id();
    cam.set_codec(codec_id.name());
    let mut decoder = if codec_id == ffmpeg::codec::Id::MJPEG {
        // JPEGs pass through as they are; decoded only if a client asks for less.
        None
    } else {
        let mut ctx = ffmpeg::codec::context::Context::from_parameters(params)
            .map_err(|e| SessionError::Decoder(format!("{}: {e}", codec_id.name())))?;
        // Live video wants each frame out as soon as its packet is in: no frame threading
        // (it holds frames back), low-delay flag on.
        ctx.set_threading(ffmpeg::threading::Config {
            kind: ffmpeg::threading::Type::Slice,
            count: 1,
            ..Default::default()
        });
        ctx.set_flags(ffmpeg::codec::Flags::LOW_DELAY);
        Some(
            ctx.decoder()
                .video()
                .map_err(|e| SessionError::Decoder(format!("{}: {e}", codec_id.name())))?,
        )
    };
    info!(codec = codec_id.name(), "source opened");

    let tb = f64::from(time_base.numerator()) / f64::from(time_base.denominator().max(1));
    let mut pacer = kind.needs_pacing().then(Pacer::default);
    let min_interval = cfg.max_fps.map(|f| Duration::from_secs_f64(0.9 / f));
    let mut last_published: Option<Instant> = None;
    let mut converter: Option<Converter> = None;
    let mut decoded = ffmpeg::frame::Video::empty();
    let mut decode_errors = 0u32;

    let mut publish = |width: u32, height: u32, picture: Picture| {
        if !cam.is_current(generation) {
            return;
        }
        if let (Some(min), Some(last)) = (min_interval, last_published) {
            if last.elapsed() < min {
                return;
            }
        }
        last_published = Some(Instant::now());
        cam.publish(width, height, picture);
    };

    deadline.extend(stall_timeout);
    loop {
        // A fresh packet each time: av_read_frame does not free what a packet still holds.
        let mut packet = ffmpeg::Packet::empty();
        match packet.read(&mut input) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => {
                if let Some(dec) = decoder.as_mut() {
                    // Drain: a file's last frames are still inside the decoder.
                    let _ = dec.send_eof();
                    while dec.receive_frame(&mut decoded).is_ok() {
                        if let Some((w, h, pic)) = to_picture(&mut decoded, &mut converter) {
                            publish(w, h, pic);
                        }
                    }
                }
                return Ok(SessionEnd::Eof);
            }
            Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(_) if cancel.is_cancelled() => return Ok(SessionEnd::Cancelled),
            Err(_) if deadline.expired() => return Err(SessionError::Stalled(stall_timeout)),
            Err(e) => return Err(SessionError::Read(e)),
        }
        // Only a packet counts as life: a source that keeps answering EAGAIN still stalls.
        deadline.extend(stall_timeout);
        if packet.stream() != index {
            continue;
        }
        if let Some(p) = pacer.as_mut() {
            // Without timestamps, pace at the stream's nominal rate: never read flat out.
            // Decode order: B-frames make pts go back and forth, dts only goes forward.
            let at = match packet.dts().or(packet.pts()) {
                Some(ts) => ts as f64 * tb,
                None => p.last_pts + 1.0 / nominal_fps,
            };
            if !p.wait(at, cancel) {
                return Ok(SessionEnd::Cancelled);
            }
        }
        match decoder.as_mut() {
            None => {
                let Some(data) = packet.data() else { continue };
                match jpeg::jpeg_size(data) {
                    Ok((w, h)) => {
                        let quality = jpeg::estimate_quality(data);
                        publish(
                            w,
                            h,
                            Picture::Jpeg {
                                data: bytes::Bytes::copy_from_slice(data),
                                quality,
                            },
                        );
                    }
                    Err(e) => {
                        decode_errors += 1;
                        if decode_errors.is_power_of_two() {
                            warn!(error = %e, count = decode_errors, "dropping a bad JPEG from the source");
                        }
                    }
                }
            }
            Some(dec) => {
                let t0 = Instant::now();
                if let Err(e) = dec.send_packet(&packet) {
                    // Corrupt packets happen on real networks: skip them, keep the session.
                    decode_errors += 1;
                    if decode_errors.is_power_of_two() {
                        warn!(error = %e, count = decode_errors, "decoder refused a packet");
                    }
                    continue;
                }
                let mut frames = Vec::new();
                while dec.receive_frame(&mut decoded).is_ok() {
                    frames.extend(to_picture(&mut decoded, &mut converter));
                }
                crate::metrics::observe_decode(cam.id(), t0.elapsed());
                for (w, h, pic) in frames {
                    publish(w, h, pic);
                }
            }
        }
    }
}

/// Converts pixel formats libjpeg-turbo cannot take (packed YUV from webcams, RGB from some
/// lavfi sources) to yuv420p. Rebuilt when the input size or format changes.
struct Converter {
    key: (ffmpeg::format::Pixel, u32, u32),
    ctx: ffmpeg::software::scaling::Context,
}

/// Takes the decoded frame out of `decoded` (leaving an empty one) as a picture to publish.
fn to_picture(
    decoded: &mut ffmpeg::frame::Video,
    converter: &mut Option<Converter>,
) -> Option<(u32, u32, Picture)> {
    let (w, h, format) = (decoded.width(), decoded.height(), decoded.format());
    if w == 0 || h == 0 {
        return None;
    }
    if let Some((subsamp, full)) = subsamp_of(format) {
        let limited = !full && decoded.color_range() != ffmpeg::color::Range::JPEG;
        let frame = std::mem::replace(decoded, ffmpeg::frame::Video::empty());
        return Some((
            w,
            h,
            Picture::Yuv(Arc::new(DecodedVideo::new(frame, subsamp, limited))),
        ));
    }
    let key = (format, w, h);
    if converter.as_ref().is_none_or(|c| c.key != key) {
        let ctx = ffmpeg::software::scaling::Context::get(
            format,
            w,
            h,
            ffmpeg::format::Pixel::YUV420P,
            w,
            h,
            ffmpeg::software::scaling::Flags::FAST_BILINEAR,
        )
        .map_err(|e| warn!(error = %e, ?format, "cannot convert this pixel format"))
        .ok()?;
        *converter = Some(Converter { key, ctx });
    }
    let conv = converter.as_mut()?;
    let mut out = ffmpeg::frame::Video::empty();
    conv.ctx.run(decoded, &mut out).ok()?;
    // swscale writes limited-range yuv420p.
    Some((
        w,
        h,
        Picture::Yuv(Arc::new(DecodedVideo::new(
            out,
            turbojpeg::Subsamp::Sub2x2,
            true,
        ))),
    ))
}
