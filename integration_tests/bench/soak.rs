//! The soak (`scripts/soak`): S2-like load for a long time while the RTSP server is killed and
//! restarted and cameras are disabled, enabled and replaced, and silent TCP clients come and go
//! (connection churn); camwall's memory, descriptors and threads sampled each minute, and
//! whether they ended flat.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::clients::soak_client;
use crate::harness::proc_status;
use crate::procfs::fds;
use crate::sources::{rtsp_cams, start_camwall, start_rtsp, start_rtsp_on, status, wait_streaming};

/// Sends one request with a JSON body (the runtime camera API); returns the status, 0 when
/// there was no answer.
async fn http_json(
    client: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> u16 {
    client
        .request(method, format!("{base}{path}"))
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Silent connections opened per second by the churn (each sends nothing and waits for the
/// server to close it).
const SILENT_PER_SECOND: u64 = 10;
/// A silent connection still open this long after it was opened outlived the server's head
/// deadline (10 s by default): counted as a failure.
const SILENT_LIMIT: Duration = Duration::from_secs(20);

/// What the churn saw.
#[derive(Default)]
struct Churn {
    opened: AtomicU64,
    closed: AtomicU64,
    outlived: AtomicU64,
}

/// Opens [`SILENT_PER_SECOND`] connections a second to `addr` that never send a byte, until
/// `stop`; each is watched until the server closes it or [`SILENT_LIMIT`] passes.
async fn silent_churn(addr: String, churn: Arc<Churn>, stop: Arc<AtomicBool>) {
    use tokio::io::AsyncReadExt;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..SILENT_PER_SECOND {
            let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
                continue;
            };
            churn.opened.fetch_add(1, Ordering::Relaxed);
            let churn = churn.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                match tokio::time::timeout(SILENT_LIMIT, s.read(&mut buf)).await {
                    Ok(_) => churn.closed.fetch_add(1, Ordering::Relaxed),
                    Err(_) => churn.outlived.fetch_add(1, Ordering::Relaxed),
                };
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// S2-like load for `minutes` with chaos: the RTSP server killed and restarted, cameras
/// disabled and enabled, cameras replaced. Samples camwall each minute.
pub async fn soak(clips: PathBuf, camwall_bin: PathBuf, out: PathBuf, minutes: u64, n: usize) {
    std::fs::create_dir_all(&out).unwrap();
    let clip = clips.join("clip720.h264");
    let mut rtsp = start_rtsp(&clip, n);
    let port = rtsp.port;
    // The RTSP server restarts on the same port: camwall's URLs stay valid.
    let cw = start_camwall(&camwall_bin, rtsp_cams(port, n));
    if !wait_streaming(&cw, n, Duration::from_secs(60)).await {
        eprintln!("cameras did not stream");
        return;
    }
    let http = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let auto = json!({"type": "subscribe", "cameras": ["*"], "quality": "auto"});
    let clients: Vec<_> = (0..4)
        .map(|_| tokio::spawn(soak_client(cw.base.clone(), auto.clone(), stop.clone())))
        .collect();
    let churn = Arc::new(Churn::default());
    let addr = cw.base.trim_start_matches("http://").to_string();
    let churn_task = tokio::spawn(silent_churn(addr, churn.clone(), stop.clone()));
    let t0 = Instant::now();
    let mut rows = Vec::new();
    let mut next_sample = Duration::ZERO;
    let mut next_chaos = Duration::from_secs(20);
    let mut events = Vec::new();
    while t0.elapsed() < Duration::from_secs(minutes * 60) {
        if t0.elapsed() >= next_sample {
            let s = status(&cw).await;
            let streaming = s["cameras"].as_array().map_or(0, |c| {
                c.iter().filter(|c| c["state"] == "streaming").count()
            });
            let row = json!({
                "minute": next_sample.as_secs() / 60,
                "rss_mb": proc_status(cw.pid(), "VmRSS:") as f64 / 1024.0,
                "rss_anon_mb": proc_status(cw.pid(), "RssAnon:") as f64 / 1024.0,
                "fds": fds(cw.pid()),
                "threads": proc_status(cw.pid(), "Threads:"),
                "streaming": streaming,
                "silent_opened": churn.opened.load(Ordering::Relaxed),
                "silent_closed": churn.closed.load(Ordering::Relaxed),
                "silent_outlived": churn.outlived.load(Ordering::Relaxed),
            });
            eprintln!("soak {row}");
            rows.push(row);
            next_sample += Duration::from_secs(60);
        }
        if t0.elapsed() >= next_chaos {
            let cam = format!("cam{}", fastrand::usize(..n));
            match fastrand::u8(..3) {
                0 => {
                    // Every camera loses its source at once, then it comes back.
                    drop(rtsp);
                    tokio::time::sleep(Duration::from_secs(fastrand::u64(2..8))).await;
                    rtsp = start_rtsp_on(&clip, n, port);
                    events.push(format!(
                        "{}s: RTSP server killed and restarted",
                        t0.elapsed().as_secs()
                    ));
                }
                1 => {
                    let path = format!("/api/ip-cameras/{cam}");
                    let a = http_json(
                        &http,
                        &cw.base,
                        reqwest::Method::PATCH,
                        &path,
                        &json!({"enabled": false}),
                    )
                    .await;
                    tokio::time::sleep(Duration::from_secs(fastrand::u64(2..10))).await;
                    let b = http_json(
                        &http,
                        &cw.base,
                        reqwest::Method::PATCH,
                        &path,
                        &json!({"enabled": null}),
                    )
                    .await;
                    events.push(format!(
                        "{}s: {cam} disabled and enabled ({a}, {b})",
                        t0.elapsed().as_secs()
                    ));
                }
                _ => {
                    let body = json!({"url": format!("rtsp://127.0.0.1:{port}/{cam}")});
                    let a = http_json(
                        &http,
                        &cw.base,
                        reqwest::Method::PUT,
                        &format!("/api/ip-cameras/{cam}"),
                        &body,
                    )
                    .await;
                    events.push(format!("{}s: {cam} replaced ({a})", t0.elapsed().as_secs()));
                }
            }
            next_chaos = t0.elapsed() + Duration::from_secs(fastrand::u64(20..60));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = churn_task.await;
    let mut frames = 0;
    for c in clients {
        frames += c.await.unwrap_or(0);
    }
    // Flat: the end against minute 3 (after warm-up), with room for allocator noise.
    let base = rows
        .iter()
        .find(|r| r["minute"] == 3)
        .or(rows.first())
        .cloned()
        .unwrap_or(Value::Null);
    let last = rows.last().cloned().unwrap_or(Value::Null);
    let num = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let flat = num(&last, "rss_anon_mb") <= num(&base, "rss_anon_mb") * 1.15 + 2.0
        && num(&last, "fds") <= num(&base, "fds") + 5.0
        && num(&last, "threads") <= num(&base, "threads") + 5.0
        && num(&last, "silent_outlived") == 0.0;
    let mut md = format!(
        "Soak: {minutes} min, {n} cameras 720p25 RTSP, 4 wall clients (auto), {} chaos events, {frames} frames delivered, {SILENT_PER_SECOND} silent connections a second (closed by the server / outlived {}s, so far). Flat: {}.\n\n| minute | RSS MB | anon MB | fds | threads | streaming | silent opened / closed / outlived |\n|---|---|---|---|---|---|---|\n",
        events.len(),
        SILENT_LIMIT.as_secs(),
        if flat { "yes" } else { "NO" }
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {:.1} | {:.1} | {} | {} | {} | {} / {} / {} |\n",
            r["minute"],
            num(r, "rss_mb"),
            num(r, "rss_anon_mb"),
            r["fds"],
            r["threads"],
            r["streaming"],
            r["silent_opened"],
            r["silent_closed"],
            r["silent_outlived"]
        ));
    }
    md.push_str("\nEvents:\n");
    for e in &events {
        md.push_str(&format!("- {e}\n"));
    }
    std::fs::write(out.join("soak.md"), &md).unwrap();
    let doc = json!({"rows": rows, "events": events, "flat": flat});
    std::fs::write(
        out.join("soak.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
    println!("{md}");
}
