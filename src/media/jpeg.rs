//! Pure JPEG work with libjpeg-turbo: YUV planes to JPEG (range fix and downscale included),
//! JPEG-to-JPEG transcode for MJPEG sources, and reading a JPEG's size and quality.
//!
//! Nothing here does I/O or reads a clock, so everything is unit-tested with synthetic planes.

use std::cell::RefCell;

use bytes::Bytes;
use turbojpeg::{Compressor, Decompressor, Subsamp, YuvImage, YuvPlanesImage};

/// Errors from libjpeg-turbo or from a picture it cannot take.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("libjpeg-turbo: {0}")]
    Turbo(#[from] turbojpeg::Error),
    #[error("unsupported picture: {0}")]
    Unsupported(String),
}

/// An encoded JPEG and what it shows.
#[derive(Clone)]
pub struct Jpeg {
    pub data: Bytes,
    pub width: u32,
    pub height: u32,
    pub quality: u8,
}

impl std::fmt::Debug for Jpeg {
    // The payload is left out on purpose: frames are logged, bytes are not.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jpeg")
            .field("bytes", &self.data.len())
            .field("width", &self.width)
            .field("height", &self.height)
            .field("quality", &self.quality)
            .finish()
    }
}

/// Borrowed planar YUV picture, as a decoder hands it out (strides may exceed widths).
#[derive(Debug, Clone, Copy)]
pub struct YuvPlanes<'a> {
    pub planes: [&'a [u8]; 3],
    pub strides: [usize; 3],
    pub width: usize,
    pub height: usize,
    pub subsamp: Subsamp,
    /// Limited ("TV", 16-235) range, as H.264 gives: expanded to JPEG's full range on encode.
    pub limited_range: bool,
}

