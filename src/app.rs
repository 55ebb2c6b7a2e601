//! Wiring: start the camera workers, serve the routes, and shut both down on one signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::access::auth::Auth;
use crate::access::guard::{Guard, ViewCameras};
use crate::access::limits::ClientLimits;
use crate::access::sessions::Sessions;
use crate::access::users::Users;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::control::{ConfigStore, Manager};
use crate::hub::Hub;
use crate::web::server::ServeOptions;
use crate::web::{routes, WebState};

/// `camwall hash-password`: a password as the argon2id string `server.auth.users` takes.
pub use crate::access::users::hash_password;
/// The shortest and longest password `hash_password` is given.
pub const PASSWORD_LENGTH: (usize, usize) = (
    crate::access::users::MIN_PASSWORD,
    crate::access::users::MAX_PASSWORD,
);
/// The cluster section's start checks (NATS addresses, credentials file), run by the binary
/// before serving: a config error stops the start.
pub use crate::cluster::check as check_cluster;
/// HTTPS setup, built by the binary before serving (config errors stop the start).
pub use crate::web::tls::{Tls, TlsError};

/// How long open connections get to finish after shutdown starts.
pub const CONNECTION_DRAIN: Duration = Duration::from_millis(1000);
/// How long camera workers get to stop after shutdown starts.
pub const CAMERA_STOP: Duration = Duration::from_millis(1000);

/// A running camwall: cameras started, not yet serving.
pub struct App {
    hub: Arc<Hub>,
    manager: Arc<Manager>,
    guard: Arc<Guard>,
    limits: Arc<ClientLimits>,
    public_dir: PathBuf,
    cancel: CancellationToken,
    session_file: Option<Arc<crate::access::kept::SessionFile>>,
    cluster: Option<Arc<Cluster>>,
    replay: Option<Arc<crate::replay::Replay>>,
}

impl App {
    /// Starts a worker for every enabled camera. `public_dir` is already resolved; `store`
    /// holds the config file `config` was read from, where runtime changes are written.
    pub fn start(config: &Config, public_dir: PathBuf, store: ConfigStore) -> Self {
        let hub = Arc::new(Hub::new(config));
        let cancel = CancellationToken::new();
        let config_dir = store.path().parent().map(PathBuf::from).unwrap_or_default();
        let manager = match &config.server.cluster {
            None => Manager::start(hub.clone(), store, cancel.clone()),
            Some(_) => Manager::start_clustered(hub.clone(), store, cancel.clone()),
        };
        let s = &config.server;
        let auth = Arc::new(Auth::new(
            &s.auth.viewer_tokens,
            &s.auth.admin_tokens,
            std::env::var("CAMWALL_TOKEN").ok(),
        ));
        let limits = ClientLimits::new(
            s.limits.max_ws_clients,
            s.limits.max_mjpeg_clients,
            s.limits.max_clients_per_ip,
        );
        // A scope that names a view sees the view's cameras as they are when it asks.
        let views: ViewCameras = {
            let manager = manager.clone();
            Arc::new(move |id: &str| {
                manager
                    .views()
                    .into_iter()
                    .find(|v| v.id == id)
                    .map(|v| v.cameras)
            })
        };
        let minutes = |m: u64| Duration::from_secs(m.saturating_mul(60));
        let guard = Guard::with_users(
            auth,
            Users::new(&s.auth.users),
            Sessions::new(
                minutes(s.auth.session_idle_minutes),
                minutes(s.auth.session_max_days.saturating_mul(24 * 60)),
            ),
            views,
            Arc::new(s.allowed_origins.clone()),
            limits.clone(),
        );
        // Users edited in the file apply at a reload (SIGHUP), and in a cluster as the shared
        // list changes: a changed password, role or scope, or a removed user, ends that
        // user's sessions. Tokens and lifetimes wait for the next start, as the rest of
        // `server`.
        {
            let guard = Arc::downgrade(&guard);
            let before = std::sync::Mutex::new(s.auth.users.clone());
            manager.on_auth_reload(Box::new(move |auth| {
                let mut before = before.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if *before == auth.users {
                    return;
                }
                if let Some(g) = guard.upgrade() {
                    g.set_users(g.users().replaced_by(&auth.users));
                    tracing::info!(target: "camwall::audit", users = auth.users.len(), "users changed");
                }
                *before = auth.users.clone();
            }));
        }
        let replay =
            crate::replay::Replay::start(hub.clone(), &s.replay, &config_dir, cancel.clone());
        let cluster = s.cluster.as_ref().map(|c| {
            Cluster::start(
                c,
                &config_dir,
                hub.clone(),
                manager.clone(),
                &guard,
                replay.clone(),
                cancel.clone(),
            )
        });
        // Alone, sessions outlive a restart in a file beside the config; a cluster keeps
        // them in NATS.
        let session_file = cluster.is_none().then(|| {
            crate::access::kept::SessionFile::open(
                &config_dir.join(crate::access::kept::FILE_NAME),
                guard.sessions().clone(),
                cancel.clone(),
            )
        });
        Self {
            session_file,
            replay,
            hub,
            manager,
            guard,
            limits,
            public_dir,
            cancel,
            cluster,
        }
    }

