//! H.265 syntax: NAL unit types, the sequence parameter set (profile/tier/level, chroma
//! format, bit depths, size after the conformance window), the PPS id, the codec string of
//! ISO/IEC 14496-15 Annex E and the hvcC record (8.3.3.1) written from and read into
//! VPS/SPS/PPS NAL units. Pure parsing; section numbers refer to ITU-T H.265.

use super::codec::{
    chroma_units, push_with_len, read_with_len, NalKind, VideoError, MAX_PARAMETER_SETS,
};
use super::nal::{rbsp, BitReader};

pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;
pub const NAL_AUD: u8 = 35;
pub const NAL_PREFIX_SEI: u8 = 39;
/// Intra random access point pictures (BLA, IDR, CRA and two reserved types), 7.4.2.2.
pub const IRAP_TYPES: std::ops::RangeInclusive<u8> = 16..=23;

/// Largest picture side accepted (in pixels); larger values only come from corrupt SPSs.
const MAX_SIDE: u32 = 16_888;

/// (nal_unit_type, nuh_layer_id) from the 2-byte NAL unit header.
pub fn nal_header(nal: &[u8]) -> Result<(u8, u8), VideoError> {
    match *nal {
        [a, b, ..] if a & 0x80 == 0 => Ok(((a >> 1) & 0x3f, ((a & 1) << 5) | (b >> 3))),
        _ => Err(VideoError::BadNalHeader),
    }
}

/// Types 0..=31 are coded slices, keys when IRAP. Units of enhancement layers (layer id
/// above 0) are not for a single-layer decoder and count as other.
pub fn classify(nal: &[u8]) -> Result<NalKind, VideoError> {
    let (t, layer) = nal_header(nal)?;
    Ok(match t {
        _ if layer != 0 => NalKind::Other,
        NAL_VPS | NAL_SPS | NAL_PPS => NalKind::ParameterSet(t),
        0..=31 => NalKind::Picture {
            key: IRAP_TYPES.contains(&t),
        },
        _ => NalKind::Other,
    })
}

/// The fields of an SPS that forwarding needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    pub max_sub_layers: u8,
    pub temporal_id_nesting: bool,
    pub general_profile_space: u8,
    pub general_tier_flag: bool,
    pub general_profile_idc: u8,
    /// general_profile_compatibility_flag[0..32], flag 0 in the most significant bit (stream
    /// order).
    pub general_profile_compatibility: u32,
    /// The 48 bits from general_progressive_source_flag on, as in the stream.
    pub general_constraint: [u8; 6],
    pub general_level_idc: u8,
    pub sps_id: u32,
    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    pub separate_colour_plane: bool,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
    /// Displayed size: luma samples less the conformance window.
    pub width: u32,
    pub height: u32,
}

