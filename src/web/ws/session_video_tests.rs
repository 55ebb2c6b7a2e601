//! Unit tests of the session serving cameras as video, with paused time: what a client that
//! decodes H.264/H.265 gets at subscribe (tier, video_config, the GOP burst), JPEG for clients
//! and cameras that cannot take video, the fallback on `video_error`, the ladder through
//! keyframes-only down to JPEG and back, resumption at a keyframe after a lag, and viewers
//! moving when the camera's video starts or stops after they subscribed. The helpers serve
//! the audio tests too.
//! No socket, no FFmpeg: access units from the fixtures are pushed into the camera's feed.

use super::tests::{publish, texts};
use super::*;
use crate::access::guard::Principal;
use crate::media::h26x::fixtures::*;
use crate::media::h26x::Codec;
use crate::media::nal::{write_units, NalFormat};
use serde_json::Value;

pub(super) fn hub(cameras: &[&str]) -> Arc<Hub> {
    let cams: Vec<Value> = cameras
        .iter()
        .map(|id| serde_json::json!({"id": id, "url": "lavfi:testsrc2"}))
        .collect();
    let cfg = crate::config::parse(&serde_json::json!({ "cameras": cams }).to_string()).unwrap();
    Arc::new(Hub::new(&cfg))
}

fn au(units: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    write_units(NalFormat::AnnexB, units.iter().copied(), &mut out).unwrap();
    out
}

fn key264() -> Vec<u8> {
    au(&[H264_TINY_SPS, H264_TINY_PPS, H264_TINY_VCL5_0])
}

fn delta264() -> Vec<u8> {
    au(&[H264_TINY_VCL1_0])
}

/// Starts `id`'s feed as the ingest does for an H.264 camera.
pub(super) fn start_h264(hub: &Hub, id: &str) {
    hub.get(id)
        .unwrap()
        .video()
        .start(Codec::H264, NalFormat::AnnexB, &[]);
}

fn push(hub: &Hub, id: &str, data: &[u8]) {
    hub.get(id).unwrap().video().push(data);
}

/// The JSON headers of the binary frames in `out`.
pub(super) fn headers(out: &[Out]) -> Vec<Value> {
    out.iter()
        .filter_map(|o| match o {
            Out::Binary(b) => {
                let len = u16::from_be_bytes([b[1], b[2]]) as usize;
                serde_json::from_slice(&b[3..3 + len]).ok()
            }
            Out::Text(_) => None,
        })
        .collect()
}

