//! H.264 syntax: NAL unit types, the sequence parameter set (profile, level, chroma format,
//! size after cropping), the PPS id, the RFC 6381 codec string and the avcC record
//! (ISO/IEC 14496-15 5.3.3.1) written from and read into SPS/PPS NAL units.
//! Pure parsing; section numbers refer to ITU-T H.264.

use super::codec::{
    chroma_units, push_with_len, read_with_len, NalKind, VideoError, MAX_PARAMETER_SETS,
};
use super::nal::{rbsp, BitReader};

pub const NAL_SLICE: u8 = 1;
pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

/// Largest picture side accepted (in pixels); larger values only come from corrupt SPSs and
/// would overflow the size arithmetic.
const MAX_SIDE: u32 = 16_384;

/// The NAL unit type (low 5 bits of the header byte).
pub fn nal_type(nal: &[u8]) -> Result<u8, VideoError> {
    match nal.first() {
        Some(&h) if h & 0x80 == 0 => Ok(h & 0x1f),
        _ => Err(VideoError::BadNalHeader),
    }
}

/// Section 7.4.1.2: types 1..=5 are coded slices; only an IDR (5) lets decoding start.
pub fn classify(nal: &[u8]) -> Result<NalKind, VideoError> {
    Ok(match nal_type(nal)? {
        NAL_SPS | NAL_PPS => NalKind::ParameterSet(nal_type(nal)?),
        t @ 1..=5 => NalKind::Picture { key: t == NAL_IDR },
        _ => NalKind::Other,
    })
}

/// The fields of an SPS that forwarding needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    pub profile_idc: u8,
    /// constraint_set0..5 flags and the two reserved bits, as the byte in the stream.
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub sps_id: u32,
    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4 (1 for profiles without the field).
    pub chroma_format_idc: u8,
    pub separate_colour_plane: bool,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
    /// false for interlaced coding (field or MBAFF): the height counts two fields.
    pub frame_mbs_only: bool,
    /// Displayed size: coded macroblocks less the cropping rectangle.
    pub width: u32,
    pub height: u32,
}

