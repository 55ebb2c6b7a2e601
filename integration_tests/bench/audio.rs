//! S20: S9's setup with every camera sending AAC beside its video: 4 wall clients on video, one
//! WebSocket client listening to every camera's AAC, and one WHEP player hearing one camera
//! (which makes camwall transcode that camera's AAC to Opus). camwall's CPU beside S9's of the
//! same run, the transcode thread's own CPU, and how far apart audio and video of the same
//! camera instant arrive at the WHEP player (by the sender reports' clocks).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::clients::ws_client;
use crate::harness::RtspServer;
use crate::procfs::{pct, stat_ticks, CpuWindow};
use crate::scenarios::Ctx;
use crate::sources::{rtsp_cams, start_camwall, status, wait_streaming};
use crate::webrtc::WhepClient;

/// What the WHEP player received while measuring.
#[derive(Default)]
struct AvStats {
    video_frames: u64,
    audio_frames: u64,
    /// Per audio frame: how much later than the video it arrived, relative to their common
    /// capture clock (ms; the sender reports map both RTP clocks onto it).
    skews: Vec<f64>,
    error: Option<String>,
}

/// CPU ticks of camwall's threads named `name` (the transcode: `opus`).
fn thread_ticks(pid: u32, name: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .map(|t| stat_ticks(&t.path().join("stat").to_string_lossy()))
        .sum()
}

/// One WHEP session asking for audio and video of `camera` until `stop`.
async fn whep_av(
    base: String,
    camera: String,
    stop: Arc<AtomicBool>,
    measuring: Arc<AtomicBool>,
) -> AvStats {
    let mut st = AvStats::default();
    if let Err(e) = run_av(&base, &camera, &stop, &measuring, &mut st).await {
        st.error = Some(e);
    }
    st
}

async fn run_av(
    base: &str,
    camera: &str,
    stop: &AtomicBool,
    measuring: &AtomicBool,
    st: &mut AvStats,
) -> Result<(), String> {
    let mut c = WhepClient::open(base, camera, true).await?;
    let audio_mid = c.audio_mid;
    // Arrival instants as wall-clock times, to compare with the sender reports' NTP times.
    let (i0, s0) = (Instant::now(), SystemTime::now());
    let mut video_delays: std::collections::VecDeque<f64> = Default::default();
    while let Some(d) = c.next_media(stop, &mut |_| {}).await? {
        let audio = Some(d.mid) == audio_mid;
        // How long after its capture instant (on the sender's clock) it arrived.
        let delay = d.last_sender_info.and_then(|sr| {
            let since_sr =
                d.time.as_seconds() - sr.rtp_time.rebase(d.time.frequency()).as_seconds();
            let captured = sr
                .ntp_time
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()?
                .as_secs_f64()
                + since_sr;
            let arrived = (s0 + d.network_time.saturating_duration_since(i0))
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()?
                .as_secs_f64();
            Some((arrived - captured) * 1000.0)
        });
        if !measuring.load(Ordering::Relaxed) {
            continue;
        }
        if audio {
            st.audio_frames += 1;
            if let (Some(a), false) = (delay, video_delays.is_empty()) {
                let mut v: Vec<f64> = video_delays.iter().copied().collect();
                st.skews.push(a - pct(&mut v, 50.0));
            }
        } else {
            st.video_frames += 1;
            if let Some(v) = delay {
                video_delays.push_back(v);
                if video_delays.len() > 25 {
                    video_delays.pop_front();
                }
            }
        }
    }
    c.close().await;
    Ok(())
}

