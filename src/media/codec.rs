//! What the H.264 and H.265 parsers share, below both of them: the codec families, the error
//! type, what a NAL unit is for forwarding, the bound on parameter sets, and the 16-bit
//! length framing of avcC/hvcC records. Pure; knows no camera, client or socket.

use super::nal::NalError;

/// Most parameter sets of one kind kept per camera. H.264 allows 32 SPSs and 256 PPSs, but
/// cameras use one or two; a stream that cycles through more is refused rather than grown.
pub const MAX_PARAMETER_SETS: usize = 16;

/// The video coding families a browser's `VideoDecoder` may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    H265,
}

impl Codec {
    /// The name used in the protocol (`"h264"`, `"h265"`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
        }
    }
}

/// Why parameters or an access unit cannot be used. The texts name the field, never any
/// camera detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VideoError {
    #[error(transparent)]
    Nal(#[from] NalError),
    #[error("NAL unit header is invalid (forbidden bit set or too short)")]
    BadNalHeader,
    #[error("no {0} among the parameter sets")]
    Missing(&'static str),
    #[error("more than {MAX_PARAMETER_SETS} parameter sets of one kind")]
    TooManyParameterSets,
    #[error("parameter set of {0} bytes does not fit a decoder configuration record")]
    ParameterSetTooLong(usize),
    #[error("invalid value in the sequence parameter set: {0}")]
    BadSps(&'static str),
    #[error("decoder configuration record is invalid: {0}")]
    BadRecord(&'static str),
    #[error("NAL lengths of {0} bytes are not supported (only 4)")]
    UnsupportedLengthSize(u8),
}

/// What one NAL unit is, as far as forwarding cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NalKind {
    /// VPS (H.265), SPS or PPS, with its NAL unit type.
    ParameterSet(u8),
    /// A coded slice; `key` when decoding can start at its picture (H.264 IDR; H.265 IRAP).
    Picture { key: bool },
    /// SEI, access unit delimiters, filler and anything else.
    Other,
}

/// Appends a 16-bit length and the unit, as the records store parameter sets.
pub(crate) fn push_with_len(out: &mut Vec<u8>, nal: &[u8]) -> Result<(), VideoError> {
    let len = u16::try_from(nal.len()).map_err(|_| VideoError::ParameterSetTooLong(nal.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(nal);
    Ok(())
}

/// Reads `count` units, each behind a 16-bit length, from `data` at `*pos`.
pub(crate) fn read_with_len<'a>(
    data: &'a [u8],
    pos: &mut usize,
    count: usize,
    out: &mut Vec<&'a [u8]>,
) -> Result<(), VideoError> {
    for _ in 0..count {
        let len = data
            .get(*pos..*pos + 2)
            .ok_or(VideoError::BadRecord("ends inside a parameter set length"))?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let nal = data
            .get(*pos + 2..*pos + 2 + len)
            .ok_or(VideoError::BadRecord("parameter set runs past the end"))?;
        if nal.is_empty() {
            return Err(VideoError::BadRecord("empty parameter set"));
        }
        if out.len() >= 3 * MAX_PARAMETER_SETS {
            return Err(VideoError::TooManyParameterSets);
        }
        out.push(nal);
        *pos += 2 + len;
    }
    Ok(())
}

/// Horizontal and vertical chroma subsampling factors (SubWidthC, SubHeightC; H.264 Table 6-1,
/// H.265 Table 6-1): the units in which cropping windows are counted.
pub(crate) fn chroma_units(chroma_format_idc: u32, separate_colour_plane: bool) -> (u64, u64) {
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    }
}
