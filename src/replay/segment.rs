//! The replay ring's file format. A segment is one camera's stretch of about a second (to its
//! first keyframe after a second), starting at a keyframe so it decodes alone: a magic, then
//! records, each the camera's pts and the wall-clock time beside a payload (the video's
//! parameter sets, a video access unit as it came, the audio track, an audio frame, or a JPEG
//! of a camera without H.264/H.265).
//! Append-only; read back up to the last whole record, so a `kill -9` mid-write loses only
//! the record it tore.

use bytes::{BufMut, Bytes, BytesMut};

use crate::media::clock::Stamp;
use crate::media::h26x::{Codec, VideoParams};

/// Opens every segment file.
pub const MAGIC: &[u8; 8] = b"CWRPLAY1";
/// Kind, flags, payload length, pts, wall clock.
const HEAD: usize = 1 + 1 + 4 + 8 + 8;
/// Longest payload read back: a unit larger than this is a corrupt length, not video.
const MAX_PAYLOAD: usize = 64 << 20;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The parameter sets the following units decode with (see [`put_params`]).
    VideoParams,
    /// One access unit, length-prefixed NAL units as the video feed keeps them.
    Video,
    /// The audio track the following frames belong to (see [`put_audio_track`]).
    AudioTrack,
    /// One compressed audio frame, as it came.
    Audio,
    /// A JPEG of a camera without H.264/H.265 (MJPEG, or a raw source asking for replay).
    Jpeg,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::VideoParams => 1,
            Kind::Video => 2,
            Kind::AudioTrack => 3,
            Kind::Audio => 4,
            Kind::Jpeg => 5,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Kind::VideoParams,
            2 => Kind::Video,
            3 => Kind::AudioTrack,
            4 => Kind::Audio,
            5 => Kind::Jpeg,
            _ => return None,
        })
    }
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub kind: Kind,
    pub key: bool,
    pub stamp: Stamp,
    pub data: Bytes,
}

/// Bytes of a record's header: kind, key, length, pts, capture time.
const RECORD_HEADER: usize = 22;

fn put_header(out: &mut impl BufMut, kind: Kind, key: bool, stamp: Stamp, len: usize) {
    out.put_u8(kind.byte());
    out.put_u8(u8::from(key));
    out.put_u32_le(len as u32);
    out.put_i64_le(stamp.pts_us);
    out.put_u64_le(stamp.captured_unix_ms);
}

/// Appends a record to `out`.
pub fn put(out: &mut Vec<u8>, kind: Kind, key: bool, stamp: Stamp, data: &[u8]) {
    put_header(out, kind, key, stamp, data.len());
    out.extend_from_slice(data);
}

/// Records on their way to a segment file. Headers are written here; payloads stay the
/// shared buffers they came in (a camera's unit, an audio frame, a JPEG) and reach the file in
/// one vectored write: recording copies a camera's bytes once, into the page cache.
#[derive(Debug, Default)]
pub struct Batch {
    parts: Vec<Bytes>,
    heads: BytesMut,
    len: usize,
}

impl Batch {
    /// Appends a record whose payload is `data` (shared, not copied).
    pub fn put(&mut self, kind: Kind, key: bool, stamp: Stamp, data: &Bytes) {
        if self.heads.capacity() - self.heads.len() < RECORD_HEADER {
            self.heads.reserve(64 * RECORD_HEADER);
        }
        put_header(&mut self.heads, kind, key, stamp, data.len());
        self.parts.push(self.heads.split().freeze());
        self.parts.push(data.clone());
        self.len += RECORD_HEADER + data.len();
    }

    /// Appends whole records already laid out (`put_params`, `put_audio_track`).
    pub fn put_laid_out(&mut self, records: Vec<u8>) {
        self.len += records.len();
        self.parts.push(Bytes::from(records));
    }

