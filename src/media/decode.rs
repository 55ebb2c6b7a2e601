//! FFmpeg video decoding shared by the ingest decoders: a live decoder for a camera's
//! length-prefixed H.264/H.265 access units (opened from their avcC/hvcC description), and
//! decoded frames as pictures libjpeg-turbo takes.

use std::sync::Arc;

use ffmpeg_next as ffmpeg;
use tracing::warn;

use super::frame::{subsamp_of, DecodedVideo, Picture};
use super::h26x::{Codec, VideoParams};

/// Why a decoder could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("no decoder: {0}")]
    Decoder(String),
}

/// Opens a live decoder for length-prefixed access units described by `params` (the video
/// feed's avcC/hvcC record, whose 4-byte lengths tell FFmpeg the units' framing). Live: each
/// picture out as soon as its unit is in (no frame threading, which holds frames back; the
/// low-delay flag on). Packets' pts come out on the frames they decode to, through reordering.
pub fn open_live(params: &VideoParams) -> Result<ffmpeg::decoder::Video, DecodeError> {
    let id = match params.codec {
        Codec::H264 => ffmpeg::codec::Id::H264,
        Codec::H265 => ffmpeg::codec::Id::HEVC,
    };
    let found = ffmpeg::decoder::find(id).ok_or(DecodeError::Decoder(format!("{id:?}")))?;
    let mut ctx = ffmpeg::codec::context::Context::new_with_codec(found);
    set_extradata(&mut ctx, &params.description)?;
    ctx.set_threading(ffmpeg::threading::Config {
        kind: ffmpeg::threading::Type::Slice,
        count: 1,
        ..Default::default()
    });
    ctx.set_flags(ffmpeg::codec::Flags::LOW_DELAY);
    ctx.decoder()
        .video()
        .map_err(|e| DecodeError::Decoder(e.to_string()))
}

/// Gives a fresh codec context its configuration record (avcC, hvcC, AAC's
/// AudioSpecificConfig) as FFmpeg's extradata.
pub fn set_extradata(
    ctx: &mut ffmpeg::codec::context::Context,
    description: &[u8],
) -> Result<(), DecodeError> {
    let buf = ffmpeg_copy(description);
    if buf.is_null() {
        return Err(DecodeError::Decoder("out of memory".into()));
    }
    // SAFETY: the context is fresh and owned by the caller; `buf` is FFmpeg's allocation,
    // freed with the context.
    unsafe {
        let c = ctx.as_mut_ptr();
        (*c).extradata = buf;
        (*c).extradata_size = description.len() as i32;
    }
    Ok(())
}

/// `data` copied into a buffer FFmpeg owns (av_mallocz, padded with zeros as FFmpeg
/// requires of extradata), for an `extradata` field whose owner frees it; null when out of
/// memory.
pub fn ffmpeg_copy(data: &[u8]) -> *mut u8 {
    let pad = ffmpeg::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
    // SAFETY: av_mallocz returns null or a zeroed buffer of the size asked, which the copy
    // stays within.
    unsafe {
        let buf = ffmpeg::ffi::av_mallocz(data.len() + pad) as *mut u8;
        if !buf.is_null() {
            std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len());
        }
        buf
    }
}

/// Converts pixel formats libjpeg-turbo cannot take (packed YUV from webcams, RGB from some
/// lavfi sources, 10-bit H.265) to yuv420p. Rebuilt when the input size or format changes.
pub struct Converter {
    key: (ffmpeg::format::Pixel, u32, u32),
    ctx: ffmpeg::software::scaling::Context,
}

// SAFETY: an SwsContext has no thread affinity (no thread-local state, no thread it must be
// freed on); it must only not be used from two threads at once, which `&mut self` on every
// use and the lack of `Sync` rule out. ffmpeg-next leaves it `!Send` only because it holds a
// raw pointer. The decode pool moves a camera's decoder, with its converter, between threads.
unsafe impl Send for Converter {}

/// Takes the decoded frame out of `decoded` (leaving an empty one) as a picture to publish.
pub fn to_picture(
    decoded: &mut ffmpeg::frame::Video,
    converter: &mut Option<Converter>,
) -> Option<(u32, u32, Picture)> {
    let (w, h, format) = (decoded.width(), decoded.height(), decoded.format());
    if w == 0 || h == 0 {
        return None;
    }
    if let Some((subsamp, full)) = subsamp_of(format) {
        let limited = !full && decoded.color_range() != ffmpeg::color::Range::JPEG;
        let frame = std::mem::replace(decoded, ffmpeg::frame::Video::empty());
        return Some((
            w,
            h,
            Picture::Yuv(Arc::new(DecodedVideo::new(frame, subsamp, limited))),
        ));
    }
    let key = (format, w, h);
    if converter.as_ref().is_none_or(|c| c.key != key) {
        let ctx = ffmpeg::software::scaling::Context::get(
            format,
            w,
            h,
            ffmpeg::format::Pixel::YUV420P,
            w,
            h,
            ffmpeg::software::scaling::Flags::FAST_BILINEAR,
        )
        .map_err(|e| warn!(error = %e, ?format, "cannot convert this pixel format"))
        .ok()?;
        *converter = Some(Converter { key, ctx });
    }
    let conv = converter.as_mut()?;
    let mut out = ffmpeg::frame::Video::empty();
    conv.ctx.run(decoded, &mut out).ok()?;
    // swscale writes limited-range yuv420p.
    Some((
        w,
        h,
        Picture::Yuv(Arc::new(DecodedVideo::new(
            out,
            turbojpeg::Subsamp::Sub2x2,
            true,
        ))),
    ))
}
