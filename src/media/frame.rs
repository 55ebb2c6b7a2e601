//! Frames as cameras publish them: a decoded picture or a source JPEG, with sequence and time.

use std::sync::Arc;

use bytes::Bytes;
use ffmpeg_next as ffmpeg;
use turbojpeg::Subsamp;

use super::jpeg::{self, EncodeError, Jpeg, YuvPlanes};

/// A decoded picture kept as the decoder made it (refcounted buffers, no copy).
pub struct DecodedVideo {
    frame: ffmpeg::frame::Video,
    subsamp: Subsamp,
    limited_range: bool,
}

impl DecodedVideo {
    /// Wraps a decoded frame whose pixel format [`subsamp_of`] accepts.
    pub fn new(frame: ffmpeg::frame::Video, subsamp: Subsamp, limited_range: bool) -> Self {
        Self {
            frame,
            subsamp,
            limited_range,
        }
    }

    pub fn planes(&self) -> YuvPlanes<'_> {
        YuvPlanes {
            planes: [self.frame.data(0), self.frame.data(1), self.frame.data(2)],
            strides: [
                self.frame.stride(0),
                self.frame.stride(1),
                self.frame.stride(2),
            ],
            width: self.frame.width() as usize,
            height: self.frame.height() as usize,
            subsamp: self.subsamp,
            limited_range: self.limited_range,
        }
    }
}

/// The subsampling of a planar YUV pixel format libjpeg-turbo takes as it is, and whether the
/// format itself says full range (the `J` formats). `None`: convert first.
pub fn subsamp_of(format: ffmpeg::format::Pixel) -> Option<(Subsamp, bool)> {
    use ffmpeg::format::Pixel as P;
    Some(match format {
        P::YUV420P => (Subsamp::Sub2x2, false),
        P::YUVJ420P => (Subsamp::Sub2x2, true),
        P::YUV422P => (Subsamp::Sub2x1, false),
        P::YUVJ422P => (Subsamp::Sub2x1, true),
        P::YUV444P => (Subsamp::None, false),
        P::YUVJ444P => (Subsamp::None, true),
        _ => return None,
    })
}

/// What a frame holds.
#[derive(Clone)]
pub enum Picture {
    /// Decoded YUV from FFmpeg.
    Yuv(Arc<DecodedVideo>),
    /// A JPEG exactly as the camera sent it (MJPEG sources): never decoded unless a client
    /// asks for a lower quality or a smaller size.
    Jpeg {
        data: Bytes,
        /// Estimated source quality; `None` if unreadable.
        quality: Option<u8>,
    },
}

/// One frame of a camera.
#[derive(Clone)]
pub struct Frame {
    /// Per camera, increasing by one for each published frame while camwall runs.
    pub seq: u64,
    /// Its place on the camera's clock, and its arrival (Unix ms).
    pub stamp: super::clock::Stamp,
    /// tokio's clock, so that thinning and fps follow paused time in tests.
    pub captured_at: tokio::time::Instant,
    pub width: u32,
    pub height: u32,
    pub picture: Picture,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("seq", &self.seq)
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl Frame {
    /// Encodes this frame at `quality` and downscale `scale`. Returns the JPEG and whether
    /// libjpeg-turbo ran (false when a source JPEG was passed through as it is).
    /// `full_quality` is the server's best tier: a source JPEG is passed through to anyone
    /// asking for that much or for at least the source's own quality.
    /// Blocking: call from a blocking thread.
    pub fn encode(
        &self,
        quality: u8,
        scale: u8,
        full_quality: u8,
    ) -> Result<(Jpeg, bool), EncodeError> {
        match &self.picture {
            Picture::Yuv(v) => Ok((jpeg::encode_planes(&v.planes(), quality, scale)?, true)),
            Picture::Jpeg {
                data,
                quality: src_q,
            } => {
                // Re-encoding a JPEG at a quality near or above its own only loses detail and
                // costs CPU: pass it through unless the client wants it clearly smaller.
                let passthrough =
                    scale <= 1 && src_q.is_none_or(|sq| quality + 2 >= sq.min(full_quality));
                if passthrough {
                    Ok((
                        Jpeg {
                            data: data.clone(),
                            width: self.width,
                            height: self.height,
                            quality: src_q.unwrap_or(quality),
                        },
                        false,
                    ))
                } else {
                    Ok((jpeg::transcode_jpeg(data, quality, scale)?, true))
                }
            }
        }
    }
}
