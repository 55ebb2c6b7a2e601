//! Decoding only what someone looks at: an idle wall against the passthrough floor (S12), cold
//! snapshots of a camera that is not being decoded (S13), and a thumbnail wall served from
//! 320x180 sub streams against the same wall from the main streams (S15, beside S8).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::Http;
use crate::passthrough::passthrough_floor;
use crate::procfs::{pct, CpuWindow};
use crate::scenarios::{wall_scenario, Ctx};
use crate::sources::{rtsp_cams, start_camwall, start_rtsp, status, wait_streaming};

/// Waits (bounded) until no camera decodes; answers how many still do.
async fn wait_cold(cw: &crate::harness::Camwall, timeout: Duration) -> usize {
    let end = Instant::now() + timeout;
    loop {
        let s = status(cw).await;
        let warm = s["cameras"]
            .as_array()
            .map_or(0, |c| c.iter().filter(|c| c["decoding"] != false).count());
        if warm == 0 || Instant::now() >= end {
            return warm;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// S12: `n` cameras 720p25 with nobody watching: camwall's CPU against `ffmpeg -c copy`
/// readers of the same streams, measured right after in the same run.
pub async fn s12_idle(ctx: &Ctx, n: usize, secs: u64, ffmpeg: bool) -> Value {
    let id = if ffmpeg { "S12F" } else { "S12" };
    let rtsp = start_rtsp(&ctx.clips.join("clip720.h264"), n);
    let cams = rtsp_cams(rtsp.port, n);
    let cams = if ffmpeg {
        crate::sources::with_ffmpeg_ingest(cams)
    } else {
        cams
    };
    let urls: Vec<String> = cams
        .iter()
        .filter_map(|c| c["url"].as_str().map(String::from))
        .collect();
    let cw = start_camwall(&ctx.camwall, cams);
    if !wait_streaming(&cw, n, Duration::from_secs(60)).await {
        return json!({"id": id, "error": "cameras did not stream"});
    }
    let still_decoding = wait_cold(&cw, Duration::from_secs(30)).await;
    let s0 = status(&cw).await;
    let cpu = CpuWindow::start(cw.pid());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let cpu_pct = cpu.percent();
    let s1 = status(&cw).await;
    let rss = crate::harness::proc_status(cw.pid(), "VmRSS:") as f64 / 1024.0;
    let threads = crate::harness::proc_status(cw.pid(), "Threads:");
    let sum = |s: &Value, f: &dyn Fn(&Value) -> u64| -> u64 {
        s["cameras"].as_array().map_or(0, |c| c.iter().map(f).sum())
    };
    let units = |c: &Value| c["video"]["units_in"].as_u64().unwrap_or(0);
    let decoded = |c: &Value| c["frames_decoded"].as_u64().unwrap_or(0);
    drop(cw);
    // The floor once, with the retina row; the FFmpeg row is read against S12's CPU.
    let floor_pct = if ffmpeg {
        f64::NAN
    } else {
        let floor = passthrough_floor(&urls, secs).await;
        floor["cpu_percent"].as_f64().unwrap_or(f64::NAN)
    };
    let reader = if ffmpeg {
        ", read by FFmpeg (\"ingest\": \"ffmpeg\")"
    } else {
        ""
    };
    json!({
        "id": id,
        "setup": format!("{n} cameras 720p25 RTSP{reader}, nobody watching (decoding on demand)"),
        "cpu_percent": cpu_pct,
        "rss_mb": rss,
        "threads": threads,
        "passthrough_cpu_percent": floor_pct,
        "cpu_vs_passthrough": cpu_pct / floor_pct,
        "cameras_decoding": still_decoding,
        "units_in": sum(&s1, &units) - sum(&s0, &units),
        "frames_decoded": sum(&s1, &decoded) - sum(&s0, &decoded),
    })
}

/// S13: snapshots of a 720p25 camera (1 s GOP) whose decoder stopped (`decode_linger_ms`
/// 300, each request at least 800 ms after the last), and warm ones right after each.
pub async fn s13_cold_snapshots(ctx: &Ctx, tries: usize) -> Value {
    let rtsp = start_rtsp(&ctx.clips.join("clip720.h264"), 1);
    let mut cams = rtsp_cams(rtsp.port, 1);
    cams[0]["decode_linger_ms"] = json!(300);
    let cw = start_camwall(&ctx.camwall, cams);
    if !wait_streaming(&cw, 1, Duration::from_secs(60)).await {
        return json!({"id": "S13", "error": "camera did not stream"});
    }
    let mut http = Http::new(&cw.base);
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    let mut not_cold = 0;
    for _ in 0..tries {
        if wait_cold(&cw, Duration::from_secs(5)).await > 0 {
            not_cold += 1;
        }
        // Somewhere in the GOP, not always right after its keyframe.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..1000))).await;
        let t = Instant::now();
        let r = http.get("/api/ip-cameras/frame/cam0", &[]).await;
        if r.is_ok_and(|r| r.status == 200) {
            cold.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        for _ in 0..5 {
            let t = Instant::now();
            let r = http.get("/api/ip-cameras/frame/cam0", &[]).await;
            if r.is_ok_and(|r| r.status == 200) {
                warm.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    json!({
        "id": "S13",
        "setup": format!("1 camera 720p25 RTSP (1 s GOP) not decoding; {tries} cold snapshots, each followed by 5 warm ones"),
        "cold": cold.len(),
        "cold_p50_ms": pct(&mut cold, 50.0),
        "cold_p99_ms": pct(&mut cold, 99.0),
        "cold_max_ms": cold.iter().cloned().fold(0.0, f64::max),
        "warm_p50_ms": pct(&mut warm, 50.0),
        "warm_p99_ms": pct(&mut warm, 99.0),
        "tries_not_cold": not_cold,
    })
}

/// S15: the S8 thumbnail wall (`n` cameras, 4 clients, quality 70, max_width 320, 5 fps)
/// from the main streams and from 320x180 sub streams, one after the other.
pub async fn s15_sub_streams(ctx: &Ctx, n: usize, secs: u64) -> Value {
    let thumbs = json!({"type": "subscribe", "cameras": ["*"], "quality": 70, "max_width": 320, "max_fps": 5});
    let main = start_rtsp(&ctx.clips.join("clip720.h264"), n);
    let sub = start_rtsp(&ctx.clips.join("clip180.h264"), n);
    // A 1 s linger in both rows: while a sub stream opens, its tiles are served (and their
    // first frames fetched) from the main stream, which then stays decoded for the linger
    // time; the window measures the steady state after it.
    let plain: Vec<Value> = rtsp_cams(main.port, n)
        .into_iter()
        .map(|mut c| {
            c["decode_linger_ms"] = json!(1000);
            c
        })
        .collect();
    let with_sub: Vec<Value> = plain
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut c = c.clone();
            c["sub"] = json!({"url": format!("rtsp://127.0.0.1:{}/cam{i}", sub.port)});
            c
        })
        .collect();
    let a = wall_scenario(
        ctx,
        "S15-main",
        "main streams",
        plain,
        4,
        thumbs.clone(),
        0,
        0,
        secs,
    )
    .await;
    let b = wall_scenario(
        ctx,
        "S15-sub",
        "sub streams",
        with_sub,
        4,
        thumbs,
        0,
        0,
        secs,
    )
    .await;
    let (ca, cb) = (
        a["cpu_percent"].as_f64().unwrap_or(f64::NAN),
        b["cpu_percent"].as_f64().unwrap_or(f64::NAN),
    );
    json!({
        "id": "S15",
        "setup": format!("{n} cameras 720p25 RTSP with 320x180 sub streams, 4 thumbnail wall clients (quality 70, max_width 320, max_fps 5)"),
        "cpu_percent_main": ca,
        "cpu_percent_sub": cb,
        "sub_vs_main": cb / ca,
        "main_row": a,
        "sub_row": b,
    })
}