impl Sps {
    /// Parses an SPS NAL unit (2-byte header included) up to the bit depths.
    pub fn parse(nal: &[u8]) -> Result<Self, VideoError> {
        if nal_header(nal)?.0 != NAL_SPS {
            return Err(VideoError::BadSps("not an SPS NAL unit"));
        }
        let data = rbsp(&nal[2..]);
        let mut r = BitReader::new(&data);
        r.bits(4, "sps_video_parameter_set_id")?;
        let max_sub_layers_minus1 = r.bits(3, "sps_max_sub_layers_minus1")? as u8;
        if max_sub_layers_minus1 > 6 {
            return Err(VideoError::BadSps("sps_max_sub_layers_minus1 above 6"));
        }
        let temporal_id_nesting = r.bit("sps_temporal_id_nesting_flag")?;
        // 7.3.3 profile_tier_level(1, sps_max_sub_layers_minus1).
        let general_profile_space = r.bits(2, "general_profile_space")? as u8;
        let general_tier_flag = r.bit("general_tier_flag")?;
        let general_profile_idc = r.bits(5, "general_profile_idc")? as u8;
        let general_profile_compatibility = r.bits(32, "general_profile_compatibility_flags")?;
        let mut general_constraint = [0u8; 6];
        for b in &mut general_constraint {
            *b = r.bits(8, "general constraint flags")? as u8;
        }
        let general_level_idc = r.bits(8, "general_level_idc")? as u8;
        let mut sub_layer_flags = Vec::with_capacity(usize::from(max_sub_layers_minus1));
        for _ in 0..max_sub_layers_minus1 {
            let profile = r.bit("sub_layer_profile_present_flag")?;
            let level = r.bit("sub_layer_level_present_flag")?;
            sub_layer_flags.push((profile, level));
        }
        if max_sub_layers_minus1 > 0 {
            r.skip(
                2 * (8 - usize::from(max_sub_layers_minus1)),
                "reserved_zero_2bits",
            )?;
        }
        for (profile, level) in sub_layer_flags {
            if profile {
                r.skip(88, "sub_layer profile")?;
            }
            if level {
                r.skip(8, "sub_layer_level_idc")?;
            }
        }
        let sps_id = r.ue("sps_seq_parameter_set_id")?;
        if sps_id > 15 {
            return Err(VideoError::BadSps("sps_seq_parameter_set_id above 15"));
        }
        let chroma_format_idc = r.ue("chroma_format_idc")?;
        if chroma_format_idc > 3 {
            return Err(VideoError::BadSps("chroma_format_idc above 3"));
        }
        let separate_colour_plane =
            chroma_format_idc == 3 && r.bit("separate_colour_plane_flag")?;
        let coded_w = r.ue("pic_width_in_luma_samples")?;
        let coded_h = r.ue("pic_height_in_luma_samples")?;
        let mut window = [0u64; 4]; // left, right, top, bottom
        if r.bit("conformance_window_flag")? {
            for w in &mut window {
                *w = u64::from(r.ue("conf_win_offset")?);
            }
        }
        let bit_depth_luma_minus8 = r.ue("bit_depth_luma_minus8")?;
        let bit_depth_chroma_minus8 = r.ue("bit_depth_chroma_minus8")?;
        if bit_depth_luma_minus8 > 8 || bit_depth_chroma_minus8 > 8 {
            return Err(VideoError::BadSps("bit depth above 16"));
        }
        // Table 6-1: window offsets are in chroma sample units.
        let (sub_width, sub_height) = chroma_units(chroma_format_idc, separate_colour_plane);
        let width = u64::from(coded_w).checked_sub(sub_width * (window[0] + window[1]));
        let height = u64::from(coded_h).checked_sub(sub_height * (window[2] + window[3]));
        let (width, height) = match (width, height) {
            (Some(w), Some(h)) if w > 0 && h > 0 => (w, h),
            _ => {
                return Err(VideoError::BadSps(
                    "conformance window larger than the picture",
                ))
            }
        };
        if width > u64::from(MAX_SIDE) || height > u64::from(MAX_SIDE) {
            return Err(VideoError::BadSps("picture larger than 16888 pixels"));
        }
        Ok(Sps {
            max_sub_layers: max_sub_layers_minus1 + 1,
            temporal_id_nesting,
            general_profile_space,
            general_tier_flag,
            general_profile_idc,
            general_profile_compatibility,
            general_constraint,
            general_level_idc,
            sps_id,
            // Checked above: at most 3 and 8.
            chroma_format_idc: chroma_format_idc as u8,
            separate_colour_plane,
            bit_depth_luma_minus8: bit_depth_luma_minus8 as u8,
            bit_depth_chroma_minus8: bit_depth_chroma_minus8 as u8,
            width: width as u32,
            height: height as u32,
        })
    }

    /// ISO/IEC 14496-15 E.3: `hvc1.[A|B|C]<profile_idc>.<compatibility flags, bit-reversed,
    /// hex>.<L|H><level_idc>[.<constraint byte hex>...]`, trailing zero constraint bytes left
    /// out. Hex in upper case, as for H.264 (e.g. `hvc1.1.6.L93.B0`).
    pub fn codec_string(&self) -> String {
        use std::fmt::Write;
        let space = match self.general_profile_space {
            1 => "A",
            2 => "B",
            3 => "C",
            _ => "",
        };
        let tier = if self.general_tier_flag { 'H' } else { 'L' };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{tier}{}",
            self.general_profile_idc,
            self.general_profile_compatibility.reverse_bits(),
            self.general_level_idc
        );
        let kept = self
            .general_constraint
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |last| last + 1);
        for b in &self.general_constraint[..kept] {
            // Writing to a String cannot fail.
            let _ = write!(s, ".{b:02X}");
        }
        s
    }
}

