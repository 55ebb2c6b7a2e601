//! RTSP cameras through retina, read on the camera's task: no thread, no FFmpeg until someone
//! wants pictures. The video (H.264, H.265 or MJPEG) goes out as retina depacketizes it, Annex B
//! with the parameter sets in front of each keyframe, stamped with the camera's own RTP
//! timestamps; the audio track (AAC, G.711 and the other codecs retina reads) is kept as it
//! comes, beside it.
//!
//! Why the same errors as FFmpeg's reader: the status, the backoff and the tests read them
//! (`unauthorized`, `connection refused`, `no media within`). A camera retina answers with
//! something it will not read fails with an error that names the FFmpeg reader to fall back to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use retina::client::{
    Credentials, Demuxed, InitialTimestampPolicy, PlayOptions, SessionOptions, SetupOptions,
    Transport,
};
use retina::codec::{CodecItem, FrameFormat, ParameterSetInsertion, ParametersRef};
use tracing::{debug, info, warn};

use super::timing::Gaps;
use super::worker::{NextEvent, SessionError, SourceEvent, TaskOpen, TaskSource, VideoStream};
use crate::config::CameraConfig;
use crate::hub::demand::{DecodeMode, Demand};
use crate::hub::AudioInfo;
use crate::media::clock::TimeBase;
use crate::media::frame::Picture;
use crate::media::h26x::Codec;
use crate::media::jpeg;
use crate::media::nal::NalFormat;
use crate::obs::redact::redact_url;

/// Units skipped waiting for the first keyframe before whatever comes is forwarded (a stream
/// with intra refresh has none), as FFmpeg's reader does.
const MAX_UNITS_BEFORE_KEY: u32 = 250;

/// Opens `config`'s camera with retina, on the task that awaits it.
pub fn open(config: &CameraConfig) -> TaskOpen {
    let config = config.clone();
    Box::pin(async move {
        let source = RtspSource::open(&config).await?;
        Ok(Box::new(source) as Box<dyn TaskSource>)
    })
}

/// The frame format camwall's video feed reads: Annex B, parameter sets before every keyframe
/// (the feed takes them from there, a parameter change included), raw AAC.
fn frame_format() -> FrameFormat {
    FrameFormat {
        h26x_framing: retina::codec::h26x::Framing::AnnexB,
        parameter_set_insertion: ParameterSetInsertion::EachKeyFrame,
        aac_framing: retina::codec::aac::Framing::Raw,
    }
}

/// What the video stream is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    H26x(Codec),
    Jpeg,
}

/// One RTSP session, playing.
struct RtspSource {
    demuxed: std::pin::Pin<Box<Demuxed>>,
    video_i: usize,
    kind: Kind,
    codec: &'static str,
    video: Option<VideoStream>,
    clock: TimeBase,
    audio_i: Option<usize>,
    audio: Option<AudioInfo>,
    gaps: Gaps,
    stall_timeout: Duration,
    open_timeout: Duration,
    keyframe_seen: bool,
    before_key: u32,
    bad_jpegs: u32,
    /// The frame rate the SDP declares, when it declares a plausible one (for the probe).
    declared_fps: Option<f64>,
}

/// The URL without its credentials (retina takes them apart), and the credentials, decoded.
fn split_credentials(raw: &str) -> Result<(url::Url, Option<Credentials>), SessionError> {
    let mut url = url::Url::parse(raw)
        .map_err(|e| SessionError::Rtsp(format!("open failed: bad RTSP URL: {e}")))?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let creds = (!url.username().is_empty() || url.password().is_some()).then(|| Credentials {
        username: decode(url.username()),
        password: decode(url.password().unwrap_or_default()),
    });
    // Cannot fail for an rtsp:// URL with a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url, creds))
}