    /// Bytes in the batch.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes `prefix` (a new file's magic, or nothing) and the batch, in as few `writev`
    /// calls as the kernel takes.
    pub fn write_to(&self, prefix: &[u8], w: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut slices: Vec<std::io::IoSlice<'_>> = std::iter::once(prefix)
            .chain(self.parts.iter().map(|p| &p[..]))
            .filter(|p| !p.is_empty())
            .map(std::io::IoSlice::new)
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            // At most IOV_MAX (1024) slices a call.
            let n = rest.len().min(1024);
            match w.write_vectored(&rest[..n]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(written) => std::io::IoSlice::advance_slices(&mut rest, written),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Appends the parameter sets of `params` (codec, then each set with its length).
pub fn put_params(out: &mut Vec<u8>, stamp: Stamp, params: &VideoParams) {
    let mut p = vec![match params.codec {
        Codec::H264 => 1u8,
        Codec::H265 => 2,
    }];
    for set in &params.parameter_sets {
        p.extend_from_slice(&(set.len() as u32).to_le_bytes());
        p.extend_from_slice(set);
    }
    put(out, Kind::VideoParams, false, stamp, &p);
}

/// The parameters a [`Kind::VideoParams`] record holds.
pub fn params_of(data: &[u8]) -> Option<VideoParams> {
    let (&codec, mut rest) = data.split_first()?;
    let codec = match codec {
        1 => Codec::H264,
        2 => Codec::H265,
        _ => return None,
    };
    let mut sets = Vec::new();
    while rest.len() >= 4 {
        let n = u32::from_le_bytes(rest[..4].try_into().ok()?) as usize;
        let set = rest.get(4..4 + n)?;
        sets.push(set);
        rest = &rest[4 + n..];
    }
    VideoParams::from_parameter_sets(codec, sets).ok()
}

/// An audio track as a record: rate, channels, the codec's name and its configuration.
pub fn put_audio_track(out: &mut Vec<u8>, stamp: Stamp, info: &crate::hub::audio::AudioInfo) {
    let mut p = Vec::with_capacity(8 + info.codec.len() + info.description.len());
    p.extend_from_slice(&info.sample_rate.to_le_bytes());
    p.extend_from_slice(&info.channels.to_le_bytes());
    p.push(info.codec.len().min(255) as u8);
    p.extend_from_slice(&info.codec.as_bytes()[..info.codec.len().min(255)]);
    p.extend_from_slice(&info.description);
    put(out, Kind::AudioTrack, false, stamp, &p);
}

/// The track an [`Kind::AudioTrack`] record holds.
pub fn audio_track_of(data: &[u8]) -> Option<crate::hub::audio::AudioInfo> {
    let sample_rate = u32::from_le_bytes(data.get(..4)?.try_into().ok()?);
    let channels = u16::from_le_bytes(data.get(4..6)?.try_into().ok()?);
    let n = *data.get(6)? as usize;
    let codec = std::str::from_utf8(data.get(7..7 + n)?).ok()?.to_string();
    Some(crate::hub::audio::AudioInfo {
        codec,
        sample_rate,
        channels,
        description: data[7 + n..].to_vec(),
    })
}

/// The records of a segment file's bytes, up to the last whole one (`None`: not a segment).
/// Also answers how many bytes they take, where a torn tail would be cut.
pub fn read(file: &Bytes) -> Option<(Vec<Record>, usize)> {
    if file.get(..MAGIC.len())? != MAGIC {
        return None;
    }
    let mut at = MAGIC.len();
    let mut out = Vec::new();
    while let Some(head) = file.get(at..at + HEAD) {
        let Some(kind) = Kind::from_byte(head[0]) else {
            break;
        };
        let len = u32::from_le_bytes([head[2], head[3], head[4], head[5]]) as usize;
        if len > MAX_PAYLOAD || file.len() < at + HEAD + len {
            break;
        }
        let num = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[r]);
            b
        };
        out.push(Record {
            kind,
            key: head[1] & 1 == 1,
            stamp: Stamp {
                pts_us: i64::from_le_bytes(num(6..14)),
                captured_unix_ms: u64::from_le_bytes(num(14..22)),
            },
            data: file.slice(at + HEAD..at + HEAD + len),
        });
        at += HEAD + len;
    }
    Some((out, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::h26x::fixtures as fx;

    fn stamp(pts_us: i64, ms: u64) -> Stamp {
        Stamp {
            pts_us,
            captured_unix_ms: ms,
        }
    }

    /// A writer that takes at most 7 bytes a call, as a kernel may.
    struct Dribble(Vec<u8>);

    impl std::io::Write for Dribble {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_batch_writes_the_same_bytes_as_records_laid_out_one_by_one() {
        let params = VideoParams::from_parameter_sets(
            Codec::H264,
            [fx::H264_HIGH_320X240_SPS, fx::H264_HIGH_320X240_PPS],
        )
        .unwrap();
        let mut want = MAGIC.to_vec();
        put_params(&mut want, stamp(0, 1000), &params);
        let mut batch = Batch::default();
        let mut p = Vec::new();
        put_params(&mut p, stamp(0, 1000), &params);
        batch.put_laid_out(p);
        for i in 0..100u8 {
            let data = Bytes::from(vec![i; usize::from(i) * 3]);
            let st = stamp(i64::from(i) * 40_000, 1000 + u64::from(i) * 40);
            put(&mut want, Kind::Video, i % 25 == 0, st, &data);
            batch.put(Kind::Video, i % 25 == 0, st, &data);
        }
        assert_eq!(batch.len() + MAGIC.len(), want.len());
        let mut out = Dribble(Vec::new());
        batch.write_to(MAGIC, &mut out).unwrap();
        assert_eq!(out.0, want);
        let (recs, used) = read(&Bytes::from(out.0)).unwrap();
        assert_eq!((recs.len(), used), (101, want.len()));
    }

    #[test]
    fn records_read_back_up_to_a_torn_tail() {
        let params = VideoParams::from_parameter_sets(
            Codec::H264,
            [fx::H264_HIGH_320X240_SPS, fx::H264_HIGH_320X240_PPS],
        )
        .unwrap();
        let mut file = MAGIC.to_vec();
        put_params(&mut file, stamp(0, 1000), &params);
        put(&mut file, Kind::Video, true, stamp(0, 1000), b"unit one");
        put(&mut file, Kind::Audio, false, stamp(20_000, 1020), b"aac");
        let whole = file.len();
        put(
            &mut file,
            Kind::Video,
            false,
            stamp(40_000, 1040),
            b"unit two",
        );
        file.truncate(file.len() - 3);
        let (recs, len) = read(&Bytes::from(file)).unwrap();
        assert_eq!(len, whole, "the torn record is where the file is cut");
        assert_eq!(recs.len(), 3);
        assert_eq!(params_of(&recs[0].data).unwrap(), params);
        assert!(recs[1].key && &recs[1].data[..] == b"unit one");
        assert_eq!(recs[2].kind, Kind::Audio);
        assert_eq!(recs[2].stamp, stamp(20_000, 1020));
        assert!(read(&Bytes::from_static(b"not a segment")).is_none());
    }

    #[test]
    fn an_audio_track_reads_back() {
        let info = crate::hub::audio::AudioInfo {
            codec: "aac".into(),
            sample_rate: 48_000,
            channels: 1,
            description: vec![0x11, 0x88],
        };
        let mut out = Vec::new();
        put_audio_track(&mut out, stamp(0, 1), &info);
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&out);
        let (recs, _) = read(&Bytes::from(file)).unwrap();
        assert_eq!(audio_track_of(&recs[0].data).unwrap(), info);
    }
}
