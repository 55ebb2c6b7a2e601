//! End-to-end tests of the live wall WebSocket with tokio-tungstenite clients.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

async fn tier_stats(cw: &Camwall, id: &str, quality: u64, scale: u64) -> (u64, u64) {
    let c = cw.camera(id).await;
    let encodes = c["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["quality"] == quality && t["scale"] == scale)
        .map_or(0, |t| t["jpeg_encodes"].as_u64().unwrap());
    (encodes, c["frames_in"].as_u64().unwrap())
}

#[tokio::test]
async fn several_clients_get_increasing_valid_frames_at_the_source_rate() {
    let cw = start_camwall(json!({"server": {}, "cameras": [
        lavfi("a", "testsrc2=size=320x240:rate=10"),
        lavfi("b", "testsrc=size=160x120:rate=15")
    ]}));
    cw.wait_camera("a", Duration::from_secs(15), |c| {
        c["fps"].as_f64().unwrap() > 5.0
    })
    .await;
    cw.wait_camera("b", Duration::from_secs(15), |c| {
        c["fps"].as_f64().unwrap() > 5.0
    })
    .await;
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let mut ws = ws_connect(&cw).await;
        tasks.push(tokio::spawn(async move {
            let mut texts = Vec::new();
            ws_send(
                &mut ws,
                json!({"type": "subscribe", "cameras": ["*"], "quality": "auto"}),
            )
            .await;
            let mut frames: HashMap<String, Vec<WsFrame>> = HashMap::new();
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end {
                if let Some(f) = next_frame(&mut ws, &mut texts, Duration::from_secs(2)).await {
                    frames.entry(f.camera().to_string()).or_default().push(f);
                }
            }
            (frames, texts)
        }));
    }
    for t in tasks {
        let (frames, texts) = t.await.unwrap();
        assert!(
            texts
                .iter()
                .any(|t| t["type"] == "hello" && t["version"] == 4),
            "{texts:?}"
        );
        assert!(texts
            .iter()
            .any(|t| t["type"] == "tier" && t["camera"] == "a"));
        for (id, rate, w, h) in [("a", 10.0, 320, 240), ("b", 15.0, 160, 120)] {
            let fs = &frames[id];
            // Source rate over 3 s, minus scheduling slack.
            assert!(
                fs.len() as f64 >= rate * 3.0 * 0.7,
                "{id}: only {} frames",
                fs.len()
            );
            assert!(
                fs.windows(2).all(|p| p[1].seq() > p[0].seq()),
                "{id}: sequence not increasing"
            );
            for f in fs.iter().step_by(7) {
                let (dw, dh, _) = decode_rgb(&f.jpeg);
                assert_eq!((dw, dh), (w, h));
                assert_eq!(f.header["width"], w);
                assert!(f.header["ts"].as_u64().unwrap() > 0);
                assert_eq!(f.header["quality"], 85);
            }
        }
    }
}

#[tokio::test]
async fn encodes_per_tier_are_the_same_for_1_and_20_clients() {
    let cw = start_camwall(
        json!({"server": {}, "cameras": [lavfi("a", "testsrc2=size=320x240:rate=10")]}),
    );
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    let mut per_frame = Vec::new();
    for clients in [1usize, 20] {
        let mut socks = Vec::new();
        for _ in 0..clients {
            let mut ws = ws_connect(&cw).await;
            ws_send(
                &mut ws,
                json!({"type": "subscribe", "cameras": ["a"], "quality": 60}),
            )
            .await;
            socks.push(ws);
        }
        // Every client is receiving before the fixed window is counted.
        for ws in &mut socks {
            next_frame(ws, &mut Vec::new(), Duration::from_secs(5))
                .await
                .expect("a first frame for every client");
        }
        let (e0, f0) = tier_stats(&cw, "a", 60, 1).await;
        let readers: Vec<_> = socks
            .into_iter()
            .map(|mut ws| {
                tokio::spawn(async move {
                    let mut n = 0;
                    let mut texts = Vec::new();
                    let end = Instant::now() + Duration::from_secs(2);
                    while Instant::now() < end {
                        if next_frame(&mut ws, &mut texts, Duration::from_millis(500))
                            .await
                            .is_some()
                        {
                            n += 1;
                        }
                    }
                    (n, ws)
                })
            })
            .collect();
        let mut received = Vec::new();
        let mut keep = Vec::new();
        for r in readers {
            let (n, ws) = r.await.unwrap();
            received.push(n);
            keep.push(ws);
        }
        let (e1, f1) = tier_stats(&cw, "a", 60, 1).await;
        let (encodes, frames) = ((e1 - e0) as f64, (f1 - f0) as f64);
        assert!(frames >= 15.0, "{frames} frames in 2 s");
        for n in &received {
            assert!(
                *n as f64 >= frames * 0.8,
                "{clients} clients: one got {n} of {frames}"
            );
        }
        per_frame.push(encodes / frames);
        drop(keep);
        // The next round starts from no clients at all on camwall's side.
        cw.wait_ws_clients(0).await;
    }
    // One encode per source frame, with 1 client or 20.
    for r in &per_frame {
        assert!((0.85..=1.15).contains(r), "encodes per frame {per_frame:?}");
    }
}