/// A retina error as a session error: the causes FFmpeg's reader names too, else the first
/// line of retina's text (the rest is connection context), without credentials.
fn classify(e: &retina::Error, answered: bool) -> SessionError {
    if matches!(e.status_code(), Some(401 | 403)) {
        return SessionError::Unauthorized;
    }
    let text = e.to_string();
    let first = redact_url(text.lines().next().unwrap_or_default());
    let lower = first.to_ascii_lowercase();
    if lower.contains("unable to connect") {
        if lower.contains("refused") {
            return SessionError::Refused;
        }
        if lower.contains("unreachable") || lower.contains("no route") {
            return SessionError::Unreachable;
        }
    }
    if answered {
        SessionError::Rtsp(format!("open failed: {first}"))
    } else {
        SessionError::ReadRtsp(first)
    }
}

fn audio_codec(encoding: &str) -> String {
    match encoding {
        "mpeg4-generic" => "aac".to_string(),
        other => other.to_string(),
    }
}

impl RtspSource {
    /// Opens the session. Shutdown drops this future (the worker selects on it).
    async fn open(config: &CameraConfig) -> Result<Self, SessionError> {
        let open_timeout = Duration::from_millis(config.open_timeout_ms);
        let transport = match config.options.get("rtsp_transport").map(String::as_str) {
            None | Some("tcp") => Transport::Tcp(Default::default()),
            Some("udp") => Transport::Udp(Default::default()),
            Some(other) => {
                return Err(SessionError::Rtsp(format!(
                    "open failed: rtsp_transport {other:?} is neither tcp nor udp"
                )))
            }
        };
        let (url, creds) = split_credentials(&config.url)?;
        // Resolved first, within the open deadline, to say what is wrong.
        if let Some(host) = url.host_str().map(str::to_string) {
            let port = url.port().unwrap_or(554);
            let name = host.trim_matches(['[', ']']).to_string();
            let lookup = tokio::net::lookup_host((name, port));
            let found = match tokio::time::timeout(open_timeout, lookup).await {
                Err(_) => return Err(SessionError::OpenTimeout(open_timeout)),
                Ok(Ok(mut addrs)) => addrs.next().is_some(),
                Ok(Err(_)) => false,
            };
            if !found {
                return Err(SessionError::Unresolved(host));
            }
        }
        let opening = async {
            let options = SessionOptions::default()
                .creds(creds)
                .user_agent(format!("camwall/{}", env!("CARGO_PKG_VERSION")));
            let mut session = retina::client::Session::describe(url, options)
                .await
                .map_err(|e| classify(&e, true))?;
            let streams = session.streams();
            let video_i = streams
                .iter()
                .position(|s| {
                    matches!(
                        (s.media(), s.encoding_name()),
                        ("video", "h264" | "h265") | ("video" | "image", "jpeg")
                    )
                })
                .ok_or_else(|| {
                    let offered: Vec<String> = streams
                        .iter()
                        .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
                        .collect();
                    if streams.iter().any(|s| s.media() == "video") {
                        SessionError::Rtsp(format!(
                            "open failed: no video stream retina reads (offered: {})",
                            offered.join(", ")
                        ))
                    } else {
                        SessionError::NoVideo
                    }
                })?;
            let video = &streams[video_i];
            let kind = match video.encoding_name() {
                "h264" => Kind::H26x(Codec::H264),
                "h265" => Kind::H26x(Codec::H265),
                _ => Kind::Jpeg,
            };
            let extradata = match video.parameters() {
                Some(ParametersRef::Video(p)) => p.extra_data().to_vec(),
                _ => Vec::new(),
            };
            let declared_fps = video.framerate().filter(|f| f.is_finite() && *f > 0.0);
            let clock = TimeBase {
                num: 1,
                den: video.clock_rate_hz().max(1),
                wrap_bits: 64,
            };
            // Audio is set up only where retina can read it (its parameters are known from
            // the SDP): a track it cannot read would fail the whole session.
            let audio_i = streams
                .iter()
                .position(|s| s.media() == "audio" && s.parameters().is_some());
            if audio_i.is_none() {
                if let Some(s) = streams.iter().find(|s| s.media() == "audio") {
                    // FFmpeg's reader keeps Opus (retina has no depacketizer for it): a
                    // camera is heard rather than read without a thread.
                    if s.encoding_name() == "opus" {
                        return Err(SessionError::FfmpegInstead(
                            "its audio is Opus, which retina does not read".into(),
                        ));
                    }
                    info!(
                        encoding = s.encoding_name(),
                        "this camera's audio is not one camwall reads: it plays without sound"
                    );
                }
            }
            let audio = audio_i.and_then(|i| match streams[i].parameters() {
                Some(ParametersRef::Audio(p)) => Some(AudioInfo {
                    codec: audio_codec(streams[i].encoding_name()),
                    sample_rate: p.clock_rate(),
                    channels: p.channels().get(),
                    description: p.extra_data().to_vec(),
                }),
                _ => None,
            });
            let setup = || {
                SetupOptions::default()
                    .transport(transport.clone())
                    .frame_format(frame_format())
            };
            session
                .setup(video_i, setup())
                .await
                .map_err(|e| classify(&e, true))?;
            let (mut audio_i, mut audio) = (audio_i, audio);
            if let Some(i) = audio_i {
                // A camera whose audio fails still plays its video.
                if let Err(e) = session.setup(i, setup()).await {
                    warn!(error = %redact_url(&e.to_string()), "audio track not set up; video only");
                    (audio_i, audio) = (None, None);
                }
            }
            let playing = session
                .play(PlayOptions::default().initial_timestamp(InitialTimestampPolicy::Permissive))
                .await
                .map_err(|e| classify(&e, true))?;
            let demuxed = playing.demuxed().map_err(|e| classify(&e, true))?;
            Ok::<_, SessionError>((
                demuxed,
                video_i,
                kind,
                extradata,
                clock,
                declared_fps,
                audio_i,
                audio,
            ))
        };
        let opened = tokio::time::timeout(open_timeout, opening).await;
        let (demuxed, video_i, kind, extradata, clock, declared_fps, audio_i, audio) = match opened
        {
            Err(_) => return Err(SessionError::OpenTimeout(open_timeout)),
            Ok(r) => r?,
        };
        let (codec, video) = match kind {
            Kind::H26x(c) => (
                if c == Codec::H264 { "h264" } else { "hevc" },
                Some(VideoStream {
                    codec: c,
                    format: NalFormat::AnnexB,
                    extradata,
                    on_demand: true,
                }),
            ),
            Kind::Jpeg => ("mjpeg", None),
        };
        let declared_fps = declared_fps.map(f64::from).filter(|f| *f <= 240.0);
        let mut gaps = Gaps::default();
        if let Some(fps) = declared_fps {
            gaps.push(Duration::from_secs_f64(1.0 / fps));
        }
        debug!(codec, audio = ?audio, "RTSP session playing");
        Ok(Self {
            demuxed: Box::pin(demuxed),
            video_i,
            kind,
            codec,
            video,
            clock,
            audio_i,
            audio,
            gaps,
            stall_timeout: Duration::from_millis(config.stall_timeout_ms),
            open_timeout,
            keyframe_seen: kind == Kind::Jpeg,
            before_key: 0,
            bad_jpegs: 0,
            declared_fps,
        })
    }

