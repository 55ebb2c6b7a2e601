//! The compressed video of H.264 and H.265 cameras, codec-neutral: which NAL units are
//! parameter sets and which start a picture, what an access unit carries (keyframe or not,
//! parameter sets), the parameters a browser's WebCodecs decoder needs (codec string, size,
//! avcC/hvcC `description`) built from the parameter sets or from FFmpeg's extradata.
//! Pure: no I/O, no clock; nothing here knows cameras, clients or sockets.

use bytes::Bytes;

use super::nal::{nal_units, write_units, NalFormat};
use super::{h264, h265};

pub use super::codec::{Codec, NalKind, VideoError, MAX_PARAMETER_SETS};

/// Classifies a NAL unit (without start code or length).
pub fn classify(codec: Codec, nal: &[u8]) -> Result<NalKind, VideoError> {
    match codec {
        Codec::H264 => h264::classify(nal),
        Codec::H265 => h265::classify(nal),
    }
}

/// What an access unit carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuInfo<'a> {
    /// Its picture starts a GOP: decoding can begin here (with the parameter sets).
    pub key: bool,
    /// It holds at least one coded slice.
    pub has_picture: bool,
    /// The parameter sets found before its first slice, in stream order.
    pub parameter_sets: Vec<&'a [u8]>,
}

/// Reads the NAL headers of an access unit up to its first slice: whether it is a keyframe
/// (by the first slice's type: a recovery-point SEI does not make one) and which parameter
/// sets it carries. Stops at the first slice: in length-prefixed form a 100 KB picture costs
/// a few header reads; Annex B is scanned for start codes to the end of that slice. A PPS
/// placed after the first slice (allowed, never seen from cameras) is not picked up.
pub fn inspect(codec: Codec, format: NalFormat, au: &[u8]) -> Result<AuInfo<'_>, VideoError> {
    let mut info = AuInfo {
        key: false,
        has_picture: false,
        parameter_sets: Vec::new(),
    };
    for nal in nal_units(format, au) {
        let nal = nal?;
        match classify(codec, nal)? {
            NalKind::ParameterSet(_) => {
                if info.parameter_sets.len() >= 3 * MAX_PARAMETER_SETS {
                    return Err(VideoError::TooManyParameterSets);
                }
                info.parameter_sets.push(nal);
            }
            NalKind::Picture { key } => {
                info.key = key;
                info.has_picture = true;
                break;
            }
            NalKind::Other => {}
        }
    }
    Ok(info)
}

/// The parameters a browser decoder is configured with, built from one set of VPS/SPS/PPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoParams {
    pub codec: Codec,
    /// RFC 6381 / WebCodecs codec string: `avc1.PPCCLL` or `hvc1.…` (hex digits upper case).
    pub codec_string: String,
    /// Displayed size, after cropping.
    pub width: u32,
    pub height: u32,
    /// AVCDecoderConfigurationRecord (avcC) or HEVCDecoderConfigurationRecord (hvcC), with
    /// 4-byte NAL lengths: the WebCodecs `description` for length-prefixed access units.
    pub description: Bytes,
    /// The parameter sets in decoding order (VPS, SPS, PPSs), each a NAL unit without start
    /// code: what a keyframe needs in band when the client takes Annex B.
    pub parameter_sets: Vec<Bytes>,
}

impl VideoParams {
    /// Parameters from parameter-set NAL units (any order; non-parameter-set units and
    /// duplicates are ignored; for a kind given more than once with different content, the
    /// last SPS/VPS wins and PPSs are kept by id).
    pub fn from_parameter_sets<'s>(
        codec: Codec,
        sets: impl IntoIterator<Item = &'s [u8]>,
    ) -> Result<Self, VideoError> {
        let mut tracked = ParameterSets::new(codec);
        tracked.update(sets)?;
        tracked.params()
    }

    /// Parameters from FFmpeg's `extradata` for the stream: an avcC/hvcC record (MP4 and
    /// similar; starts with version 1) or Annex B parameter sets (raw streams, RTSP).
    pub fn from_extradata(codec: Codec, extradata: &[u8]) -> Result<Self, VideoError> {
        let (_, sets) = extradata_parameter_sets(codec, extradata)?;
        Self::from_parameter_sets(codec, sets)
    }

    /// The parameter sets framed as `format`, to put in front of a keyframe that lacks them.
    pub fn parameter_sets_framed(&self, format: NalFormat) -> Result<Vec<u8>, VideoError> {
        let mut out = Vec::new();
        write_units(format, self.parameter_sets.iter().map(|s| &s[..]), &mut out)?;
        Ok(out)
    }
}

