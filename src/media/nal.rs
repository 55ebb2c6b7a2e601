//! NAL units of H.264 and H.265: splitting access units in Annex B (start codes) or
//! length-prefixed (AVCC/HVCC, 4-byte lengths) form, converting between the two, removing
//! emulation-prevention bytes, and the exp-Golomb bit reader the parameter-set parsers use.
//! Pure byte work: nothing here knows a codec's syntax beyond the byte stream layers.

use std::borrow::Cow;

/// Size of the big-endian length in front of each NAL unit in length-prefixed access units.
/// Always 4 here: the avcC/hvcC records this crate writes say `lengthSizeMinusOne = 3`.
pub const LENGTH_SIZE: usize = 4;

/// How the NAL units of an access unit are delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NalFormat {
    /// `00 00 01` or `00 00 00 01` before each NAL unit (raw streams, RTSP through FFmpeg).
    AnnexB,
    /// A 4-byte big-endian length before each NAL unit (MP4, WebCodecs with a `description`).
    LengthPrefixed,
}

/// An access unit or parameter set that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NalError {
    #[error(
        "NAL unit length {len} at byte {at} runs past the end of the {total}-byte access unit"
    )]
    LengthOverrun { at: usize, len: usize, total: usize },
    #[error("{0} stray bytes at the end of a length-prefixed access unit")]
    TrailingBytes(usize),
    #[error("empty NAL unit at byte {0}")]
    Empty(usize),
    #[error("no start code in a {0}-byte Annex B access unit")]
    NoStartCode(usize),
    #[error("NAL unit of {0} bytes is too long for a 4-byte length")]
    TooLong(usize),
    #[error("bitstream ends early while reading {0}")]
    EndOfData(&'static str),
    #[error("exp-Golomb code longer than 32 bits while reading {0}")]
    BadExpGolomb(&'static str),
}

/// Iterator over the NAL units of one access unit (without start codes or lengths).
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    data: &'a [u8],
    pos: usize,
    format: NalFormat,
    /// An error to yield next (Annex B data without any start code).
    pending: Option<NalError>,
    /// Set after an error: the iterator is done.
    failed: bool,
}

/// The NAL units of `au`, in order. Annex B: bytes before the first start code are skipped,
/// empty units between two start codes are skipped, trailing zero bytes (the first byte of a
/// following 4-byte start code, or `trailing_zero_8bits`) are not part of a unit. After the
/// first error the iterator ends.
pub fn nal_units(format: NalFormat, au: &[u8]) -> NalUnits<'_> {
    let (pos, pending) = match format {
        NalFormat::AnnexB => match find_start_code(au, 0) {
            Some((_, after)) => (after, None),
            None if au.is_empty() => (0, None),
            None => (au.len(), Some(NalError::NoStartCode(au.len()))),
        },
        NalFormat::LengthPrefixed => (0, None),
    };
    NalUnits {
        data: au,
        pos,
        format,
        pending,
        failed: false,
    }
}

impl<'a> NalUnits<'a> {
    fn next_annexb(&mut self) -> Option<&'a [u8]> {
        while self.pos < self.data.len() {
            let start = self.pos;
            let (end, next) = match find_start_code(self.data, start) {
                Some((code_at, after)) => (code_at, after),
                None => (self.data.len(), self.data.len()),
            };
            self.pos = next;
            let mut unit = &self.data[start..end];
            while let [rest @ .., 0] = unit {
                unit = rest;
            }
            if !unit.is_empty() {
                return Some(unit);
            }
        }
        None
    }

    fn next_length_prefixed(&mut self) -> Option<Result<&'a [u8], NalError>> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            return None;
        }
        self.failed = true;
        let Some(len_bytes) = rest.get(..LENGTH_SIZE) else {
            return Some(Err(NalError::TrailingBytes(rest.len())));
        };
        let mut len = [0u8; LENGTH_SIZE];
        len.copy_from_slice(len_bytes);
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            return Some(Err(NalError::Empty(self.pos)));
        }
        let Some(unit) = rest.get(LENGTH_SIZE..LENGTH_SIZE.saturating_add(len)) else {
            return Some(Err(NalError::LengthOverrun {
                at: self.pos,
                len,
                total: self.data.len(),
            }));
        };
        self.failed = false;
        self.pos += LENGTH_SIZE + len;
        Some(Ok(unit))
    }
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = Result<&'a [u8], NalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if let Some(err) = self.pending.take() {
            self.failed = true;
            return Some(Err(err));
        }
        match self.format {
            NalFormat::AnnexB => self.next_annexb().map(Ok),
            NalFormat::LengthPrefixed => self.next_length_prefixed(),
        }
    }
}