/// The `tier` events in `out`, as (codec, mode, level).
fn tiers(out: &[Out]) -> Vec<(String, Option<String>, u64)> {
    texts(out)
        .iter()
        .filter(|v| v["type"] == "tier")
        .map(|v| {
            (
                v["codec"].as_str().unwrap_or("").to_string(),
                v["mode"].as_str().map(str::to_string),
                v["level"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// Sends everything ready on the lanes and feeds, as the connection loop does: each frame
/// marked sent now. Returns what went out (lag notices handled as the loop handles them).
pub(super) async fn pump(s: &mut Session) -> Vec<Out> {
    let mut out = Vec::new();
    settle().await;
    for _ in 0..1000 {
        let Ok(Some(incoming)) =
            tokio::time::timeout(Duration::from_millis(1), s.next_frame()).await
        else {
            break;
        };
        match incoming {
            Incoming::Jpeg(id, Ok(p)) => {
                if let Some(b) = s.admit(&id, &p) {
                    s.sent(
                        &id,
                        p.encoded.seq,
                        1000,
                        Instant::now(),
                        Duration::from_millis(1),
                    );
                    out.push(Out::Binary(b));
                }
            }
            Incoming::Video(id, Ok(unit)) => {
                for o in s.admit_video(&id, &unit) {
                    if matches!(o, Out::Binary(_)) {
                        s.sent(
                            &id,
                            unit.seq,
                            1000,
                            Instant::now(),
                            Duration::from_millis(1),
                        );
                    }
                    out.push(o);
                }
            }
            Incoming::Audio(id, Ok(f)) => out.extend(s.admit_audio(&id, &f)),
            Incoming::Audio(_, Err(_)) => {}
            Incoming::Replay(id, unit) => out.extend(s.admit_replay(&id, unit.as_ref())),
            Incoming::Jpeg(id, Err(BroadcastStreamRecvError::Lagged(n))) => s.skipped(&id, n),
            Incoming::Video(id, Err(BroadcastStreamRecvError::Lagged(n))) => s.video_lagged(&id, n),
        }
    }
    out
}

pub(super) async fn subscribe(s: &mut Session, msg: Value) -> Vec<Out> {
    s.on_text(&msg.to_string(), Instant::now()).await;
    s.take_output()
}

async fn ack(s: &mut Session, id: &str, seq: u64) {
    let msg = serde_json::json!({"type": "ack", "camera": id, "seq": seq});
    s.on_text(&msg.to_string(), Instant::now()).await;
}

#[tokio::test(start_paused = true)]
async fn a_video_client_gets_its_tier_the_config_and_the_gop_at_subscribe() {
    let hub = hub(&["a"]);
    start_h264(&hub, "a");
    push(&hub, "a", &delta264());
    push(&hub, "a", &key264());
    push(&hub, "a", &delta264());
    push(&hub, "a", &delta264());
    let mut s = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    s.take_output();
    let out = subscribe(
        &mut s,
        serde_json::json!({"type": "subscribe", "cameras": ["a"], "codecs": ["h264"]}),
    )
    .await;
    assert_eq!(tiers(&out), [("h264".into(), Some("full".into()), 0)]);
    // video_config comes before the first unit, and the GOP follows keyframe first.
    let first_binary = out.iter().position(|o| matches!(o, Out::Binary(_)));
    let config = out
        .iter()
        .position(|o| matches!(o, Out::Text(t) if t.contains(r#""type":"video_config""#)));
    assert!(config.is_some() && config < first_binary, "{out:?}");
    let cfg = &texts(&out)[config.unwrap()];
    assert_eq!(cfg["codec"], "avc1.64000A");
    assert_eq!(
        (cfg["width"].as_u64(), cfg["height"].as_u64()),
        (Some(64), Some(64))
    );
    let h = headers(&out);
    assert_eq!(h.len(), 3, "the whole GOP at once: {h:?}");
    assert!(h.iter().all(|h| h["kind"] == "video" && h["camera"] == "a"));
    let keys: Vec<&Value> = h.iter().map(|h| &h["key"]).collect();
    assert_eq!(keys, [true, false, false]);
    let seqs: Vec<u64> = h.iter().filter_map(|h| h["seq"].as_u64()).collect();
    assert_eq!(seqs, [seqs[0], seqs[0] + 1, seqs[0] + 2]);

    // Live units follow, right after the GOP, without a second config.
    push(&hub, "a", &delta264());
    let live = pump(&mut s).await;
    assert!(texts(&live).is_empty(), "{live:?}");
    let h = headers(&live);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["seq"].as_u64(), Some(seqs[2] + 1));
}

#[tokio::test(start_paused = true)]
async fn a_client_without_codecs_gets_jpeg_from_a_video_camera() {
    let hub = hub(&["a"]);
    start_h264(&hub, "a");
    push(&hub, "a", &key264());
    publish(&hub, "a");
    let mut s = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    s.take_output();
    let out = subscribe(
        &mut s,
        serde_json::json!({"type": "subscribe", "cameras": ["a"], "quality": 90}),
    )
    .await;
    assert_eq!(tiers(&out), [("jpeg".into(), None, 0)]);
    assert!(!texts(&out).iter().any(|v| v["type"] == "video_config"));
    let h = headers(&out);
    assert_eq!(h.len(), 1, "the newest JPEG at once");
    assert_eq!(h[0]["kind"], "jpeg");

    push(&hub, "a", &delta264());
    push(&hub, "a", &key264());
    publish(&hub, "a");
    let live = pump(&mut s).await;
    let h = headers(&live);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["kind"], "jpeg");
}

#[tokio::test(start_paused = true)]
async fn an_h265_camera_is_jpeg_for_a_client_that_decodes_only_h264() {
    let hub = hub(&["a"]);
    let cam = hub.get("a").unwrap();
    let feed = cam.video();
    feed.start(Codec::H265, NalFormat::AnnexB, &[]);
    feed.push(&au(&[
        H265_TINY_VPS,
        H265_TINY_SPS,
        H265_TINY_PPS,
        H265_TINY_VCL20_0,
    ]));
    publish(&hub, "a");
    let mut s = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    s.take_output();
    let out = subscribe(
        &mut s,
        serde_json::json!({"type": "subscribe", "cameras": ["a"], "codecs": ["h264"], "quality": 90}),
    )
    .await;
    assert_eq!(tiers(&out), [("jpeg".into(), None, 0)]);
    let h = headers(&out);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["kind"], "jpeg");

    // A client that decodes H.265 gets the camera's own stream.
    let mut s2 = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    s2.take_output();
    let out = subscribe(
        &mut s2,
        serde_json::json!({"type": "subscribe", "cameras": ["a"], "codecs": ["h264", "h265"]}),
    )
    .await;
    assert_eq!(tiers(&out), [("h265".into(), Some("full".into()), 0)]);
    let h = headers(&out);
    assert_eq!(h.len(), 1);
    assert_eq!(
        (&h[0]["kind"], &h[0]["key"]),
        (&"video".into(), &true.into())
    );
}

#[tokio::test(start_paused = true)]
async fn video_error_moves_the_client_to_jpeg_for_that_camera() {
    let hub = hub(&["a", "b"]);
    for id in ["a", "b"] {
        start_h264(&hub, id);
        push(&hub, id, &key264());
        publish(&hub, id);
    }
    let mut s = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    s.take_output();
    let sub = serde_json::json!({"type": "subscribe", "cameras": ["a", "b"], "codecs": ["h264"]});
    let out = subscribe(&mut s, sub.clone()).await;
    assert_eq!(tiers(&out).len(), 2);
    assert!(tiers(&out).iter().all(|t| t.0 == "h264"));

    let err = serde_json::json!({"type": "video_error", "camera": "a", "message": "decode failed"});
    let out = subscribe(&mut s, err).await;
    assert_eq!(tiers(&out), [("jpeg".into(), None, 0)]);
    assert!(texts(&out).iter().all(|v| v["camera"] == "a"));

    // "a" now comes as JPEG only; "b" stays on video. (The new lane's pump starts first.)
    settle().await;
    push(&hub, "a", &delta264());
    push(&hub, "b", &delta264());
    publish(&hub, "a");
    let live = pump(&mut s).await;
    let mut kinds: Vec<(String, String)> = headers(&live)
        .iter()
        .map(|h| (h["camera"].to_string(), h["kind"].to_string()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            (r#""a""#.into(), r#""jpeg""#.into()),
            (r#""b""#.into(), r#""video""#.into())
        ]
    );
    // Subscribing again does not bring back a decoder that failed.
    let out = subscribe(&mut s, sub).await;
    let mut t = tiers(&out);
    t.sort();
    assert_eq!(t[0].0, "h264");
    assert_eq!(t[1].0, "jpeg");
}

#[tokio::test(start_paused = true)]
async fn unacknowledged_video_steps_down_to_keyframes_then_cheaper_jpeg_and_prompt_acks_bring_it_back(
) {
    let hub = hub(&["a"]);
    start_h264(&hub, "a");
    push(&hub, "a", &key264());
    publish(&hub, "a");
    let mut s = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    s.take_output();
    let out = subscribe(
        &mut s,
        serde_json::json!({"type": "subscribe", "cameras": ["a"], "codecs": ["h264"]}),
    )
    .await;
    assert_eq!(tiers(&out), [("h264".into(), Some("full".into()), 0)]);
    // The client acknowledges, then stops: units pile up unacknowledged.
    ack(&mut s, "a", 0).await;
    let mut seen = Vec::new();
    for _ in 0..10 {
        push(&hub, "a", &delta264());
        pump(&mut s).await;
        tokio::time::advance(Duration::from_millis(40)).await;
    }
    tokio::time::advance(WINDOW).await;
    s.on_tick(Instant::now());
    seen.extend(tiers(&s.take_output()));
    assert_eq!(seen, [("h264".into(), Some("keyframes".into()), 1)]);

    // Keyframes only now: deltas no longer go out.
    push(&hub, "a", &delta264());
    assert!(headers(&pump(&mut s).await).is_empty());
    // Still no acknowledgements: down to the JPEG ladder.
    for _ in 0..6 {
        push(&hub, "a", &key264());
        push(&hub, "a", &delta264());
        let h = headers(&pump(&mut s).await);
        assert!(h.iter().all(|h| h["key"] == true), "{h:?}");
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    tokio::time::advance(WINDOW).await;
    s.on_tick(Instant::now());
    // To the first JPEG rung that costs the link less than keyframes (full-size JPEG at the
    // camera's rate would cost more).
    let t = tiers(&s.take_output());
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0].0, "jpeg");
    assert!(t[0].2 >= 2, "{t:?}");

    // Prompt acknowledgements: back up to full video.
    let mut up = Vec::new();
    let mut kinds = Vec::new();
    for _ in 0..12 {
        settle().await;
        publish(&hub, "a");
        push(&hub, "a", &key264());
        push(&hub, "a", &delta264());
        let out = pump(&mut s).await;
        kinds.extend(headers(&out).iter().map(|h| h["kind"].to_string()));
        for h in headers(&out) {
            ack(&mut s, "a", h["seq"].as_u64().unwrap()).await;
        }
        tokio::time::advance(WINDOW).await;
        s.on_tick(Instant::now());
        up.extend(tiers(&s.take_output()));
        if up.last().is_some_and(|t| t.2 == 0) {
            break;
        }
    }
    // Back to video (here at once: this camera's full video costs the link no more than the
    // JPEG rung it had).
    assert_eq!(
        up.last(),
        Some(&("h264".to_string(), Some("full".to_string()), 0)),
        "{up:?}"
    );
    assert!(up.iter().all(|t| t.0 == "h264"), "{up:?}");
    assert_eq!(kinds.first().map(String::as_str), Some(r#""jpeg""#));
    // Full again from the next keyframe: every unit.
    push(&hub, "a", &key264());
    push(&hub, "a", &delta264());
    let h = headers(&pump(&mut s).await);
    assert_eq!(h.len(), 2, "{h:?}");
}

#[tokio::test(start_paused = true)]
async fn a_lagged_video_stream_resumes_at_a_keyframe() {
    let hub = hub(&["a"]);
    start_h264(&hub, "a");
    push(&hub, "a", &key264());
    let mut s = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    s.take_output();
    subscribe(
        &mut s,
        serde_json::json!({"type": "subscribe", "cameras": ["a"], "codecs": ["h264"]}),
    )
    .await;
    // The client reads nothing while far more units arrive than the feed buffers.
    for _ in 0..300 {
        push(&hub, "a", &delta264());
    }
    let out = pump(&mut s).await;
    assert!(
        headers(&out).is_empty(),
        "no unit whose references were dropped: {:?}",
        headers(&out)
    );
    push(&hub, "a", &key264());
    push(&hub, "a", &delta264());
    let h = headers(&pump(&mut s).await);
    let keys: Vec<&Value> = h.iter().map(|h| &h["key"]).collect();
    assert_eq!(keys, [true, false], "resumed at the keyframe");
}

#[tokio::test(start_paused = true)]
async fn viewers_follow_the_camera_when_its_video_starts_and_stops() {
    let hub = hub(&["a"]);
    publish(&hub, "a");
    let mut s = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    s.take_output();
    // Subscribed while the camera's source is still opening: no video yet, so JPEG.
    let out = subscribe(
        &mut s,
        serde_json::json!({"type": "subscribe", "cameras": ["a"], "codecs": ["h264"]}),
    )
    .await;
    assert_eq!(tiers(&out), [("jpeg".into(), None, 0)]);
    // The source opens as H.264: the viewer moves to video at the next tick, GOP first.
    start_h264(&hub, "a");
    push(&hub, "a", &key264());
    tokio::time::advance(WINDOW / 2).await;
    s.on_tick(Instant::now());
    let out = s.take_output();
    assert_eq!(tiers(&out), [("h264".into(), Some("full".into()), 0)]);
    assert!(texts(&out).iter().any(|v| v["type"] == "video_config"));
    let h = headers(&out);
    assert_eq!(h.len(), 1);
    assert_eq!(
        (&h[0]["kind"], &h[0]["key"]),
        (&"video".into(), &true.into())
    );
    // The camera comes back as a source without H.264 (say, reconfigured to MJPEG): JPEG.
    hub.get("a").unwrap().video().stop();
    tokio::time::advance(WINDOW / 2).await;
    s.on_tick(Instant::now());
    assert_eq!(tiers(&s.take_output()), [("jpeg".into(), None, 0)]);
    settle().await;
    publish(&hub, "a");
    let h = headers(&pump(&mut s).await);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["kind"], "jpeg");
}

#[tokio::test(start_paused = true)]
async fn a_client_listing_codecs_steps_down_at_once_on_a_camera_without_video() {
    let hub = hub(&["a"]);
    publish(&hub, "a");
    let mut s = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    s.take_output();
    let out = subscribe(
        &mut s,
        serde_json::json!({"type": "subscribe", "cameras": ["a"], "codecs": ["h264"]}),
    )
    .await;
    let top = texts(&out)
        .into_iter()
        .find(|v| v["type"] == "tier")
        .unwrap();
    ack(&mut s, "a", 0).await;
    // One window of frames that are never acknowledged.
    for _ in 0..6 {
        settle().await;
        publish(&hub, "a");
        pump(&mut s).await;
        tokio::time::advance(Duration::from_millis(40)).await;
    }
    tokio::time::advance(WINDOW).await;
    s.on_tick(Instant::now());
    let down: Vec<Value> = texts(&s.take_output())
        .into_iter()
        .filter(|v| v["type"] == "tier")
        .collect();
    // As for a client without codecs: the next rung of the JPEG ladder after one bad window.
    assert_eq!(down.len(), 1, "no step down after a bad window");
    assert_eq!(down[0]["codec"], "jpeg");
    assert_ne!(
        (&down[0]["quality"], &down[0]["scale"], &down[0]["max_fps"]),
        (&top["quality"], &top["scale"], &top["max_fps"])
    );
}

#[tokio::test(start_paused = true)]
async fn activity_events_go_to_subscribers_and_to_clients_that_ask_at_most_once_a_second() {
    let hub = hub(&["a", "b"]);
    start_h264(&hub, "a");
    start_h264(&hub, "b");
    let mut s = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    s.take_output();
    subscribe(
        &mut s,
        serde_json::json!({"type": "subscribe", "cameras": ["a"], "codecs": ["h264"]}),
    )
    .await;
    let mut events: Vec<Value> = Vec::new();
    // Four seconds of 25 fps with 1 s GOPs on both cameras, busier every second, so that
    // the level keeps moving; the session ticks as the socket loop does (every 500 ms).
    let run = |s: &mut Session, events: &mut Vec<Value>, secs: u32, big: usize| {
        for i in 0..secs * 25 {
            for id in ["a", "b"] {
                let cam = hub.get(id).unwrap();
                let mut unit = if i % 25 == 0 { key264() } else { delta264() };
                // Padding after the slice makes the P-frame bigger, as motion would.
                if i % 25 != 0 {
                    unit.extend(std::iter::repeat_n(0u8, big * (i / 25) as usize));
                }
                cam.video_unit(
                    Bytes::from(unit),
                    crate::media::clock::Stamp::now(i64::from(i) * 40_000),
                );
            }
            if i % 12 == 0 {
                s.on_tick(Instant::now());
                events.extend(
                    texts(&s.take_output())
                        .into_iter()
                        .filter(|v| v["type"] == "activity"),
                );
            }
        }
    };
    for _ in 0..4 {
        run(&mut s, &mut events, 1, 200);
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let of = |events: &[Value], id: &str| events.iter().filter(|e| e["camera"] == id).count();
    assert!(of(&events, "a") >= 1, "{events:?}");
    assert!(of(&events, "a") <= 4, "at most one a second: {events:?}");
    assert_eq!(of(&events, "b"), 0, "b is neither subscribed nor asked for");
    for e in &events {
        let level = e["level"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&level), "{e}");
    }

    // Asking for b brings its events; an unknown camera is an error event, the session lives.
    let out = subscribe(
        &mut s,
        serde_json::json!({"type": "activity", "cameras": ["b", "nope"]}),
    )
    .await;
    assert_eq!(texts(&out)[0]["code"], "unknown_camera");
    events.clear();
    run(&mut s, &mut events, 1, 400);
    tokio::time::advance(Duration::from_secs(1)).await;
    run(&mut s, &mut events, 1, 800);
    assert!(of(&events, "b") >= 1, "{events:?}");
}