thread_local! {
    // One compressor and scratch planes per blocking thread: no allocation per frame once warm.
    static COMPRESSOR: RefCell<Option<Compressor>> = const { RefCell::new(None) };
    static SCRATCH: RefCell<[Vec<u8>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

fn with_compressor<R>(
    f: impl FnOnce(&mut Compressor) -> Result<R, EncodeError>,
) -> Result<R, EncodeError> {
    COMPRESSOR.with(|c| {
        let mut slot = c.borrow_mut();
        if slot.is_none() {
            *slot = Some(Compressor::new()?);
        }
        match slot.as_mut() {
            Some(comp) => f(comp),
            None => Err(EncodeError::Unsupported("no compressor".into())),
        }
    })
}

/// Chroma block size (horizontal, vertical) of a subsampling.
fn chroma_div(subsamp: Subsamp) -> Option<(usize, usize)> {
    match subsamp {
        Subsamp::Sub2x2 => Some((2, 2)),
        Subsamp::Sub2x1 => Some((2, 1)),
        Subsamp::None => Some((1, 1)),
        _ => None,
    }
}

/// Limited-range ("studio swing") to full-range expansion, as JFIF wants: exact integer forms
/// of `round((v - 16) * 255 / 219)` for luma and `round((v - 128) * 255 / 224 + 128)` for
/// chroma, clamped (the tests check all 256 inputs against the float definitions). A
/// multiply-and-shift lets the compiler vectorize the per-pixel loop; a table lookup would
/// not (it was 3x slower on a 720p plane).
#[derive(Debug, Clone, Copy)]
enum Expand {
    Luma,
    Chroma,
}

impl Expand {
    #[inline(always)]
    fn apply(self, v: u8) -> u8 {
        match self {
            Expand::Luma => ((u32::from(v.saturating_sub(16)) * 2385 + 986) >> 11).min(255) as u8,
            Expand::Chroma => {
                ((((i32::from(v) - 128) * 4663 + 2064) >> 12) + 128).clamp(0, 255) as u8
            }
        }
    }
}

/// Maps `row` into `out` through `expand` (a plain copy when `None`). One loop per variant so
/// each one vectorizes.
#[inline(always)]
fn map_row(out: &mut [u8], row: &[u8], expand: Option<Expand>) {
    match expand {
        None => out.copy_from_slice(row),
        Some(Expand::Luma) => out
            .iter_mut()
            .zip(row)
            .for_each(|(o, &v)| *o = Expand::Luma.apply(v)),
        Some(Expand::Chroma) => out
            .iter_mut()
            .zip(row)
            .for_each(|(o, &v)| *o = Expand::Chroma.apply(v)),
    }
}

/// Copies one plane into `dst` (tightly packed, `dst_w` x `dst_h`), averaging `factor` x
/// `factor` blocks and expanding limited range when asked.
#[allow(clippy::too_many_arguments)]
fn resample_plane(
    src: &[u8],
    stride: usize,
    src_w: usize,
    src_h: usize,
    dst: &mut Vec<u8>,
    dst_w: usize,
    dst_h: usize,
    factor: usize,
    expand: Option<Expand>,
) {
    dst.clear();
    dst.resize(dst_w * dst_h, 0);
    if factor == 1 {
        // dst may be larger than src by libjpeg-turbo's padding: repeat the last column/row.
        let copy_w = dst_w.min(src_w);
        for y in 0..dst_h {
            let sy = y.min(src_h - 1);
            let row = &src[sy * stride..sy * stride + copy_w];
            let out = &mut dst[y * dst_w..(y + 1) * dst_w];
            map_row(&mut out[..copy_w], row, expand);
            let last = out[copy_w - 1];
            out[copy_w..].iter_mut().for_each(|o| *o = last);
        }
        return;
    }
    // Box filter. Rows and columns past the source edge repeat the last one, so odd sizes work.
    let mut acc = vec![0u32; dst_w];
    for y in 0..dst_h {
        acc.iter_mut().for_each(|a| *a = 0);
        for dy in 0..factor {
            let sy = (y * factor + dy).min(src_h - 1);
            let row = &src[sy * stride..sy * stride + src_w];
            if src_w == dst_w * factor {
                for (a, chunk) in acc.iter_mut().zip(row.chunks_exact(factor)) {
                    *a += chunk.iter().map(|&v| v as u32).sum::<u32>();
                }
            } else {
                for (x, a) in acc.iter_mut().enumerate() {
                    for dx in 0..factor {
                        *a += row[(x * factor + dx).min(src_w - 1)] as u32;
                    }
                }
            }
        }
        let n = (factor * factor) as u32;
        let out = &mut dst[y * dst_w..(y + 1) * dst_w];
        for (o, a) in out.iter_mut().zip(&acc) {
            let v = ((a + n / 2) / n) as u8;
            *o = match expand {
                Some(e) => e.apply(v),
                None => v,
            };
        }
    }
}

/// Output size of a picture downscaled by `scale` (rounded up, at least 1).
pub fn scaled_size(width: usize, height: usize, scale: u8) -> (usize, usize) {
    let s = scale.max(1) as usize;
    (width.div_ceil(s).max(1), height.div_ceil(s).max(1))
}

/// Encodes YUV planes at `quality`, downscaled by `scale` (1, 2 or 4). Full-range pictures at
/// full size go straight from the decoder's planes to libjpeg-turbo with no copy.
pub fn encode_planes(p: &YuvPlanes<'_>, quality: u8, scale: u8) -> Result<Jpeg, EncodeError> {
    let (cdx, cdy) = chroma_div(p.subsamp)
        .ok_or_else(|| EncodeError::Unsupported(format!("subsampling {:?}", p.subsamp)))?;
    if p.width == 0 || p.height == 0 {
        return Err(EncodeError::Unsupported("empty picture".into()));
    }
    let quality = quality.clamp(1, 100);
    let (out_w, out_h) = scaled_size(p.width, p.height, scale);
    let src_cw = p.width.div_ceil(cdx);
    let src_ch = p.height.div_ceil(cdy);
    for (i, (w, h)) in [(p.width, p.height), (src_cw, src_ch), (src_cw, src_ch)]
        .into_iter()
        .enumerate()
    {
        if p.strides[i] < w || p.planes[i].len() < p.strides[i] * (h - 1) + w {
            return Err(EncodeError::Unsupported(format!("plane {i} is too small")));
        }
    }
    // libjpeg-turbo reads luma padded to whole chroma blocks (even sizes for 4:2:0).
    let (pad_w, pad_h) = (
        p.width.next_multiple_of(cdx),
        p.height.next_multiple_of(cdy),
    );
    let direct_ok =
        p.strides[0] >= pad_w && p.planes[0].len() >= p.strides[0] * (pad_h - 1) + pad_w;
    let data = if !p.limited_range && scale <= 1 && direct_ok {
        let image = YuvPlanesImage {
            y_plane: p.planes[0],
            u_plane: p.planes[1],
            v_plane: p.planes[2],
            width: p.width,
            height: p.height,
            y_stride: p.strides[0],
            u_stride: p.strides[1],
            v_stride: p.strides[2],
            subsamp: p.subsamp,
        };
        with_compressor(|c| {
            c.set_quality(quality as i32)?;
            Ok(c.compress_yuv_planes_to_vec(&image)?)
        })?
    } else {
        let factor = scale.max(1) as usize;
        let (out_pw, out_ph) = (out_w.next_multiple_of(cdx), out_h.next_multiple_of(cdy));
        let out_cw = out_w.div_ceil(cdx);
        let out_ch = out_h.div_ceil(cdy);
        let (luma, chroma) = if p.limited_range {
            (Some(Expand::Luma), Some(Expand::Chroma))
        } else {
            (None, None)
        };
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let [y, u, v] = &mut *s;
            resample_plane(
                p.planes[0],
                p.strides[0],
                p.width,
                p.height,
                y,
                out_pw,
                out_ph,
                factor,
                luma,
            );
            resample_plane(
                p.planes[1],
                p.strides[1],
                src_cw,
                src_ch,
                u,
                out_cw,
                out_ch,
                factor,
                chroma,
            );
            resample_plane(
                p.planes[2],
                p.strides[2],
                src_cw,
                src_ch,
                v,
                out_cw,
                out_ch,
                factor,
                chroma,
            );
            let image = YuvPlanesImage {
                y_plane: &y[..],
                u_plane: &u[..],
                v_plane: &v[..],
                width: out_w,
                height: out_h,
                y_stride: out_pw,
                u_stride: out_cw,
                v_stride: out_cw,
                subsamp: p.subsamp,
            };
            with_compressor(|c| {
                c.set_quality(quality as i32)?;
                Ok(c.compress_yuv_planes_to_vec(&image)?)
            })
        })?
    };
    Ok(Jpeg {
        data: Bytes::from(data),
        width: out_w as u32,
        height: out_h as u32,
        quality,
    })
}

