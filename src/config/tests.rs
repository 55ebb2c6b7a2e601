//! Tests of the config file: parsing, defaults, validation, error positions and listen names.

use super::*;

#[test]
fn host_names_are_accepted_and_resolved() {
    let c = parse(r#"{"server":{"listen":"localhost:8000"}}"#).unwrap();
    assert_eq!(c.server.listen.as_deref(), Some("localhost:8000"));
    let a = resolve_listen("localhost:8000").unwrap();
    assert!(a.ip().is_loopback(), "{a}");
    assert_eq!(a.port(), 8000);
    assert_eq!(
        resolve_listen("[::1]:9").unwrap(),
        "[::1]:9".parse::<SocketAddr>().unwrap()
    );
    for bad in [
        "localhost",
        "localhost:http",
        ":80",
        "a b:1",
        "localhost:70000",
    ] {
        assert!(resolve_listen(bad).is_err(), "{bad}");
        assert!(!issues(&format!(r#"{{"server":{{"listen":"{bad}"}}}}"#)).is_empty());
    }
}

#[test]
fn a_byte_order_mark_is_skipped() {
    let text = "\u{feff}{\"cameras\":[{\"id\":\"a\",\"url\":\"lavfi:testsrc2\"}]}".to_string();
    let l = LoadedConfig::from_text(Path::new("c.json"), text.clone()).unwrap();
    assert_eq!(l.config.cameras.len(), 1);
    assert_eq!(l.doc["cameras"][0]["id"], "a");
    assert_eq!(
        l.text, text,
        "the exact text is kept for hand-edit detection"
    );
}

#[test]
fn trusted_proxies_are_addresses() {
    let c = parse(r#"{"server":{"trusted_proxies":["127.0.0.1","::1"]}}"#).unwrap();
    assert_eq!(c.server.trusted_proxies.len(), 2);
    let e = issues(r#"{"server":{"trusted_proxies":["nginx"]}}"#);
    assert_eq!(e[0].field, "server.trusted_proxies[0]");
    let e = issues(r#"{"server":{"limits":{"max_connections_per_ip":0}}}"#);
    assert_eq!(e[0].field, "server.limits.max_connections_per_ip");
}

fn issues(text: &str) -> Vec<ConfigIssue> {
    parse(text).expect_err("config should be refused")
}

#[test]
fn defaults_fill_in() {
    let c = parse(r#"{"cameras":[{"id":"a","url":"lavfi:testsrc2"}]}"#).unwrap();
    assert_eq!(c.server.frame_cache_ttl_ms, 16);
    assert_eq!(c.server.quality_tiers, vec![85, 80, 70]);
    assert!(c.cameras[0].enabled);
    assert_eq!(c.cameras[0].display_name(), "a");
    assert_eq!(c.cameras[0].stall_timeout_ms, 5000);
    assert_eq!(c.cameras[0].decode_linger_ms, 10_000);
}

#[test]
fn decode_linger_is_bounded() {
    for ok in [0, 600_000] {
        let c = parse(&format!(
            r#"{{"cameras":[{{"id":"a","url":"x","decode_linger_ms":{ok}}}]}}"#
        ))
        .unwrap();
        assert_eq!(c.cameras[0].decode_linger_ms, ok);
    }
    let e = issues(r#"{"cameras":[{"id":"a","url":"x","decode_linger_ms":600001}]}"#);
    assert_eq!(e[0].field, "cameras[0].decode_linger_ms");
}

#[test]
fn syntax_error_has_line_and_column() {
    let e = issues("{\n  \"cameras\": [\n    {\"id\": \"a\",, }\n  ]\n}");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].position.map(|p| p.0), Some(3));
}

#[test]
fn unknown_field_is_named_with_its_path() {
    let e = issues(r#"{"cameras":[{"id":"a","url":"x","fps":3}]}"#);
    assert_eq!(e[0].field, "cameras[0].fps");
    assert!(e[0].message.contains("unknown field `fps`"), "{:?}", e[0]);
    let e = issues(r#"{"server":{"listen":"x","bogus":1}}"#);
    assert!(e[0].message.contains("bogus"));
}

#[test]
fn wrong_type_names_the_field() {
    let e = issues(r#"{"cameras":[{"id":"a","url":"x","max_fps":"ten"}]}"#);
    assert_eq!(e[0].field, "cameras[0].max_fps");
    assert!(e[0].position.is_some());
}

#[test]
fn all_validation_errors_are_reported_at_once() {
    let e = issues(
        r#"{"server":{"quality_tiers":[70,80]},"cameras":[
            {"id":"a","url":""},
            {"id":"a","url":"lavfi:testsrc2"},
            {"id":"../x","url":"y"},
            {"id":"b","url":"y","max_fps":0}
        ]}"#,
    );
    let fields: Vec<_> = e.iter().map(|i| i.field.as_str()).collect();
    assert!(fields.contains(&"server.quality_tiers"));
    assert!(fields.contains(&"cameras[0].url"));
    assert!(fields.contains(&"cameras[1].id"));
    assert!(fields.contains(&"cameras[2].id"));
    assert!(fields.contains(&"cameras[3].max_fps"));
    let dup = e.iter().find(|i| i.field == "cameras[1].id").unwrap();
    assert_eq!(dup.camera.as_deref(), Some("a"));
    let bad = e.iter().find(|i| i.field == "cameras[2].id").unwrap();
    assert_eq!(bad.camera.as_deref(), Some("cameras[2]"));
}

#[test]
fn safe_ids() {
    assert!(is_safe_id("cam-1_A"));
    for bad in ["", "-a", "a/b", "a b", "a.b", "é", &"x".repeat(65)] {
        assert!(!is_safe_id(bad), "{bad:?}");
    }
}

#[test]
fn error_display_names_file_line_and_field() {
    let err = ConfigError {
        path: "config/cameras.json".into(),
        issues: issues(r#"{"cameras":[{"id":"a","url":"x","max_fps":"ten"}]}"#),
    };
    let s = err.to_string();
    assert!(s.starts_with("config/cameras.json:1:"), "{s}");
    assert!(s.contains("cameras[0].max_fps"), "{s}");
}

#[test]
fn shipped_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cameras.json");
    let c = load(&path).unwrap();
    assert_eq!(c.config.cameras.len(), 4);
    assert_eq!(c.doc["cameras"].as_array().map(Vec::len), Some(4));
    assert_eq!(c.text, std::fs::read_to_string(&path).unwrap());
}

#[test]
fn a_sub_stream_is_checked_like_the_main_one_and_becomes_a_source_of_its_own() {
    let c = parse(
        r#"{"cameras":[{"id":"a","url":"rtsp://h/main","open_timeout_ms":3000,
            "sub":{"url":"rtsp://u:p@h/sub","options":{"rtsp_transport":"udp"}}}]}"#,
    )
    .unwrap();
    let sub = c.cameras[0].sub_config().unwrap();
    assert_eq!(sub.id, format!("a{SUB_SUFFIX}"));
    assert_eq!(sub.url, "rtsp://u:p@h/sub");
    assert_eq!(sub.options["rtsp_transport"], "udp");
    assert_eq!(sub.open_timeout_ms, 3000, "the camera's timeouts");
    assert!(sub.sub.is_none());
    let e = issues(r#"{"cameras":[{"id":"a","url":"x","sub":{"url":" ","options":{"a b":"1"}}}]}"#);
    let fields: Vec<_> = e.iter().map(|i| i.field.as_str()).collect();
    assert_eq!(fields, ["cameras[0].sub.url", "cameras[0].sub.options"]);
    let e = issues(r#"{"cameras":[{"id":"a","url":"x","sub":{"uri":"y"}}]}"#);
    assert_eq!(e[0].field, "cameras[0].sub.uri", "{e:?}");
}

#[test]
fn names_are_bounded_and_plain() {
    assert_eq!(name_problem("Front door"), None);
    assert_eq!(name_problem(&"é".repeat(MAX_NAME_CHARS)), None);
    for bad in [
        " ".to_string(),
        "x".repeat(MAX_NAME_CHARS + 1),
        "a\u{0}b".into(),
        "a\nb".into(),
        "door\u{202E}gpj.exe".into(),
        "\u{2066}x".into(),
    ] {
        assert!(name_problem(&bad).is_some(), "{bad:?}");
    }
    let text = "{\"cameras\":[{\"id\":\"a\",\"url\":\"lavfi:testsrc2\",\"name\":\"a\u{202E}b\"}]}";
    let found = issues(text);
    assert!(found.iter().any(|i| i.field.ends_with("name")), "{found:?}");
}

#[test]
fn allowed_hosts_are_host_names() {
    let c = parse(r#"{"server":{"allowed_hosts":["cams.example.com","camwall.test"]}}"#)
        .expect("host names");
    assert_eq!(c.server.allowed_hosts, ["cams.example.com", "camwall.test"]);
    for bad in ["https://cams.example.com", "cams.example.com:8443", ""] {
        let found = issues(&format!(r#"{{"server":{{"allowed_hosts":["{bad}"]}}}}"#));
        assert!(
            found.iter().any(|i| i.field.contains("allowed_hosts")),
            "{bad}: {found:?}"
        );
    }
}

#[test]
fn users_take_argon2id_hashes_only_and_scopes_are_for_viewers() {
    let hash = crate::access::users::hash_password("pw").unwrap();
    let ok = format!(
        r#"{{"server":{{"auth":{{"users":[{{"name":"staff","password_hash":"{hash}","role":"viewer","cameras":["a"]}}],
           "viewer_tokens":["0123456789abcdef",{{"token":"fedcba9876543210","cameras":["a"]}}]}}}}}}"#
    );
    let c = parse(&ok).unwrap();
    assert_eq!(c.server.auth.users[0].name, "staff");
    assert_eq!(c.server.auth.session_idle_minutes, 720);
    assert_eq!(c.server.auth.session_max_days, 30);
    // Written back as read: plain tokens stay strings, defaults stay out.
    let back = serde_json::to_value(&c.server.auth).unwrap();
    assert_eq!(back["viewer_tokens"][0], "0123456789abcdef");
    assert!(back.get("session_idle_minutes").is_none());
    let field_of =
        |text: &str| -> Vec<String> { issues(text).into_iter().map(|i| i.field).collect() };
    let plain = r#"{"server":{"auth":{"users":[{"name":"staff","password_hash":"hunter2hunter2","role":"viewer"}]}}}"#;
    assert_eq!(field_of(plain), vec!["server.auth.users[0].password_hash"]);
    let msgs: Vec<String> = issues(plain).into_iter().map(|i| i.message).collect();
    assert!(!msgs.iter().any(|m| m.contains("hunter2")), "{msgs:?}");
    let admin_scoped = format!(
        r#"{{"server":{{"auth":{{"users":[{{"name":"boss","password_hash":"{hash}","role":"admin","cameras":["a"]}}]}}}}}}"#
    );
    assert_eq!(field_of(&admin_scoped), vec!["server.auth.users[0].role"]);
    let twice = format!(
        r#"{{"server":{{"auth":{{"users":[{{"name":"a","password_hash":"{hash}","role":"viewer"}},
           {{"name":"A","password_hash":"{hash}","role":"viewer","views":["nope"]}}]}}}}}}"#
    );
    assert_eq!(
        field_of(&twice),
        vec!["server.auth.users[1].name", "server.auth.users[1].views"]
    );
}