/// The next `00 00 01` at or after `from`: (index of its first byte, index just after it).
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    // Step through candidate positions of the `01`; a window test per byte is fast enough
    // for camera bitrates and needs no dependency.
    while i + 3 <= data.len() {
        match data[i + 2] {
            1 if data[i] == 0 && data[i + 1] == 0 => return Some((i, i + 3)),
            // A non-zero third byte cannot be part of any start code that begins at i, i+1 or
            // i+2 unless it is the `01`: skip ahead by three.
            0 => i += 1,
            _ => i += 3,
        }
    }
    None
}

/// Appends `units` to `out` in `format`: Annex B with 4-byte start codes (what decoders and
/// FFmpeg's bitstream filters write), or 4-byte lengths.
pub fn write_units<'u>(
    format: NalFormat,
    units: impl IntoIterator<Item = &'u [u8]>,
    out: &mut Vec<u8>,
) -> Result<(), NalError> {
    for unit in units {
        match format {
            NalFormat::AnnexB => out.extend_from_slice(&[0, 0, 0, 1]),
            NalFormat::LengthPrefixed => {
                let len = u32::try_from(unit.len()).map_err(|_| NalError::TooLong(unit.len()))?;
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        out.extend_from_slice(unit);
    }
    Ok(())
}

/// Re-frames an access unit from one format to another.
pub fn convert(from: NalFormat, to: NalFormat, au: &[u8]) -> Result<Vec<u8>, NalError> {
    let units = nal_units(from, au).collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(au.len() + units.len() * LENGTH_SIZE);
    write_units(to, units, &mut out)?;
    Ok(out)
}

/// The RBSP of a NAL unit: the unit with every emulation-prevention byte (the `03` of
/// `00 00 03`) removed. Borrows when there is none, as in most parameter sets.
pub fn rbsp(nal: &[u8]) -> Cow<'_, [u8]> {
    let needs = nal.windows(3).any(|w| w == [0, 0, 3]);
    if !needs {
        return Cow::Borrowed(nal);
    }
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    Cow::Owned(out)
}

/// Reads an RBSP bit by bit, most significant bit first, with the exp-Golomb codes of
/// H.264/H.265 section 9.2. Every read fails cleanly at the end of the data.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, bit: 0 }
    }

    /// Bits not yet read.
    pub fn remaining(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.bit)
    }

    pub fn bit(&mut self, what: &'static str) -> Result<bool, NalError> {
        let byte = self
            .data
            .get(self.bit / 8)
            .ok_or(NalError::EndOfData(what))?;
        let value = (byte >> (7 - self.bit % 8)) & 1 == 1;
        self.bit += 1;
        Ok(value)
    }

    /// `n` bits (at most 32) as an unsigned number.
    pub fn bits(&mut self, n: u32, what: &'static str) -> Result<u32, NalError> {
        debug_assert!(n <= 32);
        if self.remaining() < n as usize {
            return Err(NalError::EndOfData(what));
        }
        let mut value = 0u64;
        for _ in 0..n {
            value = (value << 1) | u64::from(self.bit(what)?);
        }
        // At most 32 bits were shifted in.
        Ok(value as u32)
    }

    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<(), NalError> {
        if self.remaining() < n {
            return Err(NalError::EndOfData(what));
        }
        self.bit += n;
        Ok(())
    }

    /// ue(v): unsigned exp-Golomb. Codes of more than 31 leading zeros do not fit 32 bits and
    /// never occur in a valid stream: refused rather than wrapped.
    pub fn ue(&mut self, what: &'static str) -> Result<u32, NalError> {
        let mut zeros = 0u32;
        while !self.bit(what)? {
            zeros += 1;
            if zeros > 31 {
                return Err(NalError::BadExpGolomb(what));
            }
        }
        let suffix = self.bits(zeros, what)?;
        // 2^zeros - 1 + suffix <= 2^32 - 2 for zeros <= 31.
        Ok(((1u64 << zeros) - 1 + u64::from(suffix)) as u32)
    }

    /// se(v): signed exp-Golomb (1, -1, 2, -2, ... for codes 1, 2, 3, 4, ...).
    pub fn se(&mut self, what: &'static str) -> Result<i32, NalError> {
        let k = i64::from(self.ue(what)?);
        let value = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        // |value| <= 2^31 - 1 since k <= 2^32 - 2.
        Ok(value as i32)
    }
}

#[cfg(test)]
#[path = "nal_tests.rs"]
mod tests;
