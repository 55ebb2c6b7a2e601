//! Testing a camera before it is saved (`POST /api/ip-cameras/probe`): open the source once,
//! with the reader the camera will use and its own timeouts, take its first picture and say
//! what was found, or why it failed in the words `diagnose` gives. Blocking: runs on a thread
//! of its own (retina's async session on a small runtime there), never touches the hub.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use ffmpeg_next as ffmpeg;

use super::ffmpeg_source::FfmpegSource;
use super::worker::{SessionError, Source, SourceEvent};
use crate::config::{CameraConfig, Reader};
use crate::hub::AudioInfo;
use crate::media::frame::Picture;
use crate::media::h26x::Codec;
use crate::media::jpeg;

/// Most source events read while waiting for the first picture (a bound besides the time).
const MAX_EVENTS: u32 = 5_000;
/// Snapshot quality: a preview, not an archive.
const SNAPSHOT_QUALITY: u8 = 80;
/// Widest snapshot sent back; larger pictures are downscaled (1/2, 1/4) to fit.
const SNAPSHOT_MAX_WIDTH: u32 = 1920;

/// What a source turned out to be.
#[derive(Debug)]
pub struct Probed {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// The frame rate the stream declares, when it declares one.
    pub fps: Option<f64>,
    pub audio: bool,
    /// The audio track camwall keeps and passes on (codec, rate, channels), when it has one.
    pub audio_track: Option<AudioInfo>,
    /// The reader that read it, as the camera will be read: `retina` or `ffmpeg`.
    pub ingest: &'static str,
    /// Its first picture as a JPEG.
    pub jpeg: Bytes,
}

/// The plain cause of a failed probe, for clients to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeCause {
    /// The camera refused the credentials.
    Unauthorized,
    /// No such host, connection refused, host unreachable, or nothing within the timeout.
    Unreachable,
    /// It answered, but with no video stream (or one no decoder takes).
    NoVideo,
    /// Anything else (FFmpeg's own message says what).
    Failed,
}

impl ProbeCause {
    pub fn of(e: &SessionError) -> Self {
        match e {
            SessionError::Unauthorized => Self::Unauthorized,
            SessionError::Unresolved(_)
            | SessionError::Refused
            | SessionError::Unreachable
            | SessionError::OpenTimeout(_)
            | SessionError::Stalled(_) => Self::Unreachable,
            SessionError::NoVideo | SessionError::Decoder(_) | SessionError::EndedTooSoon => {
                Self::NoVideo
            }
            _ => Self::Failed,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Unreachable => "unreachable",
            Self::NoVideo => "no_video",
            Self::Failed => "failed",
        }
    }
}

/// Opens `config`'s source once and returns what its first picture shows. Blocks up to the
/// camera's open timeout (plus its stall timeout for the first picture), or until `cancel`.
pub fn probe(config: &CameraConfig, cancel: &CancellationToken) -> Result<Probed, SessionError> {
    if config.reader() == Reader::Retina {
        return probe_rtsp(config, cancel);
    }
    let until = Instant::now()
        + Duration::from_millis(config.open_timeout_ms)
        + Duration::from_millis(config.stall_timeout_ms);
    let mut source = FfmpegSource::open(config, cancel, false)?;
    let (audio, fps) = source.probe_info();
    let codec = source.codec().to_string();
    for _ in 0..MAX_EVENTS {
        if cancel.is_cancelled() {
            break;
        }
        if Instant::now() > until {
            return Err(SessionError::OpenTimeout(Duration::from_millis(
                config.open_timeout_ms,
            )));
        }
        match source.next_event()? {
            SourceEvent::Picture {
                width,
                height,
                picture,
                ..
            } => {
                let jpeg = snapshot(&picture, width)?;
                return Ok(Probed {
                    codec,
                    width,
                    height,
                    fps,
                    audio,
                    audio_track: source.audio(),
                    ingest: Reader::Ffmpeg.name(),
                    jpeg,
                });
            }
            SourceEvent::Eof => return Err(SessionError::EndedTooSoon),
            SourceEvent::Cancelled => break,
            SourceEvent::Corrupt | SourceEvent::Video { .. } | SourceEvent::Audio { .. } => {}
        }
    }
    Err(SessionError::OpenTimeout(Duration::from_millis(
        config.open_timeout_ms,
    )))
}

