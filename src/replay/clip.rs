//! A span of the ring as an MP4 the camera's own video goes into without re-encoding:
//! FFmpeg's mp4 muxer (fragmented: an empty `moov`, a fragment per keyframe, so it streams
//! as it is written and players start before the end), fed the recorded units from the
//! keyframe at or before the start, timed by the camera's own timestamps. The camera's audio
//! goes in beside it as it came when MP4 holds its codec (AAC, Opus); G.711, which MP4 does
//! not hold, becomes Opus (`media::opus`); other codecs leave the clip silent. Blocking: runs
//! on a thread of its own, writing into a bounded channel the HTTP answer reads.

use std::io::Write;

use bytes::Bytes;
use ffmpeg_next as ffmpeg;
use tokio::sync::mpsc;

use super::read::{records, ReadError};
use super::ring::Segment;
use super::segment::{self, Kind, Record};
use crate::hub::audio::AudioInfo;
use crate::media::h26x::{Codec, VideoParams};
use crate::media::opus::{self, OpusPacket, Transcoder};

/// The longest clip one request may ask for.
pub const MAX_SPAN_MS: u64 = 10 * 60 * 1000;

/// The muxer's output, handed to the HTTP answer in chunks; a gone reader ends the mux.
struct Sink(mpsc::Sender<Bytes>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Muxes the span `from_ms`..=`to_ms` of `segments` into `out` as fragmented MP4: from the
/// last keyframe at or before `from_ms` (or the first one after it) through the last unit at
/// or before `to_ms`. Holds at most the GOP before `from_ms`; segments are read one at a time.
/// Ends early (without error) when the reader goes away.
pub fn mux_span(
    segments: &[Segment],
    from_ms: u64,
    to_ms: u64,
    out: mpsc::Sender<Bytes>,
) -> Result<(), ReadError> {
    let mut params: Option<VideoParams> = None;
    // The audio track the clip opens with: the newest one named up to the segment it opens in.
    let mut track: Option<AudioInfo> = None;
    // The GOP before `from_ms` (and the audio recorded with it), until the clip starts.
    let mut lead: Option<(VideoParams, Vec<Record>)> = None;
    let mut clip: Option<ClipWriter> = None;
    let mut out = Some(out);
    let mut jpegs = false;
    'segments: for seg in segments {
        let recs = records(&seg.path)?;
        if clip.is_none() {
            if let Some(t) = recs.iter().rev().find(|r| r.kind == Kind::AudioTrack) {
                track = segment::audio_track_of(&t.data).or(track.take());
            }
        }
        for r in recs {
            let ms = r.stamp.captured_unix_ms;
            match r.kind {
                Kind::VideoParams => params = segment::params_of(&r.data).or(params.take()),
                Kind::Jpeg => jpegs = true,
                Kind::Video if ms > to_ms => break 'segments,
                Kind::AudioTrack => {
                    if let Some(c) = clip.as_mut() {
                        c.track(segment::audio_track_of(&r.data));
                    }
                }
                Kind::Audio if ms > to_ms => {}
                Kind::Audio => {
                    if let Some(c) = clip.as_mut() {
                        if !c.push(r) {
                            return Ok(());
                        }
                    } else if let Some((_, held)) = lead.as_mut() {
                        held.push(r);
                    }
                }
                Kind::Video => {
                    if let Some(c) = clip.as_mut() {
                        if !c.push(r) {
                            return Ok(());
                        }
                        continue;
                    }
                    if r.key && (ms <= from_ms || lead.is_none()) {
                        lead = params.clone().map(|p| (p, vec![r]));
                    } else if let Some((_, units)) = lead.as_mut() {
                        units.push(r);
                    }
                    if ms >= from_ms {
                        if let (Some((p, units)), Some(o)) = (lead.take(), out.take()) {
                            let Some(c) = begin(&p, track.as_ref(), units, o)? else {
                                return Ok(());
                            };
                            clip = Some(c);
                        }
                    }
                }
            }
        }
    }
    if clip.is_none() {
        if let (Some((p, units)), Some(o)) = (lead.take(), out.take()) {
            let Some(c) = begin(&p, track.as_ref(), units, o)? else {
                return Ok(());
            };
            clip = Some(c);
        }
    }
    match clip {
        Some(c) => c.finish(),
        None if jpegs => Err(ReadError::NotVideo),
        None => Err(ReadError::NotInReplay),
    }
}

