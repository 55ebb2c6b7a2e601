//! HTTPS for the accept loop: loads a PEM certificate and key, or makes a self-signed one on
//! first start and keeps it beside the config, and builds the rustls acceptor (HTTP/1.1 only).
//! The per-connection handshake lives here too (a plain HTTP request on the HTTPS port is
//! answered `400` there, before TLS); the accept loop itself stays in `server`, and nothing here
//! parses requests.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tracing::warn;

use crate::config::TlsConfig;

/// Directory beside the config file that holds the self-signed certificate and its key.
pub const SELF_SIGNED_DIR: &str = "camwall-tls";

/// Why HTTPS could not be set up. Each message names the config field and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("field `server.tls.{field}`: cannot read {}: {source}", path.display())]
    Read {
        field: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("field `server.tls.{field}`: {}: {message}", path.display())]
    Pem {
        field: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("field `server.tls`: certificate {} and key {} do not fit together: {source}", cert.display(), key.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("field `server.tls.self_signed`: cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("field `server.tls.self_signed`: cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A ready TLS setup: the acceptor and what to tell the operator about it.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    /// SHA-256 of the leaf certificate (DER), as `AB:CD:...`, the form browsers and
    /// `openssl x509 -fingerprint -sha256` show.
    pub fingerprint: String,
    /// The certificate file in use.
    pub cert_path: PathBuf,
    /// Whether this start generated the certificate (false: loaded or reused).
    pub generated: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("fingerprint", &self.fingerprint)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Sets up `cfg` (already validated): paths are relative to `config_dir`; a self-signed
    /// certificate also names `listen` when that is a specific address.
    pub fn load(cfg: &TlsConfig, config_dir: &Path, listen: SocketAddr) -> Result<Self, TlsError> {
        if cfg.self_signed {
            return self_signed(config_dir, listen);
        }
        let (Some(cert), Some(key)) = (&cfg.cert, &cfg.key) else {
            // Validation refuses this; say so rather than panic if a caller skipped it.
            return Err(TlsError::Pem {
                field: "cert",
                path: config_dir.to_path_buf(),
                message: "needs cert and key, or \"self_signed\": true".into(),
            });
        };
        from_files(&config_dir.join(cert), &config_dir.join(key), false)
    }

    /// The acceptor the accept loop hands each connection to.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }
}

/// What the accept loop hands to hyper: the TCP stream itself, or its TLS session.
pub type Stream = Either<TcpStream, TlsStream<TcpStream>>;

/// A connection that sent nothing (or too little) of its handshake within the deadline.
pub fn handshake_timed_out() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "TLS handshake not finished within the header deadline",
    )
}

/// Runs the TLS handshake (when `tls` is set) within `deadline`, so a client that connects and
/// never finishes the handshake is cut like one that never sends its request head. Runs in the
/// connection's own task: a slow handshake holds up no one else.
pub async fn handshake(
    tcp: TcpStream,
    tls: Option<&TlsAcceptor>,
    deadline: Duration,
) -> std::io::Result<Stream> {
    let Some(acceptor) = tls else {
        return Ok(Either::Left(tcp));
    };
    let started = tokio::time::Instant::now();
    let timed_out = handshake_timed_out;
    // A TLS record starts with its content type (22 for a handshake); a plain HTTP request with
    // the ASCII of its method. That one gets a readable answer instead of a TLS alert that
    // clients show as "HTTP/0.9" or garbage.
    let mut first = [0u8; 1];
    match tokio::time::timeout(deadline, tcp.peek(&mut first)).await {
        Ok(Ok(1)) if first[0].is_ascii_uppercase() => {
            return Err(answer_plain_http(tcp, deadline).await);
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(timed_out()),
    }
    let left = deadline.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => Ok(Either::Right(s)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(timed_out()),
    }
}

/// Answers a plain HTTP request on the HTTPS port with `400` and a line saying to use
/// `https://` (as nginx does), then closes. The request is read first (up to 64 KiB, within
/// `deadline`) so that closing does not reset the connection before the client reads the answer.
async fn answer_plain_http(mut tcp: TcpStream, deadline: Duration) -> std::io::Error {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let read_head = async {
        while head.len() < 64 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(deadline, read_head).await;
    let answer = super::error::plain_http_on_https_port();
    let _ = tokio::time::timeout(deadline, async {
        tcp.write_all(&answer).await?;
        tcp.shutdown().await
    })
    .await;
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "plain HTTP on the HTTPS port: answered 400",
    )
}

/// Loads a PEM chain and key and builds the acceptor. `field`s in errors name the config keys.
fn from_files(cert: &Path, key: &Path, generated: bool) -> Result<Tls, TlsError> {
    let read = |field, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            field,
            path: path.to_path_buf(),
            source,
        })
    };
    let pem_err = |field, path: &Path, message: String| TlsError::Pem {
        field,
        path: path.to_path_buf(),
        message,
    };
    let chain = CertificateDer::pem_slice_iter(&read("cert", cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err("cert", cert, format!("not a PEM certificate: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(pem_err("cert", cert, "no CERTIFICATE block".into()));
    };
    let fingerprint = fingerprint(leaf);
    let key_der = PrivateKeyDer::from_pem_slice(&read("key", key)?)
        .map_err(|e| pem_err("key", key, format!("not a PEM private key: {e}")))?;
    warn_if_readable(key);
    // ring, not aws-lc-rs: it builds with the C compiler alone (no cmake/Go step), and naming
    // the provider here keeps the choice independent of what other crates enable.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key_der))
        .map_err(|source| TlsError::Mismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        })?;
    // The routes are HTTP/1 (warp), and the WebSocket upgrade needs HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        fingerprint,
        cert_path: cert.to_path_buf(),
        generated,
    })
}

