//! Opening camera inputs with ffmpeg-next (RTSP, HTTP MJPEG, files, V4L2, lavfi), with
//! deadlines enforced by FFmpeg's interrupt callback so that no open or read blocks forever.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ffmpeg::ffi;
use ffmpeg_next as ffmpeg;
use tokio_util::sync::CancellationToken;

/// Which kind of input a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Rtsp,
    Http,
    /// `lavfi:<filtergraph>`: FFmpeg's synthetic sources.
    Lavfi,
    /// `/dev/videoN`: a V4L2 webcam.
    Device,
    /// A file (played in a loop, at its own frame rate).
    File,
    /// Any other URL FFmpeg understands (udp, srt, rtmp, ...).
    Other,
}

impl SourceKind {
    pub fn of(url: &str) -> Self {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("lavfi:") {
            Self::Lavfi
        } else if lower.starts_with("file:") {
            // `file:///x` has a `://` but reads the local disk like any path.
            Self::File
        } else if lower.starts_with("rtsp://") || lower.starts_with("rtsps://") {
            Self::Rtsp
        } else if lower.starts_with("http://") || lower.starts_with("https://") {
            Self::Http
        } else if lower.starts_with("/dev/video") {
            Self::Device
        } else if lower.contains("://") {
            Self::Other
        } else {
            Self::File
        }
    }

    /// Sources that produce frames as fast as they are read must be paced to their timestamps
    /// (like the ffmpeg CLI's `-re`); live sources pace themselves.
    pub fn needs_pacing(self) -> bool {
        matches!(self, Self::Lavfi | Self::File)
    }

    /// Sources that read this machine (its files, devices, FFmpeg's filter graphs, which can
    /// open files too) rather than the network: only the config file, or the API when
    /// `server.allow_local_sources` is on, may name them.
    pub fn is_local(self) -> bool {
        matches!(self, Self::Lavfi | Self::Device | Self::File)
    }

    /// The FFmpeg protocols this kind of source may use (`protocol_whitelist`), so that a
    /// camera URL, or a playlist or SDP it answers with, cannot make FFmpeg read local files
    /// or chain protocols. Network kinds never get `file`, `concat`, `subfile` and the like.
    pub fn protocol_whitelist(self, url: &str) -> String {
        match self {
            Self::Rtsp => "rtsp,rtsps,rtp,srtp,tcp,udp,tls,http,https".into(),
            Self::Http => "http,https,tcp,tls,crypto".into(),
            Self::File => "file".into(),
            // lavfi and v4l2 open no URL through a protocol: none is needed.
            Self::Lavfi | Self::Device => "none".into(),
            Self::Other => {
                let scheme = url
                    .split_once("://")
                    .map(|(s, _)| s.to_ascii_lowercase())
                    .unwrap_or_default();
                if NETWORK_SCHEMES.contains(&scheme.as_str()) {
                    format!("{scheme},tcp,udp,tls")
                } else {
                    "tcp,udp,tls".into()
                }
            }
        }
    }
}

/// Schemes an `Other` URL may name itself (the ones that only talk to the network).
const NETWORK_SCHEMES: &[&str] = &[
    "udp", "rtp", "srt", "tcp", "tls", "rtmp", "rtmps", "rtmpt", "rtmpe", "rtmpte", "rtmpts",
    "mmsh", "mmst", "srtp",
];

/// Probe limits for live network cameras: bytes and microseconds. FFmpeg's defaults (5 MB,
/// 5 s) made the first frame wait 2-9 s; the codec parameters of RTSP come from the SDP and
/// an MJPEG frame carries its own, so half a megabyte and half a second are plenty.
pub const LIVE_PROBESIZE: &str = "500000";
pub const LIVE_ANALYZEDURATION_US: &str = "500000";

/// The longest stall deadline a slow camera's frame interval may stretch to.
pub const MAX_STALL: Duration = Duration::from_secs(60);

/// A deadline the interrupt callback checks, moved forward by the worker as packets arrive,
/// plus the shutdown token. Either one aborts a blocked FFmpeg call.
#[derive(Debug)]
pub struct Deadline {
    epoch: Instant,
    at_ms: AtomicU64,
    cancel: CancellationToken,
}

impl Deadline {
    pub fn new(cancel: CancellationToken) -> Self {
        Self {
            epoch: Instant::now(),
            at_ms: AtomicU64::new(u64::MAX),
            cancel,
        }
    }

    /// Allows `d` from now before blocked calls are interrupted.
    pub fn extend(&self, d: Duration) {
        let at = (self.epoch.elapsed() + d).as_millis() as u64;
        self.at_ms.store(at, Ordering::Relaxed);
    }

