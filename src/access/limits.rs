//! Admission control: caps on long-lived clients (WebSocket, MJPEG streams, long-polls) in
//! total and per IP address, and on raw TCP connections per address. A [`ClientSlot`] or
//! [`ConnSlot`] is held for each and given back on drop.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

/// Kinds of long-lived clients that are capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    WebSocket,
    Mjpeg,
    /// A frame request waiting for a newer frame (`wait_ms`): it holds a connection for up to
    /// a minute, so it counts like a stream (its own total, capped like MJPEG clients).
    LongPoll,
    /// A WebRTC session (WHEP, or a wall tile on a page without WebCodecs).
    WebRtc,
}

impl ClientKind {
    /// Every kind, for gauges.
    pub const ALL: [ClientKind; 4] = [Self::WebSocket, Self::Mjpeg, Self::LongPoll, Self::WebRtc];

    /// The metrics label of the kind.
    pub fn label(self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::Mjpeg => "mjpeg",
            Self::LongPoll => "long_poll",
            Self::WebRtc => "webrtc",
        }
    }
}

/// Counts long-lived clients; a [`ClientSlot`] is held for each one.
pub struct ClientLimits {
    ws: AtomicUsize,
    mjpeg: AtomicUsize,
    long_poll: AtomicUsize,
    webrtc: AtomicUsize,
    per_ip: DashMap<IpAddr, usize>,
    pub max_ws: usize,
    pub max_mjpeg: usize,
    pub max_per_ip: usize,
    /// WebRTC sessions at once: as many as WebSocket clients (the WebRTC service has its
    /// own caps too, `server.webrtc.max_sessions` and `max_sessions_per_ip`); they do not
    /// count under `max_per_ip`.
    pub max_webrtc: usize,
}

/// A client's place under the caps, given back on drop.
pub struct ClientSlot {
    limits: Arc<ClientLimits>,
    kind: ClientKind,
    ip: Option<IpAddr>,
    /// Whether the login session the client came with still stands (`None`: a token or open
    /// access, which do not end).
    session: Option<SessionStands>,
}

/// How often a stream that outlives its request (MJPEG, WebRTC, a WebSocket) checks that its
/// login session still stands: a logout ends it within this.
pub const SESSION_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Asks whether a client's login session still stands.
pub type SessionStands = Arc<dyn Fn() -> bool + Send + Sync>;

impl ClientSlot {
    /// This slot, ending with the session `stands` checks.
    pub fn with_session(mut self, stands: SessionStands) -> Self {
        self.session = Some(stands);
        self
    }

    /// Whether the client's login session still stands (always, without one). Counts as a
    /// use of the session: a person watching is not idle.
    pub fn session_stands(&self) -> bool {
        self.session.as_ref().is_none_or(|f| f())
    }
}

