//! Unit tests of the session serving a camera's audio (protocol version 3), with paused time:
//! audio only to a client that lists its codec, one `audio_config` per track, the sound going
//! on across a subscribe again with the same codecs, and none after unsubscribe. Frames are
//! pushed into the camera's audio feed as the ingest does.

use super::tests::texts;
use super::video_tests::{headers, hub, pump, start_h264, subscribe};
use super::*;
use crate::access::guard::Principal;
use serde_json::{json, Value};

#[tokio::test(start_paused = true)]
async fn audio_goes_only_to_a_client_that_lists_its_codec_while_subscribed() {
    let hub = hub(&["a"]);
    start_h264(&hub, "a");
    let cam = hub.get("a").unwrap();
    cam.audio().start(Some(crate::hub::AudioInfo {
        codec: "pcmu".into(),
        sample_rate: 8000,
        channels: 1,
        description: Vec::new(),
    }));
    let sub = |audio: &[&str], max_width: u32| {
        json!({"type": "subscribe", "cameras": ["a"], "codecs": ["h264"], "audio": audio,
               "max_width": max_width})
    };
    let say = |ts: i64| {
        cam.audio()
            .frame(Bytes::from_static(&[0xff; 160]), Some(ts), 0)
    };
    let audio_configs = |out: &[Out]| {
        texts(out)
            .into_iter()
            .filter(|v| v["type"] == "audio_config")
            .collect::<Vec<Value>>()
    };
    let kinds =
        |out: &[Out]| -> Vec<Value> { headers(out).iter().map(|h| h["kind"].clone()).collect() };
    let mut deaf = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    let mut ears = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    subscribe(&mut deaf, sub(&[], 640)).await;
    subscribe(&mut ears, sub(&["aac", "pcmu"], 640)).await;
    say(0);
    let heard = pump(&mut ears).await;
    let configs = audio_configs(&heard);
    assert_eq!(configs.len(), 1, "{heard:?}");
    assert_eq!(configs[0]["codec"], "ulaw");
    assert_eq!(kinds(&heard), ["audio"]);
    assert!(
        headers(&pump(&mut deaf).await).is_empty(),
        "no audio unasked"
    );
    // Subscribed again with the same codecs (a tile resized): the sound goes on, no config.
    subscribe(&mut ears, sub(&["aac", "pcmu"], 320)).await;
    say(160);
    let on = pump(&mut ears).await;
    assert!(audio_configs(&on).is_empty(), "{on:?}");
    assert_eq!(kinds(&on), ["audio"]);
    ears.on_text(r#"{"type":"unsubscribe","cameras":["a"]}"#, Instant::now())
        .await;
    say(320);
    assert!(
        headers(&pump(&mut ears).await).is_empty(),
        "none after unsubscribe"
    );
}
