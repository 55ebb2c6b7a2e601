//! HTTPS served by camwall itself (`server.tls`), against the real binary: the self-signed
//! certificate kept and reused, a configured certificate served, HTTPS and wss:// clients that
//! trust only that certificate, plain HTTP refused, a stalled handshake cut, bad files refused.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio_rustls::rustls;

/// `openssl x509 -fingerprint -sha256` of a PEM file: `AB:CD:...`, as camwall logs it.
fn openssl_fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let fp = text.trim().rsplit('=').next().unwrap_or_default();
    fp.to_ascii_uppercase()
}

/// The port of an `https://127.0.0.1:PORT` base URL.
fn port(cw: &Camwall) -> u16 {
    let base = cw
        .base
        .strip_prefix("https://")
        .expect("camwall says https");
    base.rsplit(':').next().unwrap().parse().unwrap()
}

/// An HTTPS client that trusts exactly `cert` (no system roots).
fn client_trusting(cert: &Path) -> reqwest::Client {
    let pem = std::fs::read(cert).unwrap();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

async fn health(client: &reqwest::Client, cw: &Camwall) -> Value {
    let r = client.get(cw.url("/health")).send().await.expect("HTTPS");
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Opens wss://.../ws over a rustls session that trusts exactly `cert`.
async fn wss_connect(
    cw: &Camwall,
    cert: &Path,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port(cw)))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let url = format!("wss://127.0.0.1:{}/ws", port(cw));
    let (ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("WebSocket over TLS");
    ws
}

/// Sends a plain HTTP request to the port and returns every byte that comes back before the
/// server closes (bounded).
fn plain_http_answer(port: u16) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..64 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// The fingerprints camwall logged, in order.
/// The fingerprints camwall logged at start. Its log is read on a thread of its own, apart
/// from the "listening" line on stdout: wait for the line rather than race that thread.
async fn logged_fingerprints(cw: &Camwall) -> Vec<String> {
    cw.wait_log("SHA-256 fingerprint ", Duration::from_secs(20))
        .await;
    cw.logs()
        .lines()
        .filter_map(|l| l.split("SHA-256 fingerprint ").nth(1))
        .map(|rest| rest.chars().take(95).collect())
        .collect()
}

#[tokio::test]
async fn self_signed_certificate_is_kept_reused_and_serves_https_and_wss() {
    let mut cw = start_camwall(
        json!({"server": {"tls": {"self_signed": true}}, "cameras": [
            lavfi("a", "testsrc2=size=160x120:rate=5")
        ]}),
    );
    assert!(cw.base.starts_with("https://127.0.0.1:"), "{}", cw.base);
    let dir = cw.dir.path().join("camwall-tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    assert!(cert.is_file(), "no certificate beside the config");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key file mode {mode:o}");
    let fingerprint = openssl_fingerprint(&cert);
    assert_eq!(logged_fingerprints(&cw).await, vec![fingerprint.clone()]);

    // HTTPS with a client that trusts only this certificate (so it verifies the names too).
    let client = client_trusting(&cert);
    assert_eq!(health(&client, &cw).await["status"], "ok");

    // The same port does not serve plain HTTP: it answers 400 with one line saying to use
    // https:// (not a TLS alert that clients read as "HTTP/0.9"), and nothing else.
    let answer = String::from_utf8_lossy(&plain_http_answer(port(&cw))).into_owned();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert_eq!(body.lines().count(), 1, "{answer:?}");
    assert!(body.contains("https://"), "{answer:?}");
    assert!(
        !answer.contains("\"status\""),
        "plain HTTP was served: {answer:?}"
    );
    // And HTTPS still works after it.
    assert_eq!(health(&client, &cw).await["status"], "ok");

    // wss:// works: the upgrade runs over the TLS session.
    let mut ws = wss_connect(&cw, &cert).await;
    let hello = next_text(&mut ws, Duration::from_secs(10), |t| t["type"] == "hello").await;
    let hello = hello.expect("hello over wss");
    assert_eq!(hello["version"], 4);
    drop(ws);

    // A second start reuses the pair: same files, same fingerprint, nothing regenerated.
    let cert_bytes = std::fs::read(&cert).unwrap();
    let key_bytes = std::fs::read(&key).unwrap();
    let (_, status) = cw.terminate();
    assert!(status.success(), "{status:?}");
    let dir = std::mem::replace(&mut cw.dir, tempfile::tempdir().unwrap());
    let cw2 = start_with_config_file(dir, cw.config_path.clone());
    assert_eq!(logged_fingerprints(&cw2).await, vec![fingerprint]);
    assert_eq!(std::fs::read(&cert).unwrap(), cert_bytes);
    assert_eq!(std::fs::read(&key).unwrap(), key_bytes);
    assert_eq!(health(&client, &cw2).await["status"], "ok");
}

#[tokio::test]
async fn a_handshake_that_never_finishes_is_cut_at_the_header_deadline() {
    let cw = start_camwall(json!({"server": {
        "tls": {"self_signed": true},
        "limits": {"header_timeout_ms": 300}
    }}));
    // Connect, say nothing: without a deadline the server would wait for the ClientHello
    // forever. The read bound is far beyond the deadline.
    let mut s = TcpStream::connect(("127.0.0.1", port(&cw))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("unexpected {n} bytes before any ClientHello"),
        Err(e) => assert!(
            e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut,
            "the silent connection was never cut: {e}"
        ),
    }
    cw.wait_log(
        "TLS handshake not finished within the header deadline",
        Duration::from_secs(5),
    )
    .await;
    // The server still serves others.
    let client = client_trusting(&cw.dir.path().join("camwall-tls/cert.pem"));
    assert_eq!(health(&client, &cw).await["status"], "ok");
}

#[tokio::test]
async fn configured_certificate_and_key_files_are_served() {
    let (dir, config_path) = write_config(json!({"server": {
        "tls": {"cert": "certs/server.crt", "key": "certs/server.key"}
    }}));
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let (cert, key) = (certs.join("server.crt"), certs.join("server.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=camwall test",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            // A leaf, not a CA: rustls refuses a CA certificate as a server's own.
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "{out:?}");
    let cw = start_with_config_file(dir, config_path);
    assert_eq!(
        logged_fingerprints(&cw).await,
        vec![openssl_fingerprint(&cert)]
    );
    // Trusting only the configured certificate, the handshake verifies: that is what is served.
    let client = client_trusting(&cert);
    assert_eq!(health(&client, &cw).await["status"], "ok");
    assert!(
        !cw.dir.path().join("camwall-tls").exists(),
        "no self-signed pair when files are configured"
    );
}

#[test]
fn a_missing_certificate_file_stops_the_start_with_exit_2_naming_it() {
    let (dir, config_path) = write_config(json!({"server": {
        "tls": {"cert": "missing/cert.pem", "key": "missing/key.pem"}
    }}));
    let out = start_refused(&config_path);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.tls.cert"), "{err}");
    let missing = dir.path().join("missing/cert.pem");
    assert!(err.contains(&missing.display().to_string()), "{err}");

    // Both forms at once: refused by validation, naming the field.
    std::fs::write(
        &config_path,
        r#"{"server": {"tls": {"self_signed": true, "cert": "c.pem", "key": "k.pem"}}}"#,
    )
    .unwrap();
    let out = check_config(&config_path);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("field `server.tls`") && err.contains("not both"),
        "{err}"
    );
}

#[tokio::test]
async fn wall_page_over_https_draws_frames_over_wss() {
    let cw = start_camwall(
        json!({"server": {"tls": {"self_signed": true}}, "cameras": [
            lavfi("a", "testsrc2=size=320x240:rate=10")
        ]}),
    );
    let client = client_trusting(&cw.dir.path().join("camwall-tls/cert.pem"));
    let end = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if health(&client, &cw).await["cameras"]["streaming"] == 1 {
            break;
        }
        assert!(std::time::Instant::now() < end, "camera never streamed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The certificate is self-signed: the flag stands in for the user's exception.
    let mut b = Browser::open_with_args(&cw.url("/"), &["--ignore-certificate-errors"]).await;
    let report = "JSON.stringify({proto: location.protocol, secure: window.isSecureContext, tiles: [...document.querySelectorAll('.tile')].map(t => t.innerText)})";
    b.wait_for(
        "[...document.querySelectorAll('.tile canvas')].some(c => c.width === 320) && [...document.querySelectorAll('.tile .stats')].some(s => /fps/.test(s.textContent))",
        report,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(b.eval("location.protocol").await, json!("https:"));
    assert_eq!(b.eval("window.isSecureContext").await, json!(true));
    // The frames came over wss:// (this port speaks nothing else): camwall counts the client.
    let metrics = client
        .get(cw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "camwall_clients{kind=\"websocket\"} 1"),
        "{metrics}"
    );
}
