//! FFmpeg video decoding shared by the ingest decoder and cold snapshots: decoded frames as
//! pictures libjpeg-turbo takes, and the newest picture of a whole GOP decoded at once.

use std::sync::Arc;

use bytes::Bytes;
use ffmpeg_next as ffmpeg;
use tracing::warn;

use super::frame::{subsamp_of, DecodedVideo, Picture};
use super::h26x::Codec;

/// Why a GOP could not be decoded to a picture.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("no decoder: {0}")]
    Decoder(String),
    #[error("the GOP decoded to no picture")]
    NoPicture,
}

/// Decodes a whole GOP (length-prefixed access units, keyframe first, with the avcC/hvcC
/// `description`) and returns its newest picture. Blocking: run it off the async workers.
/// Two frame threads: a batch of frames, unlike live decoding, gains from them.
pub fn decode_newest(
    codec: Codec,
    description: &[u8],
    units: &[Bytes],
) -> Result<(u32, u32, Picture), DecodeError> {
    let id = match codec {
        Codec::H264 => ffmpeg::codec::Id::H264,
        Codec::H265 => ffmpeg::codec::Id::HEVC,
    };
    let bad = |e: ffmpeg::Error| DecodeError::Decoder(e.to_string());
    let found = ffmpeg::decoder::find(id).ok_or(DecodeError::Decoder(format!("{id:?}")))?;
    let mut ctx = ffmpeg::codec::context::Context::new_with_codec(found);
    // SAFETY: the context is fresh and owned here; extradata is allocated with av_mallocz and
    // padded as FFmpeg requires, and freed with the context.
    unsafe {
        let c = ctx.as_mut_ptr();
        let pad = ffmpeg::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
        let buf = ffmpeg::ffi::av_mallocz(description.len() + pad) as *mut u8;
        if buf.is_null() {
            return Err(DecodeError::Decoder("out of memory".into()));
        }
        std::ptr::copy_nonoverlapping(description.as_ptr(), buf, description.len());
        (*c).extradata = buf;
        (*c).extradata_size = description.len() as i32;
    }
    ctx.set_threading(ffmpeg::threading::Config {
        kind: ffmpeg::threading::Type::Frame,
        count: 2,
        ..Default::default()
    });
    let mut dec = ctx.decoder().video().map_err(bad)?;
    let mut frame = ffmpeg::frame::Video::empty();
    let mut newest = None;
    let mut take = |dec: &mut ffmpeg::decoder::Video, newest: &mut Option<ffmpeg::frame::Video>| {
        while dec.receive_frame(&mut frame).is_ok() {
            *newest = Some(std::mem::replace(&mut frame, ffmpeg::frame::Video::empty()));
        }
    };
    for unit in units {
        let packet = ffmpeg::Packet::copy(unit);
        if dec.send_packet(&packet).is_ok() {
            take(&mut dec, &mut newest);
        }
    }
    let _ = dec.send_eof();
    take(&mut dec, &mut newest);
    let mut newest = newest.ok_or(DecodeError::NoPicture)?;
    to_picture(&mut newest, &mut None).ok_or(DecodeError::NoPicture)
}

/// Converts pixel formats libjpeg-turbo cannot take (packed YUV from webcams, RGB from some
/// lavfi sources) to yuv420p. Rebuilt when the input size or format changes.
pub struct Converter {
    key: (ffmpeg::format::Pixel, u32, u32),
    ctx: ffmpeg::software::scaling::Context,
}

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
