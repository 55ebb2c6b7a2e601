//! The cluster (`server.cluster`): several camwall nodes sharing cameras over NATS.
//!
//! Beside the flow, like `control`: it reads the hub, asks `control::Manager` to start or stop
//! ingesting a camera, and the web layer reads its view for status. Nothing below it knows
//! NATS. Each heartbeat (every second) it publishes this node's beat (`membership`), reads the
//! live nodes back, and carries out the lease plan (`leases`): claim the cameras rendezvous
//! hashing (`owner`) gives this node, refresh them, release those it moved away. Without NATS
//! a node keeps ingesting what it holds and shows the others' cameras `unavailable`.

pub mod catalog;
pub mod leases;
pub mod membership;
pub mod owner;
pub mod relay;
pub mod sessions;
pub mod users;
pub mod watch;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::access::guard::Guard;
use crate::access::limits::{ClientKind, ClientLimits};
use crate::config::ClusterConfig;
use crate::control::Manager;
use crate::hub::{CameraState, Hub, OwnerReport};
use crate::obs::redact::redact_url;
use leases::Step;
use membership::Beat;

/// How long one NATS request may take before the heartbeat gives up on it.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Messages buffered per NATS subscription (see `connect`).
const SUBSCRIPTION_CAPACITY: usize = 256;
/// How long a stopping node spends handing its cameras back.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(1);

/// What this node knows of the cluster, as of its last heartbeat.
#[derive(Debug, Default)]
struct View {
    connected: bool,
    nodes: BTreeMap<String, Beat>,
    /// Our leases: camera id → the revision to refresh with.
    held: HashMap<String, u64>,
    /// Cameras ingested elsewhere → the node ingesting them, as [`Cluster::show_remote_states`]
    /// found it when it gave them their state; absent: no node can be reached for it.
    owners: HashMap<String, String>,
}

/// One node's membership, leases and view of the others.
pub struct Cluster {
    node: String,
    /// Replicas of the buckets this node creates.
    replicas: usize,
    weight: f64,
    hub: Arc<Hub>,
    manager: Arc<Manager>,
    limits: Arc<ClientLimits>,
    view: Mutex<View>,
    catalog: Arc<catalog::Catalog>,
}

/// `GET /api/cluster`.
#[derive(Debug, Serialize)]
pub struct ClusterStatus {
    pub node: String,
    pub connected: bool,
    pub nodes: Vec<NodeStatus>,
}

#[derive(Debug, Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub weight: f64,
    pub cameras: Vec<String>,
    pub viewers: u64,
    pub cpu_percent: f64,
}

/// Checks what the node needs before it starts: the NATS URLs parse and the credentials file
/// (relative to `config_dir`) reads as a JWT and a seed. The error names the field; it never
/// quotes the file's contents or a URL's password.
pub fn check(cfg: &ClusterConfig, config_dir: &Path) -> Result<(), String> {
    server_addrs(&cfg.nats).map_err(|e| format!("field `server.cluster.nats`: {e}"))?;
    if let Some(p) = &cfg.tls_ca {
        use rustls_pki_types::pem::PemObject;
        let path = config_dir.join(p);
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(&path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                format!(
                    "field `server.cluster.tls_ca`: cannot read certificates from {}: {e}",
                    path.display()
                )
            })?;
        if certs.is_empty() {
            return Err(format!(
                "field `server.cluster.tls_ca`: {} holds no PEM certificate",
                path.display()
            ));
        }
    }
    if let Some(p) = &cfg.credentials {
        let path = config_dir.join(p);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "field `server.cluster.credentials`: cannot read {}: {e}",
                path.display()
            )
        })?;
        if let Err(e) = async_nats::ConnectOptions::new().credentials(&text) {
            return Err(format!(
                "field `server.cluster.credentials`: {} is not a NATS credentials file (a \
                 user JWT and its NKey seed): {}",
                path.display(),
                e.kind()
            ));
        }
    }
    Ok(())
}