/// The pps_pic_parameter_set_id of a PPS NAL unit.
pub fn pps_id(nal: &[u8]) -> Result<u32, VideoError> {
    if nal_header(nal)?.0 != NAL_PPS {
        return Err(VideoError::BadSps("not a PPS NAL unit"));
    }
    let data = rbsp(&nal[2..]);
    let id = BitReader::new(&data).ue("pps_pic_parameter_set_id")?;
    if id > 63 {
        return Err(VideoError::BadSps("pps_pic_parameter_set_id above 63"));
    }
    Ok(id)
}

/// The HEVCDecoderConfigurationRecord for one VPS, one SPS and its PPSs, with 4-byte NAL
/// lengths, every array marked complete. The fields that need the VUI or PPS details
/// (min_spatial_segmentation_idc, parallelismType) and the frame rate are written as 0,
/// "unknown", which the record allows.
pub fn hvcc(vps: &[u8], sps: &[u8], pps: &[&[u8]]) -> Result<Vec<u8>, VideoError> {
    if nal_header(vps)?.0 != NAL_VPS {
        return Err(VideoError::Missing("VPS"));
    }
    let s = Sps::parse(sps)?;
    if pps.is_empty() {
        return Err(VideoError::Missing("PPS"));
    }
    if pps.len() > MAX_PARAMETER_SETS {
        return Err(VideoError::TooManyParameterSets);
    }
    let mut out = Vec::with_capacity(
        64 + vps.len() + sps.len() + pps.iter().map(|p| p.len() + 2).sum::<usize>(),
    );
    out.push(1); // configurationVersion
    out.push(
        (s.general_profile_space << 6)
            | (u8::from(s.general_tier_flag) << 5)
            | s.general_profile_idc,
    );
    out.extend_from_slice(&s.general_profile_compatibility.to_be_bytes());
    out.extend_from_slice(&s.general_constraint);
    out.push(s.general_level_idc);
    out.extend_from_slice(&[0xf0, 0x00]); // reserved, min_spatial_segmentation_idc = 0
    out.push(0xfc); // reserved, parallelismType = 0
    out.push(0xfc | s.chroma_format_idc);
    out.push(0xf8 | s.bit_depth_luma_minus8);
    out.push(0xf8 | s.bit_depth_chroma_minus8);
    out.extend_from_slice(&[0, 0]); // avgFrameRate unknown
                                    // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3.
    out.push((s.max_sub_layers << 3) | (u8::from(s.temporal_id_nesting) << 2) | 3);
    out.push(3); // numOfArrays: VPS, SPS, PPS
    for (kind, units) in [(NAL_VPS, &[vps][..]), (NAL_SPS, &[sps][..]), (NAL_PPS, pps)] {
        out.push(0x80 | kind); // array_completeness = 1
                               // At most MAX_PARAMETER_SETS, checked above.
        out.extend_from_slice(&(units.len() as u16).to_be_bytes());
        for unit in units {
            push_with_len(&mut out, unit)?;
        }
    }
    Ok(out)
}

/// Reads an hvcC record: its NAL length size and its parameter-set units (every array's
/// units, in record order).
pub fn parse_hvcc(record: &[u8]) -> Result<(u8, Vec<&[u8]>), VideoError> {
    if record.len() < 23 {
        return Err(VideoError::BadRecord("shorter than its fixed fields"));
    }
    if record[0] != 1 {
        return Err(VideoError::BadRecord("configurationVersion is not 1"));
    }
    let length_size = (record[21] & 3) + 1;
    let arrays = record[22];
    let mut pos = 23;
    let mut sets = Vec::new();
    for _ in 0..arrays {
        let count = record
            .get(pos + 1..pos + 3)
            .ok_or(VideoError::BadRecord("ends inside an array header"))?;
        let count = usize::from(u16::from_be_bytes([count[0], count[1]]));
        pos += 3;
        read_with_len(record, &mut pos, count, &mut sets)?;
    }
    Ok((length_size, sets))
}

#[cfg(test)]
#[path = "h265_tests.rs"]
mod tests;