/// Measures camwall's CPU (% of a core) over `secs`, and its `opus` threads' CPU.
async fn window(pid: u32, secs: u64) -> (f64, f64) {
    let (cpu, opus0, t0) = (
        CpuWindow::start(pid),
        thread_ticks(pid, "opus"),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    (
        cpu.percent(),
        (thread_ticks(pid, "opus") - opus0) as f64 / elapsed,
    )
}

/// Audio frames every camera has received so far.
async fn audio_in(cw: &crate::harness::Camwall) -> u64 {
    status(cw).await["cameras"].as_array().map_or(0, |c| {
        c.iter().filter_map(|c| c["audio_frames_in"].as_u64()).sum()
    })
}

/// S20: `n` cameras 720p25 with AAC (a 440 Hz sine each) and S9's 4 video clients, in two
/// windows on one camwall: nobody listening (audio kept), then a WebSocket client listening
/// to every camera (kept and forwarded); then, on a camwall of its own, a WHEP player hearing
/// a live encode whose audio and video share the encoder's clock (the AAC to Opus transcode,
/// and how far apart audio and video of one instant arrive). `s9_cpu`: S9's CPU in this run.
pub async fn s20(ctx: &Ctx, n: usize, secs: u64, s9_cpu: Option<f64>) -> Value {
    let clip = ctx.clips.join("clip720.h264");
    let mounts = n.max(2).to_string();
    let rtsp = RtspServer::start(&[
        "--fps",
        "25",
        "--mounts",
        &mounts,
        "--clip",
        &clip.to_string_lossy(),
        "--audio",
        "aac",
        "--audio-freq",
        "440",
    ]);
    let cw = start_camwall(&ctx.camwall, rtsp_cams(rtsp.port, n));
    let setup = format!(
        "{n} cameras 720p25 RTSP with AAC, 4 wall clients on video; then a WebSocket listener of all; a WHEP listener of a live 360p camera with AAC on a camwall of its own"
    );
    if !wait_streaming(&cw, n, Duration::from_secs(60)).await {
        return json!({"id": "S20", "setup": setup, "error": "cameras did not stream"});
    }
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let ids: Vec<String> = (0..n).map(|i| format!("cam{i}")).collect();
    let video = json!({"type": "subscribe", "cameras": ids, "quality": "auto", "codecs": ["h264"]});
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(tokio::spawn(ws_client(
            cw.base.clone(),
            video.clone(),
            stop.clone(),
            None,
        )));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Kept, nobody listening.
    let (kept, _) = window(cw.pid(), secs).await;
    // Kept and forwarded to a WebSocket listener of every camera.
    let mut listen = video.clone();
    listen["audio"] = json!(["aac"]);
    let listener = tokio::spawn(ws_client(cw.base.clone(), listen, stop.clone(), None));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a0 = audio_in(&cw).await;
    let t0 = Instant::now();
    let (forwarded, _) = window(cw.pid(), secs).await;
    let in_per_s = (audio_in(&cw).await - a0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let heard = listener.await.unwrap_or_default();
    drop(cw);
    drop(rtsp);
    // A WHEP listener of a live camera whose audio and video share the encoder's clock, on a
    // camwall of its own: the transcode's CPU, and how far apart audio and video arrive.
    let live = RtspServer::start(&["--size", "640x360", "--fps", "25", "--audio", "aac"]);
    let cw = start_camwall(&ctx.camwall, vec![json!({"id": "live", "url": live.url()})]);
    let _ = wait_streaming(&cw, 1, Duration::from_secs(30)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let whep = tokio::spawn(whep_av(
        cw.base.clone(),
        "live".into(),
        stop.clone(),
        measuring.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    measuring.store(true, Ordering::Relaxed);
    let (with_whep, opus) = window(cw.pid(), secs).await;
    measuring.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut av = whep.await.unwrap_or_default();
    let mut abs: Vec<f64> = av.skews.iter().map(|s| s.abs()).collect();
    json!({
        "id": "S20",
        "setup": setup,
        "cameras": n,
        "seconds_per_window": secs,
        "cpu_percent": forwarded,
        "cpu_percent_kept": kept,
        "cpu_percent_live_with_whep": with_whep,
        "s9_cpu_percent": s9_cpu,
        // Audio kept and forwarded, per camera, beside S9 of the same run.
        "audio_cost_per_camera_percent": s9_cpu.map(|s9| (forwarded - s9) / n as f64),
        "kept_cost_per_camera_percent": s9_cpu.map(|s9| (kept - s9) / n as f64),
        "transcode_cpu_percent_per_listened_camera": opus,
        "audio_frames_in_per_s": in_per_s,
        "ws_listener_audio_frames": heard.other_kind,
        "whep": {
            "video_frames": av.video_frames,
            "audio_frames": av.audio_frames,
            "skew_ms": {"p50": pct(&mut av.skews, 50.0), "abs_p50": pct(&mut abs, 50.0), "abs_p99": pct(&mut abs, 99.0)},
            "error": av.error,
        },
    })
}