/// Width and height from a JPEG header.
pub fn jpeg_size(data: &[u8]) -> Result<(u32, u32), EncodeError> {
    let h = turbojpeg::read_header(data)?;
    Ok((h.width as u32, h.height as u32))
}

/// Why a source JPEG was refused before publishing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JpegInvalid {
    #[error("no SOI marker at the start")]
    NoSoi,
    #[error("marker segment at byte {0} is cut short or malformed")]
    BadSegment(usize),
    #[error("no scan (SOS) before the data ended")]
    NoScan,
    #[error("the scan data is cut short: no EOI marker")]
    Truncated,
    #[error("{0} bytes after the EOI marker")]
    TrailingData(usize),
    #[error("the header does not decode: {0}")]
    Header(String),
}

/// Checks a JPEG from a source before it is published, without decoding the picture (too
/// costly per frame): SOI first, every marker segment whole up to the scan, the entropy-coded
/// data running to an EOI that ends the data (only padding bytes may follow), and a header
/// libjpeg-turbo reads. Catches the usual damage of MJPEG cameras: frames cut short by a
/// dropped connection or a full buffer. Returns the picture's size.
pub fn validate_jpeg(data: &[u8]) -> Result<(u32, u32), JpegInvalid> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return Err(JpegInvalid::NoSoi);
    }
    let mut i = 2;
    let mut scanned = false;
    let eoi_end = loop {
        // A marker: 0xFF, any number of 0xFF fill bytes, then the marker code.
        if data.get(i) != Some(&0xFF) {
            return Err(if scanned {
                JpegInvalid::Truncated
            } else {
                JpegInvalid::BadSegment(i)
            });
        }
        while data.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        let Some(&marker) = data.get(i + 1) else {
            return Err(JpegInvalid::Truncated);
        };
        match marker {
            0xD9 if scanned => break i + 2,
            0xD9 => return Err(JpegInvalid::NoScan),
            0x01 | 0xD0..=0xD7 => {
                i += 2;
                continue;
            }
            0x00 | 0xD8 => return Err(JpegInvalid::BadSegment(i)),
            _ => {}
        }
        let len = match data.get(i + 2..i + 4) {
            Some(b) => usize::from(u16::from_be_bytes([b[0], b[1]])),
            None => return Err(JpegInvalid::BadSegment(i)),
        };
        if len < 2 || i + 2 + len > data.len() {
            return Err(JpegInvalid::BadSegment(i));
        }
        i += 2 + len;
        if marker == 0xDA {
            scanned = true;
            // Entropy-coded data: 0xFF is followed by 0x00 (a stuffed byte) or a restart
            // marker inside it; any other marker ends it.
            loop {
                let Some(off) = data[i..].iter().position(|&b| b == 0xFF) else {
                    return Err(JpegInvalid::Truncated);
                };
                i += off;
                match data.get(i + 1) {
                    None => return Err(JpegInvalid::Truncated),
                    Some(0x00) | Some(0xD0..=0xD7) => i += 2,
                    Some(0xFF) => i += 1,
                    Some(_) => break,
                }
            }
        }
    };
    // Some cameras pad frames (zeros, a line break before the multipart boundary).
    let rest = &data[eoi_end..];
    if !rest
        .iter()
        .all(|b| matches!(b, 0x00 | b'\r' | b'\n' | b' '))
    {
        return Err(JpegInvalid::TrailingData(rest.len()));
    }
    let h = turbojpeg::read_header(data).map_err(|e| JpegInvalid::Header(e.to_string()))?;
    if h.width == 0 || h.height == 0 {
        return Err(JpegInvalid::Header("zero-sized picture".into()));
    }
    Ok((h.width as u32, h.height as u32))
}

