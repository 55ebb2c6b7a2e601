//! Unit tests of the sans-I/O session with paused time: subscribe, first frame, frames from the
//! lanes, ack, adaptation and retargeting, events, unsubscribe. No socket, no FFmpeg.

use super::*;
use crate::media::frame::Picture;
use serde_json::Value;

fn hub(cameras: &[&str]) -> Arc<Hub> {
    let cams: Vec<Value> = cameras
        .iter()
        .map(|id| serde_json::json!({"id": id, "url": "lavfi:testsrc2"}))
        .collect();
    let cfg = crate::config::parse(&serde_json::json!({ "cameras": cams }).to_string()).unwrap();
    Arc::new(Hub::new(&cfg))
}

/// Publishes a 16x16 source JPEG (passed through at quality >= 85: no encode needed).
fn publish(hub: &Hub, id: &str) -> u64 {
    hub.get(id).unwrap().publish(
        16,
        16,
        Picture::Jpeg {
            data: crate::hub::camera::tests::jpeg_bytes(),
            quality: Some(90),
        },
    )
}

fn texts(out: &[Out]) -> Vec<Value> {
    out.iter()
        .filter_map(|o| match o {
            Out::Text(t) => serde_json::from_str(t).ok(),
            Out::Binary(_) => None,
        })
        .collect()
}

