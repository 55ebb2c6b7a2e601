//! Unit tests of the sans-I/O session with paused time: subscribe, first frame, frames from the
//! lanes, ack, adaptation and retargeting, events, unsubscribe. No socket, no FFmpeg.

use super::*;
use crate::access::guard::Principal;
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
pub(super) fn publish(hub: &Hub, id: &str) -> u64 {
    crate::hub::camera::tests::publish(&hub.get(id).unwrap())
}

pub(super) fn texts(out: &[Out]) -> Vec<Value> {
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
    send_all(s).await.len()
}

#[tokio::test(start_paused = true)]
async fn hello_subscribe_first_frame_and_live_frames() {
    let hub = hub(&["a", "b"]);
    publish(&hub, "a");
    let now = Instant::now();
    let mut s = Session::new(hub.clone(), Principal::trusted(), now);
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
    let mut s = Session::new(hub, Principal::trusted(), now);
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
    let mut s = Session::new(hub, Principal::trusted(), now);
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
    // Time is tokio's paused clock throughout: sends are stamped with it.
    let now = Instant::now;
    let mut s = Session::new(hub.clone(), Principal::trusted(), now());
    s.on_text(r#"{"type":"subscribe","cameras":["a"]}"#, now())
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
    s.on_text(r#"{"type":"ack","camera":"a","seq":0}"#, now())
        .await;
    for _ in 0..6 {
        publish(&hub, "a");
        pump(&mut s).await;
        tokio::time::advance(Duration::from_millis(40)).await;
    }
    tokio::time::advance(WINDOW).await;
    s.on_tick(now());
    let out = s.take_output();
    assert_eq!(level(&out), Some(1), "{:?}", texts(&out));
    // Acknowledged promptly for a few windows: back up.
    let mut up = None;
    for _ in 0..6 {
        let seq = publish(&hub, "a");
        pump(&mut s).await;
        s.on_text(
            &format!(r#"{{"type":"ack","camera":"a","seq":{seq}}}"#),
            now(),
        )
        .await;
        tokio::time::advance(WINDOW).await;
        s.on_tick(now());
        up = up.or(level(&s.take_output()));
    }
    assert_eq!(up, Some(0));
}

#[tokio::test(start_paused = true)]
async fn events_reach_the_client_and_removed_cameras_are_dropped() {
    let hub = hub(&["a"]);
    let now = Instant::now();
    let mut s = Session::new(hub.clone(), Principal::trusted(), now);
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
    let mut s = Session::new(hub.clone(), Principal::trusted(), now);
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

/// Sends every frame ready on the lanes, as the connection loop does (each marked sent now
/// as 1000 bytes); returns the camera and sequence number of each.
async fn send_all(s: &mut Session) -> Vec<(String, u64)> {
    let mut sent = Vec::new();
    settle().await;
    while let Ok(Some(Incoming::Jpeg(id, item))) =
        tokio::time::timeout(Duration::from_millis(1), s.next_frame()).await
    {
        if let Ok(p) = item {
            if s.admit(&id, &p).is_some() {
                s.sent(
                    &id,
                    p.encoded.seq,
                    1000,
                    Instant::now(),
                    Duration::from_millis(1),
                );
                sent.push((id, p.encoded.seq));
            }
        }
    }
    sent
}

/// [`send_all`] on a session watching `id` alone: the sequence numbers sent.
async fn send_ready(s: &mut Session, id: &str) -> Vec<u64> {
    let sent = send_all(s).await;
    assert!(sent.iter().all(|(got, _)| got == id), "{sent:?}");
    sent.into_iter().map(|(_, seq)| seq).collect()
}

/// Levels of the `tier` events in `out`.
fn levels(out: &[Out]) -> Vec<u64> {
    texts(out)
        .iter()
        .filter(|v| v["type"] == "tier")
        .filter_map(|v| v["level"].as_u64())
        .collect()
}

async fn ack(s: &mut Session, id: &str, seq: u64, latency_ms: f64) {
    let msg =
        serde_json::json!({"type": "ack", "camera": id, "seq": seq, "latency_ms": latency_ms});
    s.on_text(&msg.to_string(), Instant::now()).await;
}

#[tokio::test(start_paused = true)]
async fn prompt_acks_keep_the_top_tier_whatever_the_clients_clock_says() {
    // The browser's clock 0.4 s or 2 s ahead, or 5 s behind: its latency_ms is off by that much.
    for skew_ms in [400.0, 2000.0, -5000.0] {
        let hub = hub(&["a"]);
        publish(&hub, "a");
        let mut s = Session::new(hub.clone(), Principal::trusted(), Instant::now());
        s.on_text(r#"{"type":"subscribe","cameras":["a"]}"#, Instant::now())
            .await;
        let mut seen = levels(&s.take_output());
        for _ in 0..15 {
            // Five frames a window, each drawn and acknowledged 5 ms after it was sent.
            for _ in 0..5 {
                publish(&hub, "a");
                for seq in send_ready(&mut s, "a").await {
                    tokio::time::advance(Duration::from_millis(5)).await;
                    ack(&mut s, "a", seq, 5.0 + skew_ms).await;
                }
                tokio::time::advance(Duration::from_millis(195)).await;
            }
            s.on_tick(Instant::now());
            seen.extend(levels(&s.take_output()));
        }
        assert_eq!(seen, [0], "clock skew {skew_ms} ms: tier levels {seen:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn acks_late_on_the_servers_clock_step_down_whatever_the_client_claims() {
    let hub = hub(&["a"]);
    publish(&hub, "a");
    let mut s = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    s.on_text(r#"{"type":"subscribe","cameras":["a"]}"#, Instant::now())
        .await;
    assert_eq!(levels(&s.take_output()), [0]);
    // One frame at a time (never more than one in flight), first acknowledged 20 ms after it
    // went out: the path's length. Then 450 ms after, while the client claims 1 ms of
    // latency: 430 ms of queueing on the server's clock.
    let mut seen = Vec::new();
    for late in [20, 20, 450, 450, 450] {
        for _ in 0..2 {
            publish(&hub, "a");
            for seq in send_ready(&mut s, "a").await {
                tokio::time::advance(Duration::from_millis(late)).await;
                ack(&mut s, "a", seq, 1.0).await;
            }
            tokio::time::advance(Duration::from_millis(500 - late)).await;
        }
        s.on_tick(Instant::now());
        seen.extend(levels(&s.take_output()));
    }
    assert!(seen.iter().any(|&l| l >= 1), "never stepped down: {seen:?}");
}

#[tokio::test(start_paused = true)]
async fn acks_falling_behind_step_down_whatever_the_client_claims() {
    let hub = hub(&["a"]);
    publish(&hub, "a");
    let mut s = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    s.on_text(r#"{"type":"subscribe","cameras":["a"]}"#, Instant::now())
        .await;
    s.take_output();
    // Acknowledgements trail further and further behind (one frame more every tenth), so
    // frames pile up in flight and each round trip is longer than the last, while the client
    // claims 2 ms. (Trailing by a steady number of frames is a long link, not a queue.)
    let mut sent = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..3 {
        for _ in 0..100 {
            publish(&hub, "a");
            sent.extend(send_ready(&mut s, "a").await);
            let behind = 1 + sent.len() / 10;
            if sent.len() > behind {
                ack(&mut s, "a", sent[sent.len() - 1 - behind], 2.0).await;
            }
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        s.on_tick(Instant::now());
        seen.extend(levels(&s.take_output()));
    }
    assert!(seen.iter().any(|&l| l >= 1), "never stepped down: {seen:?}");
}

#[tokio::test(start_paused = true)]
async fn hello_and_pong_carry_the_servers_clock() {
    let unix_ms = || unix_ms_now() as i64;
    let hub = hub(&["a"]);
    let before = unix_ms();
    let mut s = Session::new(hub, Principal::trusted(), Instant::now());
    let hello = texts(&s.take_output());
    assert_eq!(hello[0]["scales"], serde_json::json!([1, 2, 4]));
    let t = hello[0]["server_time_ms"].as_i64().unwrap();
    assert!((before..=unix_ms()).contains(&t), "{t} vs {before}");
    s.on_text(r#"{"type":"ping","t0":1234.5}"#, Instant::now())
        .await;
    let pong = texts(&s.take_output());
    assert_eq!(pong.len(), 1);
    assert_eq!(pong[0]["type"], "pong");
    assert_eq!(pong[0]["t0"], 1234.5);
    let t = pong[0]["server_time_ms"].as_i64().unwrap();
    assert!((before..=unix_ms()).contains(&t), "{t} vs {before}");
}

#[tokio::test(start_paused = true)]
async fn a_long_link_is_not_a_slow_one() {
    let hub = hub(&["a"]);
    publish(&hub, "a");
    let mut s = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    s.on_text(
        r#"{"type":"subscribe","cameras":["a"],"quality":"auto"}"#,
        Instant::now(),
    )
    .await;
    assert_eq!(levels(&s.take_output()), [0]);
    // 25 frames a second over a 400 ms round trip: ten frames always in flight, every one
    // acknowledged 400 ms after it went out (a phone far away, a satellite link).
    let mut due = std::collections::VecDeque::new();
    let mut seen = Vec::new();
    let mut links = Vec::new();
    for _ in 0..8 {
        for _ in 0..25 {
            publish(&hub, "a");
            for seq in send_ready(&mut s, "a").await {
                due.push_back((Instant::now() + Duration::from_millis(400), seq));
            }
            tokio::time::advance(Duration::from_millis(40)).await;
            while let Some(&(at, seq)) = due.front() {
                if at > Instant::now() {
                    break;
                }
                due.pop_front();
                ack(&mut s, "a", seq, 400.0).await;
            }
        }
        s.on_tick(Instant::now());
        let out = s.take_output();
        seen.extend(levels(&out));
        links.extend(texts(&out).into_iter().filter(|v| v["type"] == "link"));
    }
    assert!(seen.is_empty(), "moved off the top rung: {seen:?}");
    let last = links.last().expect("link events");
    let min = last["min_rtt_ms"].as_u64().unwrap();
    assert!((400..=450).contains(&min), "{last}");
}

#[tokio::test(start_paused = true)]
async fn a_page_that_cannot_keep_up_costs_one_tile_one_rung_and_says_why() {
    let hub = hub(&["a", "b"]);
    publish(&hub, "a");
    publish(&hub, "b");
    let mut s = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    s.on_text(
        r#"{"type":"subscribe","cameras":["a","b"],"quality":"auto"}"#,
        Instant::now(),
    )
    .await;
    assert_eq!(levels(&s.take_output()), [0, 0]);
    // Acks come at once (the link is fine); the page says tile a's decoder has 9 chunks
    // waiting.
    for seq in send_all(&mut s).await {
        ack(&mut s, &seq.0, seq.1, 0.0).await;
    }
    s.on_text(
        r#"{"type":"decoder","camera":"a","queue":9,"dropped":0}"#,
        Instant::now(),
    )
    .await;
    tokio::time::advance(DECIDE_EVERY).await;
    s.on_tick(Instant::now());
    let tiers: Vec<Value> = texts(&s.take_output())
        .into_iter()
        .filter(|v| v["type"] == "tier")
        .collect();
    assert_eq!(tiers.len(), 1, "one tile gives up one rung: {tiers:?}");
    assert_eq!(tiers[0]["level"], 1);
    assert_eq!(tiers[0]["reason"], "viewer");
    // A report of nothing waiting changes nothing; nor does a report about another camera.
    s.on_text(
        r#"{"type":"decoder","camera":"b","queue":1,"dropped":1}"#,
        Instant::now(),
    )
    .await;
    s.on_text(
        r#"{"type":"decoder","camera":"zz","queue":99,"dropped":99}"#,
        Instant::now(),
    )
    .await;
    tokio::time::advance(DECIDE_EVERY).await;
    s.on_tick(Instant::now());
    assert!(levels(&s.take_output()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_queue_on_the_link_moves_the_connection_down_and_says_why() {
    let hub = hub(&["a", "b"]);
    let first = [publish(&hub, "a"), publish(&hub, "b")];
    let mut s = Session::new(hub.clone(), Principal::trusted(), Instant::now());
    s.on_text(
        r#"{"type":"subscribe","cameras":["a","b"],"quality":"auto"}"#,
        Instant::now(),
    )
    .await;
    s.take_output();
    // The first frames acknowledged 20 ms after they went out, then acks stop: frames wait
    // ever longer on the way.
    tokio::time::advance(Duration::from_millis(20)).await;
    ack(&mut s, "a", first[0], 0.0).await;
    ack(&mut s, "b", first[1], 0.0).await;
    let mut tiers = Vec::new();
    for _ in 0..4 {
        publish(&hub, "a");
        publish(&hub, "b");
        send_all(&mut s).await;
        tokio::time::advance(DECIDE_EVERY).await;
        s.on_tick(Instant::now());
        tiers.extend(
            texts(&s.take_output())
                .into_iter()
                .filter(|v| v["type"] == "tier"),
        );
    }
    assert!(!tiers.is_empty(), "never stepped down");
    assert!(
        tiers
            .iter()
            .all(|t| t["reason"] == "link" && t["level"].as_u64() > Some(0)),
        "{tiers:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_replay_without_a_ring_is_refused_and_the_live_subscription_is_left_as_asked() {
    let hub = hub(&["a"]);
    publish(&hub, "a");
    let now = Instant::now();
    let mut s = Session::new(hub.clone(), Principal::trusted(), now);
    s.take_output();
    s.on_text(r#"{"type":"subscribe","cameras":["a"]}"#, now)
        .await;
    s.take_output();
    assert_eq!(s.watching(), 1);
    s.on_text(
        r#"{"type":"subscribe","cameras":["a"],"codecs":["h264"],"at":1700000000000}"#,
        now,
    )
    .await;
    let t = texts(&s.take_output());
    assert_eq!(t[0]["code"], "not_in_replay", "{t:?}");
    assert_eq!(t[0]["camera"], "a");
    assert_eq!(s.watching(), 0, "a replay replaces the live subscription");
    s.on_text(r#"{"type":"subscribe","cameras":["a"],"at":null}"#, now)
        .await;
    assert_eq!(s.watching(), 1, "null is live again");
}
