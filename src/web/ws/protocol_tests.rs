//! Tests of the wire protocol: client messages parsed and refused, events and frames built.

use super::*;
use crate::media::jpeg::Jpeg;

#[test]
fn ids_named_many_times_count_once() {
    let many = vec!["cam1"; 1000].join("\",\"");
    let text = format!(r#"{{"type":"subscribe","cameras":["{many}","cam2","cam1"]}}"#);
    match parse_client(&text) {
        Ok(Request::Subscribe(r)) => assert_eq!(r.cameras, ["cam1", "cam2"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn parses_and_refuses_client_messages() {
    assert!(matches!(
        parse_client(r#"{"type":"subscribe","cameras":["a"],"quality":"auto","max_width":320}"#),
        Ok(Request::Subscribe(SubscribeReq {
            quality: QualityReq::Auto,
            max_width: Some(320),
            ..
        }))
    ));
    assert!(matches!(
        parse_client(r#"{"type":"subscribe","cameras":["*"],"quality":70}"#),
        Ok(Request::Subscribe(SubscribeReq {
            quality: QualityReq::Fixed(70),
            ..
        }))
    ));
    assert!(matches!(
        parse_client(r#"{"type":"subscribe","cameras":["a"],"stream":"sub"}"#),
        Ok(Request::Subscribe(SubscribeReq {
            stream: StreamReq::Sub,
            ..
        }))
    ));
    match parse_client(r#"{"type":"subscribe","cameras":["a"],"at":1700000000000,"speed":4}"#) {
        Ok(Request::Subscribe(r)) => assert_eq!(r.replay, Some((1_700_000_000_000, 4))),
        other => panic!("{other:?}"),
    }
    match parse_client(r#"{"type":"subscribe","cameras":["a"],"at":null}"#) {
        Ok(Request::Subscribe(r)) => assert_eq!(r.replay, None, "null is live"),
        other => panic!("{other:?}"),
    }
    assert!(
        parse_client(r#"{"type":"subscribe","cameras":["a"],"at":5,"speed":3}"#).is_err(),
        "speeds are 1, 2 and 4"
    );
    match parse_client(
        r#"{"type":"subscribe","cameras":["a"],"audio":["pcmu","mp3","aac","pcmu"]}"#,
    ) {
        Ok(Request::Subscribe(r)) => assert_eq!(r.audio, ["pcmu", "aac"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_client(r#"{"type":"subscribe","cameras":["a"],"stream":"tiny"}"#)
            .unwrap_err()
            .code(),
        "bad_message"
    );
    assert_eq!(
        parse_client(r#"{"type":"ping","t0":1700000000123.5}"#),
        Ok(Request::Ping {
            t0: Some(1700000000123.5)
        })
    );
    assert_eq!(
        parse_client(r#"{"type":"ping"}"#),
        Ok(Request::Ping { t0: None })
    );
    let code = |t: &str| parse_client(t).unwrap_err().code();
    assert_eq!(code(r#"{"type":"ping","t0":"soon"}"#), "bad_message");
    assert_eq!(code("nope"), "bad_json");
    assert_eq!(code(r#"{"type":"dance"}"#), "unknown_type");
    assert_eq!(code(r#"[1,2]"#), "unknown_type");
    assert_eq!(
        code(r#"{"type":"subscribe","cameras":["a"],"quality":0}"#),
        "bad_message"
    );
    assert_eq!(
        code(r#"{"type":"subscribe","cameras":["a"],"extra":1}"#),
        "bad_message"
    );
    // The same limits as over HTTP.
    assert_eq!(
        parse_client(r#"{"type":"subscribe","cameras":["a"],"max_width":0}"#).unwrap_err(),
        ProtocolError::Param(ParamError::MaxWidth("0".into()))
    );
    assert!(matches!(
        parse_client(r#"{"type":"subscribe","cameras":["a"],"max_fps":1000}"#),
        Err(ProtocolError::Param(ParamError::MaxFps(_)))
    ));
    let big = format!(
        r#"{{"type":"ack","camera":"{}","seq":1}}"#,
        "x".repeat(9000)
    );
    assert_eq!(code(&big), "oversized");
    let ev = ProtocolError::UnknownCamera("zz".into()).event();
    assert_eq!(
        (ev["code"].as_str(), ev["camera"].as_str()),
        (Some("unknown_camera"), Some("zz"))
    );
}

#[test]
fn frame_message_layout() {
    let e = Encoded {
        seq: 7,
        stamp: crate::media::clock::Stamp {
            pts_us: 80_000,
            captured_unix_ms: 1234,
        },
        jpeg: Jpeg {
            data: Bytes::from_static(&[0xFF, 0xD8, 1, 2, 0xFF, 0xD9]),
            width: 640,
            height: 360,
            quality: 80,
        },
        encoded_at: tokio::time::Instant::now(),
        etag: String::new(),
    };
    let m = frame_message(
        "cam-1",
        Tier {
            quality: 80,
            scale: 2,
        },
        &e,
    );
    assert_eq!(m[0], FRAME_MESSAGE_VERSION);
    let n = u16::from_be_bytes([m[1], m[2]]) as usize;
    let header: serde_json::Value = serde_json::from_slice(&m[3..3 + n]).unwrap();
    assert_eq!(header["camera"], "cam-1");
    assert_eq!(header["seq"], 7);
    assert_eq!(header["ts"], 1234);
    assert_eq!(header["pts"], 80_000);
    assert_eq!(header["scale"], 2);
    assert_eq!(&m[3 + n..3 + n + 2], &[0xFF, 0xD8]);
}
