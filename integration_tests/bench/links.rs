//! S17, one viewer over four links: loopback, 200 and 400 ms round trips with no rate cap,
//! and 3 Mbit/s behind a router queue at 40 ms (the end-to-end tests' shaping proxy), for JPEG
//! auto and for the camera's own video. Per link and mode: frames a second delivered, bits a
//! second, frame age at the client (capture `ts` to arrival, one machine's clock) and the
//! rungs the server chose over time.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::link::{ws_over_link, Shape};
use crate::procfs::{now_ms, pct};
use crate::scenarios::Ctx;
use crate::sources::{rtsp_cams, start_camwall, start_rtsp, wait_streaming};

/// One run: what the client got in the second half of it (the first half is the settling).
async fn one_link(base: &str, shape: &Shape, sub: &Value, secs: u64) -> Value {
    let mut ws = ws_over_link(base, shape).await;
    let _ = ws.send(Message::text(sub.to_string())).await;
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(secs);
    let settle = t0 + Duration::from_secs(secs / 2);
    let (mut frames, mut bytes, mut ages) = (0u64, 0u64, Vec::new());
    let mut rungs = Vec::new();
    let mut last_link = Value::Null;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(end, ws.next()).await {
        match msg {
            Message::Binary(b) if b.len() > 3 && b[0] == 1 => {
                let n = u16::from_be_bytes([b[1], b[2]]) as usize;
                let Some(h) = b
                    .get(3..3 + n)
                    .and_then(|h| serde_json::from_slice::<Value>(h).ok())
                else {
                    continue;
                };
                let ack = json!({"type": "ack", "camera": h["camera"], "seq": h["seq"]});
                let _ = ws.send(Message::text(ack.to_string())).await;
                if Instant::now() >= settle {
                    frames += 1;
                    bytes += b.len() as u64;
                    if let Some(ts) = h["ts"].as_u64() {
                        ages.push(now_ms().saturating_sub(ts) as f64);
                    }
                }
            }
            Message::Text(t) => {
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                match v["type"].as_str() {
                    Some("tier") => {
                        let what = match v["codec"].as_str() {
                            Some("jpeg") | None => format!(
                                "jpeg q{} 1/{}",
                                v["quality"].as_u64().unwrap_or(0),
                                v["scale"].as_u64().unwrap_or(1)
                            ),
                            Some(c) => format!("{c} {}", v["mode"].as_str().unwrap_or("")),
                        };
                        rungs.push(format!(
                            "{:.1}s L{} {what}",
                            t0.elapsed().as_secs_f64(),
                            v["level"].as_u64().unwrap_or(0)
                        ));
                    }
                    Some("link") => last_link = v,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let span = secs as f64 - (secs / 2) as f64;
    let link_use = shape
        .rate()
        .map(|r| bytes as f64 * 8.0 / span / r as f64 * 100.0);
    json!({
        "fps": frames as f64 / span,
        "kbps": bytes as f64 * 8.0 / span / 1000.0,
        "link_use_percent": link_use,
        "age_ms": {"p50": pct(&mut ages, 50.0), "p90": pct(&mut ages, 90.0)},
        "rungs": rungs,
        "last_link": last_link,
    })
}

/// S17: one 720p25 camera (the bench clip), one client at a time over each link, JPEG auto
/// then video.
pub async fn s17_links(ctx: &Ctx, secs: u64) -> Value {
    let setup = "1 camera 720p25 RTSP (the clip), 1 client acking at arrival, over a shaping proxy: loopback, 200 and 400 ms RTT uncapped, 3 Mbit/s at 40 ms behind a 96 KiB queue";
    let rtsp = start_rtsp(&ctx.clips.join("clip720.h264"), 1);
    let cw = start_camwall(&ctx.camwall, rtsp_cams(rtsp.port, 1));
    if !wait_streaming(&cw, 1, Duration::from_secs(60)).await {
        return json!({"id": "S17", "setup": setup, "error": "the camera did not stream"});
    }
    let links = [
        ("loopback", Shape::delay_only(Duration::ZERO)),
        ("200 ms RTT", Shape::delay_only(Duration::from_millis(100))),
        ("400 ms RTT", Shape::delay_only(Duration::from_millis(200))),
        (
            "3 Mbit/s 40 ms",
            Shape::new(3_000_000, Duration::from_millis(20)),
        ),
    ];
    let modes = [
        (
            "jpeg auto",
            json!({"type": "subscribe", "cameras": ["cam0"], "quality": "auto"}),
        ),
        (
            "video auto",
            json!({"type": "subscribe", "cameras": ["cam0"], "quality": "auto", "codecs": ["h264"]}),
        ),
    ];
    let mut rows = Vec::new();
    for (mode, sub) in &modes {
        for (link, shape) in &links {
            eprintln!("S17: {mode} over {link}");
            let mut r = one_link(&cw.base, shape, sub, secs).await;
            r["link"] = json!(link);
            r["mode"] = json!(mode);
            rows.push(r);
        }
    }
    json!({"id": "S17", "setup": setup, "links": rows})
}