/// The probe of an RTSP camera read by retina: its first picture, or its first keyframe
/// decoded here.
fn probe_rtsp(config: &CameraConfig, cancel: &CancellationToken) -> Result<Probed, SessionError> {
    let within = Duration::from_millis(config.open_timeout_ms + config.stall_timeout_ms);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SessionError::Spawn)?;
    let first = rt.block_on(async {
        tokio::select! {
            _ = cancel.cancelled() => Err(SessionError::OpenTimeout(Duration::ZERO)),
            r = tokio::time::timeout(within, super::rtsp::first_unit(config)) => {
                r.unwrap_or(Err(SessionError::OpenTimeout(Duration::from_millis(config.open_timeout_ms))))
            }
        }
    })?;
    let (width, height, picture) = match first.event {
        SourceEvent::Picture {
            width,
            height,
            picture,
            ..
        } => (width, height, picture),
        SourceEvent::Video { data, .. } => {
            let codec = first.video.as_ref().map_or(Codec::H264, |v| v.codec);
            decode_keyframe(codec, &data)?
        }
        _ => return Err(SessionError::EndedTooSoon),
    };
    Ok(Probed {
        codec: first.codec,
        width,
        height,
        fps: first.fps,
        audio: first.audio.is_some(),
        audio_track: first.audio,
        ingest: Reader::Retina.name(),
        jpeg: snapshot(&picture, width)?,
    })
}

/// One Annex B keyframe (parameter sets in front) decoded on its own.
fn decode_keyframe(codec: Codec, unit: &[u8]) -> Result<(u32, u32, Picture), SessionError> {
    let id = match codec {
        Codec::H264 => ffmpeg::codec::Id::H264,
        Codec::H265 => ffmpeg::codec::Id::HEVC,
    };
    let failed = |what: &str| SessionError::Decoder(format!("{}: {what}", id.name()));
    let found = ffmpeg::decoder::find(id).ok_or_else(|| failed("no decoder"))?;
    let mut dec = ffmpeg::codec::context::Context::new_with_codec(found)
        .decoder()
        .video()
        .map_err(|e| failed(&e.to_string()))?;
    dec.send_packet(&ffmpeg::Packet::copy(unit))
        .map_err(|e| failed(&e.to_string()))?;
    let _ = dec.send_eof();
    let mut frame = ffmpeg::frame::Video::empty();
    dec.receive_frame(&mut frame)
        .map_err(|e| failed(&e.to_string()))?;
    crate::media::decode::to_picture(&mut frame, &mut None)
        .ok_or_else(|| failed("the keyframe decoded to nothing"))
}

fn snapshot(picture: &Picture, width: u32) -> Result<Bytes, SessionError> {
    let scale = match width {
        w if w <= SNAPSHOT_MAX_WIDTH => 1,
        w if w <= SNAPSHOT_MAX_WIDTH * 2 => 2,
        _ => 4,
    };
    let encoded = match picture {
        Picture::Jpeg { data, .. } if scale == 1 => return Ok(data.clone()),
        Picture::Jpeg { data, .. } => jpeg::transcode_jpeg(data, SNAPSHOT_QUALITY, scale),
        Picture::Yuv(v) => jpeg::encode_planes(&v.planes(), SNAPSHOT_QUALITY, scale),
    };
    encoded
        .map(|j| j.data)
        .map_err(|e| SessionError::Decoder(format!("snapshot: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(url: &str) -> CameraConfig {
        serde_json::from_value(serde_json::json!({"id": "p", "url": url, "open_timeout_ms": 3000}))
            .unwrap()
    }

    #[test]
    fn a_lavfi_source_is_probed_with_its_size_and_a_snapshot() {
        crate::init_ffmpeg().unwrap();
        let p = probe(
            &cam("lavfi:testsrc2=size=320x240:rate=10"),
            &CancellationToken::new(),
        )
        .unwrap();
        assert_eq!((p.width, p.height), (320, 240));
        assert!(!p.audio);
        assert_eq!(jpeg::jpeg_size(&p.jpeg).unwrap(), (320, 240));
    }

    #[test]
    fn a_closed_port_is_unreachable() {
        crate::init_ffmpeg().unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = probe(
            &cam(&format!("rtsp://user:secret@127.0.0.1:{port}/x")),
            &CancellationToken::new(),
        )
        .unwrap_err();
        assert_eq!(ProbeCause::of(&e), ProbeCause::Unreachable, "{e}");
        assert!(!e.to_string().contains("secret"));
    }
}