impl Cluster {
    /// Connects (in the background, retrying forever) and starts the heartbeat. `config_dir`
    /// resolves a relative credentials path.
    pub fn start(
        cfg: &ClusterConfig,
        config_dir: &Path,
        hub: Arc<Hub>,
        manager: Arc<Manager>,
        guard: &Guard,
        replay: Option<Arc<crate::replay::Replay>>,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        let c = Arc::new(Self {
            node: cfg.node.clone(),
            weight: cfg.weight,
            hub,
            manager,
            limits: guard.limits().clone(),
            view: Mutex::new(View::default()),
            catalog: Arc::new(catalog::Catalog::new(cfg.replicas)),
            replicas: cfg.replicas,
        });
        // From now on the API changes the shared lists, never the config file; sessions are
        // shared too, so a login holds on every node.
        c.manager.set_catalog(c.catalog.clone());
        let users = Arc::new(users::SharedUsers::new(cfg.replicas));
        c.manager.set_user_list(users.clone());
        let shared_sessions = sessions::SharedSessions::new(cfg.replicas, guard.sessions());
        guard.sessions().set_share(shared_sessions.clone());
        crate::obs::metrics::set_node_label(&cfg.node);
        let files = Files {
            creds: cfg.credentials.as_ref().map(|p| config_dir.join(p)),
            tls_ca: cfg.tls_ca.as_ref().map(|p| config_dir.join(p)),
        };
        let urls = cfg.nats.clone();
        let me = c.clone();
        tokio::spawn(async move {
            let client = match connect(&urls, &me.node, &files).await {
                Ok(c) => c,
                Err(e) => {
                    // Checked at start (`check`): only a credentials file changed since gets
                    // here. The connection itself is retried forever.
                    warn!(
                        "cluster: cannot connect to NATS: {}; this node serves alone",
                        redact_url(&e.to_string())
                    );
                    return;
                }
            };
            tokio::spawn(users.run(client.clone(), me.manager.clone(), cancel.clone()));
            tokio::spawn(shared_sessions.run(client.clone(), cancel.clone()));
            tokio::spawn(me.catalog.clone().run(
                client.clone(),
                me.manager.clone(),
                me.hub.clone(),
                cancel.clone(),
            ));
            let relay = relay::Relay::new(
                client.clone(),
                me.hub.clone(),
                me.manager.clone(),
                replay.clone(),
            );
            me.hub.set_remote(relay.clone());
            if let Some(r) = &replay {
                r.set_remote(relay.clone());
            }
            tokio::spawn(relay.run(cancel.clone()));
            me.run(client, cancel).await;
        });
        c
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node ingesting camera `id`: this one, the one whose report the camera shows (see
    /// `show_remote_states`), or `None` when no node can be reached for it. Only where: the
    /// state is the camera's own (`Camera::status`), one rule for status, events and snapshots.
    pub fn placement(&self, id: &str) -> Option<String> {
        let v = self.view();
        if v.held.contains_key(id) || self.manager.ingests(id) {
            return Some(self.node.clone());
        }
        v.owners.get(id).cloned()
    }

    /// The nodes and what each ingests, for `GET /api/cluster`.
    pub fn status(&self) -> ClusterStatus {
        let v = self.view();
        ClusterStatus {
            node: self.node.clone(),
            connected: v.connected,
            nodes: v
                .nodes
                .values()
                .map(|b| NodeStatus {
                    node: b.node.clone(),
                    weight: b.weight,
                    cameras: b.cameras.keys().cloned().collect(),
                    viewers: b.viewers,
                    cpu_percent: b.cpu_percent,
                })
                .collect(),
        }
    }

    async fn run(self: Arc<Self>, client: async_nats::Client, cancel: CancellationToken) {
        let mut js = jetstream::new(client.clone());
        js.set_timeout(REQUEST_TIMEOUT);
        let mut buckets: Option<(kv::Store, kv::Store)> = None;
        let mut connected_since: Option<Instant> = None;
        let mut cpu_before = (Instant::now(), membership::cpu_time());
        let mut tick = tokio::time::interval(membership::HEARTBEAT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            let now = (Instant::now(), membership::cpu_time());
            let cpu = membership::cpu_percent(cpu_before.1, now.1, now.0 - cpu_before.0);
            cpu_before = now;
            if client.connection_state() != async_nats::connection::State::Connected {
                if connected_since.take().is_some() {
                    warn!("cluster: NATS connection lost; serving the cameras this node holds");
                }
                self.lost();
                continue;
            }
            let since = *connected_since.get_or_insert_with(|| {
                info!(node = %self.node, "cluster: connected to NATS");
                Instant::now()
            });
            if buckets.is_none() {
                match open_buckets(&js, self.replicas).await {
                    Ok(b) => buckets = Some(b),
                    Err(e) => {
                        warn!("cluster: cannot open the KV buckets: {e}");
                        self.lost();
                        continue;
                    }
                }
            }
            let Some((nodes_kv, leases_kv)) = &buckets else {
                continue;
            };
            // Claim only once every live node has had a heartbeat to show itself.
            // And only once the camera list was read: the file's list may be out of date.
            let may_claim =
                since.elapsed() >= membership::HEARTBEAT_TTL && self.catalog.is_synced();
            if let Err(e) = self.heartbeat(nodes_kv, leases_kv, may_claim, cpu).await {
                debug!("cluster: heartbeat failed: {e}");
                self.lost();
                // A NATS server that came back empty has no buckets: make them again.
                buckets = None;
            }
        }
        if let Some((nodes_kv, leases_kv)) = &buckets {
            let _ = tokio::time::timeout(LEAVE_TIMEOUT, self.leave(nodes_kv, leases_kv)).await;
        }
    }

    /// One heartbeat: say who we are, read the others, act on the lease plan.
    async fn heartbeat(
        &self,
        nodes_kv: &kv::Store,
        leases_kv: &kv::Store,
        may_claim: bool,
        cpu_percent: f64,
    ) -> Result<(), async_nats::Error> {
        let held = self.view().held.clone();
        let mine: Vec<_> = held.keys().filter_map(|id| self.hub.get(id)).collect();
        let subs: Vec<_> = mine
            .iter()
            .filter_map(|c| self.hub.sub(c.id()).map(|s| s.camera))
            .collect();
        let now = Instant::now();
        let beat = Beat {
            node: self.node.clone(),
            weight: self.weight,
            cameras: mine
                .iter()
                .map(|c| (c.id().to_string(), c.state().name().to_string()))
                .collect(),
            subs: subs
                .iter()
                .map(|c| (c.id().to_string(), c.state().name().to_string()))
                .collect(),
            pictures: mine
                .iter()
                .chain(&subs)
                .map(|c| {
                    let info = c.info();
                    let fps = (c.fps_at(now) * 100.0).round() / 100.0;
                    let (width, height) = (info.width, info.height);
                    let activity = c.activity().map(|a| (a * 100.0).round() / 100.0);
                    let facts = membership::PictureFacts {
                        width,
                        height,
                        fps,
                        activity,
                    };
                    (c.id().to_string(), facts)
                })
                .collect(),
            viewers: [ClientKind::WebSocket, ClientKind::Mjpeg]
                .into_iter()
                .map(|k| self.limits.count(k) as u64)
                .sum(),
            cpu_percent,
        };
        nodes_kv
            .put(self.node.as_str(), Bytes::from(serde_json::to_vec(&beat)?))
            .await?;
        let nodes = membership::read(nodes_kv).await?;
        let cameras: Vec<String> = self
            .hub
            .cameras()
            .iter()
            .map(|c| c.id().to_string())
            .collect();
        let steps = leases::plan(&self.node, &cameras, &nodes, &held, may_claim);
        let mut held = held;
        let value = || Bytes::from(self.node.clone());
        for step in steps {
            match step {
                Step::Refresh { camera, revision } => {
                    match leases_kv.update(camera.as_str(), value(), revision).await {
                        Ok(r) => {
                            held.insert(camera, r);
                        }
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                            // Expired (NATS was away) or taken: claim it again if still free.
                            match leases_kv.create(camera.as_str(), value()).await {
                                Ok(r) => {
                                    held.insert(camera, r);
                                }
                                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                                    info!(camera = %camera, "cluster: lease lost to another node");
                                    held.remove(&camera);
                                    self.manager.set_owned(&camera, false);
                                }
                                Err(e) => return Err(e.into()),
                            }
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Step::Claim { camera } => match leases_kv.create(camera.as_str(), value()).await {
                    Ok(r) => {
                        info!(camera = %camera, node = %self.node, "cluster: camera claimed");
                        held.insert(camera.clone(), r);
                        self.manager.set_owned(&camera, true);
                    }
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e.into()),
                },
                Step::Release { camera, revision } => {
                    // Stop ingesting before the lease goes, so two nodes never overlap.
                    self.manager.set_owned(&camera, false);
                    held.remove(&camera);
                    info!(camera = %camera, "cluster: camera released");
                    leases_kv
                        .delete_expect_revision(camera.as_str(), Some(revision))
                        .await?;
                }
            }
        }
        let owners = self.show_remote_states(&nodes);
        let mut v = self.view();
        v.connected = true;
        v.nodes = nodes;
        v.held = held;
        v.owners = owners;
        Ok(())
    }

    /// NATS or its buckets cannot be reached: no owner can be, so viewers here see the others'
    /// cameras reconnect, status shows them with no node, and snapshots of them answer at once
    /// instead of waiting on a request.
    fn lost(&self) {
        let owners = self.show_remote_states(&BTreeMap::new());
        let mut v = self.view();
        v.connected = false;
        v.owners = owners;
    }

    /// The one rule for a camera ingested elsewhere: its owner is the node whose beat lists
    /// it, and it takes the state, size, rate and activity that node reports (`connecting`
    /// while no node reports it, as during a takeover or without NATS), so this node's status,
    /// events and viewers show it as the owner's do and pick tiers from the owner's picture
    /// size. Returns the owners found, which [`Cluster::placement`] names.
    fn show_remote_states(&self, nodes: &BTreeMap<String, Beat>) -> HashMap<String, String> {
        let mut owners = HashMap::new();
        for cam in self.hub.streams() {
            let main = crate::config::camera_of_stream(cam.id());
            if self.manager.ingests(main) {
                continue;
            }
            let owner = nodes.values().find(|b| b.cameras.contains_key(main));
            if let Some(b) = owner {
                owners.insert(main.to_string(), b.node.clone());
            }
            let state = owner
                .and_then(|b| b.cameras.get(cam.id()).or_else(|| b.subs.get(cam.id())))
                .map_or(CameraState::Connecting, |s| state_named(s));
            let info = cam.info();
            let facts = owner.and_then(|b| b.pictures.get(cam.id()));
            let (width, height) = facts.map_or((info.width, info.height), |f| (f.width, f.height));
            // No owner's beat: no rate or activity either (the camera shows connecting).
            let report = OwnerReport {
                fps: facts.map_or(0.0, |f| f.fps),
                activity: facts.and_then(|f| f.activity),
            };
            cam.set_relayed(state, width, height, Some(report));
        }
        owners
    }

    /// At shutdown: hand every camera back at once, so the others need not wait for expiry.
    async fn leave(&self, nodes_kv: &kv::Store, leases_kv: &kv::Store) {
        let held = std::mem::take(&mut self.view().held);
        for (camera, revision) in held {
            let _ = leases_kv
                .delete_expect_revision(camera.as_str(), Some(revision))
                .await;
        }
        let _ = nodes_kv.delete(self.node.as_str()).await;
    }
}

/// A state as its name (an older or newer node's unknown name reads as connecting).
fn state_named(name: &str) -> CameraState {
    match name {
        "streaming" => CameraState::Streaming,
        "backoff" => CameraState::Backoff,
        "unauthorized" => CameraState::Unauthorized,
        "disabled" => CameraState::Disabled,
        "stopped" => CameraState::Stopped,
        "idle" => CameraState::Idle,
        _ => CameraState::Connecting,
    }
}

/// `opts` with the login a NATS URL carries (`user:password@` or `token@`, from the first URL
/// that has one): async-nats reads the address of a URL but not its user info.
fn with_url_login(
    opts: async_nats::ConnectOptions,
    addrs: &[async_nats::ServerAddr],
) -> async_nats::ConnectOptions {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let Some(a) = addrs.iter().find(|a| a.has_user_pass()) else {
        return opts;
    };
    let user = decode(a.username().unwrap_or_default());
    match a.password() {
        Some(p) => opts.user_and_password(user, decode(p)),
        None => opts.token(user),
    }
}

/// The server addresses of `server.cluster.nats` (comma-separated URLs); an error names the
/// bad one, redacted.
fn server_addrs(urls: &str) -> Result<Vec<async_nats::ServerAddr>, String> {
    urls.split(',')
        .map(str::trim)
        .map(|u| {
            u.parse()
                .map_err(|e| format!("{} is not a NATS server address: {e}", redact_url(u)))
        })
        .collect()
}

/// The files a node connects with, resolved against the config file's directory.
struct Files {
    creds: Option<std::path::PathBuf>,
    tls_ca: Option<std::path::PathBuf>,
}

async fn connect(
    urls: &str,
    node: &str,
    files: &Files,
) -> Result<async_nats::Client, async_nats::Error> {
    let addrs = server_addrs(urls)?;
    let mut opts = async_nats::ConnectOptions::new()
        .name(format!("camwall-{node}"))
        .retry_on_initial_connect()
        .connection_timeout(REQUEST_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
        // Messages queued per subscription before NATS drops the newest for it: a node too
        // slow for a relayed camera loses units (its viewers skip to a keyframe) instead of
        // queueing without bound. About 10 s of 25 fps video.
        .subscription_capacity(SUBSCRIPTION_CAPACITY)
        .event_callback(|event| async move {
            // Server errors can quote what the client sent: keep them short and redacted.
            debug!("cluster: NATS {}", redact_url(&event.to_string()));
        });
    opts = with_url_login(opts, &addrs);
    if let Some(path) = &files.creds {
        opts = opts.credentials_file(path).await?;
    }
    if let Some(ca) = &files.tls_ca {
        // A private CA: the servers' certificates are checked against it alone.
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    let shown: Vec<String> = urls.split(',').map(|u| redact_url(u.trim())).collect();
    info!(nats = %shown.join(","), node, "cluster: joining");
    Ok(opts.connect(addrs.as_slice()).await?)
}

async fn open_buckets(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<(kv::Store, kv::Store), async_nats::Error> {
    let nodes = bucket(
        js,
        membership::NODES_BUCKET,
        membership::HEARTBEAT_TTL,
        replicas,
    )
    .await?;
    let leases = bucket(js, leases::LEASES_BUCKET, leases::LEASE_TTL, replicas).await?;
    Ok((nodes, leases))
}

/// Opens bucket `name`, making it (one value per key, entries expiring after `max_age`, zero
/// for never, `replicas` copies on a JetStream cluster) when it does not exist yet. An
/// operator may also pre-create the buckets.
pub(crate) async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, async_nats::Error> {
    if let Ok(kv) = js.get_key_value(name).await {
        return Ok(kv);
    }
    Ok(js
        .create_key_value(kv::Config {
            bucket: name.to_string(),
            history: 1,
            max_age,
            num_replicas: replicas,
            ..Default::default()
        })
        .await?)
}
