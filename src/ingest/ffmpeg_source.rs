//! The production source: FFmpeg opens, reads and paces a camera on the session thread, and
//! decodes it, handing the worker access units and pictures ready to publish.
//!
//! A network H.264/H.265 camera is not decoded here: its access units go to the worker, which
//! forwards them to the camera's video feed and decodes the feed's units only while pictures
//! are wanted (decoding on demand, `on_demand`). Other sources decode every picture here; MJPEG
//! passes its JPEGs through. An audio track listeners take as it is goes on as it came
//! (`ffmpeg_audio`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffmpeg_next as ffmpeg;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::decoder::PictureDecoder;
use super::diagnose::{self, Cause, Resolved};
use super::ffmpeg_audio::{extradata, FileAudio};
use super::source::{self, Deadline, OpenError, SourceKind};
use super::timing::{Gaps, Pacer};
use super::worker::{SessionError, Source, SourceEvent, VideoStream};
use crate::config::CameraConfig;
use crate::hub::demand::{DecodeMode, Demand};
use crate::hub::AudioInfo;
use crate::media::clock::TimeBase;
use crate::media::frame::Picture;
use crate::media::h26x::{extradata_parameter_sets, Codec};
use crate::media::jpeg;
use crate::media::nal::NalFormat;

/// What a source does with its video packets.
enum Pictures {
    /// MJPEG: its JPEGs pass through as they are.
    Jpeg,
    /// Decoded here, every picture.
    Decoded(PictureDecoder),
    /// Left to the worker, which decodes the video feed's units on demand.
    OnDemand,
}

/// One opened FFmpeg input, its video stream and decoder.
pub(super) struct FfmpegSource {
    input: ffmpeg::format::context::Input,
    /// The video stream read; every other stream but the audio kept is discarded inside
    /// libavformat.
    index: usize,
    codec: &'static str,
    /// What becomes of the video packets.
    pictures: Pictures,
    deadline: Arc<Deadline>,
    stall_timeout: Duration,
    open_timeout: Duration,
    /// The stall deadline last set (the error names it).
    stall_now: Duration,
    cancel: CancellationToken,
    pacer: Option<Pacer>,
    /// Seconds per tick of the stream's timestamps.
    time_base_s: f64,
    /// The stream's time base and timestamp width, for the camera's clock.
    clock_base: TimeBase,
    nominal_fps: f64,
    /// Bad JPEGs from the source so far (logged at powers of two).
    decode_errors: u32,
    /// False until the first keyframe: packets before it decode to grey smears at best.
    keyframe_seen: bool,
    /// Packets skipped so far waiting for that keyframe.
    before_key: u32,
    /// Corrupt pictures dropped and not yet reported to the worker.
    corrupt: u32,
    /// Recent gaps between video packets: a slow camera's stall deadline stretches to them.
    gaps: Gaps,
    /// Pictures decoded from one packet (or the drain at the end), handed out one at a time.
    pending: VecDeque<(u32, u32, Picture, Option<i64>)>,
    /// H.264/H.265: the stream as forwarded to video viewers.
    video: Option<VideoStream>,
    /// The access unit read last (and its pts), handed out before the pictures it decodes to.
    unit: Option<(bytes::Bytes, Option<i64>)>,
    ended: bool,
    /// The input has an audio stream (for the probe).
    audio: bool,
    /// The audio track passed on, and its packet read last.
    audio_track: Option<FileAudio>,
    audio_frame: Option<(bytes::Bytes, Option<i64>)>,
    /// The frame rate the stream declares, when it declares a plausible one.
    declared_fps: Option<f64>,
}

impl FfmpegSource {
    /// Whether the input has audio, and the frame rate it declares (for the probe).
    pub(super) fn probe_info(&self) -> (bool, Option<f64>) {
        (self.audio, self.declared_fps)
    }