    async fn next(&mut self) -> Result<SourceEvent, SessionError> {
        loop {
            let stall = self
                .gaps
                .stall_deadline(self.stall_timeout, self.open_timeout);
            let item = match tokio::time::timeout(stall, self.demuxed.next()).await {
                Err(_) => return Err(SessionError::Stalled(stall)),
                Ok(None) => return Ok(SourceEvent::Eof),
                Ok(Some(Err(e))) => return Err(classify(&e, false)),
                Ok(Some(Ok(item))) => item,
            };
            match item {
                CodecItem::VideoFrame(f) if f.stream_id() == self.video_i => {
                    self.gaps.arrived(Instant::now());
                    if !self.keyframe_seen {
                        if !f.is_random_access_point() && self.before_key < MAX_UNITS_BEFORE_KEY {
                            self.before_key += 1;
                            continue;
                        }
                        self.keyframe_seen = true;
                    }
                    let ts = Some(f.timestamp().timestamp());
                    let data = bytes::Bytes::from(f.into_data());
                    if self.kind != Kind::Jpeg {
                        return Ok(SourceEvent::Video { data, ts });
                    }
                    match jpeg::validate_jpeg(&data) {
                        Ok((width, height)) => {
                            let quality = jpeg::estimate_quality(&data);
                            return Ok(SourceEvent::Picture {
                                width,
                                height,
                                picture: Picture::Jpeg { data, quality },
                                ts,
                            });
                        }
                        Err(e) => {
                            self.bad_jpegs += 1;
                            if self.bad_jpegs.is_power_of_two() {
                                warn!(error = %e, count = self.bad_jpegs, "dropping a bad JPEG from the source");
                            }
                            return Ok(SourceEvent::Corrupt);
                        }
                    }
                }
                CodecItem::AudioFrame(a) if Some(a.stream_id()) == self.audio_i => {
                    return Ok(SourceEvent::Audio {
                        data: bytes::Bytes::copy_from_slice(a.data()),
                        ts: Some(a.timestamp().timestamp()),
                    });
                }
                // Sender reports, ONVIF metadata, streams not set up: nothing to publish.
                _ => {}
            }
        }
    }
}

