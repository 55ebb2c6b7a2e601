//! The replay ring's file format. A segment is one camera's stretch of about a second (to its
//! first keyframe after a second), starting at a keyframe so it decodes alone: a magic, then
//! records, each the camera's pts and the wall-clock time beside a payload (the video's
//! parameter sets, a video access unit as it came, the audio track, an audio frame, or a JPEG
//! of a camera without H.264/H.265).
//! Append-only; read back up to the last whole record, so a `kill -9` mid-write loses only
//! the record it tore.

use bytes::Bytes;

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

/// Appends a record to `out`.
pub fn put(out: &mut Vec<u8>, kind: Kind, key: bool, stamp: Stamp, data: &[u8]) {
    out.push(kind.byte());
    out.push(u8::from(key));
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&stamp.pts_us.to_le_bytes());
    out.extend_from_slice(&stamp.captured_unix_ms.to_le_bytes());
    out.extend_from_slice(data);
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

/// The track an [`Kind::AudioTrack`] record holds (read back by the tests; audio is not
/// replayed yet).
#[cfg(test)]
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
