//! S16, JPEG across the cluster: the same thumbnail wall (JPEG clients, quality 70, 320 wide,
//! 5 fps, every camera) served by one camwall alone and by three nodes sharing the cameras over
//! NATS, measured the same way in one run. Each node's JPEG lanes of cameras another node
//! ingests come from the owner's encodes of the same lane, so the cluster should cost about
//! what one node costs plus the relay, not a decode and encode per node. Starts and stops only
//! its own processes.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::clients::{ws_client, WsStats};
use crate::cluster::{start_nodes, views, Nats, NATS_BIN, NODES};
use crate::harness::{proc_status, Camwall};
use crate::procfs::{pct, CpuWindow};
use crate::scenarios::Ctx;
use crate::sources::{rtsp_cams, start_camwall, start_rtsp, wait_streaming};

/// How long the clients run before the CPU window opens (lanes started, wants repeated).
const SETTLE: Duration = Duration::from_secs(6);

/// One wall run: `per_node` clients on each of `nodes`, for SETTLE plus `secs`.
struct Run {
    /// CPU % of each node over the last `secs`.
    cpu: Vec<f64>,
    stats: Vec<WsStats>,
    /// From the clients' start to their stop.
    elapsed: f64,
}

async fn run_wall(
    nodes: &[Camwall],
    sub: &Value,
    per_node: usize,
    secs: u64,
    extra: Option<u32>,
) -> (Run, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for node in nodes {
        for _ in 0..per_node {
            tasks.push(tokio::spawn(ws_client(
                node.base.clone(),
                sub.clone(),
                stop.clone(),
                None,
            )));
        }
    }
    tokio::time::sleep(SETTLE).await;
    let windows: Vec<CpuWindow> = nodes.iter().map(|c| CpuWindow::start(c.pid())).collect();
    let extra_window = extra.map(CpuWindow::start);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let cpu = windows.iter().map(CpuWindow::percent).collect();
    let extra_cpu = extra_window.map_or(0.0, |w| w.percent());
    stop.store(true, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let mut stats = Vec::new();
    for t in tasks {
        stats.push(t.await.unwrap_or_default());
    }
    (
        Run {
            cpu,
            stats,
            elapsed,
        },
        extra_cpu,
    )
}

/// Frames per tile per second over the whole run, and latency percentiles.
fn delivery(run: &Run, cameras: usize) -> (f64, Value) {
    let frames: usize = run
        .stats
        .iter()
        .flat_map(|s| s.frames.values())
        .map(Vec::len)
        .sum();
    let tiles = (run.stats.len() * cameras).max(1) as f64;
    let mut lat: Vec<f64> = run
        .stats
        .iter()
        .flat_map(|s| s.frames.values().flatten().map(|(_, l, _)| *l))
        .collect();
    let lat =
        json!({"p50": pct(&mut lat, 50.0), "p95": pct(&mut lat, 95.0), "p99": pct(&mut lat, 99.0)});
    (frames as f64 / tiles / run.elapsed, lat)
}

fn encodes(view: &std::collections::HashMap<String, Value>, id: &str) -> u64 {
    view.get(id)
        .and_then(|c| c["jpeg_encodes"].as_u64())
        .unwrap_or(0)
}

/// S16: `n` cameras, `per_node` thumbnail clients per node; alone (all clients on one
/// camwall) against three nodes.
pub async fn s16_cluster_jpeg(ctx: &Ctx, n: usize, per_node: usize, secs: u64) -> Value {
    let clients = per_node * NODES.len();
    let setup = format!(
        "{n} cameras 720p25 RTSP, {clients} thumbnail JPEG clients (q70, 320 wide, 5 fps, all cameras): one node alone, then 3 nodes + nats-server with {per_node} clients each"
    );
    let fail = |e: &str| json!({"id": "S16", "setup": setup, "error": e});
    if !Path::new(NATS_BIN).exists() {
        return fail(&format!(
            "{NATS_BIN} is missing (apt-get install nats-server)"
        ));
    }
    let sub = json!({"type": "subscribe", "cameras": ["*"], "quality": 70, "max_width": 320, "max_fps": 5});
    let rtsp = start_rtsp(&ctx.clips.join("clip720.h264"), n);
    let cams = rtsp_cams(rtsp.port, n);
    let ids: Vec<String> = (0..n).map(|i| format!("cam{i}")).collect();

    // Alone: every client on one camwall.
    let alone = start_camwall(&ctx.camwall, cams.clone());
    if !wait_streaming(&alone, n, Duration::from_secs(60)).await {
        return fail("the cameras did not stream on the single node");
    }
    let (alone_run, _) = run_wall(std::slice::from_ref(&alone), &sub, clients, secs, None).await;
    let alone_view = views(std::slice::from_ref(&alone)).await;
    let alone_encodes: u64 = ids.iter().map(|id| encodes(&alone_view[0], id)).sum();
    drop(alone);

    // The cluster.
    let Ok(store) = tempfile::tempdir() else {
        return fail("no temporary directory for JetStream");
    };
    let nats = match Nats::start(store.path()) {
        Ok(n) => n,
        Err(e) => return fail(&e),
    };
    let (nodes, owners) = match start_nodes(ctx, &nats, &cams, &ids).await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let varz0 = nats.varz().await;
    let (run, nats_cpu) = run_wall(&nodes, &sub, per_node, secs, Some(nats.child.id())).await;
    let varz1 = nats.varz().await;
    let v = views(&nodes).await;
    // Encodes on each camera's owner, and anywhere else (the relay should leave none).
    let on_owner: u64 = ids
        .iter()
        .enumerate()
        .map(|(k, id)| encodes(&v[owners[k]], id))
        .sum();
    let elsewhere: u64 = ids
        .iter()
        .enumerate()
        .map(|(k, id)| {
            (0..NODES.len())
                .filter(|i| *i != owners[k])
                .map(|i| encodes(&v[i], id))
                .sum::<u64>()
        })
        .sum();
    let (alone_fps, alone_lat) = delivery(&alone_run, n);
    let (fps, lat) = delivery(&run, n);
    let alone_cpu = alone_run.cpu[0];
    let nodes_cpu: f64 = run.cpu.iter().sum();
    let counter =
        |k: &str| varz1[k].as_f64().unwrap_or(f64::NAN) - varz0[k].as_f64().unwrap_or(f64::NAN);
    json!({
        "id": "S16",
        "setup": setup,
        "cameras": n,
        "clients": clients,
        "seconds": secs,
        "cluster_jpeg": {
            "alone_cpu_percent": alone_cpu,
            "nodes_cpu_percent": run.cpu,
            "nats_cpu_percent": nats_cpu,
            "cluster_cpu_percent": nodes_cpu + nats_cpu,
            "cluster_over_alone": (nodes_cpu + nats_cpu) / alone_cpu,
            "alone_fps_per_tile": alone_fps,
            "cluster_fps_per_tile": fps,
            "alone_latency_ms": alone_lat,
            "cluster_latency_ms": lat,
            "alone_encodes": alone_encodes,
            "encodes_on_owners": on_owner,
            "encodes_on_other_nodes": elsewhere,
            "nats_mbytes_out_per_s": counter("out_bytes") / secs as f64 / 1e6,
            "rss_mb_peak": nodes.iter().map(|c| proc_status(c.pid(), "VmHWM:") as f64 / 1024.0).collect::<Vec<_>>(),
        },
    })
}