    /// Opens `config`'s source. With `on_demand`, a network H.264/H.265 stream is left to the
    /// worker to decode ([`VideoStream::on_demand`]); without (the probe), everything that is
    /// not MJPEG is decoded here.
    pub(crate) fn open(
        config: &CameraConfig,
        cancel: &CancellationToken,
        on_demand: bool,
    ) -> Result<Self, SessionError> {
        let kind = SourceKind::of(&config.url);
        let open_timeout = Duration::from_millis(config.open_timeout_ms);
        let stall_timeout = Duration::from_millis(config.stall_timeout_ms);
        let deadline = Arc::new(Deadline::new(cancel.clone()));
        deadline.extend(open_timeout);

        // FFmpeg reports a host it cannot resolve as "Input/output error": resolve it here
        // first, within the open deadline, to say what is wrong.
        if let Some(host) = diagnose::host_of(&config.url) {
            match diagnose::resolve(&host, open_timeout, cancel) {
                Resolved::Ok => {}
                Resolved::NotFound => return Err(SessionError::Unresolved(host)),
                Resolved::TimedOut => return Err(SessionError::OpenTimeout(open_timeout)),
                // Shutdown: the worker counts any error after cancellation as the shutdown.
                Resolved::Cancelled => return Err(SessionError::OpenTimeout(Duration::ZERO)),
            }
        }
        let options = source::input_options(kind, &config.url, &config.options, stall_timeout);
        let mut input = match source::open(&config.url, options, deadline.clone()) {
            Ok(i) => i,
            Err(_) if deadline.expired() => return Err(SessionError::OpenTimeout(open_timeout)),
            Err(OpenError::Ffmpeg(e)) => {
                return Err(match diagnose::cause_of(&e) {
                    Cause::Unauthorized => SessionError::Unauthorized,
                    Cause::Refused => SessionError::Refused,
                    Cause::Unreachable => SessionError::Unreachable,
                    Cause::Other => SessionError::Open(OpenError::Ffmpeg(e)),
                })
            }
            Err(e) => return Err(SessionError::Open(e)),
        };

        let (index, params, time_base, nominal_fps, known_fps, wrap_bits) = {
            let stream = input
                .streams()
                .best(ffmpeg::media::Type::Video)
                .ok_or(SessionError::NoVideo)?;
            let rate = stream.avg_frame_rate();
            let fps = f64::from(rate.numerator()) / f64::from(rate.denominator().max(1));
            let known = fps.is_finite() && fps > 0.0 && fps <= 240.0;
            let fps = if known { fps } else { 25.0 };
            // SAFETY: `stream` wraps a valid AVStream of the open input.
            let wrap_bits = unsafe { (*stream.as_ptr()).pts_wrap_bits };
            (
                stream.index(),
                stream.parameters(),
                stream.time_base(),
                fps,
                known,
                wrap_bits,
            )
        };
        let audio_track = FileAudio::find(&input);
        let audio_index = audio_track.as_ref().map(|a| a.index);
        // Only the video stream and the audio kept are read: other packets are dropped inside
        // libavformat.
        // SAFETY: `input` owns a valid context; `streams` holds `nb_streams` valid pointers.
        unsafe {
            let ctx = input.as_mut_ptr();
            for i in 0..(*ctx).nb_streams as usize {
                if i != index && Some(i) != audio_index {
                    (**(*ctx).streams.add(i)).discard = ffmpeg::ffi::AVDiscard::AVDISCARD_ALL;
                }
            }
        }
        let codec_id = params.id();
        // A network H.264/H.265 stream may stop decoding: its access units reach video
        // viewers undecoded. Local sources and other codecs always decode.
        let mut video = video_stream(codec_id, &params);
        if let Some(v) = video.as_mut() {
            v.on_demand = on_demand && !kind.is_local();
        }
        let audio = input
            .streams()
            .any(|s| s.parameters().medium() == ffmpeg::media::Type::Audio);
        let pictures = if codec_id == ffmpeg::codec::Id::MJPEG {
            // JPEGs pass through as they are; decoded only if a client asks for less.
            Pictures::Jpeg
        } else if video.as_ref().is_some_and(|v| v.on_demand) {
            Pictures::OnDemand
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
            let dec = ctx
                .decoder()
                .video()
                .map_err(|e| SessionError::Decoder(format!("{}: {e}", codec_id.name())))?;
            Pictures::Decoded(PictureDecoder::new(&config.id, dec))
        };
        let mut gaps = Gaps::default();
        if known_fps {
            // A camera that declares 0.2 fps must not be called stalled before its first gap
            // is measured.
            gaps.push(Duration::from_secs_f64(1.0 / nominal_fps));
        }
        let stall_now = gaps.stall_deadline(stall_timeout, open_timeout);
        deadline.extend(stall_now);
        // MJPEG has only keyframes; other codecs wait for one.
        let keyframe_seen = matches!(pictures, Pictures::Jpeg);
        Ok(Self {
            input,
            index,
            codec: codec_id.name(),
            pictures,
            deadline,
            stall_timeout,
            open_timeout,
            stall_now,
            cancel: cancel.clone(),
            pacer: kind.needs_pacing().then(Pacer::default),
            time_base_s: f64::from(time_base.numerator())
                / f64::from(time_base.denominator().max(1)),
            clock_base: TimeBase::new(time_base.numerator(), time_base.denominator(), wrap_bits)
                .unwrap_or(TimeBase::MICROS),
            nominal_fps,
            decode_errors: 0,
            keyframe_seen,
            gaps,
            before_key: 0,
            corrupt: 0,
            pending: VecDeque::new(),
            video,
            unit: None,
            ended: false,
            audio,
            audio_track,
            audio_frame: None,
            declared_fps: known_fps.then_some(nominal_fps),
        })
    }

