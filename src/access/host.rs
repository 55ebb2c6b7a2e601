//! The `Host` check against DNS rebinding: a page on another site can point its own name at
//! camwall's address, and then its requests are same-origin in the browser (its Origin and the
//! Host agree), tokens or not. So a request is served only when its `Host` names camwall as
//! the operator knows it: an IP literal or `localhost` (any port), or a name listed in
//! `server.allowed_hosts` (the name in a TLS certificate, or the one a reverse proxy passes
//! on). One filter for every route: pages, API, WebSocket upgrades, MJPEG, snapshots.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use warp::{Filter, Rejection};

/// A request whose `Host` is not one of camwall's names: 421 `misdirected_host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MisdirectedHost {
    /// The name the request gave, cut short, for the answer.
    pub host: String,
}

impl warp::reject::Reject for MisdirectedHost {}

/// The host part of a `Host` header (`name`, `name:port`, `1.2.3.4:port`, `[::1]:port`),
/// lowercased, without a trailing dot.
fn host_part(host: &str) -> String {
    let h = host.trim();
    let name = if let Some(rest) = h.strip_prefix('[') {
        // An IPv6 literal keeps its brackets off: `[::1]:8000` is `::1`.
        rest.split(']').next().unwrap_or_default()
    } else {
        match h.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => h,
        }
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a request with this `Host` is served. No `Host` at all is no browser (a browser
/// always sends it) and passes.
pub fn host_allowed(host: Option<&str>, allowed: &[String]) -> bool {
    let Some(host) = host else { return true };
    let name = host_part(host);
    name == "localhost"
        || name.parse::<Ipv4Addr>().is_ok()
        || name.parse::<Ipv6Addr>().is_ok()
        || allowed
            .iter()
            .any(|a| a.trim_end_matches('.').eq_ignore_ascii_case(&name))
}

/// Passes when [`host_allowed`]; rejects with [`MisdirectedHost`] otherwise.
pub fn check_host(
    allowed: Arc<Vec<String>>,
) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("host")
        .and_then(move |host: Option<String>| {
            let ok = host_allowed(host.as_deref(), &allowed);
            async move {
                match host {
                    Some(h) if !ok => Err(warp::reject::custom(MisdirectedHost {
                        host: h.chars().take(100).collect(),
                    })),
                    _ => Ok(()),
                }
            }
        })
        .untuple_one()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_localhost_always_pass() {
        for h in [
            "127.0.0.1",
            "127.0.0.1:8000",
            "192.168.1.5:1",
            "[::1]:8000",
            "[fe80::1]",
            "localhost",
            "LOCALHOST:9",
            "localhost.:80",
        ] {
            assert!(host_allowed(Some(h), &[]), "{h}");
        }
        assert!(host_allowed(None, &[]));
    }

    #[test]
    fn other_names_only_when_listed() {
        let allowed = vec!["camwall.test".to_string()];
        assert!(!host_allowed(Some("evil.example"), &allowed));
        assert!(!host_allowed(Some("evil.example:8000"), &allowed));
        assert!(!host_allowed(Some("127.0.0.1.evil.example"), &allowed));
        assert!(!host_allowed(Some("localhost.evil.example"), &allowed));
        assert!(!host_allowed(Some("127.1"), &allowed));
        assert!(host_allowed(Some("camwall.test"), &allowed));
        assert!(host_allowed(Some("CamWall.Test:8443"), &allowed));
        assert!(!host_allowed(Some("sub.camwall.test"), &allowed));
    }
}
