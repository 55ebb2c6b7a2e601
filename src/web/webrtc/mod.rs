//! WebRTC output: the cameras' own H.264/H.265 to players that ask over WHEP (RFC 9725) and to
//! the wall's pages that have no WebCodecs (plain http on a LAN address). One UDP socket for
//! every session (ICE-lite, host candidates); one task per session (`session`) owning its
//! sans-I/O peer (`peer`); the routes are `whep`.
//!
//! The socket's loop routes each datagram to its session: by source address once a session
//! has been reached from it, else by the ufrag of a STUN binding request (`stun`). Sessions,
//! their addresses and queues are bounded; a session ends on `DELETE`, when its peer is
//! gone (consent freshness), its camera is removed, or at shutdown.

mod adapt;
mod audio;
mod negotiate;
mod packetize;
pub mod peer;
mod rtp_clock;
mod session;
mod stun;
mod tcp;
pub mod whep;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use str0m::net::Protocol;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::access::limits::ClientSlot;
use crate::hub::attach::{Audio, Opus, Video};
use crate::hub::{Hub, Stream};
use crate::media::codec::Codec;
use audio::AudioSend;
use peer::{OfferError, Peer, Sends, Setup};

/// Datagrams queued for one session; beyond it they are dropped (UDP: the peer resends).
const INBOX: usize = 256;
/// Source addresses remembered per session (a peer's candidates that reached us).
const ADDRS_PER_SESSION: usize = 4;
/// How long an offer waits for its camera's first unit when the camera's codec is not yet
/// known (a camera still connecting, or relayed from another node on demand).
const CODEC_WAIT: Duration = Duration::from_secs(8);
/// The largest UDP datagram read.
const MAX_DATAGRAM: usize = 2048;

/// `server.webrtc`, resolved: where the socket is and what to announce.
#[derive(Debug, Clone)]
pub struct Options {
    /// Addresses announced besides the one a request arrived on (NAT, Docker).
    pub candidates: Vec<SocketAddr>,
    pub max_sessions: usize,
    pub max_sessions_per_ip: usize,
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Offer(#[from] OfferError),
    #[error("the camera sends no H.264 or H.265 video (yet): watch it as JPEG")]
    NoVideo,
    #[error("too many WebRTC sessions")]
    TooMany,
}

/// A datagram (or an ICE-TCP frame) for a session: how it came, from where, what.
type Inbound = (Protocol, SocketAddr, Bytes);

struct Handle {
    camera: String,
    /// The client's address (behind trusted proxies, the forwarded one).
    client: Option<IpAddr>,
    inbox: mpsc::Sender<Inbound>,
    end: CancellationToken,
    ufrag: String,
}

/// Every WebRTC session of the process and their socket.
pub struct WebRtc {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    options: Options,
    setup: Setup,
    sessions: DashMap<String, Handle>,
    by_ufrag: DashMap<String, String>,
    by_addr: DashMap<SocketAddr, String>,
    /// Open ICE-TCP connections by peer address: where a session's TCP packets go.
    tcp_conns: DashMap<SocketAddr, mpsc::Sender<Bytes>>,
    /// The HTTP port, where ICE-TCP is served (a passive TCP candidate).
    http_port: Option<u16>,
    opened: AtomicU64,
    cancel: CancellationToken,
}

impl WebRtc {
    /// Binds the UDP socket and starts its loop (ends with `cancel`).
    pub async fn bind(
        addr: SocketAddr,
        http_port: Option<u16>,
        options: Options,
        cancel: CancellationToken,
    ) -> std::io::Result<Arc<Self>> {
        let socket = Arc::new(UdpSocket::bind(addr).await?);
        let local = socket.local_addr()?;
        let provider = Arc::new(str0m::crypto::from_feature_flags());
        let cert = provider
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| std::io::Error::other("no DTLS certificate could be made"))?;
        let rtc = Arc::new(Self {
            socket,
            local,
            options,
            setup: Setup { provider, cert },
            sessions: DashMap::new(),
            by_ufrag: DashMap::new(),
            by_addr: DashMap::new(),
            tcp_conns: DashMap::new(),
            http_port,
            opened: AtomicU64::new(0),
            cancel,
        });
        tokio::spawn(rtc.clone().receive_loop());
        info!(udp = %local, "WebRTC listening");
        Ok(rtc)
    }

