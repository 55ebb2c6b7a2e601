//! Telling why a camera cannot be opened in words an operator can act on ("cannot resolve
//! host", "connection refused") instead of FFmpeg's generic "Input/output error". Reads no
//! clock of its own and keeps no state; credentials never reach a message (hosts only).

use std::net::ToSocketAddrs;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ffmpeg_next as ffmpeg;
use tokio_util::sync::CancellationToken;

/// The host a network URL names (`rtsp://user:pw@host:554/x` gives `host`), without
/// credentials or port; `None` for URLs without an authority or with an IP literal (nothing
/// to resolve).
pub fn host_of(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        hostport.split(':').next().unwrap_or_default()
    };
    if host.is_empty() || host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    Some(host.to_string())
}

/// What resolving a host found.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// The host has at least one address (or nothing needed resolving).
    Ok,
    /// The resolver answered: no such host.
    NotFound,
    /// No answer within the time allowed.
    TimedOut,
    /// Shutdown came first.
    Cancelled,
}

/// Resolves `host` on a helper thread, waiting at most `within` (the resolver itself has no
/// deadline) and no longer than shutdown allows.
pub fn resolve(host: &str, within: Duration, cancel: &CancellationToken) -> Resolved {
    let (tx, rx) = mpsc::channel();
    let name = host.to_string();
    let spawned = std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let found = (name.as_str(), 0u16)
                .to_socket_addrs()
                .map(|mut a| a.next().is_some())
                .unwrap_or(false);
            let _ = tx.send(found);
        });
    if spawned.is_err() {
        // No thread for it: let FFmpeg resolve and report as before.
        return Resolved::Ok;
    }
    let until = Instant::now() + within;
    loop {
        if cancel.is_cancelled() {
            return Resolved::Cancelled;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Resolved::TimedOut;
        }
        match rx.recv_timeout(left.min(Duration::from_millis(100))) {
            Ok(true) => return Resolved::Ok,
            Ok(false) => return Resolved::NotFound,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Resolved::Ok,
        }
    }
}

/// What an FFmpeg open error means, where it means something plainer than its text.
#[derive(Debug, PartialEq, Eq)]
pub enum Cause {
    Refused,
    Unreachable,
    Unauthorized,
    Other,
}

pub fn cause_of(e: &ffmpeg::Error) -> Cause {
    match e {
        ffmpeg::Error::HttpUnauthorized | ffmpeg::Error::HttpForbidden => Cause::Unauthorized,
        ffmpeg::Error::Other { errno } => match std::io::Error::from_raw_os_error(*errno).kind() {
            std::io::ErrorKind::ConnectionRefused => Cause::Refused,
            std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
                Cause::Unreachable
            }
            _ => Cause::Other,
        },
        _ => Cause::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_come_without_credentials_or_ports() {
        assert_eq!(
            host_of("rtsp://u:p@cam.example:554/x").as_deref(),
            Some("cam.example")
        );
        assert_eq!(
            host_of("http://cam.example/a@b").as_deref(),
            Some("cam.example")
        );
        assert_eq!(host_of("rtsp://127.0.0.1:8554/x"), None);
        assert_eq!(host_of("rtsp://[::1]:8554/x"), None);
        assert_eq!(host_of("clip.mp4"), None);
    }

    #[test]
    fn errors_map_to_causes() {
        // AVERROR(ECONNREFUSED) on Linux.
        assert_eq!(cause_of(&ffmpeg::Error::from(-111)), Cause::Refused);
        assert_eq!(
            cause_of(&ffmpeg::Error::HttpUnauthorized),
            Cause::Unauthorized
        );
        assert_eq!(cause_of(&ffmpeg::Error::InvalidData), Cause::Other);
    }

    #[test]
    fn an_invalid_host_does_not_resolve() {
        let tok = CancellationToken::new();
        let r = resolve("no-such-host.invalid", Duration::from_secs(5), &tok);
        assert!(
            matches!(r, Resolved::NotFound | Resolved::TimedOut),
            "{r:?}"
        );
        assert_eq!(
            resolve("localhost", Duration::from_secs(5), &tok),
            Resolved::Ok
        );
    }
}