    pub fn expired(&self) -> bool {
        self.epoch.elapsed().as_millis() as u64 > self.at_ms.load(Ordering::Relaxed)
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// What the interrupt callback answers: stop now?
    pub fn should_interrupt(&self) -> bool {
        self.cancelled() || self.expired()
    }
}

/// Errors opening a source.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Ffmpeg(#[from] ffmpeg::Error),
    #[error("FFmpeg has no input format {0:?} (is libavdevice built with it?)")]
    NoFormat(&'static str),
    #[error("{0}")]
    NoDevices(String),
    #[error("URL contains a NUL byte")]
    BadUrl,
}

/// FFmpeg input options for a source: camwall's defaults, each replaced by the config's
/// `options` only where that key is given explicitly (so `protocol_whitelist` can be widened
/// by whoever may write the options; the API refuses that key unless local sources are allowed).
///
/// Defaults: RTSP over TCP; small probe limits for live cameras (fast first frame); a
/// protocol whitelist per kind; socket timeouts as long as the longest stall deadline, so
/// that camwall's own deadline (scaled to the camera's frame interval) decides a stall.
pub fn input_options(
    kind: SourceKind,
    url: &str,
    configured: &BTreeMap<String, String>,
    stall_timeout: Duration,
) -> ffmpeg::Dictionary<'static> {
    let mut dict = ffmpeg::Dictionary::new();
    let us = stall_timeout.max(MAX_STALL).as_micros().to_string();
    let whitelist = kind.protocol_whitelist(url);
    let mut defaults: Vec<(&str, &str)> = match kind {
        SourceKind::Rtsp => vec![("rtsp_transport", "tcp"), ("timeout", &us)],
        SourceKind::Http => vec![("rw_timeout", &us)],
        _ => vec![],
    };
    if matches!(kind, SourceKind::Rtsp | SourceKind::Http) {
        defaults.extend([
            ("probesize", LIVE_PROBESIZE),
            ("analyzeduration", LIVE_ANALYZEDURATION_US),
            // Do not wait for frames just to guess a frame rate: camwall measures its own.
            ("fpsprobesize", "0"),
        ]);
    }
    defaults.push(("protocol_whitelist", &whitelist));
    for (k, v) in defaults {
        if !configured.contains_key(k) {
            dict.set(k, v);
        }
    }
    for (k, v) in configured {
        dict.set(k, v);
    }
    dict
}