/// Opens the clip with the units (and audio) held before its start; `None`: the reader went
/// away.
fn begin(
    params: &VideoParams,
    track: Option<&AudioInfo>,
    units: Vec<Record>,
    out: mpsc::Sender<Bytes>,
) -> Result<Option<ClipWriter>, ReadError> {
    let mut c = ClipWriter::open(params, track, out)?;
    for u in units {
        if !c.push(u) {
            return Ok(None);
        }
    }
    Ok(Some(c))
}

/// A stream of the clip: each frame is held back until the next, so that its duration is the
/// camera's own spacing to it (the last one's is the one before).
struct Track {
    index: usize,
    tb: ffmpeg::Rational,
    last_dts: i64,
    last_dur: i64,
    held: Option<Record>,
}

impl Track {
    fn new(index: usize, dur_us: i64) -> Self {
        Self {
            index,
            tb: ffmpeg::Rational(1, 1_000_000),
            last_dts: i64::MIN,
            last_dur: dur_us,
            held: None,
        }
    }
}

/// How the camera's audio reaches the clip.
enum AudioIn {
    /// As it came (AAC, Opus).
    Pass,
    /// As Opus (G.711).
    Opus(Box<Transcoder>),
}

struct AudioTrack {
    /// The track the clip opened with; frames of another (after a reconnect) are left out.
    info: AudioInfo,
    on: bool,
    input: AudioIn,
    out: Track,
    packets: Vec<OpusPacket>,
}

/// FFmpeg's mp4 muxer over the answer's channel: the video, and the audio when the camera has
/// some MP4 can hold (as it came, or as Opus).
struct ClipWriter {
    octx: ffmpeg::format::context::Output,
    /// The clip's time zero: its first unit's pts.
    t0: Option<i64>,
    video: Track,
    audio: Option<AudioTrack>,
}

/// Stream parameters of the clip's audio for `info` (codec, extradata, rate, channels), and
/// how frames get there; `None`: MP4 holds neither it nor what it could cheaply become.
fn audio_params(info: &AudioInfo) -> Option<(ffmpeg::ffi::AVCodecID, Vec<u8>, u32, u16, AudioIn)> {
    use ffmpeg::ffi::AVCodecID;
    match info.codec.as_str() {
        "aac" if !info.description.is_empty() => Some((
            AVCodecID::AV_CODEC_ID_AAC,
            info.description.clone(),
            info.sample_rate,
            info.channels,
            AudioIn::Pass,
        )),
        "opus" => {
            let channels = info.channels.clamp(1, 2);
            let head = if info.description.starts_with(b"OpusHead") {
                info.description.clone()
            } else {
                opus::opus_head(channels as u8, 0)
            };
            Some((
                AVCodecID::AV_CODEC_ID_OPUS,
                head,
                opus::OPUS_RATE,
                channels,
                AudioIn::Pass,
            ))
        }
        "pcmu" | "pcma" => {
            let t = Transcoder::for_track(&info.codec, &[], info.sample_rate, info.channels)
                .map_err(|e| tracing::debug!("clip audio: {e}"))
                .ok()?;
            Some((
                AVCodecID::AV_CODEC_ID_OPUS,
                t.opus_head(),
                opus::OPUS_RATE,
                t.channels(),
                AudioIn::Opus(Box::new(t)),
            ))
        }
        _ => None,
    }
}