    /// Reads one packet and queues what it decodes to. `Ok(false)`: shutdown while pacing.
    fn read_packet(&mut self) -> Result<bool, SessionError> {
        // A fresh packet each time: av_read_frame does not free what a packet still holds.
        let mut packet = ffmpeg::Packet::empty();
        match packet.read(&mut self.input) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => {
                if let Pictures::Decoded(dec) = &mut self.pictures {
                    dec.drain(&mut self.pending);
                }
                self.ended = true;
                return Ok(true);
            }
            Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                std::thread::sleep(Duration::from_millis(2));
                return Ok(true);
            }
            // Shutdown also interrupts a read: the worker tells that apart from a failure.
            Err(_) if self.cancel.is_cancelled() => return Ok(false),
            Err(_) if self.deadline.expired() => return Err(SessionError::Stalled(self.stall_now)),
            Err(e) => return Err(SessionError::Read(e)),
        }
        // Only a packet counts as life: a source that keeps answering EAGAIN still stalls.
        let stall = self
            .gaps
            .stall_deadline(self.stall_timeout, self.open_timeout);
        self.stall_now = stall;
        self.deadline.extend(stall);
        if let Some(a) = self
            .audio_track
            .as_ref()
            .filter(|a| a.index == packet.stream())
        {
            self.audio_frame = packet
                .data()
                .map(|d| (bytes::Bytes::copy_from_slice(d), a.ticks(packet.pts())));
            return Ok(true);
        }
        if packet.stream() != self.index {
            return Ok(true);
        }
        self.gaps.arrived(Instant::now());
        if !self.keyframe_seen {
            // A stream with intra refresh flags no keyframe at all: after a bounded wait,
            // decode whatever comes rather than show nothing forever.
            if !packet.is_key() && self.before_key < MAX_PACKETS_BEFORE_KEY {
                self.before_key += 1;
                return Ok(true);
            }
            self.keyframe_seen = true;
        }
        if let Some(p) = self.pacer.as_mut() {
            // Without timestamps, pace at the stream's nominal rate: never read flat out.
            // Decode order: B-frames make pts go back and forth, dts only goes forward.
            let at = match packet.dts().or(packet.pts()) {
                Some(ts) => ts as f64 * self.time_base_s,
                None => p.last_pts + 1.0 / self.nominal_fps,
            };
            if !p.wait(at, &self.cancel) {
                return Ok(false);
            }
            // The wait was camwall's own pacing, not the source going quiet.
            self.deadline.extend(stall);
        }
        if self.video.is_some() {
            // Forwarded as it arrived, before (and whatever) the decoder makes of it.
            let pts = packet.pts().or(packet.dts());
            self.unit = packet
                .data()
                .map(|d| (bytes::Bytes::copy_from_slice(d), pts));
        }
        match &mut self.pictures {
            Pictures::Jpeg => self.pass_jpeg(&packet),
            Pictures::Decoded(dec) => dec.decode(&packet, &mut self.pending),
            Pictures::OnDemand => {}
        }
        Ok(true)
    }

    /// An MJPEG packet: validated and passed through as it is.
    fn pass_jpeg(&mut self, packet: &ffmpeg::Packet) {
        let Some(data) = packet.data() else {
            return;
        };
        match jpeg::validate_jpeg(data) {
            Ok((w, h)) => {
                let quality = jpeg::estimate_quality(data);
                let data = bytes::Bytes::copy_from_slice(data);
                let ts = packet.pts().or(packet.dts());
                self.pending
                    .push_back((w, h, Picture::Jpeg { data, quality }, ts));
            }
            Err(e) => {
                // A cut-short or damaged JPEG never reaches a viewer.
                self.decode_errors += 1;
                if self.decode_errors.is_power_of_two() {
                    warn!(error = %e, count = self.decode_errors, "dropping a bad JPEG from the source");
                }
                self.corrupt += 1;
            }
        }
    }
}

