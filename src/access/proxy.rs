//! Who a client really is behind a reverse proxy: the address that per-IP caps and the poller
//! gauge count. `X-Forwarded-For` and `Forwarded: for=` are believed only from the configured
//! trusted proxies; from anyone else they are ignored (a client could name any address).

use std::net::{IpAddr, SocketAddr};

use warp::http::HeaderMap;

/// The client's address: `peer` itself unless `peer` is a trusted proxy and the request says
/// whom it forwards for. The chain is walked from the right (the hop nearest camwall) over
/// trusted proxies; the first untrusted address is the client. Anything unreadable in the
/// chain stops the walk at the last address believed.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> SocketAddr {
    if !is_trusted(peer.ip(), trusted) {
        return peer;
    }
    let chain = forwarded_for(headers);
    let mut client = peer.ip();
    for hop in chain.iter().rev() {
        let Some(ip) = hop else { break };
        client = *ip;
        if !is_trusted(*ip, trusted) {
            break;
        }
    }
    SocketAddr::new(client, peer.port())
}

fn is_trusted(ip: IpAddr, trusted: &[IpAddr]) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|t| t.to_canonical() == ip)
}

/// The forwarded-for chain, leftmost (the original client) first; `None` for an entry that is
/// not an address (`unknown`, an obfuscated name, garbage). `X-Forwarded-For` wins when both
/// headers are present (it is what nginx sets). At most [`MAX_HOPS`] entries are read.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let entries: Vec<&str> = if !xff.is_empty() {
        xff
    } else {
        headers
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| v.trim().trim_matches('"'))
                })
            })
            .collect()
    };
    // Only the hops nearest camwall matter; a huge header is cut from the left.
    let skip = entries.len().saturating_sub(MAX_HOPS);
    entries[skip..].iter().map(|e| parse_hop(e)).collect()
}

/// Most forwarded-for entries considered.
const MAX_HOPS: usize = 16;

/// `1.2.3.4`, `1.2.3.4:5`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:5`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    const PROXY: &str = "127.0.0.1:5000";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_are_taken_as_they_are() {
        let peer: SocketAddr = "10.0.0.9:1".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(client_addr(peer, &h, &[ip("127.0.0.1")]), peer);
        assert_eq!(client_addr(peer, &h, &[]), peer);
    }

    #[test]
    fn rightmost_untrusted_address_is_the_client() {
        let peer: SocketAddr = PROXY.parse().unwrap();
        let trusted = [ip("127.0.0.1"), ip("10.0.0.2")];
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")]);
        assert_eq!(client_addr(peer, &h, &trusted).ip(), ip("1.2.3.4"));
        // Two headers are one list.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "1.2.3.5"),
        ]);
        assert_eq!(client_addr(peer, &h, &trusted).ip(), ip("1.2.3.5"));
        // No header: the proxy itself.
        assert_eq!(client_addr(peer, &HeaderMap::new(), &trusted), peer);
        // Garbage stops the walk at the last address believed.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, bogus, 10.0.0.2")]);
        assert_eq!(client_addr(peer, &h, &trusted).ip(), ip("10.0.0.2"));
    }

    #[test]
    fn forwarded_header_for_entries() {
        let peer: SocketAddr = PROXY.parse().unwrap();
        let trusted = [ip("127.0.0.1")];
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http, For=\"[2001:db8::1]:4711\"",
        )]);
        assert_eq!(client_addr(peer, &h, &trusted).ip(), ip("2001:db8::1"));
        let h = headers(&[("forwarded", "for=192.0.2.60;by=203.0.113.43")]);
        assert_eq!(client_addr(peer, &h, &trusted).ip(), ip("192.0.2.60"));
        // X-Forwarded-For wins when both are sent.
        let h = headers(&[
            ("forwarded", "for=192.0.2.60"),
            ("x-forwarded-for", "1.1.1.1"),
        ]);
        assert_eq!(client_addr(peer, &h, &trusted).ip(), ip("1.1.1.1"));
    }

    #[test]
    fn mapped_addresses_match_trusted_ones() {
        let peer: SocketAddr = "[::ffff:127.0.0.1]:5".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            client_addr(peer, &h, &[ip("127.0.0.1")]).ip(),
            ip("1.2.3.4")
        );
    }
}
