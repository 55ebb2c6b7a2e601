//! The benchmark's load clients: wall-like WebSocket clients (fast, slow, reconnecting for the
//! soak) and the seed page's one-request-at-a-time snapshot poller.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::http::Http;
use crate::procfs::now_ms;

/// What one WebSocket client saw: per camera, (seq, latency ms, bytes) of every frame of the
/// kind it asked for (JPEG, or video when the subscription lists codecs).
#[derive(Default, Clone)]
pub struct WsStats {
    pub frames: HashMap<String, Vec<(u64, f64, usize)>>,
    pub first_frame_ms: Option<f64>,
    /// Frames of the other kind: a video client served JPEG (a fallback) shows up here rather
    /// than mixing two seq counters in `frames`.
    pub other_kind: u64,
}

/// The `kind` of a frame header; frames from before video existed carry none and are JPEG.
pub fn frame_kind(h: &Value) -> &str {
    h["kind"].as_str().unwrap_or("jpeg")
}

/// The JSON header of a binary frame message (`[u8 1][u16 BE len][header][payload]`).
pub fn frame_header(b: &[u8]) -> Option<Value> {
    let n = u16::from_be_bytes([*b.get(1)?, *b.get(2)?]) as usize;
    serde_json::from_slice(b.get(3..3 + n)?).ok()
}

/// A wall-like client: subscribes, reads every frame, acknowledges it. `slow` reads at a tenth
/// of the rate (a sleep per message).
pub async fn ws_client(
    base: String,
    sub: Value,
    stop: Arc<AtomicBool>,
    slow: Option<Duration>,
) -> WsStats {
    let url = base.replace("http://", "ws://") + "/ws";
    let want = if sub["codecs"].as_array().is_some_and(|c| !c.is_empty()) {
        "video"
    } else {
        "jpeg"
    };
    let mut st = WsStats::default();
    let (mut ws, _) = match tokio_tungstenite::connect_async(url).await {
        Ok(c) => c,
        Err(e) => {
            // Counted as a client that got nothing, and said, so a refusal never hides.
            eprintln!("bench: a WebSocket client could not connect: {e}");
            return st;
        }
    };
    let t0 = Instant::now();
    let _ = ws.send(Message::text(sub.to_string())).await;
    while !stop.load(Ordering::Relaxed) {
        let msg = match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(_) => break,
            Err(_) => continue,
        };
        if let Message::Binary(b) = msg {
            let now = now_ms();
            if st.first_frame_ms.is_none() {
                st.first_frame_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
            }
            let h = frame_header(&b).unwrap_or(Value::Null);
            let cam = h["camera"].as_str().unwrap_or("").to_string();
            let seq = h["seq"].as_u64().unwrap_or(0);
            let latency = now.saturating_sub(h["ts"].as_u64().unwrap_or(now)) as f64;
            if frame_kind(&h) == want {
                st.frames
                    .entry(cam.clone())
                    .or_default()
                    .push((seq, latency, b.len()));
            } else {
                st.other_kind += 1;
            }
            // Pictures are acknowledged, audio is not (docs/PROTOCOL.md).
            if frame_kind(&h) != "audio" {
                let ack = json!({"type": "ack", "camera": cam, "seq": h["seq"]});
                let _ = ws.send(Message::text(ack.to_string())).await;
            }
            if let Some(d) = slow {
                tokio::time::sleep(d).await;
            }
        }
    }
    st
}

#[derive(Default, Clone)]
pub struct PollStats {
    pub requests: u64,
    pub not_modified: u64,
    pub latencies: Vec<f64>,
}

/// The seed's poller (advanced_test): one request at a time, quality from latency, ETag.
pub async fn seed_poller(
    base: String,
    cam: String,
    stop: Arc<AtomicBool>,
    measuring: Arc<AtomicBool>,
) -> PollStats {
    let mut http = Http::new(&base);
    let mut st = PollStats::default();
    let mut etag = String::new();
    let mut quality = 85;
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let path = format!("/api/ip-cameras/frame/{cam}?quality={quality}");
        let hdrs: Vec<(&str, &str)> = if etag.is_empty() {
            vec![]
        } else {
            vec![("If-None-Match", etag.as_str())]
        };
        let Ok(r) = http.get(&path, &hdrs).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let rt = t0.elapsed().as_secs_f64() * 1000.0;
        if let Some(e) = r.headers.get("etag") {
            etag = e.clone();
        }
        if measuring.load(Ordering::Relaxed) {
            st.requests += 1;
            st.latencies.push(rt);
            if r.status == 304 {
                st.not_modified += 1;
            }
        }
        quality = if rt < 50.0 {
            85
        } else if rt <= 100.0 {
            80
        } else {
            70
        };
        tokio::time::sleep(
            Duration::from_secs_f64(rt.max(16.0) / 2.0 / 1000.0).max(Duration::from_millis(8)),
        )
        .await;
    }
    st
}

/// A wall client for the soak: reads and acknowledges frames, reconnecting if dropped;
/// returns how many frames it got.
pub async fn soak_client(base: String, sub: Value, stop: Arc<AtomicBool>) -> u64 {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let st = ws_client(base.clone(), sub.clone(), stop.clone(), None).await;
        n += st.frames.values().map(|v| v.len() as u64).sum::<u64>();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    n
}