#[tokio::test]
async fn an_fps_cap_thins_frames_before_they_are_encoded() {
    let cw = start_camwall(
        json!({"server": {}, "cameras": [lavfi("a", "testsrc2=size=160x120:rate=25")]}),
    );
    cw.wait_camera("a", Duration::from_secs(15), |c| {
        c["fps"].as_f64().unwrap() > 20.0
    })
    .await;
    // Two viewers with the same cap share one lane; a third, uncapped, on another tier.
    let mut capped = Vec::new();
    for _ in 0..2 {
        let mut ws = ws_connect(&cw).await;
        ws_send(
            &mut ws,
            json!({"type": "subscribe", "cameras": ["a"], "quality": 40, "max_fps": 5}),
        )
        .await;
        capped.push(ws);
    }
    let mut full = ws_connect(&cw).await;
    ws_send(
        &mut full,
        json!({"type": "subscribe", "cameras": ["a"], "quality": 50}),
    )
    .await;
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    // Readers run from the start; only frames captured inside the measured window count, so
    // nothing queued before it inflates the rate. Each says when its first frame came, and
    // stops at the first frame captured after the window: frames arrive in capture order, so
    // none from inside the window is still on its way.
    let window_end = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    let (first_tx, mut first_rx) = tokio::sync::mpsc::channel::<()>(3);
    let read = |mut ws: Ws| {
        let (window_end, first_tx) = (window_end.clone(), first_tx.clone());
        tokio::spawn(async move {
            let mut ts = Vec::new();
            let mut texts = Vec::new();
            let end = Instant::now() + Duration::from_secs(15);
            while Instant::now() < end {
                if let Some(f) = next_frame(&mut ws, &mut texts, Duration::from_millis(500)).await {
                    let t = f.header["ts"].as_u64().unwrap();
                    if ts.is_empty() {
                        let _ = first_tx.try_send(());
                    }
                    ts.push(t);
                    if t >= window_end.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                }
            }
            (ts, ws)
        })
    };
    let tasks: Vec<_> = capped.into_iter().chain([full]).map(read).collect();
    for _ in 0..tasks.len() {
        tokio::time::timeout(Duration::from_secs(5), first_rx.recv())
            .await
            .expect("a first frame for every viewer");
    }
    let (e0, f0) = tier_stats(&cw, "a", 40, 1).await;
    let t0 = now_ms();
    // The measured window itself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (e1, f1) = tier_stats(&cw, "a", 40, 1).await;
    let t1 = now_ms();
    window_end.store(t1, std::sync::atomic::Ordering::SeqCst);
    let mut got = Vec::new();
    let mut keep = Vec::new();
    for t in tasks {
        let (ts, ws) = t.await.unwrap();
        got.push(ts.iter().filter(|&&t| t >= t0 && t < t1).count() as u64);
        keep.push(ws);
    }
    let (encodes, frames) = (e1 - e0, f1 - f0);
    assert!(frames >= 55, "{frames} source frames in 3 s");
    // 5 fps over 3 s: about 15 frames for each capped viewer, and the capped tier encoded
    // about that often, not once per source frame.
    for n in &got[..2] {
        assert!(
            (11..=17).contains(n),
            "capped viewer got {n} frames: {got:?}"
        );
    }
    assert!(
        got[2] >= frames * 8 / 10,
        "uncapped viewer got {} of {frames}",
        got[2]
    );
    assert!(
        (11..=18).contains(&encodes),
        "capped tier encoded {encodes} times for {frames} source frames"
    );
    drop(keep);
}