fn frames(out: &[Out]) -> usize {
    out.iter().filter(|o| matches!(o, Out::Binary(_))).count()
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// Takes frames from the lanes for as long as some are ready, sending them all.
async fn pump(s: &mut Session) -> usize {
    let mut n = 0;
    settle().await;
    while let Ok(Some((id, item))) =
        tokio::time::timeout(Duration::from_millis(1), s.next_frame()).await
    {
        if let Ok(p) = item {
            if s.admit(&id, &p).is_some() {
                s.sent(&id, p.encoded.seq, Duration::from_millis(1));
                n += 1;
            }
        }
    }
    n
}

#[tokio::test(start_paused = true)]
async fn hello_subscribe_first_frame_and_live_frames() {
    let hub = hub(&["a", "b"]);
    publish(&hub, "a");
    let now = Instant::now();
    let mut s = Session::new(hub.clone(), now);
    let hello = texts(&s.take_output());
    assert_eq!(hello[0]["type"], "hello");
    assert_eq!(hello[0]["cameras"].as_array().map(Vec::len), Some(2));
    assert_eq!(hello[0]["quality_tiers"], serde_json::json!([85, 80, 70]));

    s.on_text(r#"{"type":"subscribe","cameras":["a"],"quality":90}"#, now)
        .await;
    let out = s.take_output();
    let t = texts(&out);
    assert!(t.iter().any(|v| v["type"] == "tier" && v["camera"] == "a"));
    assert_eq!(frames(&out), 1, "the newest frame at once");
    assert_eq!(s.watching(), 1);

    // The next frames come through the lane, each once.
    settle().await;
    publish(&hub, "a");
    assert_eq!(pump(&mut s).await, 1);
    publish(&hub, "a");
    assert_eq!(pump(&mut s).await, 1);
    assert_eq!(pump(&mut s).await, 0);

    s.on_text(r#"{"type":"unsubscribe","cameras":["a"]}"#, now)
        .await;
    assert_eq!(s.watching(), 0);
    publish(&hub, "a");
    assert_eq!(pump(&mut s).await, 0);
}

#[tokio::test(start_paused = true)]
async fn bad_messages_get_error_events_and_the_session_goes_on() {
    let hub = hub(&["a"]);
    let now = Instant::now();
    let mut s = Session::new(hub, now);
    s.take_output();
    s.on_text("nope", now).await;
    s.on_text(r#"{"type":"subscribe","cameras":["zz"]}"#, now)
        .await;
    s.on_text(r#"{"type":"subscribe","cameras":["a"],"max_width":0}"#, now)
        .await;
    let codes: Vec<Value> = texts(&s.take_output())
        .iter()
        .map(|v| v["code"].clone())
        .collect();
    assert_eq!(codes, ["bad_json", "unknown_camera", "bad_message"]);
    s.on_text(r#"{"type":"subscribe","cameras":["a"]}"#, now)
        .await;
    assert_eq!(s.watching(), 1);
}

#[tokio::test(start_paused = true)]
async fn star_subscribes_every_camera_and_sends_first_frames() {
    let hub = hub(&["a", "b", "c"]);
    for id in ["a", "b", "c"] {
        publish(&hub, id);
    }
    let now = Instant::now();
    let mut s = Session::new(hub, now);
    s.take_output();
    s.on_text(r#"{"type":"subscribe","cameras":["*"],"quality":90}"#, now)
        .await;
    let out = s.take_output();
    assert_eq!(frames(&out), 3);
    assert_eq!(s.watching(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_backlogged_client_steps_down_and_recovers() {
    let hub = hub(&["a"]);
    publish(&hub, "a");
    let mut now = Instant::now();
    let mut s = Session::new(hub.clone(), now);
    s.on_text(r#"{"type":"subscribe","cameras":["a"]}"#, now)
        .await;
    let level = |out: &[Out]| {
        texts(out)
            .iter()
            .filter(|v| v["type"] == "tier")
            .filter_map(|v| v["level"].as_u64())
            .next_back()
    };
    assert_eq!(level(&s.take_output()), Some(0));
    // Frames sent, none acknowledged: after one window, one rung down.
    s.on_text(r#"{"type":"ack","camera":"a","seq":0}"#, now)
        .await;
    for _ in 0..6 {
        publish(&hub, "a");
        pump(&mut s).await;
        now += Duration::from_millis(40);
        tokio::time::advance(Duration::from_millis(40)).await;
    }
    now += WINDOW;
    s.on_tick(now);
    let out = s.take_output();
    assert_eq!(level(&out), Some(1), "{:?}", texts(&out));
    // Acknowledged promptly for a few windows: back up.
    let mut up = None;
    for _ in 0..6 {
        let seq = publish(&hub, "a");
        pump(&mut s).await;
        s.on_text(
            &format!(r#"{{"type":"ack","camera":"a","seq":{seq}}}"#),
            now,
        )
        .await;
        now += WINDOW;
        s.on_tick(now);
        up = up.or(level(&s.take_output()));
    }
    assert_eq!(up, Some(0));
}

#[tokio::test(start_paused = true)]
async fn events_reach_the_client_and_removed_cameras_are_dropped() {
    let hub = hub(&["a"]);
    let now = Instant::now();
    let mut s = Session::new(hub.clone(), now);
    let mut ev = hub.events();
    s.on_text(r#"{"type":"subscribe","cameras":["a"]}"#, now)
        .await;
    s.take_output();
    let a = hub.get("a").unwrap();
    let mut renamed = (*a.config()).clone();
    renamed.name = Some("Door".into());
    hub.reconfigure(&a, renamed);
    hub.remove("a");
    s.on_event(ev.recv().await);
    s.on_event(ev.recv().await);
    let t = texts(&s.take_output());
    assert_eq!(t[0]["type"], "camera_changed");
    assert_eq!(t[0]["camera"]["name"], "Door");
    assert_eq!(t[1]["type"], "camera_removed");
    assert_eq!(s.watching(), 0);
    // A listener that lagged gets the whole list again.
    s.on_event(Err(RecvError::Lagged(3)));
    assert_eq!(texts(&s.take_output())[0]["type"], "hello");
}

#[tokio::test(start_paused = true)]
async fn state_changes_are_sent_once() {
    let hub = hub(&["a"]);
    let now = Instant::now();
    let mut s = Session::new(hub.clone(), now);
    s.on_text(r#"{"type":"subscribe","cameras":["a"]}"#, now)
        .await;
    s.take_output();
    s.on_tick(now);
    s.on_tick(now);
    let states: Vec<Value> = texts(&s.take_output())
        .into_iter()
        .filter(|v| v["type"] == "state")
        .collect();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0]["state"], "connecting");
    publish(&hub, "a");
    s.on_tick(now);
    assert_eq!(texts(&s.take_output())[0]["state"], "streaming");
}