    /// Runtime changes and reloads (SIGHUP).
    pub fn manager(&self) -> Arc<Manager> {
        self.manager.clone()
    }

    /// Serves on `listener` (HTTPS with `tls`) until `shutdown` resolves, then stops
    /// everything: open connections get [`CONNECTION_DRAIN`], cameras [`CAMERA_STOP`]; whatever
    /// is still stuck after that (a camera blocked in a DNS lookup, say) is abandoned so the
    /// process can exit.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Option<Tls>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let server_config = self.hub.server_config();
        let local = listener.local_addr().ok();
        let open_access = open_access(self.guard.is_open(), local);
        if open_access {
            warn!(
                listen = ?local,
                "listening on a non-loopback address with no token or user configured: anyone \
                 who can reach it may watch and change cameras; set server.auth tokens or users"
            );
        }
        let webrtc = match local {
            Some(addr) => {
                crate::web::webrtc::start(addr, &server_config.webrtc, self.cancel.clone()).await
            }
            None => None,
        };
        let ice_tcp = webrtc.as_ref().map(|w| w.ice_tcp());
        let state = WebState {
            hub: self.hub.clone(),
            public_dir: self.public_dir.clone(),
            shutdown: self.cancel.clone(),
            manager: self.manager.clone(),
            guard: self.guard.clone(),
            limits: self.limits.clone(),
            allowed_hosts: Arc::new(server_config.allowed_hosts.clone()),
            open_access,
            cluster: self.cluster.clone(),
            webrtc,
            replay: self.replay.clone(),
        };
        let cancel = self.cancel.clone();
        let stop = cancel.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop.cancel();
        });
        let opts = ServeOptions {
            header_timeout: Duration::from_millis(server_config.limits.header_timeout_ms),
            max_connections_per_ip: server_config.limits.max_connections_per_ip,
            trusted_proxies: Arc::new(server_config.trusted_proxies.clone()),
            send_stall_timeout: crate::web::server::SEND_STALL_TIMEOUT,
            tls: tls.map(|t| t.acceptor()),
            ice_tcp,
        };
        let server = crate::web::server::serve(listener, routes(state), opts, cancel.clone());
        let server = tokio::spawn(server);
        cancel.cancelled().await;
        info!("shutting down");
        if tokio::time::timeout(CONNECTION_DRAIN, server)
            .await
            .is_err()
        {
            warn!("connections still open after {CONNECTION_DRAIN:?}; closing them");
        }
        if tokio::time::timeout(CAMERA_STOP, self.manager.stopped())
            .await
            .is_err()
        {
            warn!("some cameras did not stop within {CAMERA_STOP:?}; leaving them");
        }
        if let Some(f) = self.session_file {
            let _ = tokio::task::spawn_blocking(move || f.flush()).await;
        }
    }
}

/// Whether anyone who can reach camwall may use it: no token or user configured and a listen
/// address other than the loopback.
pub fn open_access(no_tokens: bool, local: Option<SocketAddr>) -> bool {
    no_tokens && !local.is_some_and(|a| a.ip().to_canonical().is_loopback())
}

/// Kernel send buffer of every connection, in bytes (Linux doubles it). Autotuned buffers
/// grow to megabytes: a slow viewer would then hold seconds of stale video in the kernel
/// before camwall sees any backpressure. A fixed buffer keeps "bytes in flight" small, so
/// adaptation and latest-wins skipping act within a few frames.
pub const SOCKET_SEND_BUFFER: u32 = 256 * 1024;

/// Binds the listen address. Accepted sockets inherit the listener's send buffer size.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_send_buffer_size(SOCKET_SEND_BUFFER)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_access_means_no_token_and_not_loopback() {
        let any: SocketAddr = "0.0.0.0:8000".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8000".parse().unwrap();
        assert!(open_access(true, Some(any)));
        assert!(!open_access(false, Some(any)));
        assert!(!open_access(true, Some(lo)));
        assert!(!open_access(true, Some(lo6)));
    }
}