#[tokio::test]
async fn bad_messages_get_error_events_and_the_socket_stays_usable() {
    let cw = start_camwall(
        json!({"server": {}, "cameras": [lavfi("a", "testsrc2=size=160x120:rate=10")]}),
    );
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    let mut ws = ws_connect(&cw).await;
    let t = Duration::from_secs(5);
    let is_error = |code: &'static str| move |v: &Value| v["type"] == "error" && v["code"] == code;
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text("this is not json")).await.unwrap();
    assert!(next_text(&mut ws, t, is_error("bad_json")).await.is_some());
    ws_send(&mut ws, json!({"type": "dance"})).await;
    assert!(next_text(&mut ws, t, is_error("unknown_type"))
        .await
        .is_some());
    ws_send(&mut ws, json!({"type": "subscribe", "cameras": ["nope"]})).await;
    let e = next_text(&mut ws, t, is_error("unknown_camera"))
        .await
        .unwrap();
    assert_eq!(e["camera"], "nope");
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": ["a"], "quality": 500}),
    )
    .await;
    assert!(next_text(&mut ws, t, is_error("bad_message"))
        .await
        .is_some());
    ws.send(Message::text(format!(
        r#"{{"type":"ack","camera":"{}","seq":1}}"#,
        "x".repeat(10_000)
    )))
    .await
    .unwrap();
    assert!(next_text(&mut ws, t, is_error("oversized")).await.is_some());
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert!(next_text(&mut ws, t, is_error("bad_message"))
        .await
        .is_some());
    // Still usable: a valid subscription streams frames.
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": ["a"], "quality": 50, "max_width": 100}),
    )
    .await;
    let mut texts = Vec::new();
    let f = next_frame(&mut ws, &mut texts, t)
        .await
        .expect("frames after errors");
    assert_eq!(f.camera(), "a");
    assert_eq!(
        f.header["width"], 80,
        "max_width 100 on a 160 px camera gives the 1/2 tier"
    );
    // Unsubscribe stops frames.
    ws_send(&mut ws, json!({"type": "unsubscribe", "cameras": ["a"]})).await;
    // One connection task handles messages in order and sends frames and answers on one
    // socket: once the answer to a later message is here, every frame sent before the
    // unsubscribe took effect has been read (and dropped) on the way.
    ws_send(&mut ws, json!({"type": "dance"})).await;
    assert!(next_text(&mut ws, t, is_error("unknown_type"))
        .await
        .is_some());
    assert!(next_frame(&mut ws, &mut texts, Duration::from_millis(700))
        .await
        .is_none());
}

#[tokio::test]
async fn stalled_clients_cost_bounded_memory_and_never_slow_a_fast_one() {
    let cw = start_camwall(
        json!({"server": {}, "cameras": [lavfi("hd", "testsrc2=size=1280x720:rate=25")]}),
    );
    cw.wait_camera("hd", Duration::from_secs(15), |c| {
        c["fps"].as_f64().unwrap() > 20.0
    })
    .await;
    // Ten clients that subscribe and then never read a byte.
    let mut stalled = Vec::new();
    for _ in 0..10 {
        let mut ws = ws_connect_small_buffer(&cw, 4096).await;
        ws_send(
            &mut ws,
            json!({"type": "subscribe", "cameras": ["hd"], "quality": 85}),
        )
        .await;
        stalled.push(ws);
    }
    let mut fast = ws_connect(&cw).await;
    ws_send(
        &mut fast,
        json!({"type": "subscribe", "cameras": ["hd"], "quality": 85}),
    )
    .await;
    let mut texts = Vec::new();
    // Warm up, then measure over 5 s.
    let warm = Instant::now() + Duration::from_secs(1);
    while Instant::now() < warm {
        next_frame(&mut fast, &mut texts, Duration::from_secs(1)).await;
    }
    let rss0 = rss_kib(cw.pid());
    // Five seconds of the camera (125 frames) for the fast client, long past the point where
    // the stalled clients' 4 KiB buffers are full: were they to hold the fan-out back, the fast
    // client would stop getting frames there. The time bound is only a safety net.
    let want = 125;
    let mut got = 0;
    let give_up = Instant::now() + Duration::from_secs(90);
    while got < want && Instant::now() < give_up {
        if next_frame(&mut fast, &mut texts, Duration::from_secs(5))
            .await
            .is_some()
        {
            got += 1;
        }
    }
    let rss1 = rss_kib(cw.pid());
    assert_eq!(
        got, want,
        "the fast client stopped getting frames: {texts:?}"
    );
    // Unbounded queues would hold 10 clients x 125 frames x ~60 KiB = ~75 MB by now.
    let grew = rss1.saturating_sub(rss0);
    assert!(
        grew < 20 * 1024,
        "RSS grew by {grew} KiB with stalled clients"
    );
    drop(stalled);
}

