//! What every route shares: the hub, the manager, access settings and the shutdown token.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::access::guard::Guard;
use crate::access::limits::ClientLimits;
use crate::control::Manager;
use crate::hub::Hub;

/// What the routes share.
#[derive(Clone)]
pub struct WebState {
    pub hub: Arc<Hub>,
    pub public_dir: PathBuf,
    /// Fires at shutdown: long-lived connections (WebSocket, MJPEG) close themselves.
    pub shutdown: CancellationToken,
    /// Runtime camera changes.
    pub manager: Arc<Manager>,
    /// Who may do what: every route asks it (`access::guard`).
    pub guard: Arc<Guard>,
    /// The client caps (the guard admits through them; the status counts them).
    pub limits: Arc<ClientLimits>,
    /// `server.allowed_hosts`: names a request's `Host` may give besides IP literals and
    /// `localhost` (`access::host`).
    pub allowed_hosts: Arc<Vec<String>>,
    /// No token and a non-loopback listen address (shown by `/health`).
    pub open_access: bool,
    /// This node's cluster, when `server.cluster` is set.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// WebRTC sessions and their UDP socket (`None`: off, or the socket could not be bound).
    pub webrtc: Option<Arc<crate::web::webrtc::WebRtc>>,
    /// The replay ring (`None`: off).
    pub replay: Option<Arc<crate::replay::Replay>>,
}
