//! Unit tests of the redaction rule: URLs parsed (not matched), secret query parameters and
//! options, free text quoting URLs, and what counts as a mask sent back.

use super::*;

#[test]
fn userinfo_is_hidden() {
    assert_eq!(
        redact_url("rtsp://admin:hunter2@10.0.0.5:554/stream1"),
        "rtsp://***@10.0.0.5:554/stream1"
    );
    assert_eq!(
        redact_url("rtsp://admin@10.0.0.5/s"),
        "rtsp://***@10.0.0.5/s"
    );
    assert_eq!(redact_url("rtsp://10.0.0.5/s"), "rtsp://10.0.0.5/s");
    assert_eq!(redact_url("lavfi:testsrc2"), "lavfi:testsrc2");
    assert_eq!(redact_url("/dev/video0"), "/dev/video0");
    // Nothing to hide: shown as written, not normalized.
    assert_eq!(redact_url("HTTP://Cam:80/x"), "HTTP://Cam:80/x");
    assert_eq!(
        redact_url("nats://u:p@127.0.0.1:4222"),
        "nats://***@127.0.0.1:4222"
    );
}

#[test]
fn a_fragment_cannot_pass_for_the_host() {
    let r = redact_url("rtsp://user:secret9@127.0.0.1:9/x#@evil");
    assert_eq!(r, "rtsp://***@127.0.0.1:9/x#***");
    let r = redact_url("rtsp://user:secret9@127.0.0.1:9/x?a=1#@evil.example/y");
    assert!(r.starts_with("rtsp://***@127.0.0.1:9/x?a=1#"), "{r}");
    assert!(!r.contains("evil") && !r.contains("secret9"), "{r}");
}

#[test]
fn passwords_with_at_signs_and_query_secrets() {
    let r = redact_url("http://u:p@ss@cam.local/video.cgi?user=u&pwd=hunter2&x=1");
    assert_eq!(r, "http://***@cam.local/video.cgi?user=u&pwd=***&x=1");
}

#[test]
fn every_secret_query_parameter() {
    for name in [
        "password",
        "passphrase",
        "pass",
        "pwd",
        "token",
        "key",
        "secret",
        "auth",
        "sig",
        "X-Amz-Signature",
        "api_key",
        "access_token",
        "Passwd",
        "pass%77ord",
    ] {
        let url = format!("srt://127.0.0.1:9?mode=caller&{name}=s3cr3tvalue&latency=20");
        let r = redact_url(&url);
        assert!(!r.contains("s3cr3tvalue"), "{name}: {r}");
        assert!(
            r.starts_with("srt://127.0.0.1:9?mode=caller&") && r.ends_with("=***&latency=20"),
            "{name}: {r}"
        );
    }
    let r = redact_url("rtsp://h/x?channel=1&subtype=0");
    assert_eq!(r, "rtsp://h/x?channel=1&subtype=0");
}

#[test]
fn ambiguous_or_broken_urls_hide_everything_after_the_scheme() {
    // An unescaped '/', '#' or '?' in a password splits it into host, port, path: FFmpeg would
    // not log in with it either, and no part of it may show.
    for url in [
        "rtsp://admin:p#ss@h/x",
        "rtsp://admin:p/ss@h/x",
        "rtsp://a:p?x@h:554/s",
        "rtsp://admin:1234/ss@h/x",
        "rtsp://u:pw@[zz::1]/x",
    ] {
        let r = redact_url(url);
        assert_eq!(r, "rtsp://***", "{url}");
    }
    // Several '@' in the authority: the last one ends the user info.
    assert_eq!(redact_url("rtsp://a:p@ss@h/s"), "rtsp://***@h/s");
}

#[test]
fn urls_inside_error_text() {
    let r = redact_url(
        "error opening 'rtsp://a:bsecret@h/x': 401 Unauthorized, then http://c:dsecret@e/ ok",
    );
    assert_eq!(
        r,
        "error opening 'rtsp://***@h/x': 401 Unauthorized, then http://***@e/ ok"
    );
    let r = redact_url("srt: connect srt://h:9?passphrase=longsecret1 failed");
    assert_eq!(r, "srt: connect srt://h:9?passphrase=*** failed");
    // Outside URLs, name=value pairs with a secret name.
    let r = redact_url("bad option passphrase=longsecret1, token=abc size=1");
    assert_eq!(r, "bad option passphrase=***, token=*** size=1");
    assert_eq!(redact_url("no url :// here"), "no url :// here");
    assert_eq!(
        redact_url("port 554rtsp://u:pw1@h/x"),
        "port 554rtsp://***@h/x"
    );
    assert_eq!(redact_url("(see rtsp://u:pw1@h/x)"), "(see rtsp://***@h/x)");
}

#[test]
fn options_carrying_credentials() {
    let mut o = BTreeMap::new();
    o.insert(
        "headers".to_string(),
        "Authorization: Basic dXNlcjpwYXNz\r\n".to_string(),
    );
    o.insert("cookies".to_string(), "sid=abc".to_string());
    o.insert("passphrase".to_string(), "longsecret1".to_string());
    o.insert("srtp_in_params".to_string(), "inline:AAAA".to_string());
    o.insert(
        "http_proxy".to_string(),
        "http://u:psecret@proxy:3128".to_string(),
    );
    o.insert("rtsp_transport".to_string(), "udp".to_string());
    let shown = redact_options(&o);
    for k in ["headers", "cookies", "passphrase", "srtp_in_params"] {
        assert_eq!(shown[k], MASK, "{k}");
    }
    // Special schemes come out normalized (a path `/`) once something was hidden.
    assert_eq!(shown["http_proxy"], "http://***@proxy:3128/");
    assert_eq!(shown["rtsp_transport"], "udp");
}

#[test]
fn masks_sent_back() {
    assert!(url_carries_mask("rtsp://***@10.0.0.6/x"));
    assert!(url_carries_mask("srt://h:9?passphrase=***"));
    assert!(url_carries_mask("rtsp://***"));
    assert!(!url_carries_mask("rtsp://u:new@10.0.0.6/x"));
    assert!(!url_carries_mask("rtsp://10.0.0.6/x?a=***"));
    assert!(option_carries_mask("headers", "***"));
    assert!(option_carries_mask("http_proxy", "http://***@p:1"));
    assert!(!option_carries_mask("rtsp_transport", "tcp"));
}