/// What the probe learns from a camera read by retina: its first picture or keyframe.
pub struct FirstUnit {
    pub codec: String,
    pub video: Option<VideoStream>,
    pub audio: Option<AudioInfo>,
    pub fps: Option<f64>,
    /// A picture (MJPEG) or the first keyframe (H.264/H.265, parameter sets in front).
    pub event: SourceEvent,
}

/// Opens `config`'s camera as a session would and returns its first picture or keyframe, for
/// the probe. Within the camera's open timeout plus its stall timeout.
pub async fn first_unit(config: &CameraConfig) -> Result<FirstUnit, SessionError> {
    let mut source = RtspSource::open(config).await?;
    loop {
        match source.next().await? {
            event @ (SourceEvent::Picture { .. } | SourceEvent::Video { .. }) => {
                return Ok(FirstUnit {
                    codec: source.codec.to_string(),
                    video: source.video.clone(),
                    audio: source.audio.clone(),
                    fps: source.declared_fps,
                    event,
                })
            }
            SourceEvent::Eof => return Err(SessionError::EndedTooSoon),
            _ => {}
        }
    }
}

impl TaskSource for RtspSource {
    fn codec(&self) -> &str {
        self.codec
    }

    fn next_event(&mut self) -> NextEvent<'_> {
        Box::pin(self.next())
    }

    fn video(&self) -> Option<VideoStream> {
        self.video.clone()
    }

    fn audio(&self) -> Option<AudioInfo> {
        self.audio.clone()
    }

    fn set_demand(&mut self, demand: Arc<Demand>) {
        // MJPEG passes its JPEGs through; H.264/H.265 leave it to the on-demand decoder.
        if self.kind == Kind::Jpeg {
            demand.set_mode(DecodeMode::Off);
        }
    }

    fn time_base(&self) -> TimeBase {
        self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_out_of_the_url_decoded() {
        let (url, creds) =
            split_credentials("rtsp://us%40er:p%3Ass%2Fw@cam.local:8554/live").unwrap();
        assert_eq!(url.as_str(), "rtsp://cam.local:8554/live");
        let c = creds.unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("us@er", "p:ss/w")
        );
        let (url, creds) = split_credentials("rtsp://cam.local/x").unwrap();
        assert_eq!(url.as_str(), "rtsp://cam.local/x");
        assert!(creds.is_none());
        assert!(matches!(
            split_credentials("rtsp://[bad"),
            Err(SessionError::Rtsp(_))
        ));
    }

    #[test]
    fn audio_codec_names() {
        assert_eq!(audio_codec("mpeg4-generic"), "aac");
        assert_eq!(audio_codec("pcmu"), "pcmu");
    }
}
