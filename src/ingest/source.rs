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
}

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

/// FFmpeg input options for a source: the config's, plus camwall's defaults where the config
/// is silent (RTSP over TCP; socket timeouts from the stall timeout).
pub fn input_options(
    kind: SourceKind,
    configured: &BTreeMap<String, String>,
    stall_timeout: Duration,
) -> ffmpeg::Dictionary<'static> {
    let mut dict = ffmpeg::Dictionary::new();
    let us = stall_timeout.as_micros().to_string();
    let defaults: &[(&str, &str)] = match kind {
        SourceKind::Rtsp => &[("rtsp_transport", "tcp"), ("timeout", &us)],
        SourceKind::Http => &[("rw_timeout", &us)],
        _ => &[],
    };
    for (k, v) in defaults {
        if !configured.contains_key(*k) {
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
        assert!(SourceKind::Lavfi.needs_pacing() && !SourceKind::Rtsp.needs_pacing());
    }

    #[test]
    fn options_default_to_tcp_and_config_wins() {
        let mut cfg = BTreeMap::new();
        let d = input_options(SourceKind::Rtsp, &cfg, Duration::from_secs(5));
        assert_eq!(d.get("rtsp_transport"), Some("tcp"));
        assert_eq!(d.get("timeout"), Some("5000000"));
        cfg.insert("rtsp_transport".to_string(), "udp".to_string());
        let d = input_options(SourceKind::Rtsp, &cfg, Duration::from_secs(5));
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
