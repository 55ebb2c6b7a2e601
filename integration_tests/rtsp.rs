//! End-to-end tests against a real RTSP server (GStreamer's, from Debian packages).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn h264_over_rtsp_streams_with_right_colours() {
    let rtsp = RtspServer::start(&["--pattern", "smpte100", "--size", "640x360", "--fps", "15"]);
    let cw = start_camwall(json!({"server": {}, "cameras": [{"id": "bars", "url": rtsp.url()}]}));
    let c = cw
        .wait_camera("bars", Duration::from_secs(20), |c| {
            c["state"] == "streaming"
        })
        .await;
    assert_eq!(c["codec"], "h264");
    assert_eq!(
        (c["width"].as_u64(), c["height"].as_u64()),
        (Some(640), Some(360))
    );
    let res = get_frame(&cw, "bars", "?quality=95").await;
    assert_eq!(res.status(), 200);
    let (w, h, rgb) = decode_rgb(&res.bytes().await.unwrap());
    assert_eq!((w, h), (640, 360));
    // smpte100: seven 100 % bars: white, yellow, cyan, green, magenta, red, blue.
    // Limited-range YUV encoded as is would give whites near 235 and blacks near 16.
    let expect: [[u8; 3]; 7] = [
        [255, 255, 255],
        [255, 255, 0],
        [0, 255, 255],
        [0, 255, 0],
        [255, 0, 255],
        [255, 0, 0],
        [0, 0, 255],
    ];
    for (i, want) in expect.iter().enumerate() {
        let x = w * (2 * i + 1) / 14;
        let y = h / 2;
        let px = &rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
        for ch in 0..3 {
            let d = (px[ch] as i32 - want[ch] as i32).abs();
            assert!(d <= 12, "bar {i} channel {ch}: got {px:?}, want {want:?}");
        }
    }
}

#[tokio::test]
async fn camera_recovers_when_the_rtsp_server_comes_back() {
    let mut rtsp = RtspServer::start(&["--pattern", "ball", "--size", "320x240", "--fps", "15"]);
    let port = rtsp.port;
    let cw = start_camwall(json!({
        "server": {},
        "cameras": [
            {"id": "cam", "url": rtsp.url(), "stall_timeout_ms": 2000},
            {"id": "other", "url": "lavfi:testsrc2=size=160x120:rate=10"}
        ]
    }));
    let before = cw
        .wait_camera("cam", Duration::from_secs(20), |c| {
            c["state"] == "streaming"
        })
        .await;
    rtsp.kill();
    let lost = cw
        .wait_camera("cam", Duration::from_secs(10), |c| c["state"] == "backoff")
        .await;
    assert!(lost["last_error"].as_str().is_some(), "{lost}");
    // The other camera is unaffected.
    let other = cw.camera("other").await;
    assert_eq!(other["state"], "streaming");
    let _rtsp2 = RtspServer::start_on(
        port,
        &["--pattern", "ball", "--size", "320x240", "--fps", "15"],
    );
    let back = cw
        .wait_camera("cam", Duration::from_secs(40), |c| {
            c["state"] == "streaming" && c["frames_in"].as_u64() > before["frames_in"].as_u64()
        })
        .await;
    assert!(back["reconnects"].as_u64().unwrap() >= 1, "{back}");
    assert_eq!(get_frame(&cw, "cam", "").await.status(), 200);
}
