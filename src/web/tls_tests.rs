//! Unit tests of `server.tls` validation, certificate loading and the self-signed pair.

use super::*;
use crate::config::parse;

fn tls_issues(server_tls: &str) -> Vec<(String, String)> {
    let text = format!(r#"{{"server":{{"tls":{server_tls}}}}}"#);
    match parse(&text) {
        Ok(_) => Vec::new(),
        Err(issues) => issues.into_iter().map(|i| (i.field, i.message)).collect(),
    }
}

#[test]
fn config_accepts_either_form() {
    assert!(tls_issues(r#"{"self_signed":true}"#).is_empty());
    assert!(tls_issues(r#"{"cert":"c.pem","key":"k.pem"}"#).is_empty());
    assert!(tls_issues("null").is_empty());
}

#[test]
fn config_refusals_name_the_field() {
    let both = tls_issues(r#"{"self_signed":true,"cert":"c.pem","key":"k.pem"}"#);
    assert_eq!(both.len(), 1, "{both:?}");
    assert_eq!(both[0].0, "server.tls");
    assert!(both[0].1.contains("not both"), "{both:?}");
    assert_eq!(tls_issues("{}")[0].0, "server.tls");
    assert_eq!(tls_issues(r#"{"self_signed":false}"#)[0].0, "server.tls");
    assert_eq!(tls_issues(r#"{"cert":"c.pem"}"#)[0].0, "server.tls.key");
    assert_eq!(tls_issues(r#"{"key":"k.pem"}"#)[0].0, "server.tls.cert");
    assert_eq!(
        tls_issues(r#"{"cert":"","key":"k.pem"}"#)[0].0,
        "server.tls.cert"
    );
    let unknown = tls_issues(r#"{"self_signed":true,"chain":"x"}"#);
    assert_eq!(unknown[0].0, "server.tls.chain");
    assert!(unknown[0].1.contains("chain"), "{unknown:?}");
}

fn listen() -> SocketAddr {
    "127.0.0.1:8443".parse().unwrap()
}

#[test]
fn self_signed_is_made_once_then_reused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TlsConfig {
        self_signed: true,
        ..Default::default()
    };
    let first = Tls::load(&cfg, dir.path(), listen()).unwrap();
    assert!(first.generated);
    let key = dir.path().join(SELF_SIGNED_DIR).join("key.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = Tls::load(&cfg, dir.path(), listen()).unwrap();
    assert!(!again.generated);
    assert_eq!(first.fingerprint, again.fingerprint);
    assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
    // Half a pair is replaced, not served.
    std::fs::remove_file(&key).unwrap();
    let remade = Tls::load(&cfg, dir.path(), listen()).unwrap();
    assert!(remade.generated);
    assert_ne!(remade.fingerprint, first.fingerprint);
}

#[test]
fn missing_and_bad_files_name_field_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TlsConfig {
        cert: Some("nope/cert.pem".into()),
        key: Some("key.pem".into()),
        self_signed: false,
    };
    let e = Tls::load(&cfg, dir.path(), listen())
        .unwrap_err()
        .to_string();
    assert!(e.contains("server.tls.cert"), "{e}");
    assert!(e.contains("nope/cert.pem"), "{e}");
    std::fs::create_dir(dir.path().join("nope")).unwrap();
    std::fs::write(dir.path().join("nope/cert.pem"), "not pem").unwrap();
    let e = Tls::load(&cfg, dir.path(), listen())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no CERTIFICATE"), "{e}");
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = rcgen::generate_simple_self_signed(vec!["a".to_string()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["b".to_string()]).unwrap();
    std::fs::write(dir.path().join("a.pem"), a.cert.pem()).unwrap();
    std::fs::write(dir.path().join("b.key"), b.signing_key.serialize_pem()).unwrap();
    let cfg = TlsConfig {
        cert: Some("a.pem".into()),
        key: Some("b.key".into()),
        self_signed: false,
    };
    let e = Tls::load(&cfg, dir.path(), listen())
        .unwrap_err()
        .to_string();
    assert!(e.contains("do not fit together"), "{e}");
}

#[test]
fn names_cover_loopback_and_a_specific_listen_address() {
    let names = machine_names("192.168.1.5:8443".parse().unwrap());
    for n in ["localhost", "127.0.0.1", "::1", "192.168.1.5"] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    let wild = machine_names("0.0.0.0:8443".parse().unwrap());
    assert!(!wild.iter().any(|x| x == "0.0.0.0"), "{wild:?}");
}

#[test]
fn fingerprint_is_colon_hex() {
    // SHA-256 of the empty input, a known value.
    assert!(fingerprint(b"").starts_with("E3:B0:C4:42:98:FC:1C:14"));
}