/// Profiles whose SPS carries chroma format, bit depths and scaling matrices (7.3.2.1.1).
fn has_chroma_info(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

impl Sps {
    /// Parses an SPS NAL unit (header byte included) up to the cropping rectangle; the VUI
    /// that follows is not needed.
    pub fn parse(nal: &[u8]) -> Result<Self, VideoError> {
        if nal_type(nal)? != NAL_SPS {
            return Err(VideoError::BadSps("not an SPS NAL unit"));
        }
        let data = rbsp(&nal[1..]);
        let mut r = BitReader::new(&data);
        let profile_idc = r.bits(8, "profile_idc")? as u8;
        let constraint_flags = r.bits(8, "constraint flags")? as u8;
        let level_idc = r.bits(8, "level_idc")? as u8;
        let sps_id = r.ue("seq_parameter_set_id")?;
        if sps_id > 31 {
            return Err(VideoError::BadSps("seq_parameter_set_id above 31"));
        }
        let (mut chroma_format_idc, mut separate_colour_plane) = (1, false);
        let (mut bit_depth_luma_minus8, mut bit_depth_chroma_minus8) = (0, 0);
        if has_chroma_info(profile_idc) {
            chroma_format_idc = r.ue("chroma_format_idc")?;
            if chroma_format_idc > 3 {
                return Err(VideoError::BadSps("chroma_format_idc above 3"));
            }
            if chroma_format_idc == 3 {
                separate_colour_plane = r.bit("separate_colour_plane_flag")?;
            }
            bit_depth_luma_minus8 = r.ue("bit_depth_luma_minus8")?;
            bit_depth_chroma_minus8 = r.ue("bit_depth_chroma_minus8")?;
            if bit_depth_luma_minus8 > 6 || bit_depth_chroma_minus8 > 6 {
                return Err(VideoError::BadSps("bit depth above 14"));
            }
            r.bit("qpprime_y_zero_transform_bypass_flag")?;
            if r.bit("seq_scaling_matrix_present_flag")? {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.bit("seq_scaling_list_present_flag")? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let log2_max_frame_num_minus4 = r.ue("log2_max_frame_num_minus4")?;
        if log2_max_frame_num_minus4 > 12 {
            return Err(VideoError::BadSps("log2_max_frame_num_minus4 above 12"));
        }
        match r.ue("pic_order_cnt_type")? {
            0 => {
                r.ue("log2_max_pic_order_cnt_lsb_minus4")?;
            }
            1 => {
                r.bit("delta_pic_order_always_zero_flag")?;
                r.se("offset_for_non_ref_pic")?;
                r.se("offset_for_top_to_bottom_field")?;
                let cycle = r.ue("num_ref_frames_in_pic_order_cnt_cycle")?;
                if cycle > 255 {
                    return Err(VideoError::BadSps("num_ref_frames_in_pic_order_cnt_cycle"));
                }
                for _ in 0..cycle {
                    r.se("offset_for_ref_frame")?;
                }
            }
            2 => {}
            _ => return Err(VideoError::BadSps("pic_order_cnt_type above 2")),
        }
        r.ue("max_num_ref_frames")?;
        r.bit("gaps_in_frame_num_value_allowed_flag")?;
        let width_mbs = u64::from(r.ue("pic_width_in_mbs_minus1")?) + 1;
        let height_map_units = u64::from(r.ue("pic_height_in_map_units_minus1")?) + 1;
        let frame_mbs_only = r.bit("frame_mbs_only_flag")?;
        if !frame_mbs_only {
            r.bit("mb_adaptive_frame_field_flag")?;
        }
        r.bit("direct_8x8_inference_flag")?;
        let mut crop = [0u64; 4]; // left, right, top, bottom
        if r.bit("frame_cropping_flag")? {
            for c in &mut crop {
                *c = u64::from(r.ue("frame_crop_offset")?);
            }
        }
        // 7.4.2.1.1: crop units depend on the chroma subsampling and on field coding.
        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let (sub_width, sub_height) = chroma_units(chroma_format_idc, separate_colour_plane);
        let crop_x = sub_width * (crop[0] + crop[1]);
        let crop_y = sub_height * field_factor * (crop[2] + crop[3]);
        let coded_w = width_mbs * 16;
        let coded_h = height_map_units * 16 * field_factor;
        let (width, height) = match (coded_w.checked_sub(crop_x), coded_h.checked_sub(crop_y)) {
            (Some(w), Some(h)) if w > 0 && h > 0 => (w, h),
            _ => return Err(VideoError::BadSps("cropping larger than the picture")),
        };
        if width > u64::from(MAX_SIDE) || height > u64::from(MAX_SIDE) {
            return Err(VideoError::BadSps("picture larger than 16384 pixels"));
        }
        Ok(Sps {
            profile_idc,
            constraint_flags,
            level_idc,
            sps_id,
            // All checked above: at most 3 and 6.
            chroma_format_idc: chroma_format_idc as u8,
            separate_colour_plane,
            bit_depth_luma_minus8: bit_depth_luma_minus8 as u8,
            bit_depth_chroma_minus8: bit_depth_chroma_minus8 as u8,
            frame_mbs_only,
            width: width as u32,
            height: height as u32,
        })
    }

    /// `avc1.PPCCLL`: profile_idc, constraint byte and level_idc in upper-case hex (as Chrome
    /// and the WebCodecs registry print them; RFC 6381 accepts either case).
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02X}{:02X}{:02X}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// 7.3.2.1.1.1: reads past one scaling list; only the deltas are coded, so they must be
/// decoded to know where the list ends.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), VideoError> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se("delta_scale")?;
            if !(-128..=127).contains(&delta) {
                return Err(VideoError::BadSps("delta_scale outside -128..=127"));
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// The pic_parameter_set_id of a PPS NAL unit.
pub fn pps_id(nal: &[u8]) -> Result<u32, VideoError> {
    if nal_type(nal)? != NAL_PPS {
        return Err(VideoError::BadSps("not a PPS NAL unit"));
    }
    let data = rbsp(&nal[1..]);
    let id = BitReader::new(&data).ue("pic_parameter_set_id")?;
    if id > 255 {
        return Err(VideoError::BadSps("pic_parameter_set_id above 255"));
    }
    Ok(id)
}

/// The AVCDecoderConfigurationRecord for one SPS and its PPSs, with 4-byte NAL lengths
/// (`lengthSizeMinusOne = 3`). High profiles get the chroma/bit-depth extension, as FFmpeg
/// writes it.
pub fn avcc(sps: &[u8], pps: &[&[u8]]) -> Result<Vec<u8>, VideoError> {
    let parsed = Sps::parse(sps)?;
    if pps.is_empty() {
        return Err(VideoError::Missing("PPS"));
    }
    if pps.len() > MAX_PARAMETER_SETS {
        return Err(VideoError::TooManyParameterSets);
    }
    let mut out =
        Vec::with_capacity(16 + sps.len() + pps.iter().map(|p| p.len() + 2).sum::<usize>());
    out.extend_from_slice(&[
        1,
        parsed.profile_idc,
        parsed.constraint_flags,
        parsed.level_idc,
        0xfc | 3,
        0xe0 | 1,
    ]);
    push_with_len(&mut out, sps)?;
    // At most MAX_PARAMETER_SETS, checked above.
    out.push(pps.len() as u8);
    for p in pps {
        push_with_len(&mut out, p)?;
    }
    if !matches!(parsed.profile_idc, 66 | 77 | 88) {
        out.extend_from_slice(&[
            0xfc | parsed.chroma_format_idc,
            0xf8 | parsed.bit_depth_luma_minus8,
            0xf8 | parsed.bit_depth_chroma_minus8,
            0, // numOfSequenceParameterSetExt
        ]);
    }
    Ok(out)
}

/// Reads an avcC record: its NAL length size (1, 2 or 4) and its SPS and PPS units.
pub fn parse_avcc(record: &[u8]) -> Result<(u8, Vec<&[u8]>), VideoError> {
    let [version, _, _, _, length_byte, sps_byte, ..] = *record else {
        return Err(VideoError::BadRecord("shorter than its fixed fields"));
    };
    if version != 1 {
        return Err(VideoError::BadRecord("configurationVersion is not 1"));
    }
    let length_size = (length_byte & 3) + 1;
    let mut pos = 6;
    let mut sets = Vec::new();
    read_with_len(record, &mut pos, usize::from(sps_byte & 0x1f), &mut sets)?;
    let pps_count = *record
        .get(pos)
        .ok_or(VideoError::BadRecord("no PPS count"))?;
    pos += 1;
    read_with_len(record, &mut pos, usize::from(pps_count), &mut sets)?;
    Ok((length_size, sets))
}

#[cfg(test)]
#[path = "h264_tests.rs"]
mod tests;