impl ClipWriter {
    fn open(
        params: &VideoParams,
        track: Option<&AudioInfo>,
        out: mpsc::Sender<Bytes>,
    ) -> Result<Self, ReadError> {
        let fail = |e: ffmpeg::Error| ReadError::Decode(format!("mp4: {e}"));
        let io = ffmpeg::format::context::StreamIo::from_write(Sink(out)).map_err(fail)?;
        let mut octx = ffmpeg::format::output_to_stream(io, None, Some("mp4")).map_err(fail)?;
        let video_codec = match params.codec {
            Codec::H264 => ffmpeg::ffi::AVCodecID::AV_CODEC_ID_H264,
            Codec::H265 => ffmpeg::ffi::AVCodecID::AV_CODEC_ID_HEVC,
        };
        {
            let mut st = octx.add_stream(None::<ffmpeg::Codec>).map_err(fail)?;
            st.set_time_base(ffmpeg::Rational(1, 1_000_000));
            // SAFETY: the stream was just made by this context and is not shared; its
            // codecpar is FFmpeg's; extradata is FFmpeg's allocation (`ffmpeg_copy`), freed
            // with the context.
            unsafe {
                let par = (*st.as_mut_ptr()).codecpar;
                (*par).codec_type = ffmpeg::ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
                (*par).codec_id = video_codec;
                if params.codec == Codec::H265 {
                    // `hvc1`: the sample entry browsers play (parameter sets in hvcC).
                    (*par).codec_tag = u32::from_le_bytes(*b"hvc1");
                }
                (*par).width = params.width as i32;
                (*par).height = params.height as i32;
                set_extradata(par, &params.description)?;
            }
        }
        let mut audio = None;
        if let Some((codec, extradata, rate, channels, input)) = track.and_then(audio_params) {
            let mut st = octx.add_stream(None::<ffmpeg::Codec>).map_err(fail)?;
            st.set_time_base(ffmpeg::Rational(1, rate.max(1) as i32));
            // SAFETY: as for the video stream above.
            unsafe {
                let par = (*st.as_mut_ptr()).codecpar;
                (*par).codec_type = ffmpeg::ffi::AVMediaType::AVMEDIA_TYPE_AUDIO;
                (*par).codec_id = codec;
                (*par).sample_rate = rate as i32;
                (*par).channels = i32::from(channels);
                set_extradata(par, &extradata)?;
            }
            audio = track.map(|info| AudioTrack {
                info: info.clone(),
                on: true,
                input,
                out: Track::new(st.index(), 20_000),
                packets: Vec::new(),
            });
        }
        let mut opts = ffmpeg::Dictionary::new();
        opts.set("movflags", "frag_keyframe+empty_moov+default_base_moof");
        octx.write_header_with(opts).map_err(fail)?;
        let mut video = Track::new(0, 40_000);
        video.tb = octx
            .stream(0)
            .map(|s| s.time_base())
            .ok_or(ReadError::Corrupt)?;
        if let Some(a) = audio.as_mut() {
            a.out.tb = octx
                .stream(a.out.index)
                .map(|s| s.time_base())
                .ok_or(ReadError::Corrupt)?;
        }
        Ok(Self {
            octx,
            t0: None,
            video,
            audio,
        })
    }

    /// The camera's audio track now (an `AudioTrack` record): frames go in only while it is
    /// the one the clip opened with.
    fn track(&mut self, info: Option<AudioInfo>) {
        if let Some(a) = self.audio.as_mut() {
            a.on = info.as_ref() == Some(&a.info);
        }
    }

    /// Takes the next unit or audio frame; writes what it completes. False when the reader
    /// is gone.
    fn push(&mut self, r: Record) -> bool {
        match r.kind {
            Kind::Video => {
                let t0 = *self.t0.get_or_insert(r.stamp.pts_us);
                let next = r.stamp.pts_us;
                match self.video.held.replace(r) {
                    Some(prev) => write(&mut self.octx, &mut self.video, t0, &prev, Some(next)),
                    None => true,
                }
            }
            Kind::Audio => self.push_audio(r),
            _ => true,
        }
    }