    /// The UDP address every session uses.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sessions open now.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Sessions opened since start.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// The host candidates of a session whose offer came in on `request_ip`: that address
    /// first (the peer reached it), then the configured ones.
    fn candidates(&self, request_ip: Option<IpAddr>) -> Vec<SocketAddr> {
        let first = match (request_ip, self.local.ip().is_unspecified()) {
            (Some(ip), _) => SocketAddr::new(ip.to_canonical(), self.local.port()),
            (None, false) => self.local,
            (None, true) => SocketAddr::new(IpAddr::from([127, 0, 0, 1]), self.local.port()),
        };
        let mut out = vec![first];
        out.extend(self.options.candidates.iter().filter(|c| **c != first));
        out
    }

    /// The passive TCP candidate of a session whose offer came in on `request_ip`: the HTTP
    /// port, where the accept loop hands ICE-TCP connections over.
    fn tcp_candidate(&self, request_ip: Option<IpAddr>) -> Option<SocketAddr> {
        let port = self.http_port?;
        let ip = request_ip
            .map(|ip| ip.to_canonical())
            .or_else(|| Some(self.local.ip()).filter(|ip| !ip.is_unspecified()))?;
        Some(SocketAddr::new(ip, port))
    }

    /// The accept loop's handoff for ICE-TCP connections (`web::server`).
    pub fn ice_tcp(self: &Arc<Self>) -> crate::web::server::IceTcpHandoff {
        let rtc = self.clone();
        Arc::new(move |stream, peer, slot| {
            tokio::spawn(tcp::serve(rtc.clone(), stream, peer, slot));
        })
    }

    /// Hands `data` from `from` to session `id`; false when the session is gone. A full
    /// inbox drops it, like a lost datagram.
    fn deliver(&self, id: &str, proto: Protocol, from: SocketAddr, data: Bytes) -> bool {
        match self.sessions.get(id) {
            Some(h) => {
                let _ = h.inbox.try_send((proto, from, data));
                true
            }
            None => false,
        }
    }

    /// Answers `offer` for `stream`'s video: the session runs until ended. Returns its id and
    /// the SDP answer.
    pub async fn open(
        self: &Arc<Self>,
        hub: Arc<Hub>,
        stream: Stream,
        offer: &str,
        request_ip: Option<IpAddr>,
        client: Option<IpAddr>,
        slot: ClientSlot,
    ) -> Result<(String, String), OpenError> {
        if self.sessions.len() >= self.options.max_sessions {
            return Err(OpenError::TooMany);
        }
        let from_client = |h: &Handle| client.is_some() && h.client == client;
        if self.sessions.iter().filter(|h| from_client(h)).count()
            >= self.options.max_sessions_per_ip
        {
            return Err(OpenError::TooMany);
        }
        let mut video = stream.attach(Video::Watch);
        let codec = match stream.camera.video().codec() {
            Some(c) => c,
            None => first_codec(&mut video).await.ok_or(OpenError::NoVideo)?,
        };
        let id = random_hex();
        let creds = str0m::IceCreds {
            ufrag: random_hex()[..8].to_string(),
            pass: random_hex(),
        };
        let ufrag = creds.ufrag.clone();
        let now = tokio::time::Instant::now().into_std();
        let candidates = self.candidates(request_ip);
        let tcp = self.tcp_candidate(request_ip);
        // The camera's audio as it goes to WebRTC (G.711 as it is, AAC through the camera's
        // one Opus transcode), when its track is known now.
        let track = stream
            .camera
            .audio()
            .info()
            .and_then(|i| AudioSend::for_track(&i));
        let sends = Sends {
            video: codec,
            audio: track.map(|(send, _)| send),
        };
        let (peer, answer) = Peer::answer(&self.setup, offer, sends, &candidates, tcp, creds, now)?;
        // Audio is attached only when the answer has a section for it: no transcode runs for
        // a viewer that did not ask for sound.
        let audio = match (peer.audio(), track) {
            (Some(_), Some((_, true))) => Some(stream.attach(Opus)),
            (Some(_), Some((_, false))) => Some(stream.attach(Audio)),
            _ => None,
        };
        let (tx, rx) = mpsc::channel(INBOX);
        let end = self.cancel.child_token();
        self.sessions.insert(
            id.clone(),
            Handle {
                camera: stream.camera.id().to_string(),
                client,
                inbox: tx,
                end: end.clone(),
                ufrag: ufrag.clone(),
            },
        );
        self.by_ufrag.insert(ufrag, id.clone());
        self.opened.fetch_add(1, Ordering::Relaxed);
        crate::obs::metrics::webrtc_opened();
        let run = session::Run {
            rtc: self.clone(),
            id: id.clone(),
            peer,
            video,
            audio,
            inbox: rx,
            end,
            stream,
            hub,
            slot,
        };
        tokio::spawn(run.run());
        Ok((id, answer))
    }