/// The NAL format of the stream's packets and the parameter-set NAL units in its extradata.
/// Annex B extradata means Annex B packets; a record means length-prefixed packets, and only
/// 4-byte lengths are accepted (the only size MP4 writers use in practice).
pub fn extradata_parameter_sets(
    codec: Codec,
    extradata: &[u8],
) -> Result<(NalFormat, Vec<&[u8]>), VideoError> {
    if extradata.starts_with(&[0, 0, 1]) || extradata.starts_with(&[0, 0, 0, 1]) {
        let sets = nal_units(NalFormat::AnnexB, extradata).collect::<Result<Vec<_>, _>>()?;
        return Ok((NalFormat::AnnexB, sets));
    }
    let (length_size, sets) = match codec {
        Codec::H264 => h264::parse_avcc(extradata)?,
        Codec::H265 => h265::parse_hvcc(extradata)?,
    };
    if length_size != 4 {
        return Err(VideoError::UnsupportedLengthSize(length_size));
    }
    Ok((NalFormat::LengthPrefixed, sets))
}

/// The current parameter sets of one stream, updated from access units as they pass: an
/// SPS (or VPS) replaces the previous one, a PPS replaces the one with its id. Bounded by
/// [`MAX_PARAMETER_SETS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterSets {
    codec: Codec,
    vps: Option<Bytes>,
    sps: Option<Bytes>,
    /// (pps_id, NAL unit), in order of arrival.
    pps: Vec<(u32, Bytes)>,
}

impl ParameterSets {
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            vps: None,
            sps: None,
            pps: Vec::new(),
        }
    }

    /// Takes in parameter-set NAL units; returns whether anything changed. Units of other
    /// kinds are ignored. On error nothing is changed.
    pub fn update<'s>(
        &mut self,
        sets: impl IntoIterator<Item = &'s [u8]>,
    ) -> Result<bool, VideoError> {
        let mut next = self.clone();
        for nal in sets {
            let NalKind::ParameterSet(kind) = classify(self.codec, nal)? else {
                continue;
            };
            let (is_vps, is_sps) = match self.codec {
                Codec::H264 => (false, kind == h264::NAL_SPS),
                Codec::H265 => (kind == h265::NAL_VPS, kind == h265::NAL_SPS),
            };
            if is_vps {
                next.vps = Some(Bytes::copy_from_slice(nal));
            } else if is_sps {
                next.sps = Some(Bytes::copy_from_slice(nal));
            } else {
                let id = match self.codec {
                    Codec::H264 => h264::pps_id(nal)?,
                    Codec::H265 => h265::pps_id(nal)?,
                };
                let count = next.pps.len();
                match next.pps.iter_mut().find(|(have, _)| *have == id) {
                    Some(slot) => slot.1 = Bytes::copy_from_slice(nal),
                    None if count >= MAX_PARAMETER_SETS => {
                        return Err(VideoError::TooManyParameterSets)
                    }
                    None => next.pps.push((id, Bytes::copy_from_slice(nal))),
                }
            }
        }
        let changed = next != *self;
        *self = next;
        Ok(changed)
    }

    /// Whether every kind the codec needs is present.
    pub fn is_complete(&self) -> bool {
        self.sps.is_some()
            && !self.pps.is_empty()
            && (self.codec == Codec::H264 || self.vps.is_some())
    }

    /// The decoder parameters from the current sets.
    pub fn params(&self) -> Result<VideoParams, VideoError> {
        let sps = self.sps.as_ref().ok_or(VideoError::Missing("SPS"))?;
        if self.pps.is_empty() {
            return Err(VideoError::Missing("PPS"));
        }
        let pps: Vec<&[u8]> = self.pps.iter().map(|(_, p)| &p[..]).collect();
        let (codec_string, width, height, description) = match self.codec {
            Codec::H264 => {
                let parsed = h264::Sps::parse(sps)?;
                let record = h264::avcc(sps, &pps)?;
                (parsed.codec_string(), parsed.width, parsed.height, record)
            }
            Codec::H265 => {
                let vps = self.vps.as_ref().ok_or(VideoError::Missing("VPS"))?;
                let parsed = h265::Sps::parse(sps)?;
                let record = h265::hvcc(vps, sps, &pps)?;
                (parsed.codec_string(), parsed.width, parsed.height, record)
            }
        };
        let parameter_sets = self
            .vps
            .iter()
            .chain(std::iter::once(sps))
            .chain(self.pps.iter().map(|(_, p)| p))
            .cloned()
            .collect();
        Ok(VideoParams {
            codec: self.codec,
            codec_string,
            width,
            height,
            description: Bytes::from(description),
            parameter_sets,
        })
    }
}

/// Test-only: real bitstreams (parameter sets and small pictures) made once with the ffmpeg
/// CLI, shared by the tests of nal, h264, h265, h26x and gop.
#[cfg(test)]
#[path = "h26x_fixtures.rs"]
pub(crate) mod fixtures;

#[cfg(test)]
#[path = "h26x_tests.rs"]
mod tests;
