//! S14, the cluster: Debian's nats-server (JetStream on, a temporary store), three camwall
//! nodes of the binary under test sharing the RTSP cameras, and video viewers spread evenly
//! over the nodes. Measures delivery per viewer and camera, capture-to-client latency for
//! cameras the viewer's node ingests against ones relayed from another node through NATS (the
//! difference is the hop), the CPU of every node and of nats-server, and how the cameras spread
//! over the nodes. Starts and stops only its own processes.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::clients::{ws_client, WsStats};
use crate::harness::{free_port, listening, proc_status, spawn_camwall, write_config, Camwall};
use crate::procfs::{pct, CpuWindow};
use crate::scenarios::Ctx;
use crate::sources::{rtsp_cams, start_rtsp, status};

pub(crate) const NATS_BIN: &str = "/usr/sbin/nats-server";
pub(crate) const NODES: [&str; 3] = ["a", "b", "c"];

/// nats-server on 127.0.0.1 (clients on `port`, monitoring on `monitor`), killed on drop.
pub(crate) struct Nats {
    pub(crate) child: Child,
    port: u16,
    monitor: u16,
}

impl Nats {
    pub(crate) fn start(store: &Path) -> Result<Self, String> {
        let (port, monitor) = (free_port(), free_port());
        let child = Command::new(NATS_BIN)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", &monitor.to_string(), "-js", "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {NATS_BIN}: {e}"))?;
        let nats = Nats {
            child,
            port,
            monitor,
        };
        for _ in 0..200 {
            if listening(port) {
                return Ok(nats);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(format!("nats-server did not listen on {port} within 5 s"))
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The monitoring endpoint's message and byte counters (`/varz`), Null if it did not answer.
    pub(crate) async fn varz(&self) -> Value {
        let url = format!("http://127.0.0.1:{}/varz", self.monitor);
        match reqwest::get(url).await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node_config(nats: &str, node: &str, cams: &[Value]) -> Value {
    // The client caps lifted as for every scenario (sources::start_camwall), so they never
    // shape a result.
    json!({"server": {
        "cluster": {"nats": nats, "node": node, "credentials": null, "weight": 1},
        "limits": {"max_clients_per_ip": 4096, "max_ws_clients": 4096, "max_mjpeg_clients": 4096,
                   "max_connections_per_ip": 8192},
    }, "cameras": cams})
}

/// Every camera's status on every node, by id, taken at once.
pub(crate) async fn views(nodes: &[Camwall]) -> Vec<HashMap<String, Value>> {
    join_all(nodes.iter().map(status))
        .await
        .into_iter()
        .map(|s| {
            s["cameras"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| (c["id"].as_str().unwrap_or_default().to_string(), c.clone()))
                .collect()
        })
        .collect()
}

fn units_in(view: &HashMap<String, Value>, id: &str) -> u64 {
    view.get(id)
        .and_then(|c| c["video"]["units_in"].as_u64())
        .unwrap_or(0)
}

/// Starts the three nodes on `cams` and waits (bounded) until they agree on streaming owners:
/// the nodes and each camera's owner (index into `NODES`).
pub(crate) async fn start_nodes(
    ctx: &Ctx,
    nats: &Nats,
    cams: &[Value],
    ids: &[String],
) -> Result<(Vec<Camwall>, Vec<usize>), String> {
    let nodes: Vec<Camwall> = NODES
        .iter()
        .map(|node| {
            let (dir, path) = write_config(node_config(&nats.url(), node, cams));
            spawn_camwall(&ctx.camwall, dir, path, "warn")
        })
        .collect();
    match wait_owners(&nodes, ids, Duration::from_secs(90)).await {
        Some(owners) => Ok((nodes, owners)),
        None => Err("the nodes did not agree on owners of streaming cameras within 90 s".into()),
    }
}

/// Polls (bounded) until every node names the same owner (index into `NODES`) for every
/// camera and the camera streams on its owner.
async fn wait_owners(nodes: &[Camwall], ids: &[String], timeout: Duration) -> Option<Vec<usize>> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        let v = views(nodes).await;
        let owners: Option<Vec<usize>> = ids
            .iter()
            .map(|id| {
                let named = v[0].get(id)?["node"].as_str()?;
                let i = NODES.iter().position(|n| *n == named)?;
                let agreed = v
                    .iter()
                    .all(|w| w.get(id).map(|c| &c["node"]) == Some(&named.into()));
                let c = v[i].get(id)?;
                let streaming = c["state"] == "streaming" && c["fps"].as_f64().unwrap_or(0.0) > 0.0;
                (agreed && streaming).then_some(i)
            })
            .collect();
        if owners.is_some() {
            return owners;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// Polls (bounded) until every node's feed of every camera moves: the local ones from ingest,
/// the remote ones through the relay (which starts once the node's viewers asked for them).
async fn wait_all_feeds_move(nodes: &[Camwall], ids: &[String], timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    let mut before = views(nodes).await;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = views(nodes).await;
        let moving = before
            .iter()
            .zip(&after)
            .all(|(b, a)| ids.iter().all(|id| units_in(a, id) > units_in(b, id)));
        if moving {
            return true;
        }
        before = after;
    }
    false
}

fn lat_stats(v: &mut [f64]) -> Value {
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    json!({"n": v.len(), "mean": mean, "p50": pct(v, 50.0), "p95": pct(v, 95.0),
           "p99": pct(v, 99.0), "max": pct(v, 100.0)})
}

/// S14: `n` cameras 720p25 RTSP over three nodes, `per_node` video viewers (all cameras) on
/// each node, measured for `secs` once owners agree and every feed moves.
pub async fn s14_cluster(ctx: &Ctx, n: usize, per_node: usize, secs: u64) -> Value {
    let setup = format!(
        "3 nodes + nats-server, {n} cameras 720p25 RTSP, {} video viewers (h264, all cameras), {per_node} per node",
        per_node * NODES.len()
    );
    let fail = |e: &str| json!({"id": "S14", "setup": setup, "error": e});
    if !Path::new(NATS_BIN).exists() {
        return fail(&format!(
            "{NATS_BIN} is missing (apt-get install nats-server)"
        ));
    }
    let Ok(store) = tempfile::tempdir() else {
        return fail("no temporary directory for JetStream");
    };
    let nats = match Nats::start(store.path()) {
        Ok(n) => n,
        Err(e) => return fail(&e),
    };
    let rtsp = start_rtsp(&ctx.clips.join("clip720.h264"), n);
    let cams = rtsp_cams(rtsp.port, n);
    let ids: Vec<String> = (0..n).map(|i| format!("cam{i}")).collect();
    let (nodes, owners) = match start_nodes(ctx, &nats, &cams, &ids).await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };

    let stop = Arc::new(AtomicBool::new(false));
    let sub = json!({"type": "subscribe", "cameras": ["*"], "quality": "auto", "codecs": ["h264"]});
    let mut tasks = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for _ in 0..per_node {
            let t = ws_client(node.base.clone(), sub.clone(), stop.clone(), None);
            tasks.push((i, tokio::spawn(t)));
        }
    }
    if !wait_all_feeds_move(&nodes, &ids, Duration::from_secs(30)).await {
        stop.store(true, Ordering::Relaxed);
        return fail("not every camera's units moved on every node within 30 s of the viewers");
    }
    // Settle: every viewer past its first keyframe, the relays' wants repeated.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let v0 = views(&nodes).await;
    let varz0 = nats.varz().await;
    let cpu: Vec<CpuWindow> = nodes.iter().map(|c| CpuWindow::start(c.pid())).collect();
    let nats_cpu = CpuWindow::start(nats.child.id());
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let node_cpu: Vec<f64> = cpu.iter().map(CpuWindow::percent).collect();
    let nats_pct = nats_cpu.percent();
    let elapsed = t0.elapsed().as_secs_f64();
    let v1 = views(&nodes).await;
    let varz1 = nats.varz().await;
    stop.store(true, Ordering::Relaxed);
    let mut viewers: Vec<(usize, WsStats)> = Vec::new();
    for (i, t) in tasks {
        viewers.push((i, t.await.unwrap_or_default()));
    }

    // Units each owner took in during the window: what every viewer of the camera should get.
    let sent: Vec<u64> = ids
        .iter()
        .enumerate()
        .map(|(k, id)| units_in(&v1[owners[k]], id) - units_in(&v0[owners[k]], id))
        .collect();
    // Video seqs count the units of the viewer's own node's feed (the relay feeds a remote
    // camera into the node's hub camera), so the window's seqs are that node's `units_in`
    // before and after; units lost between owner and node show as fewer than `sent`.
    let mut ratios = Vec::new();
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    let mut bytes = 0usize;
    for (node, st) in &viewers {
        for (k, id) in ids.iter().enumerate() {
            let (a, b) = (units_in(&v0[*node], id), units_in(&v1[*node], id));
            let got: Vec<_> = st
                .frames
                .get(id)
                .map(|v| v.iter().filter(|(s, _, _)| *s > a && *s <= b).collect())
                .unwrap_or_default();
            bytes += got.iter().map(|(_, _, n)| *n).sum::<usize>();
            let lat = got.iter().map(|(_, l, _)| *l);
            if owners[k] == *node {
                local.extend(lat);
            } else {
                remote.extend(lat);
            }
            // The nodes' counters are read at nearly but not exactly the same moment: a unit
            // at the window's edge can count on the owner's side and not the node's, or the
            // other way round, so a ratio can pass 1 by one unit; it is taken as 1.
            ratios.push(if sent[k] == 0 {
                1.0
            } else {
                (got.len() as f64 / sent[k] as f64).min(1.0)
            });
        }
    }
    let mut per_node = BTreeMap::new();
    for (i, name) in NODES.iter().enumerate() {
        let owned: Vec<&String> = ids
            .iter()
            .enumerate()
            .filter(|(k, _)| owners[*k] == i)
            .map(|(_, id)| id)
            .collect();
        per_node.insert(
            *name,
            json!({
                "cameras": owned.len(),
                "cpu_percent": node_cpu[i],
                "rss_mb_peak_process": proc_status(nodes[i].pid(), "VmHWM:") as f64 / 1024.0,
            }),
        );
    }
    // A relayed stream: one camera's units carried from its owner to one other node with
    // viewers (every node's viewers watch every camera, so each camera goes to the other two).
    let relayed: usize = NODES
        .iter()
        .enumerate()
        .filter(|(i, _)| viewers.iter().any(|(n, _)| n == i))
        .map(|(i, _)| owners.iter().filter(|o| **o != i).count())
        .sum();
    let counter =
        |k: &str| varz1[k].as_f64().unwrap_or(f64::NAN) - varz0[k].as_f64().unwrap_or(f64::NAN);
    let bad: u64 = v1
        .iter()
        .flat_map(|v| v.values())
        .map(|c| c["video"]["units_bad"].as_u64().unwrap_or(0))
        .sum();
    let mut ttff: Vec<f64> = viewers
        .iter()
        .filter_map(|(_, s)| s.first_frame_ms)
        .collect();
    let mut all_lat: Vec<f64> = local.iter().chain(&remote).copied().collect();
    let local_s = lat_stats(&mut local);
    let remote_s = lat_stats(&mut remote);
    let hop = |k: &str| {
        remote_s[k].as_f64().unwrap_or(f64::NAN) - local_s[k].as_f64().unwrap_or(f64::NAN)
    };
    let total_cpu: f64 = node_cpu.iter().sum();
    json!({
        "id": "S14",
        "setup": setup,
        "cameras": n,
        "clients": viewers.len(),
        "seconds": elapsed,
        "delivered_min": ratios.iter().copied().fold(f64::INFINITY, f64::min),
        "delivered_mean": ratios.iter().sum::<f64>() / ratios.len().max(1) as f64,
        "latency_ms": {"p50": pct(&mut all_lat, 50.0), "p95": pct(&mut all_lat, 95.0), "p99": pct(&mut all_lat, 99.0)},
        "first_frame_ms": {"p50": pct(&mut ttff, 50.0), "max": pct(&mut ttff, 100.0)},
        // All three nodes together; each one's is under `nodes`.
        "cpu_percent": total_cpu,
        "mbytes_per_s": bytes as f64 / elapsed / 1e6,
        "cluster": {
            "nodes": per_node,
            "latency_local_ms": local_s,
            "latency_remote_ms": remote_s,
            "hop_ms": {"mean": hop("mean"), "p50": hop("p50"), "p99": hop("p99")},
            "nats_cpu_percent": nats_pct,
            "relayed_streams": relayed,
            "nats_cpu_percent_per_relayed_stream": nats_pct / relayed.max(1) as f64,
            "node_cpu_percent_per_camera": total_cpu / n.max(1) as f64,
            "nats_msgs_in_per_s": counter("in_msgs") / elapsed,
            "nats_mbytes_out_per_s": counter("out_bytes") / elapsed / 1e6,
            "units_bad": bad,
            "jpeg_frames_to_video_clients": viewers.iter().map(|(_, s)| s.other_kind).sum::<u64>(),
        },
    })
}