impl ClientLimits {
    pub fn new(max_ws: usize, max_mjpeg: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            ws: AtomicUsize::new(0),
            mjpeg: AtomicUsize::new(0),
            long_poll: AtomicUsize::new(0),
            webrtc: AtomicUsize::new(0),
            per_ip: DashMap::new(),
            max_ws,
            max_mjpeg,
            max_per_ip,
            max_webrtc: max_ws,
        })
    }

    fn counter(&self, kind: ClientKind) -> (&AtomicUsize, usize) {
        match kind {
            ClientKind::WebSocket => (&self.ws, self.max_ws),
            ClientKind::Mjpeg => (&self.mjpeg, self.max_mjpeg),
            ClientKind::LongPoll => (&self.long_poll, self.max_mjpeg),
            ClientKind::WebRtc => (&self.webrtc, self.max_webrtc),
        }
    }

    /// Current count of one kind.
    pub fn count(&self, kind: ClientKind) -> usize {
        self.counter(kind).0.load(Ordering::Relaxed)
    }

    /// A slot for a new client, or `None` if a cap is reached.
    pub fn acquire(
        self: &Arc<Self>,
        kind: ClientKind,
        peer: Option<SocketAddr>,
    ) -> Option<ClientSlot> {
        let (count, max) = self.counter(kind);
        if count.fetch_add(1, Ordering::SeqCst) >= max {
            count.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        // WebRTC sessions have a per-address cap of their own (a wall on a page without
        // WebCodecs opens one per tile): `web::webrtc` counts them.
        let ip = peer.map(|p| p.ip()).filter(|_| kind != ClientKind::WebRtc);
        if let Some(ip) = ip {
            let mut n = self.per_ip.entry(ip).or_insert(0);
            if *n >= self.max_per_ip {
                drop(n);
                count.fetch_sub(1, Ordering::SeqCst);
                return None;
            }
            *n += 1;
        }
        Some(ClientSlot {
            limits: self.clone(),
            kind,
            ip,
            session: None,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.limits
            .counter(self.kind)
            .0
            .fetch_sub(1, Ordering::SeqCst);
        if let Some(ip) = self.ip {
            self.limits.per_ip.remove_if_mut(&ip, |_, n| {
                *n -= 1;
                *n == 0
            });
        }
    }
}

/// Open TCP connections per peer address, capped: one address cannot hold every descriptor
/// the process has (idle keep-alives, silent sockets). The map holds only addresses with an
/// open connection, so it is bounded by the connections themselves.
pub struct ConnLimits {
    per_ip: DashMap<IpAddr, usize>,
    max_per_ip: usize,
}

/// One open connection, given back on drop.
pub struct ConnSlot {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl ConnLimits {
    pub fn new(max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            per_ip: DashMap::new(),
            max_per_ip,
        })
    }

    /// A slot for a new connection from `ip`, or `None` when it already has the most allowed.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ConnSlot> {
        let mut n = self.per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return None;
        }
        *n += 1;
        Some(ConnSlot {
            limits: self.clone(),
            ip,
        })
    }

    /// Open connections from `ip`.
    #[cfg(test)]
    pub fn count(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip).map(|n| *n).unwrap_or(0)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.limits.per_ip.remove_if_mut(&self.ip, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_per_address_are_capped_and_given_back() {
        let l = ConnLimits::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = l.acquire(a).unwrap();
        let _s2 = l.acquire(a).unwrap();
        assert!(l.acquire(a).is_none());
        let sb = l.acquire(b).unwrap();
        drop(s1);
        assert_eq!(l.count(a), 1);
        assert!(l.acquire(a).is_some());
        drop(sb);
        assert!(l.per_ip.get(&b).is_none(), "empty entries are removed");
    }

    #[test]
    fn caps_total_and_per_ip() {
        let l = ClientLimits::new(3, 1, 2);
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:1".parse().unwrap();
        let s1 = l.acquire(ClientKind::WebSocket, Some(a)).unwrap();
        let _s2 = l.acquire(ClientKind::WebSocket, Some(a)).unwrap();
        assert!(
            l.acquire(ClientKind::WebSocket, Some(a)).is_none(),
            "per-IP cap"
        );
        let _s3 = l.acquire(ClientKind::WebSocket, Some(b)).unwrap();
        assert!(
            l.acquire(ClientKind::WebSocket, Some(b)).is_none(),
            "total cap"
        );
        drop(s1);
        assert!(l.acquire(ClientKind::WebSocket, Some(b)).is_some());
        assert_eq!(l.count(ClientKind::Mjpeg), 0);
        // Long-polls have their own total and share the per-IP cap.
        let c: SocketAddr = "10.0.0.3:1".parse().unwrap();
        let _p1 = l.acquire(ClientKind::LongPoll, Some(c)).unwrap();
        assert!(
            l.acquire(ClientKind::LongPoll, Some(c)).is_none(),
            "long-poll total cap"
        );
        let _w = l.acquire(ClientKind::WebSocket, Some(c));
        assert_eq!(l.count(ClientKind::LongPoll), 1);
    }
}
