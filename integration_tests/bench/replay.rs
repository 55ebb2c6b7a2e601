//! S21: the replay ring. 16 cameras 720p25 recording (nobody watching) against S12's setup
//! without replay, in the same run: camwall's CPU ratio, and the bytes it writes against what
//! the cameras send. Then, on the recording camwall, seeks: a snapshot at an instant
//! (`frame?at=`), a WebSocket replay's first unit after its subscribe, and a 60 s clip's first
//! byte and whole answer.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::http::Http;
use crate::procfs::{now_ms, pct, CpuWindow};
use crate::scenarios::Ctx;
use crate::sources::{
    rtsp_cams, start_camwall, start_camwall_with, start_rtsp, status, wait_streaming,
};

/// Bytes camwall passed to `write` and friends so far (`wchar`: files and sockets; with nobody
/// watching its sockets write almost nothing).
fn written(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("wchar: ")
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn bytes_in(s: &Value) -> u64 {
    s["cameras"].as_array().map_or(0, |c| {
        c.iter()
            .map(|c| c["video"]["bytes_in"].as_u64().unwrap_or(0))
            .sum()
    })
}

/// CPU % over `secs`, bytes written and bytes the cameras sent meanwhile.
async fn window(cw: &crate::harness::Camwall, secs: u64) -> (f64, u64, u64) {
    let (s0, w0) = (status(cw).await, written(cw.pid()));
    let cpu = CpuWindow::start(cw.pid());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let pct = cpu.percent();
    let (s1, w1) = (status(cw).await, written(cw.pid()));
    (pct, w1 - w0, bytes_in(&s1) - bytes_in(&s0))
}

pub async fn s21_replay(ctx: &Ctx, n: usize, secs: u64) -> Value {
    let rtsp = start_rtsp(&ctx.clips.join("clip720.h264"), n);
    let cams = rtsp_cams(rtsp.port, n);
    // S12's setup, replay off.
    let base = start_camwall(&ctx.camwall, cams.clone());
    if !wait_streaming(&base, n, Duration::from_secs(60)).await {
        return json!({"id": "S21", "error": "cameras did not stream"});
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (base_cpu, base_written, _) = window(&base, secs).await;
    drop(base);
    let cw = start_camwall_with(
        &ctx.camwall,
        cams,
        json!({"replay": {"minutes": 10, "max_mb": 4096}}),
    );
    if !wait_streaming(&cw, n, Duration::from_secs(60)).await {
        return json!({"id": "S21", "error": "cameras did not stream (recording)"});
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu, wrote, sent) = window(&cw, secs).await;
    let (at_ms, ws_ms, clip) = seeks(&cw, if ctx.quick { 5 } else { 20 }).await;
    json!({
        "id": "S21",
        "setup": format!("{n} cameras 720p25 RTSP, nobody watching: recording (10 min, 4096 MB) against replay off"),
        "cpu_percent": cpu,
        "cpu_percent_no_replay": base_cpu,
        "cpu_ratio": cpu / base_cpu,
        "written_mb_per_s": wrote as f64 / secs as f64 / 1e6,
        "written_no_replay_mb_per_s": base_written as f64 / secs as f64 / 1e6,
        "source_mb_per_s": sent as f64 / secs as f64 / 1e6,
        "written_vs_source": wrote as f64 / sent.max(1) as f64,
        "at_snapshot_ms": at_ms,
        "ws_replay_first_unit_ms": ws_ms,
        "clip60": clip,
    })
}

/// Seek timings on camera `cam0` once its ring holds a minute: `tries` snapshots at random
/// instants, `tries` WebSocket replays to their first unit, and one 60 s clip.
async fn seeks(cw: &crate::harness::Camwall, tries: usize) -> (Value, Value, Value) {
    let span = |s: &Value| {
        let c = s["cameras"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == "cam0"))
            .cloned();
        c.map(|c| {
            (
                c["replay"]["from"].as_u64().unwrap_or(0),
                c["replay"]["to"].as_u64().unwrap_or(0),
            )
        })
    };
    let end = Instant::now() + Duration::from_secs(120);
    let (from, to) = loop {
        match span(&status(cw).await) {
            Some((f, t)) if f > 0 && t >= f + 62_000 => break (f, t),
            _ if Instant::now() > end => {
                return (
                    Value::Null,
                    Value::Null,
                    json!({"error": "the ring never held a minute"}),
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    let mut http = Http::new(&cw.base);
    let mut at_ms = Vec::new();
    for _ in 0..tries {
        let at = fastrand::u64(from + 2000..to - 2000);
        let t = Instant::now();
        let r = http
            .get(&format!("/api/ip-cameras/frame/cam0?at={at}"), &[])
            .await;
        if r.is_ok_and(|r| r.status == 200) {
            at_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let url = cw.base.replace("http://", "ws://") + "/ws";
    let mut ws_ms = Vec::new();
    if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await {
        for _ in 0..tries {
            let at = fastrand::u64(from + 2000..to - 2000);
            let ask =
                json!({"type": "subscribe", "cameras": ["cam0"], "codecs": ["h264"], "at": at});
            let t = Instant::now();
            if ws.send(Message::text(ask.to_string())).await.is_err() {
                break;
            }
            // The first unit of this replay: the keyframe at or before `at`.
            while let Ok(Some(Ok(m))) =
                tokio::time::timeout(Duration::from_secs(10), ws.next()).await
            {
                if let Message::Binary(b) = m {
                    let len = u16::from_be_bytes([b[1], b[2]]) as usize;
                    let h: Value = serde_json::from_slice(&b[3..3 + len]).unwrap_or_default();
                    let ts = h["ts"].as_u64().unwrap_or(0);
                    if h["kind"] == "video" && h["key"] == true && ts <= at && at - ts < 2000 {
                        ws_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                        break;
                    }
                }
            }
        }
    }
    let stats = |v: &mut Vec<f64>| json!({"n": v.len(), "p50": pct(v, 50.0), "max": pct(v, 100.0)});
    // A 60 s clip, read as it streams.
    let clip_to = to - 1000;
    let t = Instant::now();
    let clip = match reqwest::get(format!(
        "{}/api/ip-cameras/cam0/clip.mp4?from={}&to={clip_to}",
        cw.base,
        clip_to - 60_000
    ))
    .await
    {
        Ok(mut r) => {
            let mut first = None;
            let mut bytes = 0usize;
            while let Ok(Some(chunk)) = r.chunk().await {
                first.get_or_insert(t.elapsed().as_secs_f64() * 1000.0);
                bytes += chunk.len();
            }
            json!({"first_byte_ms": first, "whole_ms": t.elapsed().as_secs_f64() * 1000.0, "mb": bytes as f64 / 1e6, "age_s": (now_ms() - clip_to) as f64 / 1000.0})
        }
        Err(e) => json!({"error": e.to_string()}),
    };
    (stats(&mut at_ms), stats(&mut ws_ms), clip)
}