/// Opens `url` with `options`; the interrupt callback aborts when `deadline` says so.
pub fn open(
    url: &str,
    options: ffmpeg::Dictionary<'static>,
    deadline: std::sync::Arc<Deadline>,
) -> Result<ffmpeg::format::context::Input, OpenError> {
    let kind = SourceKind::of(url);
    let (format_name, target): (Option<&'static str>, &str) = match kind {
        SourceKind::Lavfi => (Some("lavfi"), &url["lavfi:".len()..]),
        SourceKind::Device => (Some("v4l2"), url),
        _ => (None, url),
    };
    if format_name.is_some() {
        super::devices::ensure_loaded().map_err(OpenError::NoDevices)?;
    }
    let target = CString::new(target).map_err(|_| OpenError::BadUrl)?;
    // SAFETY: plain libavformat calls in the documented order; on failure avformat_open_input
    // frees the context itself, and on success ownership passes to `Input`, which closes it.
    unsafe {
        let fmt = match format_name {
            Some(name) => {
                let cname = CString::new(name).map_err(|_| OpenError::BadUrl)?;
                let f = ffi::av_find_input_format(cname.as_ptr());
                if f.is_null() {
                    return Err(OpenError::NoFormat(name));
                }
                f
            }
            None => std::ptr::null(),
        };
        let mut ps = ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err(ffmpeg::Error::Other {
                errno: ffmpeg::util::error::ENOMEM,
            }
            .into());
        }
        let interrupt = ffmpeg::util::interrupt::new(Box::new(move || deadline.should_interrupt()));
        (*ps).interrupt_callback = interrupt.interrupt;
        let mut opts = options.disown();
        let res = ffi::avformat_open_input(&mut ps, target.as_ptr(), fmt as _, &mut opts);
        ffmpeg::Dictionary::own(opts);
        if res != 0 {
            return Err(ffmpeg::Error::from(res).into());
        }
        let input = ffmpeg::format::context::Input::wrap_with_interrupt(ps, interrupt.guard);
        let r = ffi::avformat_find_stream_info(ps, std::ptr::null_mut());
        if r < 0 {
            return Err(ffmpeg::Error::from(r).into());
        }
        Ok(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(SourceKind::of("lavfi:testsrc2"), SourceKind::Lavfi);
        assert_eq!(SourceKind::of("RTSP://x/y"), SourceKind::Rtsp);
        assert_eq!(SourceKind::of("http://x/y.mjpg"), SourceKind::Http);
        assert_eq!(SourceKind::of("/dev/video0"), SourceKind::Device);
        assert_eq!(SourceKind::of("clips/a.mp4"), SourceKind::File);
        assert_eq!(SourceKind::of("srt://h:1"), SourceKind::Other);
        assert_eq!(SourceKind::of("file:///etc/passwd"), SourceKind::File);
        assert_eq!(SourceKind::of("concat:a|b"), SourceKind::File);
        assert_eq!(
            SourceKind::of("subfile:,,start,0,end,9,,:/x"),
            SourceKind::File
        );
        assert!(SourceKind::Lavfi.needs_pacing() && !SourceKind::Rtsp.needs_pacing());
        assert!(SourceKind::File.is_local() && SourceKind::Lavfi.is_local());
        assert!(SourceKind::Device.is_local() && !SourceKind::Other.is_local());
    }

    #[test]
    fn network_sources_cannot_use_local_protocols() {
        let cfg = BTreeMap::new();
        for url in [
            "rtsp://h/x",
            "http://h/x.mjpg",
            "https://h/x.m3u8",
            "srt://h:1",
            "udp://h:1",
            "gopher://h/x",
            "file+x://h",
        ] {
            let kind = SourceKind::of(url);
            assert!(!kind.is_local(), "{url}");
            let d = input_options(kind, url, &cfg, Duration::from_secs(5));
            let list = d.get("protocol_whitelist").unwrap_or_default().to_string();
            assert!(!list.is_empty(), "{url}: no whitelist");
            for banned in ["file", "concat", "subfile", "pipe", "fd", "data"] {
                assert!(
                    !list.split(',').any(|p| p == banned),
                    "{url} may use {banned}: {list}"
                );
            }
        }
        let srt = input_options(SourceKind::Other, "srt://h:1", &cfg, Duration::from_secs(5));
        assert_eq!(srt.get("protocol_whitelist"), Some("srt,tcp,udp,tls"));
        let file = input_options(SourceKind::File, "a.mp4", &cfg, Duration::from_secs(5));
        assert_eq!(file.get("protocol_whitelist"), Some("file"));
    }

    #[test]
    fn live_cameras_probe_briefly_unless_configured() {
        let mut cfg = BTreeMap::new();
        let d = input_options(SourceKind::Rtsp, "rtsp://h/x", &cfg, Duration::from_secs(5));
        assert_eq!(d.get("probesize"), Some(LIVE_PROBESIZE));
        assert_eq!(d.get("analyzeduration"), Some(LIVE_ANALYZEDURATION_US));
        assert_eq!(d.get("fpsprobesize"), Some("0"));
        cfg.insert("probesize".to_string(), "5000000".to_string());
        cfg.insert("protocol_whitelist".to_string(), "rtsp,tcp".to_string());
        let d = input_options(SourceKind::Rtsp, "rtsp://h/x", &cfg, Duration::from_secs(5));
        assert_eq!(d.get("probesize"), Some("5000000"));
        assert_eq!(d.get("protocol_whitelist"), Some("rtsp,tcp"));
        let d = input_options(
            SourceKind::File,
            "a.mp4",
            &BTreeMap::new(),
            Duration::from_secs(5),
        );
        assert_eq!(
            d.get("probesize"),
            None,
            "files keep FFmpeg's thorough probe"
        );
    }

    #[test]
    fn options_default_to_tcp_and_config_wins() {
        let mut cfg = BTreeMap::new();
        let d = input_options(SourceKind::Rtsp, "rtsp://h/x", &cfg, Duration::from_secs(5));
        assert_eq!(d.get("rtsp_transport"), Some("tcp"));
        // camwall's own deadline decides a stall; the socket timeout is only a backstop.
        assert_eq!(d.get("timeout"), Some("60000000"));
        cfg.insert("rtsp_transport".to_string(), "udp".to_string());
        let d = input_options(SourceKind::Rtsp, "rtsp://h/x", &cfg, Duration::from_secs(5));
        assert_eq!(d.get("rtsp_transport"), Some("udp"));
    }

    #[test]
    fn deadline() {
        let tok = CancellationToken::new();
        let d = Deadline::new(tok.clone());
        assert!(!d.should_interrupt());
        d.extend(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(5));
        assert!(d.should_interrupt());
        d.extend(Duration::from_secs(10));
        assert!(!d.should_interrupt());
        tok.cancel();
        assert!(d.should_interrupt());
    }
}