#[tokio::test]
async fn a_throttled_client_moves_down_the_tiers_and_back_up() {
    let cw = start_camwall(
        json!({"server": {}, "cameras": [lavfi("a", "testsrc2=size=640x360:rate=25")]}),
    );
    cw.wait_camera("a", Duration::from_secs(15), |c| {
        c["fps"].as_f64().unwrap() > 20.0
    })
    .await;
    let mut ws = ws_connect_small_buffer(&cw, 4096).await;
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": ["a"], "quality": "auto"}),
    )
    .await;
    let first = next_text(&mut ws, Duration::from_secs(5), |v| v["type"] == "tier")
        .await
        .unwrap();
    assert_eq!(first["level"], 0);
    assert_eq!(first["quality"], 85);
    // Throttled: read (and acknowledge, as the wall page does) one message every 150 ms, a
    // ~6 fps link for a 25 fps camera.
    let mut lowest = first.clone();
    let end = Instant::now() + Duration::from_secs(6);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if let Some(v) = read_acking(&mut ws).await {
            if v["type"] == "tier" && v["level"].as_u64() > lowest["level"].as_u64() {
                lowest = v;
            }
        }
    }
    assert!(
        lowest["level"].as_u64().unwrap() >= 1,
        "never stepped down: {lowest}\n{}",
        cw.logs()
            .lines()
            .filter(|l| l.contains("window"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(lowest["quality"].as_u64().unwrap() < 85 || lowest["scale"].as_u64().unwrap() > 1);
    // Recovered: reading and acknowledging at full speed, it climbs back to the top tier.
    let end = Instant::now() + Duration::from_secs(40);
    let mut back = None;
    while Instant::now() < end && back.is_none() {
        if let Some(v) = read_acking(&mut ws).await {
            if v["type"] == "tier" && v["level"] == 0 {
                back = Some(v);
            }
        }
    }
    let back = back.expect("client never returned to the top tier");
    assert_eq!(back["quality"], 85);
    assert_eq!(back["scale"], 1);
}

/// Reads one message (waiting up to 1 s): a frame is acknowledged, as the wall page does; a
/// text event is returned.
async fn read_acking<S>(ws: &mut S) -> Option<Value>
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + futures_util::Sink<tokio_tungstenite::tungstenite::Message>
        + Unpin,
    <S as futures_util::Sink<tokio_tungstenite::tungstenite::Message>>::Error: std::fmt::Debug,
{
    use tokio_tungstenite::tungstenite::Message;
    match tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(&t).ok(),
        Ok(Some(Ok(Message::Binary(b)))) => {
            let f = parse_frame(&b);
            ws_send(
                ws,
                json!({"type": "ack", "camera": f.camera(), "seq": f.seq()}),
            )
            .await;
            None
        }
        _ => None,
    }
}

/// The test's own wall clock in Unix milliseconds.
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn a_browser_clock_far_from_the_servers_neither_costs_the_tier_nor_hides_the_latency() {
    let cw = start_camwall(
        json!({"server": {}, "cameras": [lavfi("a", "testsrc2=size=320x240:rate=15")]}),
    );
    cw.wait_camera("a", Duration::from_secs(15), |c| {
        c["fps"].as_f64().unwrap() > 10.0
    })
    .await;
    // Two clients acking like wall.js on loopback, one with its clock 5 s ahead of the server's,
    // one 5 s behind: their latency_ms is off by that much.
    let tasks: Vec<_> = [5000i64, -5000]
        .into_iter()
        .map(|skew| {
            let url = cw.base.replace("http://", "ws://") + "/ws";
            tokio::spawn(async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
                let clock = move || unix_ms() + skew;
                let t0 = clock();
                ws_send(&mut ws, json!({"type": "ping", "t0": t0})).await;
                ws_send(
                    &mut ws,
                    json!({"type": "subscribe", "cameras": ["a"], "quality": "auto"}),
                )
                .await;
                let (mut levels, mut frames, mut pong) = (Vec::new(), 0u32, None);
                let end = Instant::now() + Duration::from_secs(6);
                while Instant::now() < end {
                    use tokio_tungstenite::tungstenite::Message;
                    let msg = match tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
                        Ok(Some(Ok(m))) => m,
                        _ => continue,
                    };
                    match msg {
                        Message::Binary(b) => {
                            let f = parse_frame(&b);
                            frames += 1;
                            let ts = f.header["ts"].as_i64().unwrap();
                            let latency = (clock() - ts).max(0);
                            ws_send(
                                &mut ws,
                                json!({"type": "ack", "camera": "a", "seq": f.seq(), "latency_ms": latency}),
                            )
                            .await;
                        }
                        Message::Text(t) => {
                            let v: Value = serde_json::from_str(&t).unwrap();
                            if v["type"] == "tier" {
                                levels.push(v["level"].as_u64().unwrap());
                            } else if v["type"] == "pong" && pong.is_none() {
                                pong = Some((v, clock()));
                            }
                        }
                        _ => {}
                    }
                }
                (skew, t0, levels, frames, pong)
            })
        })
        .collect();
    for t in tasks {
        let (skew, t0, levels, frames, pong) = t.await.unwrap();
        assert!(frames >= 30, "skew {skew}: only {frames} frames in 6 s");
        assert!(!levels.is_empty(), "skew {skew}: no tier event");
        assert!(
            levels.iter().all(|&l| l == 0),
            "skew {skew}: tier levels {levels:?}"
        );
        // The pong echoes t0 and gives the server's time: the same machine's clock, and the
        // client's NTP-style estimate of its offset finds the skew.
        let (pong, t1) = pong.unwrap_or_else(|| panic!("skew {skew}: no pong"));
        assert_eq!(pong["t0"].as_f64(), Some(t0 as f64));
        let server = pong["server_time_ms"].as_i64().unwrap();
        let received = t1 - skew;
        assert!(
            (server - received).abs() < 2000,
            "server time {server} vs test clock {received} when the pong came"
        );
        let offset = server - (t0 + t1) / 2;
        assert!(
            (offset + skew).abs() < 1000,
            "skew {skew}: estimated offset {offset}"
        );
    }
}

