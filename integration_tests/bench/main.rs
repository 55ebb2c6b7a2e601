//! camwall-bench: the benchmark harness's load generator (a Cargo bench, `harness = false`).
//! Starts real sources (GStreamer RTSP serving pre-encoded clips, an MJPEG HTTP source), a
//! release camwall, and WebSocket, polling and MJPEG clients on 127.0.0.1; measures delivery,
//! latency, CPU and memory per scenario, and two floors to compare against: decode + one JPEG
//! encode per frame with no server, and reading the streams with no decode (passthrough).
//!
//! `scripts/bench` runs `cargo bench --bench camwall-bench -- all ...` and `scripts/soak` runs
//! `... -- soak ...`; see BENCHMARKS.md. Processes are started and stopped by the same harness
//! as the end-to-end tests (`integration_tests/common/harness.rs`).

#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../common/browser.rs"]
mod browser;
#[path = "../common/harness.rs"]
mod harness;
#[path = "../common/link.rs"]
#[allow(dead_code)]
mod link;

mod audio;
mod clients;
mod cluster;
mod cluster_jpeg;
mod floor;
mod http;
mod links;
mod ondemand;
mod passthrough;
mod procfs;
mod replay;
mod report;
mod scenarios;
mod soak;
mod sources;
mod startup;
mod viewers;
mod webrtc;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

/// A WebSocket client of the live wall (what the shared shaping proxy hands back).
type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

use crate::floor::{clip_bytes_per_s, floor_ms_per_frame};
use crate::passthrough::passthrough_floor;
use crate::procfs::{machine, now_ms};
use crate::report::markdown;
use crate::scenarios::{s4_snapshots, s7_first_frame, wall_scenario, Ctx};
use crate::sources::{mjpeg_source, rtsp_cams, start_rtsp};

#[derive(Parser)]
#[command(about = "camwall benchmark load generator")]
struct Cli {
    /// Without one, nothing runs: the scenarios need clips and a release build (scripts/bench).
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every scenario and write results.json and results.md into --out.
    All {
        /// Directory with clip720.h264, clip1080.h264, mjpeg640.mjpeg (scripts/bench makes them).
        #[arg(long)]
        clips: PathBuf,
        /// The camwall binary to measure.
        #[arg(long)]
        camwall: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Smaller scenarios and shorter windows (under 2 minutes in all).
        #[arg(long)]
        quick: bool,
        /// Run only these scenarios (S1..S23; the floor always runs, the passthrough floor with S9), comma separated.
        #[arg(long)]
        only: Option<String>,
    },
    /// S2-like load for a long time with cameras killed and restarted at random; samples
    /// camwall's RSS, descriptors and threads each minute and says whether they stayed flat.
    Soak {
        #[arg(long)]
        clips: PathBuf,
        #[arg(long)]
        camwall: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        #[arg(long, default_value_t = 16)]
        cameras: usize,
    },
}