impl Source for FfmpegSource {
    fn codec(&self) -> &str {
        self.codec
    }

    fn video(&self) -> Option<VideoStream> {
        self.video.clone()
    }

    fn time_base(&self) -> TimeBase {
        self.clock_base
    }

    fn audio(&self) -> Option<AudioInfo> {
        self.audio_track.as_ref().map(|a| a.info.clone())
    }

    fn set_demand(&mut self, demand: Arc<Demand>) {
        match &mut self.pictures {
            Pictures::Decoded(dec) => dec.set_demand(demand),
            Pictures::Jpeg => demand.set_mode(DecodeMode::Off),
            // The worker's decoder reports.
            Pictures::OnDemand => {}
        }
    }

    fn next_event(&mut self) -> Result<SourceEvent, SessionError> {
        loop {
            if self.corrupt > 0 {
                self.corrupt -= 1;
                return Ok(SourceEvent::Corrupt);
            }
            if let Some((data, ts)) = self.unit.take() {
                return Ok(SourceEvent::Video { data, ts });
            }
            if let Some((data, ts)) = self.audio_frame.take() {
                return Ok(SourceEvent::Audio { data, ts });
            }
            if let Some((width, height, picture, ts)) = self.pending.pop_front() {
                return Ok(SourceEvent::Picture {
                    width,
                    height,
                    picture,
                    ts,
                });
            }
            if self.ended {
                return Ok(SourceEvent::Eof);
            }
            if !self.read_packet()? {
                return Ok(SourceEvent::Cancelled);
            }
        }
    }
}

/// The H.264/H.265 stream of `params`: its codec, the framing its packets come in (told by
/// the extradata: an avcC/hvcC record means length-prefixed, else Annex B), and the
/// extradata itself. `None` for other codecs, or extradata that cannot be read.
fn video_stream(
    codec_id: ffmpeg::codec::Id,
    params: &ffmpeg::codec::Parameters,
) -> Option<VideoStream> {
    let codec = match codec_id {
        ffmpeg::codec::Id::H264 => Codec::H264,
        ffmpeg::codec::Id::HEVC => Codec::H265,
        _ => return None,
    };
    let extradata = extradata(params);
    let format = if extradata.is_empty() {
        NalFormat::AnnexB
    } else {
        match extradata_parameter_sets(codec, &extradata) {
            Ok((format, _)) => format,
            Err(e) => {
                warn!(error = %e, "unreadable codec extradata; the camera is served as JPEG only");
                return None;
            }
        }
    };
    Some(VideoStream {
        codec,
        format,
        extradata,
        on_demand: false,
    })
}

/// Packets skipped while waiting for the first keyframe before decoding anyway (10 s at 25 fps).
const MAX_PACKETS_BEFORE_KEY: u32 = 250;