/// Re-encodes a JPEG at `quality`, downscaled by `scale`, staying in YUV (libjpeg-turbo's
/// scaled IDCT does the downscale almost for free).
pub fn transcode_jpeg(data: &[u8], quality: u8, scale: u8) -> Result<Jpeg, EncodeError> {
    let mut d = Decompressor::new()?;
    let header = d.read_header(data)?;
    let factor = turbojpeg::ScalingFactor::new(1, scale.max(1) as usize);
    d.set_scaling_factor(factor)?;
    let scaled = header.scaled(factor);
    let align = 4;
    let len = turbojpeg::yuv_pixels_len(scaled.width, align, scaled.height, header.subsamp)?;
    let mut pixels = vec![0u8; len];
    d.decompress_to_yuv(
        data,
        YuvImage {
            pixels: &mut pixels[..],
            width: scaled.width,
            align,
            height: scaled.height,
            subsamp: header.subsamp,
        },
    )?;
    let quality = quality.clamp(1, 100);
    let out = with_compressor(|c| {
        c.set_quality(quality as i32)?;
        Ok(c.compress_yuv_to_vec(YuvImage {
            pixels: &pixels[..],
            width: scaled.width,
            align,
            height: scaled.height,
            subsamp: header.subsamp,
        })?)
    })?;
    Ok(Jpeg {
        data: Bytes::from(out),
        width: scaled.width as u32,
        height: scaled.height as u32,
        quality,
    })
}

/// IJG standard luminance quantization table (quality 50), in zigzag order as stored in DQT.
const STD_LUMA_QT: [u16; 64] = [
    16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40, 26, 24, 22, 22, 24, 49, 35, 37,
    29, 40, 58, 51, 61, 60, 57, 51, 56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80, 109, 81,
    87, 95, 98, 103, 104, 103, 62, 77, 113, 121, 112, 100, 120, 92, 101, 103, 99,
];

/// Estimates the IJG quality (1..100) a JPEG was made with, from its first luminance
/// quantization table. `None` when the data has no readable DQT before the scan.
pub fn estimate_quality(data: &[u8]) -> Option<u8> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return None;
    }
    let mut i = 2;
    while i + 4 <= data.len() {
        if data[i] != 0xFF {
            return None;
        }
        let marker = data[i + 1];
        if marker == 0xD8 || (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            i += 2;
            continue;
        }
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        if marker == 0xDA || len < 2 {
            return None;
        }
        let seg = data.get(i + 4..i + 2 + len)?;
        if marker == 0xDB {
            let mut j = 0;
            while j < seg.len() {
                let pq = seg[j] >> 4;
                let tq = seg[j] & 0x0F;
                let size = if pq == 0 { 64 } else { 128 };
                let table = seg.get(j + 1..j + 1 + size)?;
                if tq == 0 {
                    let sum: u32 = if pq == 0 {
                        table.iter().map(|&v| v as u32).sum()
                    } else {
                        table
                            .chunks_exact(2)
                            .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
                            .sum()
                    };
                    let std: u32 = STD_LUMA_QT.iter().map(|&v| v as u32).sum();
                    let scale = sum as f64 * 100.0 / std as f64;
                    let q = if scale <= 100.0 {
                        (200.0 - scale) / 2.0
                    } else {
                        5000.0 / scale
                    };
                    return Some(q.round().clamp(1.0, 100.0) as u8);
                }
                j += 1 + size;
            }
        }
        i += 2 + len;
    }
    None
}

#[cfg(test)]
#[path = "jpeg_tests.rs"]
mod tests;