    fn push_audio(&mut self, r: Record) -> bool {
        let (Some(t0), Some(a)) = (self.t0, self.audio.as_mut()) else {
            return true;
        };
        if !a.on || r.stamp.pts_us < t0 {
            return true;
        }
        match &mut a.input {
            AudioIn::Pass => {
                let next = r.stamp.pts_us;
                match a.out.held.replace(r) {
                    Some(prev) => write(&mut self.octx, &mut a.out, t0, &prev, Some(next)),
                    None => true,
                }
            }
            AudioIn::Opus(t) => {
                if t.push(&r.data, r.stamp.pts_us, &mut a.packets).is_err() {
                    // A frame FFmpeg cannot decode: its time is filled by the next.
                    return true;
                }
                for p in a.packets.drain(..) {
                    let packet = Record {
                        kind: Kind::Audio,
                        key: true,
                        stamp: crate::media::clock::Stamp {
                            pts_us: p.pts_us,
                            captured_unix_ms: r.stamp.captured_unix_ms,
                        },
                        data: Bytes::from(p.data),
                    };
                    let dur = Some(p.pts_us + 20_000);
                    if p.pts_us >= t0 && !write(&mut self.octx, &mut a.out, t0, &packet, dur) {
                        return false;
                    }
                }
                true
            }
        }
    }

    fn finish(mut self) -> Result<(), ReadError> {
        let t0 = self.t0.unwrap_or(0);
        if let Some(last) = self.video.held.take() {
            if !write(&mut self.octx, &mut self.video, t0, &last, None) {
                return Ok(());
            }
        }
        if let Some(a) = self.audio.as_mut() {
            if let Some(last) = a.out.held.take() {
                if !write(&mut self.octx, &mut a.out, t0, &last, None) {
                    return Ok(());
                }
            }
        }
        // A reader gone before the end is no error of the clip's.
        let _ = self.octx.write_trailer();
        Ok(())
    }
}

/// Gives a stream's codec parameters a copy of `data` as their extradata.
///
/// # Safety
/// `par` is a stream's codec parameters, owned by a muxer not yet started.
unsafe fn set_extradata(
    par: *mut ffmpeg::ffi::AVCodecParameters,
    data: &[u8],
) -> Result<(), ReadError> {
    let buf = crate::media::decode::ffmpeg_copy(data);
    if buf.is_null() {
        return Err(ReadError::Decode("out of memory".into()));
    }
    // SAFETY: the caller's promise; the buffer is FFmpeg's, freed with the parameters.
    unsafe {
        (*par).extradata = buf;
        (*par).extradata_size = data.len() as i32;
    }
    Ok(())
}

/// Writes `u` to `track`, timed from `t0`, lasting until `next_pts` (else as long as the one
/// before); interleaved with the other track by the muxer. False when the reader is gone.
fn write(
    octx: &mut ffmpeg::format::context::Output,
    track: &mut Track,
    t0: i64,
    u: &Record,
    next_pts: Option<i64>,
) -> bool {
    let pts = u.stamp.pts_us - t0;
    let dur = next_pts
        .map(|n| n - u.stamp.pts_us)
        .filter(|d| *d > 0)
        .unwrap_or(track.last_dur);
    track.last_dur = dur;
    let dts = if pts > track.last_dts {
        pts
    } else {
        track.last_dts + 1
    };
    track.last_dts = dts;
    let mut p = ffmpeg::Packet::copy(&u.data);
    p.set_stream(track.index);
    p.set_pts(Some(pts.max(dts)));
    p.set_dts(Some(dts));
    p.set_duration(dur);
    if u.key {
        p.set_flags(ffmpeg::packet::Flags::KEY);
    }
    p.rescale_ts(ffmpeg::Rational(1, 1_000_000), track.tb);
    p.write_interleaved(octx).is_ok()
}
