//! Reading the ring back (blocking: call off the async workers): the units of a segment from
//! a keyframe, the picture at an instant (its segment's units decoded from the keyframe
//! before it, the last one at or before the instant encoded as JPEG; a kept JPEG as it is).

use std::path::Path;

use bytes::Bytes;
use ffmpeg_next as ffmpeg;

use super::segment::{self, Kind, Record};
use crate::media::clock::Stamp;
use crate::media::h26x::VideoParams;
use crate::media::jpeg::{self, Jpeg};
use crate::media::tier::Tier;

/// Why a replay read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("nothing recorded at that instant")]
    NotInReplay,
    #[error("replay segment unreadable: {0}")]
    Io(#[from] std::io::Error),
    #[error("replay segment holds no decodable video")]
    Corrupt,
    #[error("cannot decode the recorded video: {0}")]
    Decode(String),
    #[error("too many replays are being decoded at once; try again later")]
    Busy,
    #[error("this camera's replay holds JPEGs (it sends no H.264/H.265): take its pictures with frame?at=")]
    NotVideo,
}

/// A run of video units that decodes alone: the parameters, then units from a keyframe on.
#[derive(Debug, Clone)]
pub struct Run {
    pub params: VideoParams,
    pub units: Vec<Record>,
}

/// A segment file's records.
pub fn records(path: &Path) -> Result<Vec<Record>, ReadError> {
    let bytes = Bytes::from(std::fs::read(path)?);
    segment::read(&bytes)
        .map(|(r, _)| r)
        .ok_or(ReadError::Corrupt)
}

/// Of `records`, the run that holds the last unit at or before `at_ms` (wall clock): from the
/// keyframe before that unit to it.
pub fn run_to(records: &[Record], at_ms: u64) -> Option<Run> {
    let mut params: Option<VideoParams> = None;
    let mut run: Option<Run> = None;
    for r in records {
        if r.stamp.captured_unix_ms > at_ms && r.kind == Kind::Video {
            break;
        }
        match r.kind {
            Kind::VideoParams => params = segment::params_of(&r.data),
            Kind::Video if r.key => {
                run = params.clone().map(|params| Run {
                    params,
                    units: vec![r.clone()],
                });
            }
            Kind::Video => {
                if let Some(run) = run.as_mut() {
                    run.units.push(r.clone());
                }
            }
            _ => {}
        }
    }
    run
}

/// Of `records`, the last JPEG at or before `at_ms` (a camera kept as JPEGs).
pub fn jpeg_to(records: &[Record], at_ms: u64) -> Option<&Record> {
    records
        .iter()
        .rfind(|r| r.kind == Kind::Jpeg && r.stamp.captured_unix_ms <= at_ms)
}

/// A kept JPEG at `tier`: as it was when that asks for as much, else re-encoded smaller.
pub fn jpeg_picture(rec: &Record, tier: Tier) -> Result<(Jpeg, Stamp), ReadError> {
    let src_q = jpeg::estimate_quality(&rec.data);
    let out = if tier.scale <= 1 && src_q.is_none_or(|q| tier.quality + 2 >= q) {
        let (width, height) = jpeg::jpeg_size(&rec.data).map_err(|_| ReadError::Corrupt)?;
        Jpeg {
            data: rec.data.clone(),
            width,
            height,
            quality: src_q.unwrap_or(tier.quality),
        }
    } else {
        jpeg::transcode_jpeg(&rec.data, tier.quality, tier.scale)
            .map_err(|e| ReadError::Decode(e.to_string()))?
    };
    Ok((out, rec.stamp))
}

/// The last picture of `run`, decoded from its keyframe, as a JPEG at `tier`, with the
/// stamp of the unit it came from.
pub fn picture(run: &Run, tier: Tier) -> Result<(Jpeg, Stamp), ReadError> {
    let mut dec = crate::media::decode::open_live(&run.params)
        .map_err(|e| ReadError::Decode(e.to_string()))?;
    let mut decoded = ffmpeg::frame::Video::empty();
    let mut last: Option<(ffmpeg::frame::Video, i64)> = None;
    let mut take = |dec: &mut ffmpeg::decoder::Video, last: &mut Option<_>| {
        while dec.receive_frame(&mut decoded).is_ok() {
            let pts = decoded.pts().unwrap_or(-1);
            *last = Some((
                std::mem::replace(&mut decoded, ffmpeg::frame::Video::empty()),
                pts,
            ));
        }
    };
    for (i, u) in run.units.iter().enumerate() {
        let mut packet = ffmpeg::Packet::copy(&u.data);
        packet.set_pts(Some(i as i64));
        packet.set_dts(Some(i as i64));
        if u.key {
            packet.set_flags(ffmpeg::packet::Flags::KEY);
        }
        // A unit the decoder refuses is skipped; the pictures after it may still come.
        let _ = dec.send_packet(&packet);
        take(&mut dec, &mut last);
    }
    let _ = dec.send_eof();
    take(&mut dec, &mut last);
    let (mut frame, pts) = last.ok_or(ReadError::Corrupt)?;
    let unit = usize::try_from(pts)
        .ok()
        .and_then(|i| run.units.get(i))
        .or(run.units.last())
        .ok_or(ReadError::Corrupt)?;
    let mut converter = None;
    let (_, _, pic) =
        crate::media::decode::to_picture(&mut frame, &mut converter).ok_or(ReadError::Corrupt)?;
    let crate::media::frame::Picture::Yuv(yuv) = pic else {
        return Err(ReadError::Corrupt);
    };
    let jpeg = jpeg::encode_planes(&yuv.planes(), tier.quality, tier.scale)
        .map_err(|e| ReadError::Decode(e.to_string()))?;
    Ok((jpeg, unit.stamp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::h26x::fixtures as fx;
    use crate::media::h26x::Codec;

    fn rec(kind: Kind, key: bool, ms: u64, data: &[u8]) -> Record {
        Record {
            kind,
            key,
            stamp: Stamp {
                pts_us: ms as i64 * 1000,
                captured_unix_ms: ms,
            },
            data: Bytes::copy_from_slice(data),
        }
    }

    #[test]
    fn the_run_to_an_instant_starts_at_the_keyframe_before_it() {
        let params = VideoParams::from_parameter_sets(
            Codec::H264,
            [fx::H264_HIGH_320X240_SPS, fx::H264_HIGH_320X240_PPS],
        )
        .unwrap();
        let mut p = Vec::new();
        segment::put_params(&mut p, Stamp::default(), &params);
        let (recs, _) = segment::read(&Bytes::from([&segment::MAGIC[..], &p].concat())).unwrap();
        let records = vec![
            recs[0].clone(),
            rec(Kind::Video, true, 1000, b"k1"),
            rec(Kind::Video, false, 1040, b"p1"),
            rec(Kind::Audio, false, 1050, b"a"),
            rec(Kind::Video, true, 1080, b"k2"),
            rec(Kind::Video, false, 1120, b"p2"),
            rec(Kind::Video, false, 1160, b"p3"),
        ];
        let run = run_to(&records, 1130).unwrap();
        let got: Vec<&[u8]> = run.units.iter().map(|u| &u.data[..]).collect();
        assert_eq!(got, vec![&b"k2"[..], b"p2"]);
        assert_eq!(run.params, params);
        let run = run_to(&records, 1079).unwrap();
        assert_eq!(run.units.len(), 2, "k1 and p1");
        assert!(run_to(&records, 999).is_none());
    }
}
