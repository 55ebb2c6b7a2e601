//! Unit tests of the manager: camera bodies checked with their field named, views redacted.

use super::*;

#[test]
fn camera_bodies_are_checked_with_the_field_named() {
    let e = parse_camera(&serde_json::json!({"id": "a", "url": "x", "fps": 3})).unwrap_err();
    assert!(matches!(e, ChangeError::Invalid { .. }));
    assert!(e.to_string().contains("fps"), "{e}");
    let e = parse_camera(&serde_json::json!({"id": "a b", "url": "x"})).unwrap_err();
    assert!(
        matches!(&e, ChangeError::Invalid { field, .. } if field == "id"),
        "{e:?}"
    );
    let e = parse_camera(&serde_json::json!({"id": "a", "url": "x", "max_fps": "x"})).unwrap_err();
    assert!(
        matches!(&e, ChangeError::Invalid { field, .. } if field == "max_fps"),
        "{e:?}"
    );
    assert!(parse_camera(&serde_json::json!({"id": "a", "url": "lavfi:testsrc2"})).is_ok());
}

#[test]
fn views_hide_credentials() {
    let mut c = parse_camera(&serde_json::json!({"id": "a", "url": "rtsp://u:pw@h/x"})).unwrap();
    c.options.insert("auth_password".into(), "pw".into());
    c.options.insert("rtsp_transport".into(), "udp".into());
    let v = serde_json::to_string(&CameraView::of(&c)).unwrap();
    assert!(!v.contains("pw@") && !v.contains("\"pw\""), "{v}");
    assert!(v.contains("udp"));
}
