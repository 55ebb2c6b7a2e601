//! End-to-end tests of the cluster: Debian's nats-server started by the test (JetStream on, a
//! temporary store), three real camwall nodes, six lavfi cameras (always decoded, so
//! `frames_in` shows exactly who ingests). One nats-server and one set of nodes serve every
//! assertion, in order, to keep the run short.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const NATS_BIN: &str = "/usr/sbin/nats-server";

/// Debian's nats-server on 127.0.0.1:`port`, JetStream storing under `dir`; killed on drop.
struct Nats {
    child: Option<Child>,
    port: u16,
}

impl Nats {
    fn start(port: u16, dir: &Path) -> Self {
        Self::start_with(port, dir, &[])
    }

    /// With more command-line options (TLS, users).
    fn start_with(port: u16, dir: &Path, extra: &[&str]) -> Self {
        let child = Command::new(NATS_BIN)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        for _ in 0..200 {
            if listening(port) {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        assert!(listening(port), "nats-server did not listen on {port}");
        Nats {
            child: Some(child),
            port,
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether this run has a nats-server; without one, the test is skipped only when the run
/// did not ask for it (`scripts/test` sets CAMWALL_REQUIRE_NATS, so CI never skips silently).
fn have_nats() -> bool {
    if Path::new(NATS_BIN).exists() {
        return true;
    }
    if std::env::var_os("CAMWALL_REQUIRE_NATS").is_some() {
        panic!(
            "{NATS_BIN} is missing and CAMWALL_REQUIRE_NATS is set: apt-get install nats-server"
        );
    }
    eprintln!("SKIPPED: {NATS_BIN} is missing (apt-get install nats-server)");
    false
}

fn node_config(nats: &str, node: &str, cams: &[Value]) -> Value {
    json!({
        "server": {"cluster": {"nats": nats, "node": node}},
        "cameras": cams,
    })
}

/// `GET /api/cluster` of one node.
async fn cluster_of(cw: &Camwall) -> Value {
    let res = reqwest::get(cw.url("/api/cluster")).await.unwrap();
    res.json().await.unwrap()
}

/// Every camera's status on one node, by id.
async fn cams_of(cw: &Camwall) -> HashMap<String, Value> {
    let Some(s) = cw.try_status().await else {
        return HashMap::new();
    };
    s["cameras"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c["id"].as_str().unwrap_or_default().to_string(), c))
        .collect()
}

/// Polls (bounded) until every node names one and the same owner for each of `ids`, that
/// owner among `names`, and the camera streams there; returns camera → owner.
async fn wait_owners(
    nodes: &[(&str, &Camwall)],
    ids: &[String],
    timeout: Duration,
) -> BTreeMap<String, String> {
    let end = Instant::now() + timeout;
    let mut last;
    loop {
        let mut views = Vec::new();
        for (_, cw) in nodes {
            views.push(cams_of(cw).await);
        }
        let mut owners = BTreeMap::new();
        let agreed = ids.iter().all(|id| {
            let named: Vec<Option<&str>> = views
                .iter()
                .map(|v| v.get(id).and_then(|c| c["node"].as_str()))
                .collect();
            let Some(Some(owner)) = named.first().copied() else {
                return false;
            };
            let Some(idx) = nodes.iter().position(|(n, _)| *n == owner) else {
                return false;
            };
            let streaming = views[idx].get(id).map(|c| c["state"] == "streaming") == Some(true);
            owners.insert(id.clone(), owner.to_string());
            streaming && named.iter().all(|n| *n == Some(owner))
        });
        if agreed {
            return owners;
        }
        last = views;
        if Instant::now() > end {
            panic!("owners never agreed; last views {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What ingest moves: pictures published, plus units of an H.264 camera (decoded on demand).
fn frames_in(view: &HashMap<String, Value>, id: &str) -> u64 {
    let c = view.get(id);
    c.and_then(|c| c["frames_in"].as_u64()).unwrap_or(0)
        + c.and_then(|c| c["video"]["units_in"].as_u64()).unwrap_or(0)
}

/// Checks that over a second and a half, `frames_in` moves on each camera's owner and nowhere
/// else, except where `relayed` (node, camera) takes the camera's units through the relay.
async fn assert_only_owners_ingest(
    nodes: &[(&str, &Camwall)],
    owners: &BTreeMap<String, String>,
    relayed: &[(&str, &str)],
) {
    let mut before = Vec::new();
    for (_, cw) in nodes {
        before.push(cams_of(cw).await);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (i, (name, cw)) in nodes.iter().enumerate() {
        let after = cams_of(cw).await;
        for (id, owner) in owners {
            let moved = frames_in(&after, id) - frames_in(&before[i], id);
            if relayed.contains(&(*name, id.as_str())) {
                continue;
            }
            if owner == name {
                assert!(moved > 0, "{id} did not move on its owner {name}");
            } else {
                assert_eq!(moved, 0, "{id} (owner {owner}) was ingested on {name} too");
            }
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Reads (bounded) until a video frame captured after `after_ms` arrives; returns its header.
async fn next_video(ws: &mut Ws, after_ms: u64, timeout: Duration) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let end = tokio::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let msg = match tokio::time::timeout_at(end, ws.next()).await {
            Ok(Some(Ok(m))) => m,
            other => panic!("no video frame: {other:?}; saw {seen:?}"),
        };
        match msg {
            Message::Binary(b) => {
                let n = u16::from_be_bytes([b[1], b[2]]) as usize;
                let h: Value = serde_json::from_slice(&b[3..3 + n]).unwrap();
                if h["kind"] == "video" && h["ts"].as_u64() > Some(after_ms) {
                    return h;
                }
                seen.push(h);
            }
            Message::Text(t) => seen.push(Value::String(t.to_string())),
            _ => {}
        }
        seen.truncate(20);
    }
}

/// The `pts` of the next `n` video units a client gets.
async fn video_pts(ws: &mut Ws, n: usize) -> std::collections::BTreeSet<i64> {
    let mut out = std::collections::BTreeSet::new();
    while out.len() < n {
        let h = next_video(ws, 0, Duration::from_secs(20)).await;
        out.insert(h["pts"].as_i64().unwrap_or_else(|| panic!("no pts: {h}")));
    }
    out
}

/// `jpeg_encodes` of camera `id`'s tier (quality, scale) on one node's status.
fn tier_encodes(view: &HashMap<String, Value>, id: &str, quality: u64, scale: u64) -> u64 {
    view.get(id)
        .and_then(|c| c["tiers"].as_array())
        .and_then(|ts| {
            ts.iter()
                .find(|t| t["quality"] == quality && t["scale"] == scale)
        })
        .and_then(|t| t["jpeg_encodes"].as_u64())
        .unwrap_or(0)
}

/// Viewers on both nodes that do not ingest `cam` take a small tier of it (quality 70, 80
/// wide: half size); the owner encodes that lane once per frame for both nodes, the viewing
/// nodes encode nothing, and once the viewers leave the owner stops encoding it.
async fn assert_jpeg_lanes_encoded_once(nodes: &[(&str, &Camwall)], owner: &str, cam: &str) {
    let owner_cw = nodes.iter().find(|(n, _)| *n == owner).unwrap().1;
    let mut viewers = Vec::new();
    for (name, cw) in nodes.iter().filter(|(n, _)| *n != owner) {
        let mut ws = ws_connect(cw).await;
        ws_send(
            &mut ws,
            json!({"type": "subscribe", "cameras": [cam], "quality": 70, "max_width": 80}),
        )
        .await;
        // The first frame is a snapshot; the next ones come through the relayed lane.
        for _ in 0..4 {
            let mut texts = Vec::new();
            let f = next_frame(&mut ws, &mut texts, Duration::from_secs(20))
                .await
                .unwrap_or_else(|| panic!("no small JPEG of {cam} on {name}: {texts:?}"));
            assert_eq!(decode_rgb(&f.jpeg).0, 80, "{cam} on {name}");
        }
        viewers.push(ws);
    }
    let before = cams_of(owner_cw).await;
    // Keep both viewers reading, so that neither is a slow client.
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        for ws in viewers.iter_mut() {
            let mut texts = Vec::new();
            let _ = next_frame(ws, &mut texts, Duration::from_millis(100)).await;
        }
    }
    let after = cams_of(owner_cw).await;
    let encodes = tier_encodes(&after, cam, 70, 2) - tier_encodes(&before, cam, 70, 2);
    let frames = frames_in(&after, cam) - frames_in(&before, cam);
    assert!(
        encodes >= 3 && encodes <= frames + 1,
        "{cam}: {encodes} encodes of q70 half size on its owner for {frames} frames, two nodes"
    );
    for (name, cw) in nodes.iter().filter(|(n, _)| *n != owner) {
        let view = cams_of(cw).await;
        let c = &view[cam];
        assert_eq!(
            c["jpeg_encodes"], 0,
            "{cam} encoded on {name}, not its owner: {c}"
        );
        let fps = c["fps"].as_f64().unwrap_or(0.0);
        assert!(
            (3.0..=7.0).contains(&fps),
            "{cam} on {name}: the owner's 5 fps, got {c}"
        );
    }
    // Nobody left: the owner stops encoding the lane (the want expires, the lane stops).
    drop(viewers);
    let end = Instant::now() + Duration::from_secs(15);
    let mut last = tier_encodes(&cams_of(owner_cw).await, cam, 70, 2);
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = tier_encodes(&cams_of(owner_cw).await, cam, 70, 2);
        if now == last {
            break;
        }
        assert!(
            Instant::now() < end,
            "{cam}: its owner kept encoding an unwanted lane"
        );
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_six_cameras_and_survive_faults() {
    if !have_nats() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut nats = Nats::start(port, store.path());
    let mut ids: Vec<String> = (0..6).map(|i| format!("cam{i}")).collect();
    let mut cams: Vec<Value> = ids
        .iter()
        .map(|id| lavfi(id, "testsrc2=size=160x120:rate=5"))
        .collect();
    // One H.264 camera for the video relay.
    let rtsp = RtspServer::start(&["--size", "320x240", "--fps", "10"]);
    cams.push(json!({"id": "rtsp", "url": rtsp.url()}));
    ids.push("rtsp".into());
    let a = start_camwall(node_config(&nats.url(), "a", &cams));
    let b = start_camwall(node_config(&nats.url(), "b", &cams));
    let c = start_camwall(node_config(&nats.url(), "c", &cams));

    // Exactly one owner each, agreed by every node; only owners ingest.
    let all = [("a", &a), ("b", &b), ("c", &c)];
    let owners = wait_owners(&all, &ids, Duration::from_secs(30)).await;
    assert_only_owners_ingest(&all, &owners, &[]).await;

    // /api/cluster lists the three nodes, whose cameras partition the six.
    let cl: Value = cluster_of(&a).await;
    assert_eq!(cl["node"], "a");
    let nodes = cl["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{cl}");
    let mut listed: Vec<String> = nodes
        .iter()
        .flat_map(|n| n["cameras"].as_array().unwrap().clone())
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, ids, "{cl}");
    // Metrics carry the node.
    let m = reqwest::get(b.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("node=\"b\""), "{m}");

    // A WebSocket viewer on another node gets the H.264 camera's own video through the relay.
    let names = ["a", "b", "c"];
    let rtsp_owner = owners["rtsp"].clone();
    let viewer_node = names.into_iter().find(|n| *n != rtsp_owner).unwrap();
    let viewer_cw = all.iter().find(|(n, _)| *n == viewer_node).unwrap().1;
    let mut ws = ws_connect(viewer_cw).await;
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": ["rtsp"], "codecs": ["h264"], "quality": 80}),
    )
    .await;
    let first = next_video(&mut ws, 0, Duration::from_secs(20)).await;
    assert_eq!(
        first["key"], true,
        "relayed video starts at a keyframe: {first}"
    );
    assert_eq!(
        (first["width"].as_u64(), first["height"].as_u64()),
        (Some(320), Some(240))
    );
    // Relayed units keep the owner's clock: the same units have the same pts on both nodes.
    let owner_cw = all.iter().find(|(n, _)| *n == rtsp_owner).unwrap().1;
    let sub = json!({"type": "subscribe", "cameras": ["rtsp"], "codecs": ["h264"]});
    let mut at_owner = ws_connect(owner_cw).await;
    ws_send(&mut at_owner, sub.clone()).await;
    let mut relayed = ws_connect(viewer_cw).await;
    ws_send(&mut relayed, sub).await;
    let owner_pts = video_pts(&mut at_owner, 20).await;
    let relayed_pts = video_pts(&mut relayed, 20).await;
    let common = owner_pts.intersection(&relayed_pts).count();
    assert!(
        common >= 5,
        "{common} pts in common: owner {owner_pts:?}, relayed {relayed_pts:?}"
    );
    drop((at_owner, relayed));
    // The third node relays nothing of it, yet shows its activity: the owner's, from its
    // heartbeat (the wall sorts and marks tiles by it on every node).
    let third = names
        .into_iter()
        .find(|n| *n != rtsp_owner && *n != viewer_node)
        .unwrap();
    let third_cw = all.iter().find(|(n, _)| *n == third).unwrap().1;
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let c = cams_of(third_cw).await.remove("rtsp").unwrap_or_default();
        if c["activity"].is_f64() {
            assert_eq!(c["video"]["units_in"], 0, "nothing relayed to {third}: {c}");
            break;
        }
        let owner_cw = all.iter().find(|(n, _)| *n == rtsp_owner).unwrap().1;
        let o = cams_of(owner_cw).await.remove("rtsp").unwrap_or_default();
        assert!(
            Instant::now() < end,
            "no activity of rtsp on {third}: {c}; on its owner: {}",
            o["activity"]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // And JPEG frames of a camera another node ingests, for a client without video codecs.
    let jpeg_cam = owners
        .iter()
        .find(|(id, o)| id.starts_with("cam") && **o != viewer_node)
        .map(|(id, _)| id.clone())
        .unwrap();
    let mut ws2 = ws_connect(viewer_cw).await;
    ws_send(
        &mut ws2,
        json!({"type": "subscribe", "cameras": [&jpeg_cam]}),
    )
    .await;
    let mut texts = Vec::new();
    let f = next_frame(&mut ws2, &mut texts, Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("no JPEG of {jpeg_cam} on {viewer_node}: {texts:?}"));
    assert_eq!(f.camera(), jpeg_cam);
    let (w, h, _) = decode_rgb(&f.jpeg);
    assert_eq!((w, h), (160, 120));
    // The relayed JPEGs are not published into the viewing node's camera: only the owner
    // ingests (checked below), and the viewing node encodes nothing.
    let relayed: &[(&str, &str)] = &[(viewer_node, "rtsp")];
    assert_jpeg_lanes_encoded_once(&all, &owners[&jpeg_cam], &jpeg_cam).await;
    drop(ws2);

    // A snapshot through a node that does not ingest the camera decodes to the right size.
    let lavfi_owner = owners["cam0"].clone();
    let other = all.iter().find(|(n, _)| **n != *lavfi_owner).unwrap().1;
    let res = get_frame(other, "cam0", "").await;
    assert_eq!(res.status(), 200);
    let mut etag = res.headers()["etag"].to_str().unwrap().to_string();
    let (w, h, _) = decode_rgb(&res.bytes().await.unwrap());
    assert_eq!((w, h), (160, 120));
    // Long-polls through that node wait on the owner for the next frame, each answer newer
    // than the one before (an immediate snapshot would often repeat it: 304 or the same tag).
    for _ in 0..3 {
        let q = format!("?after={}&wait_ms=5000", etag.trim_matches('"'));
        let res = get_frame(other, "cam0", &q).await;
        assert_eq!(res.status(), 200, "{q}");
        let next = res.headers()["etag"].to_str().unwrap().to_string();
        assert_ne!(
            next, etag,
            "a long-poll answered the frame it was told the client has"
        );
        etag = next;
    }
    // An MJPEG stream of it through that node: the owner's lane at the size asked for.
    let url = other.url("/api/ip-cameras/mjpeg/cam0?quality=70&max_width=80");
    let (n, parts) = read_mjpeg_parts(url, Duration::from_secs(4)).await;
    assert!(n >= 3, "{n} MJPEG parts of a remote camera in 4 s at 5 fps");
    for p in &parts {
        assert_eq!(decode_rgb(p).0, 80);
    }

    // A camera added through node a appears on every node, with one owner.
    let http = reqwest::Client::new();
    let res = http
        .post(a.url("/api/ip-cameras"))
        .json(&lavfi("added", "testsrc2=size=160x120:rate=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert!(created["revision"].as_u64().is_some(), "{created}");
    ids.push("added".to_string());
    let owners = wait_owners(&all, &ids, Duration::from_secs(20)).await;
    assert_only_owners_ingest(&all, &owners, relayed).await;
    // The config file is not written in cluster mode.
    let file = std::fs::read_to_string(&a.config_path).unwrap();
    assert!(!file.contains("added"), "{file}");

    // Two edits based on the same revision, through two nodes: the second gets 409.
    let res = http
        .get(b.url("/api/ip-cameras/added"))
        .send()
        .await
        .unwrap();
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    let seen: Value = res.json().await.unwrap();
    assert_eq!(etag, format!("\"{}\"", seen["revision"]));
    let first = http
        .patch(a.url("/api/ip-cameras/added"))
        .header("if-match", &etag)
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let bad = http
        .patch(c.url("/api/ip-cameras/added"))
        .header("if-match", "\"not-a-revision\"")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let second = http
        .patch(b.url("/api/ip-cameras/added"))
        .header("if-match", &etag)
        .json(&json!({"name": "Lost edit"}))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 409);
    let err: Value = second.json().await.unwrap();
    assert_eq!(err["error"], "conflict", "{err}");
    // Every node shows the first edit.
    for cw in [&a, &b, &c] {
        cw.wait_camera("added", Duration::from_secs(10), |c| c["name"] == "Renamed")
            .await;
    }

    // kill -9 of the node ingesting the H.264 camera: the others take its cameras within
    // 15 s, and the viewer on a surviving node gets video again on the same socket.
    let victim = names.into_iter().find(|n| *n == rtsp_owner).unwrap();
    let (survivors, mut dead): (Vec<_>, Vec<_>) = [("a", a), ("b", b), ("c", c)]
        .into_iter()
        .partition(|(n, _)| *n != victim);
    let dead = dead.pop().unwrap();
    signal(dead.1.pid(), "KILL");
    let killed_at = Instant::now();
    let live: Vec<(&str, &Camwall)> = survivors.iter().map(|(n, c)| (*n, c)).collect();
    let after = wait_owners(&live, &ids, Duration::from_secs(15)).await;
    eprintln!("takeover after kill -9: {:?}", killed_at.elapsed());
    for (id, owner) in &after {
        assert_ne!(owner, victim);
        if owners[id] != victim {
            assert_eq!(owner, &owners[id], "{id} moved though its owner lived");
        }
    }
    assert_only_owners_ingest(&live, &after, relayed).await;
    let killed_ms = unix_ms() - killed_at.elapsed().as_millis() as u64;
    // The viewer saw the camera go connecting, then gets video again on the same socket.
    let went = next_text(&mut ws, Duration::from_secs(15), |t| {
        t["type"] == "state" && t["camera"] == "rtsp" && t["state"] == "connecting"
    })
    .await;
    assert!(went.is_some(), "no connecting state after the owner died");
    let again = next_video(&mut ws, killed_ms, Duration::from_secs(15)).await;
    assert_eq!(again["key"], true, "{again}");
    drop(dead);

    // NATS goes away: each node keeps ingesting its own cameras; the others' show unavailable.
    nats.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (name, cw) in &live {
        let view = cams_of(cw).await;
        for (id, owner) in &after {
            let st = &view[id]["state"];
            if owner == name {
                assert_eq!(st, "streaming", "{id} on its owner {name} without NATS");
            } else {
                assert_eq!(st, "unavailable", "{id} (owner {owner}) seen from {name}");
            }
        }
    }
    assert_only_owners_ingest(&live, &after, relayed).await;
    // A snapshot of a camera no reachable node ingests answers at once: 503, not a wait.
    let (name, cw, id) = live
        .iter()
        .find_map(|(n, cw)| {
            let id = after.iter().find(|(_, o)| o.as_str() != *n)?.0;
            Some((*n, *cw, id.clone()))
        })
        .expect("some camera ingested by another node than one of the live ones");
    let res = get_frame(cw, &id, "").await;
    assert_eq!(res.status(), 503, "{id} through {name} without NATS");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "no_frame_yet", "{body}");
    // NATS returns on the same port and store: the nodes rejoin without a restart.
    let nats = Nats::start(port, store.path());
    let back = wait_owners(&live, &ids, Duration::from_secs(20)).await;
    assert_only_owners_ingest(&live, &back, relayed).await;

    // The killed node comes back (its file lacks the added camera; the shared list has it):
    // exactly its share moves back to it, nothing else moves.
    let returned = start_camwall(node_config(&nats.url(), victim, &cams));
    let mut all3 = live.clone();
    all3.push((victim, &returned));
    // Agreement comes first with the old owners; then the returned node claims its share.
    let end = Instant::now() + Duration::from_secs(30);
    let rejoined = loop {
        let now = wait_owners(&all3, &ids, Duration::from_secs(30)).await;
        if now == owners || Instant::now() > end {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        rejoined, owners,
        "ownership after rejoin differs from before the kill"
    );
    assert_only_owners_ingest(&all3, &rejoined, relayed).await;
    let moved_back = ids.iter().filter(|id| back[*id] != rejoined[*id]).count();
    let share = owners.values().filter(|o| *o == victim).count();
    assert_eq!(moved_back, share);
}

/// Alone (no `server.cluster`), nothing of the cluster shows: no `node` in the status, and
/// `/api/cluster` says so. Needs no NATS.
#[tokio::test]
async fn a_node_alone_has_no_cluster() {
    let cw = start_camwall(json!({"cameras": [lavfi("solo", "testsrc2=size=160x120:rate=5")]}));
    let c = cw
        .wait_camera("solo", Duration::from_secs(20), |c| {
            c["state"] == "streaming"
        })
        .await;
    assert!(c.get("node").is_none(), "{c}");
    let res = reqwest::get(cw.url("/api/cluster")).await.unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "not_clustered", "{body}");
    let m = reqwest::get(cw.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!m.contains("node=\""), "{m}");
}

#[test]
fn an_unreadable_credentials_file_stops_the_start_naming_the_field() {
    // No NATS is needed: the file is checked before anything connects.
    for (content, says) in [
        (None, "cannot read"),
        (
            Some("SUAXSECRETSEEDNOTAJWT\n"),
            "is not a NATS credentials file",
        ),
    ] {
        let (dir, config_path) = write_config(json!({"server": {"cluster": {
            "nats": "nats://127.0.0.1:4222", "node": "a", "credentials": "node.creds"
        }}}));
        if let Some(c) = content {
            std::fs::write(dir.path().join("node.creds"), c).unwrap();
        }
        let out = start_refused(&config_path);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("server.cluster.credentials"), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(err.contains("node.creds"), "names the file: {err}");
        assert!(
            !err.contains("SECRET"),
            "the file's contents are never shown: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_cameras_sub_stream_serves_small_tiles_on_another_node() {
    if !have_nats() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let nats = Nats::start(free_port(), store.path());
    let main = RtspServer::start(&MAIN);
    let sub = RtspServer::start(&SUB);
    let cams = [
        json!({"id": "cam", "url": main.url(), "decode_linger_ms": 1500,
                       "sub": {"url": sub.url()}}),
    ];
    let a = start_camwall(node_config(&nats.url(), "a", &cams));
    let b = start_camwall(node_config(&nats.url(), "b", &cams));
    let all = [("a", &a), ("b", &b)];
    let owners = wait_owners(&all, &["cam".to_string()], Duration::from_secs(30)).await;
    let (owner, viewer) = if owners["cam"] == "a" {
        (&a, &b)
    } else {
        (&b, &a)
    };
    // The viewing node sees the owner's streams: the main one streaming, the sub one idle
    // (nobody uses it, so it is not even connected).
    viewer
        .wait_camera("cam", Duration::from_secs(20), |c| {
            c["state"] == "streaming" && sub_state(c) == "idle"
        })
        .await;

    // A small tile on the viewing node takes the sub stream: the owner connects it for that
    // node and encodes the tile's lane from it (320 wide: the sub stream's own width, where
    // the main stream would give 200).
    let mut small = ws_connect(viewer).await;
    ws_send(
        &mut small,
        json!({"type": "subscribe", "cameras": ["cam"], "quality": 70, "max_width": 320}),
    )
    .await;
    until_served(&mut small, "sub", false, 320).await;
    let c = owner.camera("cam").await;
    assert_eq!(sub_state(&c), "streaming", "{c}");
    // A video viewer of a small tile there gets the sub stream's own H.264, relayed.
    let video = sub_stream_video_viewer(viewer, "cam").await;
    // Nothing was ingested or encoded on the viewing node.
    let c = viewer.camera("cam").await;
    assert_eq!(c["streams"]["sub"]["frames_in"], 0, "{c}");
    assert_eq!(c["jpeg_encodes"], 0, "{c}");

    // Nobody uses it any more: the owner closes it after the linger time.
    drop((small, video));
    owner
        .wait_camera("cam", Duration::from_secs(20), |c| sub_state(c) == "idle")
        .await;
}

/// A certificate authority and a server certificate it signed for 127.0.0.1, made with the
/// openssl CLI in `dir`: (ca.pem, server.pem, server.key).
fn private_ca(dir: &Path) -> (String, String, String) {
    let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let run = |args: &[&str]| run_ok("openssl", args);
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-days",
            "2",
            "-subj",
            "/CN=camwall test CA",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
        ],
    ]
    .concat());
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &p("server.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("san.ext"),
        "-out",
        &p("server.pem"),
    ]);
    (p("ca.pem"), p("server.pem"), p("server.key"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_over_tls_with_a_private_ca_and_a_password_it_never_shows() {
    if !have_nats() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(store.path());
    let port = free_port();
    let _nats = Nats::start_with(
        port,
        &store.path().join("js"),
        &[
            "--tls",
            "--tlscert",
            &cert,
            "--tlskey",
            &key,
            "--user",
            "cw",
            "--pass",
            "s3cretpw",
        ],
    );
    let url = format!("tls://cw:s3cretpw@127.0.0.1:{port}");
    let cams = [lavfi("door", "testsrc2=size=160x120:rate=5")];
    let mut with_ca = node_config(&url, "a", &cams);
    with_ca["server"]["cluster"]["tls_ca"] = ca.into();
    let a = start_camwall(with_ca);
    // The same server without the CA: the system's roots do not know it, so no connection.
    let b = start_camwall(node_config(&url, "b", &cams));
    let c = a
        .wait_camera("door", Duration::from_secs(30), |c| {
            c["node"] == "a" && c["state"] == "streaming"
        })
        .await;
    assert!(!c.to_string().contains("s3cretpw"), "{c}");
    let cl: Value = cluster_of(&b).await;
    assert_eq!(
        cl["connected"], false,
        "b trusted a server its roots do not know: {cl}"
    );
    // Refused, not slow: its attempts failed (in the TLS handshake: async-nats reports an
    // I/O error), none got as far as logging in.
    let logs = b.logs();
    assert!(
        logs.contains("client error: nats: IO error") && !logs.contains("connected to NATS"),
        "b's attempts should fail at TLS: {logs}"
    );
    let cl: Value = cluster_of(&a).await;
    assert_eq!(cl["connected"], true, "{cl}");
    for (name, cw) in [("a", &a), ("b", &b)] {
        let logs = cw.logs();
        assert!(
            !logs.contains("s3cretpw"),
            "{name} logged the NATS password: {logs}"
        );
    }
    // A CA file that is no certificate stops the start, naming the field.
    let (dir, path) = write_config(json!({"server": {"cluster": {
        "nats": url, "node": "c", "tls_ca": "nope.pem"}}}));
    std::fs::write(dir.path().join("nope.pem"), "not a certificate").unwrap();
    let out = start_refused(&path);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.cluster.tls_ca"), "{err}");
    assert!(!err.contains("s3cretpw"), "{err}");
}

/// WHEP on a node that does not ingest the camera: the owner's H.264 comes through the video
/// relay, as it does for WebSocket viewers, and plays in a third-party player.
#[tokio::test]
async fn whep_on_the_node_that_does_not_own_the_camera_plays_it() {
    if !have_nats() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let nats = Nats::start(free_port(), store.path());
    // With AAC audio: the viewing node gets it relayed and makes the Opus itself.
    let rtsp = RtspServer::start(&[&MAIN[..], &["--audio", "aac", "--audio-freq", "440"]].concat());
    let cams = [json!({"id": "cam", "url": rtsp.url()})];
    let a = start_camwall(node_config(&nats.url(), "a", &cams));
    let b = start_camwall(node_config(&nats.url(), "b", &cams));
    let all = [("a", &a), ("b", &b)];
    let owners = wait_owners(&all, &["cam".to_string()], Duration::from_secs(30)).await;
    let viewer = if owners["cam"] == "a" { &b } else { &a };
    // The owner announces the track: the viewing node's status shows it.
    viewer
        .wait_camera("cam", Duration::from_secs(20), |c| {
            c["audio"]["codec"] == "aac"
        })
        .await;
    let url = viewer.url("/api/ip-cameras/cam/whep");
    let dir = tempfile::tempdir().unwrap();
    let pcm = dir.path().join("heard.pcm");
    let events = common::whep::play(
        &url,
        &[
            "--frames",
            "30",
            "--timeout",
            "60",
            "--kind",
            "av",
            "--audio-seconds",
            "2",
            "--audio-out",
            pcm.to_str().unwrap(),
        ],
        Duration::from_secs(90),
    )
    .await;
    let done = common::whep::event(&events, "done");
    assert_eq!(done["frames"], 30, "{events:?}");
    let heard = common::whep::heard(&pcm, done);
    assert!(heard.len() >= 72_000, "{} samples: {done}", heard.len());
    let second = &heard[9_600..57_600];
    let peak = peak_hz(second, 48_000);
    assert!(
        (peak - 440.0).abs() <= 10.0,
        "heard {peak} Hz over the relay"
    );
    assert!(loudness(second) > 1000.0, "not silence");
    assert_eq!(common::whep::event(&events, "deleted")["status"], 200);
    let c = viewer.camera("cam").await;
    assert_eq!(
        c["frames_in"], 0,
        "nothing ingested on the viewing node: {c}"
    );
    assert_eq!(c["jpeg_encodes"], 0, "{c}");
}

#[tokio::test]
async fn the_node_that_does_not_own_a_camera_answers_its_replay_from_the_owner() {
    if !have_nats() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let nats = Nats::start(free_port(), store.path());
    let rtsp = RtspServer::start(&MAIN);
    let cams = [json!({"id": "cam", "url": rtsp.url()})];
    let a = start_camwall(node_config(&nats.url(), "a", &cams));
    let b = start_camwall(node_config(&nats.url(), "b", &cams));
    let all = [("a", &a), ("b", &b)];
    let owners = wait_owners(&all, &["cam".to_string()], Duration::from_secs(30)).await;
    let viewer = if owners["cam"] == "a" { &b } else { &a };
    // The span, as the owner keeps it: asked through the relay.
    // Through the relay: the viewer node asks the owner.
    let (_, _, span) = viewer.wait_replay_span("cam", 3000).await;
    let t = span["from"].as_u64().unwrap() + 1500;
    let r = reqwest::get(viewer.url(&format!("/api/ip-cameras/frame/cam?at={t}&max_width=160")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let shown: u64 = r.headers()["x-frame-time"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(shown <= t && t - shown < 1500, "asked {t}, got {shown}");
    // 800 wide: the smallest of its sizes that covers 160 is a quarter.
    assert_eq!(r.headers()["x-frame-width"], "200");
    let r = reqwest::get(viewer.url("/api/ip-cameras/frame/cam?at=1000"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "not_in_replay");
    // Nothing was recorded on the viewing node.
    let c = viewer.camera("cam").await;
    assert_eq!(c["replay"]["bytes"], 0, "{c}");
}

const ADMIN_TOKEN: &str = "cluster-admin-token-0123";

/// A node's config with `users` (the file's, which seed an empty shared list) and an admin
/// token (tokens are per node).
fn node_with_users(nats: &str, node: &str, cams: &[Value], users: Value) -> Value {
    json!({
        "server": {
            "cluster": {"nats": nats, "node": node},
            "auth": {"users": users, "admin_tokens": [ADMIN_TOKEN]}
        },
        "cameras": cams,
    })
}

async fn admin(cw: &Camwall, method: reqwest::Method, path: &str, body: Option<Value>) -> u16 {
    let mut r = reqwest::Client::new()
        .request(method, cw.url(path))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap().status().as_u16()
}

/// Waits (bounded) until `check` holds: a change another node made arrives by its watch.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Users seeded from one node's file log in on every node; a session begun on one node holds
/// on another at once (with its scope), outlives a restart of that node, and ends everywhere
/// at a logout; users added or removed on one node apply on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_sessions_hold_on_every_node() {
    if !have_nats() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let nats = Nats::start(free_port(), store.path());
    let cams = [
        lavfi("c1", "testsrc2=size=160x120:rate=5"),
        lavfi("c2", "testsrc2=size=160x120:rate=5"),
    ];
    let staff_pw = "staff-password-in-the-cluster";
    let users = json!([
        {"name": "staff", "password_hash": hash_password(staff_pw), "role": "viewer", "cameras": ["c1"]}
    ]);
    let a = start_camwall(node_with_users(&nats.url(), "a", &cams, users));
    // b's file names no user: the shared list gives it a's.
    let b_config = node_with_users(&nats.url(), "b", &cams, json!([]));
    let mut b = start_camwall(b_config.clone());
    let knows = |cw: &Camwall, name: &'static str, yes: bool| {
        let url = cw.url("/api/users");
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            let list: Value = r.json().await.unwrap_or_default();
            let has = list["users"]
                .as_array()
                .is_some_and(|u| u.iter().any(|u| u["name"] == name));
            has == yes
        }
    };
    until("b knows staff", || knows(&b, "staff", true)).await;

    // A login on a is a session on b at once, with its scope.
    let cookie = session(&a, "staff", staff_pw).await.0;
    let me: Value = get_with_cookie(&b, &cookie, "/api/session")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&me["user"], &me["cameras"]),
        (&json!("staff"), &json!(["c1"])),
        "{me}"
    );
    let status = get_with_cookie(&b, &cookie, "/api/ip-cameras/status").await;
    assert_eq!(status.status(), 200);
    let status: Value = status.json().await.unwrap();
    let shown: Vec<&str> = status["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(shown, ["c1"], "b shows staff only c1");
    let other = get_with_cookie(&b, &cookie, "/api/ip-cameras/frame/c2").await;
    assert_eq!(other.status(), 404);
    assert_eq!(
        get_with_cookie(&b, "camwall_session=forged-value", "/api/ip-cameras/status")
            .await
            .status(),
        401
    );

    // b restarts: the session holds there.
    let first_b_logs = b.logs();
    drop(b);
    b = start_camwall(b_config);
    until("restarted b knows the session", || {
        let r = get_with_cookie(&b, &cookie, "/api/session");
        async move { r.await.status() == 200 }
    })
    .await;

    // A user added on b logs in on a; removed on a, they are refused on b and their
    // session there ends.
    let newbie_pw = "a-newbie-password-1";
    assert_eq!(
        admin(
            &b,
            reqwest::Method::POST,
            "/api/users",
            Some(json!({"name": "newbie", "password": newbie_pw, "role": "viewer"}))
        )
        .await,
        201
    );
    until("a knows newbie", || knows(&a, "newbie", true)).await;
    let newbie = session(&a, "newbie", newbie_pw).await.0;
    assert_eq!(
        get_with_cookie(&b, &newbie, "/api/session").await.status(),
        200
    );
    assert_eq!(
        admin(&a, reqwest::Method::DELETE, "/api/users/newbie", None).await,
        200
    );
    until("b forgets newbie", || knows(&b, "newbie", false)).await;
    assert_eq!(
        get_with_cookie(&b, &newbie, "/api/session").await.status(),
        401
    );
    assert_eq!(
        login(&b, "newbie", newbie_pw, "10.9.9.9").await.status(),
        401
    );

    // A logout on b ends the session on a too.
    let out = reqwest::Client::new()
        .post(b.url("/api/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    assert_eq!(
        get_with_cookie(&b, &cookie, "/api/session").await.status(),
        401
    );
    until("a ends the session", || {
        let r = get_with_cookie(&a, &cookie, "/api/session");
        async move { r.await.status() == 401 }
    })
    .await;

    let value = cookie.split('=').nth(1).unwrap().to_string();
    for (node, logs) in [("a", a.logs()), ("b", b.logs()), ("b before", first_b_logs)] {
        assert!(!logs.contains(staff_pw), "{node} logged a password");
        assert!(!logs.contains(newbie_pw), "{node} logged a password");
        assert!(!logs.contains(&value), "{node} logged a session cookie");
    }
}