/// SHA-256 of a certificate, upper-case hex pairs joined by colons.
pub fn fingerprint(cert: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// Reuses `<config dir>/camwall-tls/{cert,key}.pem`, or makes them when either is missing.
fn self_signed(config_dir: &Path, listen: SocketAddr) -> Result<Tls, TlsError> {
    let dir = config_dir.join(SELF_SIGNED_DIR);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.is_file() && key.is_file() {
        return from_files(&cert, &key, false);
    }
    if cert.exists() || key.exists() {
        warn!(dir = %dir.display(), "half a self-signed certificate found: making a new pair");
    }
    let made = rcgen::generate_simple_self_signed(machine_names(listen))?;
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Write { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(write_err(&dir))?;
    // The key first and the certificate last: a crash in between leaves half a pair, which the
    // next start replaces rather than serving a certificate without its key.
    write_new(&key, made.signing_key.serialize_pem().as_bytes(), 0o600).map_err(write_err(&key))?;
    write_new(&cert, made.cert.pem().as_bytes(), 0o644).map_err(write_err(&cert))?;
    from_files(&cert, &key, true)
}

/// Writes `bytes` to `path` with `mode` through a temporary file and a rename, so a reader
/// never sees half a file and the key is never readable by others, not even for a moment.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("pem.tmp");
    // A leftover temporary file would keep its old mode: `mode` applies only on creation.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A private key others can read is worth a warning (not a refusal: it is the operator's file).
fn warn_if_readable(key: &Path) {
    if let Ok(meta) = std::fs::metadata(key) {
        if meta.permissions().mode() & 0o077 != 0 {
            warn!(key = %key.display(), "TLS key file is readable by group or others (chmod 600 it)");
        }
    }
}

/// The names a browser on the LAN may use for this machine: its host name, `localhost`, the
/// loopback addresses, and the listen address, or for a wildcard listen address the address
/// of the default route (the one LAN clients most likely reach).
pub fn machine_names(listen: SocketAddr) -> Vec<String> {
    let mut names = vec!["localhost".to_string()];
    if let Some(host) = host_name() {
        names.push(host);
    }
    let mut ips: Vec<IpAddr> = vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
    if listen.ip().is_unspecified() {
        // `[::]` takes IPv4 clients too on Linux.
        ips.extend(default_route_ip(Ipv4Addr::UNSPECIFIED.into()));
        if listen.is_ipv6() {
            ips.extend(default_route_ip(listen.ip()));
        }
    } else {
        ips.push(listen.ip());
    }
    for ip in ips {
        let s = ip.to_string();
        if !names.contains(&s) {
            names.push(s);
        }
    }
    names
}

/// The kernel's host name, when it is a usable DNS name.
fn host_name() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let host = raw.trim().to_ascii_lowercase();
    let ok = !host.is_empty()
        && host.len() <= 253
        && host != "localhost"
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then_some(host)
}

/// The local address the kernel would use to reach the outside: connecting a UDP socket only
/// picks a route, it sends nothing. None without a route (an offline machine).
fn default_route_ip(family: IpAddr) -> Option<IpAddr> {
    let (bind, probe): (SocketAddr, SocketAddr) = match family {
        IpAddr::V4(_) => ("0.0.0.0:0".parse().ok()?, "192.0.2.1:9".parse().ok()?),
        IpAddr::V6(_) => ("[::]:0".parse().ok()?, "[2001:db8::1]:9".parse().ok()?),
    };
    let sock = UdpSocket::bind(bind).ok()?;
    sock.connect(probe).ok()?;
    let ip = sock.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