#[tokio::test]
async fn a_long_link_keeps_the_top_tier_at_the_cameras_rate() {
    let cw = start_camwall(
        json!({"server": {}, "cameras": [lavfi("a", "testsrc2=size=320x240:rate=25")]}),
    );
    cw.wait_camera("a", Duration::from_secs(15), |c| {
        c["fps"].as_f64().unwrap() > 20.0
    })
    .await;
    // 200 ms each way: a 400 ms round trip (a satellite link, a phone on another continent),
    // with no rate cap: the link carries everything the camera sends.
    let mut ws = common::link::ws_over_long_link(&cw.base, Duration::from_millis(200)).await;
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": ["a"], "quality": "auto"}),
    )
    .await;
    // 300 frames (12 s of the camera), every one acknowledged as the wall page does; not one
    // tier event may move the client off the top rung.
    let mut frames = 0;
    let mut tiers = Vec::new();
    let mut link = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    while frames < 300 {
        assert!(
            Instant::now() < deadline,
            "{frames} frames; tiers {tiers:?}"
        );
        let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await
        else {
            panic!("the stream stopped after {frames} frames; tiers {tiers:?}");
        };
        use tokio_tungstenite::tungstenite::Message;
        match msg {
            Message::Binary(b) => {
                let f = parse_frame(&b);
                frames += 1;
                ws_send(
                    &mut ws,
                    json!({"type": "ack", "camera": f.camera(), "seq": f.seq()}),
                )
                .await;
            }
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                match v["type"].as_str() {
                    Some("tier") => tiers.push(v["level"].as_u64().unwrap()),
                    Some("link") => link = Some(v),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    assert_eq!(tiers.first(), Some(&0));
    assert!(
        tiers.iter().all(|&l| l == 0),
        "stepped down on a link that carries everything: {tiers:?}"
    );
    // The server saw the link for what it is: long (the test's proxy works), not queued.
    let link = link.expect("link events");
    let min = link["min_rtt_ms"].as_u64().unwrap();
    assert!(min >= 400, "{link}");
}