    /// Ends session `id` of `camera` (`DELETE`). False when there is no such session.
    pub fn close(&self, camera: &str, id: &str) -> bool {
        match self.sessions.get(id) {
            Some(h) if h.camera == camera => {
                h.end.cancel();
                true
            }
            _ => false,
        }
    }

    /// Forgets a session that ended (its task calls this last).
    fn forget(&self, id: &str) {
        if let Some((_, h)) = self.sessions.remove(id) {
            self.by_ufrag.remove(&h.ufrag);
        }
        self.by_addr.retain(|_, s| s != id);
    }

    async fn send(&self, proto: Protocol, to: SocketAddr, data: Vec<u8>) {
        if proto == Protocol::Tcp {
            if let Some(conn) = self.tcp_conns.get(&to) {
                let _ = conn.try_send(Bytes::from(data));
            }
            return;
        }
        if let Err(e) = self.socket.send_to(&data, to).await {
            debug!(%to, error = %e, "WebRTC send failed");
        }
    }

    async fn receive_loop(self: Arc<Self>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let got = tokio::select! {
                _ = self.cancel.cancelled() => return,
                got = self.socket.recv_from(&mut buf) => got,
            };
            let (n, from) = match got {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors from a vanished peer surface here on Linux: not fatal.
                    debug!(error = %e, "WebRTC receive error");
                    continue;
                }
            };
            let data = &buf[..n];
            let id = match self.by_addr.get(&from) {
                Some(id) => Some(id.clone()),
                None => stun::local_ufrag(data)
                    .and_then(|u| self.by_ufrag.get(u).map(|id| id.clone()))
                    .inspect(|id| self.learn(from, id)),
            };
            let Some(id) = id else { continue };
            self.deliver(&id, Protocol::Udp, from, Bytes::copy_from_slice(data));
        }
    }

    /// Routes datagrams from `from` to session `id` from now on (bounded per session).
    fn learn(&self, from: SocketAddr, id: &str) {
        let known = self.by_addr.iter().filter(|e| e.value() == id).count();
        if known >= ADDRS_PER_SESSION {
            return;
        }
        self.by_addr.insert(from, id.to_string());
    }
}

/// The codec of the first unit a camera sends, within [`CODEC_WAIT`].
async fn first_codec(video: &mut crate::hub::attach::VideoOutput) -> Option<Codec> {
    use futures_util::StreamExt;
    if let Some(u) = video.gop.first() {
        return Some(u.config.params.codec);
    }
    let wait = async {
        loop {
            match video.next().await {
                Some(Ok(u)) => return Some(u.config.params.codec),
                Some(Err(_)) => continue,
                None => return None,
            }
        }
    };
    tokio::time::timeout(CODEC_WAIT, wait).await.ok().flatten()
}

/// 128 random bits as hex: session ids (the `Location`) and ICE passwords.
fn random_hex() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// Starts WebRTC on the HTTP listener's address: UDP port `udp` (`None`: the HTTP port, or
/// any free port when that one is taken). `None` when it cannot start (logged).
pub async fn start(
    http: SocketAddr,
    config: &crate::config::WebRtcConfig,
    cancel: CancellationToken,
) -> Option<Arc<WebRtc>> {
    if !config.enabled {
        return None;
    }
    let options = Options {
        candidates: config
            .candidates
            .iter()
            .filter_map(|c| crate::config::parse_candidate(c, config.udp.unwrap_or(http.port())))
            .collect(),
        max_sessions: config.max_sessions,
        max_sessions_per_ip: config.max_sessions_per_ip,
    };
    let port = config.udp.unwrap_or(http.port());
    let http_port = Some(http.port());
    match WebRtc::bind(
        SocketAddr::new(http.ip(), port),
        http_port,
        options.clone(),
        cancel.clone(),
    )
    .await
    {
        Ok(rtc) => Some(rtc),
        Err(e) if config.udp.is_none() => {
            warn!(port, error = %e, "UDP port of HTTP taken; WebRTC on any free UDP port");
            WebRtc::bind(SocketAddr::new(http.ip(), 0), http_port, options, cancel)
                .await
                .inspect_err(|e| warn!(error = %e, "WebRTC is off: no UDP socket"))
                .ok()
        }
        Err(e) => {
            warn!(port, error = %e, "WebRTC is off: server.webrtc.udp cannot be bound");
            None
        }
    }
}
