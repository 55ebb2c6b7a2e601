//! A camera's status as the API shows it (credentials redacted), read from its live state,
//! demand, cache and video feed.

use std::sync::atomic::Ordering;

use serde::Serialize;
use tokio::time::Instant;

use super::super::demand::DecodeMode;
use super::super::video::VideoStats;
use super::{Camera, CameraState};
use crate::obs::redact::redact_url;

/// A camera's status as the API shows it. No field carries a credential.
#[derive(Debug, Clone, Serialize)]
pub struct CameraStatus {
    pub id: String,
    pub name: String,
    /// The camera URL with credentials replaced by `***`.
    pub url: String,
    pub enabled: bool,
    pub state: CameraState,
    pub fps: f64,
    pub width: u32,
    pub height: u32,
    pub codec: Option<String>,
    /// Which reader ingests the camera: `retina` (RTSP) or `ffmpeg` (everything else, and
    /// RTSP cameras set to `"ingest": "ffmpeg"`).
    pub ingest: &'static str,
    /// The camera's audio track (codec, sample rate, channels), `null` without one.
    pub audio: Option<super::super::AudioInfo>,
    /// Compressed audio frames received (kept as they came, never decoded).
    pub audio_frames_in: u64,
    /// What the camera sent: access units of its video (decoded or not), or pictures of a
    /// source without one (MJPEG, raw).
    pub frames_in: u64,
    /// Pictures published (what JPEG viewers can get), after the camera's `max_fps` cap: the
    /// newest picture's `seq`.
    pub frames_published: u64,
    /// Pictures that came out of the decoder (a warm-up decodes a whole GOP for one picture).
    pub frames_decoded: u64,
    /// Whether the decoder runs now: network H.264/H.265 cameras decode only while a JPEG
    /// lane, a long-poll or a recent snapshot needs pictures.
    pub decoding: bool,
    /// What the decoder does: `off`, `keyframes` (every viewer's rate is at or below the
    /// keyframe rate) or `full`.
    pub decoder: DecodeMode,
    /// How much the picture changes (0..1), from compressed frame sizes: a cue from bitrate,
    /// not motion detection. `None`: no estimate (decoded-only sources, nothing recent).
    pub activity: Option<f32>,
    /// Pictures from the source that would not decode, dropped before any viewer saw them.
    pub frames_corrupt: u64,
    pub jpeg_encodes: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
    pub last_frame_age_ms: Option<u64>,
    pub retry_in_ms: Option<u64>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub tiers: Vec<TierStatus>,
    /// The camera's own H.264/H.265 as forwarded to video viewers.
    pub video: VideoStats,
}

/// Encodes done for one tier.
#[derive(Debug, Clone, Serialize)]
pub struct TierStatus {
    pub quality: u8,
    pub scale: u8,
    pub jpeg_encodes: u64,
}

impl Camera {
    /// The worker reads this camera with FFmpeg although its config names retina (`true`),
    /// or as its config says: the status's `ingest` follows.
    pub fn set_ffmpeg_instead(&self, on: bool) {
        self.live().ffmpeg_instead = on;
    }

    /// The codec of the current session (FFmpeg's name: `h264`, `hevc`, `mjpeg`,
    /// `rawvideo`...), once a source opened.
    pub fn codec(&self) -> Option<String> {
        self.live().codec.clone()
    }

    pub fn status(&self) -> CameraStatus {
        let l = self.live().clone();
        let config = self.config();
        let now = Instant::now();
        // A camera that is not decoded still sends: its newest unit says how fresh it is.
        let newest = match (l.last_frame_at, l.last_unit_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let age = newest.map(|t| now.saturating_duration_since(t));
        // A camera that stopped sending has no fps (the meter knows its frame interval).
        let fps = (Self::rate(&l, now) * 10.0).round() / 10.0;
        let activity = Self::activity_of(&l, now).map(|a| (a * 100.0).round() / 100.0);
        let cache = self.cache.stats();
        CameraStatus {
            id: self.id.clone(),
            name: config.display_name().to_string(),
            url: redact_url(&config.url),
            enabled: config.enabled,
            state: l.state,
            fps,
            width: l.width,
            height: l.height,
            codec: l.codec,
            ingest: match l.ffmpeg_instead {
                true => crate::config::Reader::Ffmpeg.name(),
                false => config.reader().name(),
            },
            audio: self.audio.info(),
            audio_frames_in: self.audio.received(),
            frames_in: self.frames_in.load(Ordering::Relaxed),
            frames_published: self.seq.load(Ordering::Relaxed),
            frames_decoded: self.demand.frames_decoded(),
            decoding: self.demand.decoding(),
            decoder: self.demand.decoder(),
            activity,
            frames_corrupt: self.frames_corrupt.load(Ordering::Relaxed),
            jpeg_encodes: cache.jpeg_encodes,
            reconnects: l.reconnects,
            last_error: l.last_error,
            last_frame_age_ms: age.map(|a| a.as_millis() as u64),
            retry_in_ms: l
                .next_retry_at
                .map(|t| t.saturating_duration_since(now).as_millis() as u64),
            cache_hits: cache.hits,
            cache_misses: cache.misses,
            tiers: cache
                .tiers
                .into_iter()
                .map(|(t, n)| TierStatus {
                    quality: t.quality,
                    scale: t.scale,
                    jpeg_encodes: n,
                })
                .collect(),
            video: self.video.stats(),
        }
    }
}