#[tokio::main]
async fn main() {
    // `cargo bench` appends `--bench` for harness-less targets; it means nothing here.
    let args = std::env::args().filter(|a| a != "--bench");
    let Some(cmd) = Cli::parse_from(args).cmd else {
        // `cargo test --all-targets` and a bare `cargo bench` land here.
        eprintln!("camwall-bench: nothing to run without a command; see scripts/bench");
        return;
    };
    let (clips, camwall, out, quick, only) = match cmd {
        Cmd::All {
            clips,
            camwall,
            out,
            quick,
            only,
        } => (clips, camwall, out, quick, only),
        Cmd::Soak {
            clips,
            camwall,
            out,
            minutes,
            cameras,
        } => {
            return soak::soak(clips, camwall, out, minutes, cameras).await;
        }
    };
    let want = |id: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|x| x.trim().eq_ignore_ascii_case(id)))
    };
    std::fs::create_dir_all(&out).unwrap();
    let secs = if quick { 6 } else { 20 };
    eprintln!("floor: decoding and encoding the clips once, no server");
    let floor720 = floor_ms_per_frame(
        &clips.join("clip720.h264"),
        85,
        if quick { 150 } else { 250 },
    );
    let floor1080 = floor_ms_per_frame(
        &clips.join("clip1080.h264"),
        85,
        if quick { 100 } else { 250 },
    );
    let ctx = Ctx {
        clips: clips.clone(),
        camwall,
        quick,
        floor720,
        clip720_bytes_per_s: clip_bytes_per_s(&clips.join("clip720.h264"), 25.0),
    };
    let mut results = vec![
        json!({"id": "FLOOR", "ms_per_frame_720p": floor720, "ms_per_frame_1080p": floor1080}),
    ];
    let auto = json!({"type": "subscribe", "cameras": ["*"], "quality": "auto"});
    let video =
        json!({"type": "subscribe", "cameras": ["*"], "quality": "auto", "codecs": ["h264"]});
    let clip720 = clips.join("clip720.h264");

    if want("S1") {
        eprintln!("S1: 5 cameras 720p25, 1 wall client + 1 seed poller per camera");
        let rtsp = start_rtsp(&clip720, 5);
        results.push(
            wall_scenario(
                &ctx,
                "S1",
                "5 cameras 720p25 RTSP, 1 wall client (auto) + 1 seed poller per camera",
                rtsp_cams(rtsp.port, 5),
                1,
                auto.clone(),
                1,
                0,
                secs,
            )
            .await,
        );
    }
    if want("S2") {
        let n = if ctx.quick { 8 } else { 16 };
        eprintln!("S2: {n} cameras 720p25, 4 wall clients");
        let rtsp = start_rtsp(&clip720, n);
        results.push(
            wall_scenario(
                &ctx,
                "S2",
                &format!("{n} cameras 720p25 RTSP, 4 wall clients watching all"),
                rtsp_cams(rtsp.port, n),
                4,
                auto.clone(),
                0,
                0,
                secs,
            )
            .await,
        );
    }
    if want("S9") {
        // Right after S2 and with its setup, so that S9 CPU / S2 CPU compares like with like.
        let n = if ctx.quick { 8 } else { 16 };
        eprintln!("S9: {n} cameras 720p25, 4 wall clients on video");
        let rtsp = start_rtsp(&clip720, n);
        let cams = rtsp_cams(rtsp.port, n);
        let urls: Vec<String> = cams
            .iter()
            .filter_map(|c| c["url"].as_str().map(String::from))
            .collect();
        results.push(
            wall_scenario(
                &ctx,
                "S9",
                &format!(
                    "{n} cameras 720p25 RTSP, 4 wall clients watching all on video (h264, auto)"
                ),
                cams,
                4,
                video.clone(),
                0,
                0,
                secs,
            )
            .await,
        );
        eprintln!("passthrough floor: {n} ffmpeg -c copy readers of the same streams");
        results.push(passthrough_floor(&urls, secs).await);
    }
    if want("S10") {
        let n = if ctx.quick { 24 } else { 64 };
        eprintln!("S10: {n} cameras 720p25, 1 wall client on video");
        let rtsp = start_rtsp(&clip720, n);
        results.push(
            wall_scenario(
                &ctx,
                "S10",
                &format!(
                    "{n} cameras 720p25 RTSP, 1 wall client watching all on video (h264, auto)"
                ),
                rtsp_cams(rtsp.port, n),
                1,
                video.clone(),
                0,
                0,
                secs,
            )
            .await,
        );
    }
    // The same cameras through FFmpeg's RTSP reader (a thread per camera) instead of retina's
    // tasks: the A/B of the RTSP reader, in the same run.
    for (id, n, clients) in [
        ("S9F", if ctx.quick { 8 } else { 16 }, 4),
        ("S10F", if ctx.quick { 24 } else { 64 }, 1),
    ] {
        if !want(id) {
            continue;
        }
        eprintln!("{id}: {n} cameras 720p25, {clients} wall client(s) on video, FFmpeg's reader");
        let rtsp = start_rtsp(&clip720, n);
        results.push(
            wall_scenario(
                &ctx,
                id,
                &format!(
                    "{n} cameras 720p25 RTSP read by FFmpeg (\"ingest\": \"ffmpeg\"), {clients} wall client(s) on video"
                ),
                sources::with_ffmpeg_ingest(rtsp_cams(rtsp.port, n)),
                clients,
                video.clone(),
                0,
                0,
                secs,
            )
            .await,
        );
    }
    if want("S22") {
        let sizes: &[usize] = if ctx.quick { &[50, 100] } else { &[200, 500] };
        for &n in sizes {
            eprintln!("S22: {n} RTSP cameras 320x180 10 fps, 1 wall client on video");
            let (_rtsp, cams) = sources::small_rtsp(n, 4);
            results.push(
                wall_scenario(
                    &ctx,
                    &format!("S22-{n}"),
                    &format!(
                        "{n} RTSP cameras 320x180 10 fps (4 shared GStreamer mounts), 1 wall client watching all on video"
                    ),
                    cams,
                    1,
                    video.clone(),
                    0,
                    0,
                    secs,
                )
                .await,
            );
        }
    }
    if want("S23") {
        let (cams, added) = if ctx.quick { (4, 20) } else { (8, 100) };
        eprintln!(
            "S23: memory per viewer, {cams} small cameras, 1 then {} viewers",
            added + 1
        );
        results.push(viewers::s23_viewers(&ctx, cams, added, secs.min(10)).await);
    }
    if want("S14") {
        let (n, per_node) = if ctx.quick { (9, 2) } else { (24, 4) };
        eprintln!(
            "S14: 3 nodes and nats-server, {n} cameras 720p25, {per_node} video viewers per node"
        );
        results.push(cluster::s14_cluster(&ctx, n, per_node, secs).await);
    }
    if want("S17") {
        eprintln!("S17: one client over four links, JPEG auto and video");
        results.push(links::s17_links(&ctx, if ctx.quick { 12 } else { 30 }).await);
    }
    if want("S20") {
        // After S9, with its setup: the audio's cost is S20's CPU over S9's of this run.
        let n = if ctx.quick { 8 } else { 16 };
        eprintln!("S20: {n} cameras 720p25 with AAC, 4 video clients, 2 listeners");
        let s9 = results
            .iter()
            .find(|r| r["id"] == "S9")
            .and_then(|r| r["cpu_percent"].as_f64());
        results.push(audio::s20(&ctx, n, secs, s9).await);
    }
    if want("S18") {
        // After S9, with its setup: S18 CPU / S9 CPU compares like with like.
        let n = if ctx.quick { 8 } else { 16 };
        eprintln!("S18: {n} cameras 720p25, 4 WebRTC clients watching all");
        results.push(webrtc::s18(&ctx, n, secs).await);
    }
    if want("S19") {
        eprintln!("S19: first picture over WebRTC");
        results.push(webrtc::s19(&ctx, 5).await);
    }
    if want("S16") {
        let (n, per_node) = if ctx.quick { (6, 1) } else { (12, 2) };
        eprintln!("S16: {n} cameras, a JPEG thumbnail wall alone and on 3 nodes");
        results.push(cluster_jpeg::s16_cluster_jpeg(&ctx, n, per_node, secs).await);
    }
    if want("S3") {
        let n = if ctx.quick { 50 } else { 200 };
        eprintln!("S3: 1 camera 720p25, {n} clients at a fixed quality");
        let rtsp = start_rtsp(&clip720, 1);
        let sub = json!({"type": "subscribe", "cameras": ["cam0"], "quality": 80});
        results.push(
            wall_scenario(
                &ctx,
                "S3",
                &format!("1 camera 720p25 RTSP, {n} WebSocket clients at quality 80"),
                rtsp_cams(rtsp.port, 1),
                n,
                sub,
                0,
                0,
                secs,
            )
            .await,
        );
    }
    if want("S4") {
        eprintln!("S4: sequential snapshots");
        results.push(s4_snapshots(&ctx, if ctx.quick { 2 } else { 5 }, 1000).await);
    }
    if want("S5") {
        let slow = if ctx.quick { 20 } else { 50 };
        eprintln!("S5: {slow} slow clients + 1 fast, 4 cameras");
        let rtsp = start_rtsp(&clip720, 4);
        let sub = json!({"type": "subscribe", "cameras": ["*"], "quality": 80});
        results.push(
            wall_scenario(&ctx, "S5", &format!("4 cameras 720p25 RTSP, 1 fast client + {slow} clients reading at 1/10 the rate, quality 80"), rtsp_cams(rtsp.port, 4), 1, sub, 0, slow, secs)
                .await,
        );
    }
    if want("S6") {
        let n = if ctx.quick { 20 } else { 50 };
        eprintln!("S6: {n} HTTP MJPEG sources, 1 wall client");
        let port = mjpeg_source(clips.join("mjpeg640.mjpeg"), 15.0).await;
        let cams: Vec<Value> = (0..n).map(|i| json!({"id": format!("mj{i}"), "url": format!("http://127.0.0.1:{port}/cam{i}")})).collect();
        let sub = json!({"type": "subscribe", "cameras": ["*"], "quality": 85});
        let mut r = wall_scenario(
            &ctx,
            "S6",
            &format!("{n} HTTP MJPEG sources 640x480 15 fps, 1 wall client at full quality"),
            cams,
            1,
            sub,
            0,
            0,
            secs,
        )
        .await;
        // MJPEG sources are not decoded: the floor is the cost of receiving, which this does not model.
        r["floor_cpu_percent"] = Value::Null;
        r["cpu_vs_floor"] = Value::Null;
        results.push(r);
    }
    if want("S8") {
        // A thumbnail wall: every tile capped at 5 fps and a small width. The cap thins frames
        // before they are encoded, so "delivered" is ~20 % of the source by design; what this
        // row shows is the encodes per source frame and the CPU beside S2's.
        let n = if ctx.quick { 8 } else { 16 };
        eprintln!("S8: {n} cameras 720p25, 4 thumbnail wall clients at 5 fps");
        let rtsp = start_rtsp(&clip720, n);
        let sub = json!({"type": "subscribe", "cameras": ["*"], "quality": 70, "max_width": 320, "max_fps": 5});
        results.push(
            wall_scenario(
                &ctx,
                "S8",
                &format!("{n} cameras 720p25 RTSP, 4 thumbnail wall clients (quality 70, max_width 320, max_fps 5)"),
                rtsp_cams(rtsp.port, n),
                4,
                sub,
                0,
                0,
                secs,
            )
            .await,
        );
    }
    if want("S7") {
        eprintln!("S7: time to first frame");
        results.push(s7_first_frame(&ctx, if ctx.quick { 10 } else { 30 }).await);
    }
    if want("S12") {
        let n = if ctx.quick { 8 } else { 16 };
        eprintln!("S12: {n} cameras 720p25, nobody watching, against the passthrough floor");
        results.push(ondemand::s12_idle(&ctx, n, secs, false).await);
    }
    if want("S12F") {
        let n = if ctx.quick { 8 } else { 16 };
        eprintln!("S12F: {n} cameras 720p25, nobody watching, FFmpeg's reader");
        results.push(ondemand::s12_idle(&ctx, n, secs, true).await);
    }
    if want("S21") {
        let n = if ctx.quick { 8 } else { 16 };
        eprintln!("S21: {n} cameras 720p25 recording, against replay off; then seeks");
        results.push(replay::s21_replay(&ctx, n, secs).await);
    }
    if want("S13") {
        eprintln!("S13: cold snapshots");
        results.push(ondemand::s13_cold_snapshots(&ctx, if ctx.quick { 10 } else { 40 }).await);
    }
    if want("S15") {
        let n = if ctx.quick { 8 } else { 16 };
        eprintln!("S15: {n} cameras, thumbnail wall from main streams, then from sub streams");
        results.push(ondemand::s15_sub_streams(&ctx, n, secs).await);
    }
    if want("S11") {
        let n = if ctx.quick { 5 } else { 15 };
        eprintln!("S11: camera start to first frame, {n} cameras");
        results.push(startup::s11_camera_start(&ctx, n).await);
    }
    let m = machine();
    let doc = json!({"machine": m, "date": now_ms(), "quick": quick, "results": results});
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
    let md = markdown(&results, &m);
    std::fs::write(out.join("results.md"), &md).unwrap();
    println!("{md}");
}
