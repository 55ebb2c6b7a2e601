//! A span of the ring as an MP4 the camera's own video goes into without re-encoding:
//! FFmpeg's mp4 muxer (fragmented: an empty `moov`, a fragment per keyframe, so it streams
//! as it is written and players start before the end), fed the recorded units from the
//! keyframe at or before the start, timed by the camera's own timestamps. Blocking: runs on a
//! thread of its own, writing into a bounded channel the HTTP answer reads.

use std::io::Write;

use bytes::Bytes;
use ffmpeg_next as ffmpeg;
use tokio::sync::mpsc;

use super::read::{records, ReadError};
use super::ring::Segment;
use super::segment::{self, Kind, Record};
use crate::media::h26x::{Codec, VideoParams};

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
    // The GOP before `from_ms`, until the clip starts.
    let mut lead: Option<(VideoParams, Vec<Record>)> = None;
    let mut clip: Option<ClipWriter> = None;
    let mut out = Some(out);
    let mut jpegs = false;
    'segments: for seg in segments {
        for r in records(&seg.path)? {
            let ms = r.stamp.captured_unix_ms;
            match r.kind {
                Kind::VideoParams => params = segment::params_of(&r.data).or(params.take()),
                Kind::Jpeg => jpegs = true,
                Kind::Video if ms > to_ms => break 'segments,
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
                            let Some(c) = begin(&p, units, o)? else {
                                return Ok(());
                            };
                            clip = Some(c);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if clip.is_none() {
        if let (Some((p, units)), Some(o)) = (lead.take(), out.take()) {
            let Some(c) = begin(&p, units, o)? else {
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

/// Opens the clip with the units held before its start; `None`: the reader went away.
fn begin(
    params: &VideoParams,
    units: Vec<Record>,
    out: mpsc::Sender<Bytes>,
) -> Result<Option<ClipWriter>, ReadError> {
    let mut c = ClipWriter::open(params, out)?;
    for u in units {
        if !c.push(u) {
            return Ok(None);
        }
    }
    Ok(Some(c))
}

/// FFmpeg's mp4 muxer over the answer's channel, one unit held back so that each sample's
/// duration is the camera's own spacing to the next.
struct ClipWriter {
    octx: ffmpeg::format::context::Output,
    tb: ffmpeg::Rational,
    t0: Option<i64>,
    last_dts: i64,
    last_dur: i64,
    held: Option<Record>,
}

impl ClipWriter {
    fn open(params: &VideoParams, out: mpsc::Sender<Bytes>) -> Result<Self, ReadError> {
        let fail = |e: ffmpeg::Error| ReadError::Decode(format!("mp4: {e}"));
        let io = ffmpeg::format::context::StreamIo::from_write(Sink(out)).map_err(fail)?;
        let mut octx = ffmpeg::format::output_to_stream(io, None, Some("mp4")).map_err(fail)?;
        {
            let mut st = octx.add_stream(None::<ffmpeg::Codec>).map_err(fail)?;
            st.set_time_base(ffmpeg::Rational(1, 1_000_000));
            // SAFETY: the stream was just made by this context and is not shared; its
            // codecpar is FFmpeg's; extradata is FFmpeg's allocation (`ffmpeg_copy`), freed
            // with the context.
            unsafe {
                let par = (*st.as_mut_ptr()).codecpar;
                (*par).codec_type = ffmpeg::ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
                (*par).codec_id = match params.codec {
                    Codec::H264 => ffmpeg::ffi::AVCodecID::AV_CODEC_ID_H264,
                    Codec::H265 => ffmpeg::ffi::AVCodecID::AV_CODEC_ID_HEVC,
                };
                if params.codec == Codec::H265 {
                    // `hvc1`: the sample entry browsers play (parameter sets in hvcC).
                    (*par).codec_tag = u32::from_le_bytes(*b"hvc1");
                }
                (*par).width = params.width as i32;
                (*par).height = params.height as i32;
                let desc = &params.description;
                let buf = crate::media::decode::ffmpeg_copy(desc);
                if buf.is_null() {
                    return Err(ReadError::Decode("out of memory".into()));
                }
                (*par).extradata = buf;
                (*par).extradata_size = desc.len() as i32;
            }
        }
        let mut opts = ffmpeg::Dictionary::new();
        opts.set("movflags", "frag_keyframe+empty_moov+default_base_moof");
        octx.write_header_with(opts).map_err(fail)?;
        let tb = octx
            .stream(0)
            .map(|s| s.time_base())
            .ok_or(ReadError::Corrupt)?;
        Ok(Self {
            octx,
            tb,
            t0: None,
            last_dts: i64::MIN,
            last_dur: 40_000,
            held: None,
        })
    }

    /// Takes the next unit; writes the one held before it. False when the reader is gone.
    fn push(&mut self, unit: Record) -> bool {
        let next_pts = unit.stamp.pts_us;
        match self.held.replace(unit) {
            Some(prev) => self.write(&prev, Some(next_pts)),
            None => true,
        }
    }

    fn write(&mut self, u: &Record, next_pts: Option<i64>) -> bool {
        let t0 = *self.t0.get_or_insert(u.stamp.pts_us);
        let pts = u.stamp.pts_us - t0;
        let dur = next_pts
            .map(|n| n - u.stamp.pts_us)
            .filter(|d| *d > 0)
            .unwrap_or(self.last_dur);
        self.last_dur = dur;
        let dts = if pts > self.last_dts {
            pts
        } else {
            self.last_dts + 1
        };
        self.last_dts = dts;
        let mut p = ffmpeg::Packet::copy(&u.data);
        p.set_stream(0);
        p.set_pts(Some(pts.max(dts)));
        p.set_dts(Some(dts));
        p.set_duration(dur);
        if u.key {
            p.set_flags(ffmpeg::packet::Flags::KEY);
        }
        p.rescale_ts(ffmpeg::Rational(1, 1_000_000), self.tb);
        p.write(&mut self.octx).is_ok()
    }

    fn finish(mut self) -> Result<(), ReadError> {
        if let Some(last) = self.held.take() {
            if !self.write(&last, None) {
                return Ok(());
            }
        }
        // A reader gone before the end is no error of the clip's.
        let _ = self.octx.write_trailer();
        Ok(())
    }
}
