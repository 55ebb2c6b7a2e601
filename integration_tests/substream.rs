//! End-to-end tests of sub streams: a camera whose main stream (800x448) and sub stream
//! (320x180) are two real GStreamer RTSP cameras, read by the real binary. Small tiles get the
//! sub stream, big ones the main stream; when the sub stream dies its tiles fall back to the
//! main stream (downscaled) and come back when it returns; an unused sub stream is closed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[tokio::test]
async fn tiles_take_the_sub_stream_fall_back_to_the_main_one_and_the_sub_stream_closes_unused() {
    let main = RtspServer::start(&MAIN);
    let mut sub = RtspServer::start(&SUB);
    let sub_port = sub.port;
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "cam", "url": main.url(), "decode_linger_ms": 1500,
         "sub": {"url": format!("rtsp://u:secret@127.0.0.1:{sub_port}/cam")}}
    ]}));
    // Nobody uses the sub stream yet: it is not even connected.
    let c = cw
        .wait_camera("cam", Duration::from_secs(20), |c| {
            c["state"] == "streaming" && sub_state(c) == "idle"
        })
        .await;
    assert_eq!(c["streams"]["main"]["width"], 800, "{c}");
    let text = c.to_string();
    assert!(!text.contains("secret"), "credentials redacted: {text}");

    // A small tile gets the sub stream at its own width; a big one the main stream.
    let mut small = ws_connect(&cw).await;
    ws_send(
        &mut small,
        json!({"type": "subscribe", "cameras": ["cam"], "quality": 70, "max_width": 320}),
    )
    .await;
    until_served(&mut small, "sub", false, 320).await;
    let mut big = ws_connect(&cw).await;
    ws_send(
        &mut big,
        json!({"type": "subscribe", "cameras": ["cam"], "quality": 70}),
    )
    .await;
    until_served(&mut big, "main", false, 800).await;
    // A video viewer of a small tile gets the sub stream's own H.264.
    drop(sub_stream_video_viewer(&cw, "cam").await);

    // The sub stream dies: the small tile falls back to the main stream, downscaled.
    sub.kill();
    until_served(&mut small, "main", true, 200).await;
    // It comes back: so does the tile.
    let _sub = RtspServer::start_on(sub_port, &SUB);
    until_served(&mut small, "sub", false, 320).await;

    // A snapshot takes ?stream=sub; a bad value is a JSON error.
    let r = get_frame(&cw, "cam", "?stream=sub").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-stream"], "sub");
    let (w, _, _) = decode_rgb(&r.bytes().await.unwrap());
    assert_eq!(w, 320);
    let r = get_frame(&cw, "cam", "?stream=tiny").await;
    assert_eq!(r.status(), 400);
    let r = get_frame(&cw, "cam", "").await;
    assert_eq!(r.headers()["x-stream"], "main");

    // Nobody on the sub stream any more: closed after the linger time.
    drop(small);
    cw.wait_camera("cam", Duration::from_secs(20), |c| sub_state(c) == "idle")
        .await;
    drop(big);
}

#[tokio::test]
async fn a_closed_sub_stream_opens_for_a_snapshot_within_a_gop() {
    let main = RtspServer::start(&MAIN);
    let sub = RtspServer::start(&SUB);
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "cam", "url": main.url(), "decode_linger_ms": 3000,
         "sub": {"url": sub.url()}}
    ]}));
    cw.wait_camera("cam", Duration::from_secs(20), |c| {
        c["state"] == "streaming" && sub_state(c) == "idle"
    })
    .await;
    // The first snapshot asks the sub stream to open and is answered by the main one.
    let r = get_frame(&cw, "cam", "?stream=sub").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-stream"], "main");
    // The next ones come from the sub stream once it streams.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < end,
            "the sub stream never served a snapshot"
        );
        let r = get_frame(&cw, "cam", "?stream=sub").await;
        if r.headers()["x-stream"] == "sub" {
            let (w, h, _) = decode_rgb(&r.bytes().await.unwrap());
            assert_eq!((w, h), (320, 180));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = cw.camera("cam").await;
    assert_eq!(sub_state(&c), "streaming", "{c}");
    assert_eq!(c["streams"]["sub"]["width"], 320, "{c}");
}
