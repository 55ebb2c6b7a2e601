//! S23: what one more live viewer costs camwall in memory. Small RTSP cameras, one video
//! viewer on all of them first (the cameras' GOPs and buffers in place), then many more
//! watching the same; the growth of RSS over the added viewers is the cost of each.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::clients::ws_client;
use crate::harness::proc_status;
use crate::scenarios::Ctx;
use crate::sources::{small_rtsp, start_camwall, status, wait_streaming};

/// The viewers counted in the status, summed over the cameras.
async fn viewers(cw: &crate::harness::Camwall) -> u64 {
    let s = status(cw).await;
    s["cameras"]
        .as_array()
        .map_or(0, |c| c.iter().filter_map(|c| c["viewers"].as_u64()).sum())
}

pub async fn s23_viewers(ctx: &Ctx, cameras: usize, added: usize, secs: u64) -> Value {
    let _ = ctx;
    let setup = format!(
        "{cameras} RTSP cameras 320x180 10 fps, 1 then {} video viewers watching all",
        added + 1
    );
    let (_rtsp, cams) = small_rtsp(cameras, 4);
    let cw = start_camwall(&ctx.camwall, cams);
    if !wait_streaming(&cw, cameras, Duration::from_secs(60)).await {
        return json!({"id": "S23", "setup": setup, "error": "cameras did not stream"});
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sub = json!({"type": "subscribe", "cameras": ["*"], "quality": "auto", "codecs": ["h264"]});
    let spawn = |n: usize| -> Vec<_> {
        (0..n)
            .map(|_| tokio::spawn(ws_client(cw.base.clone(), sub.clone(), stop.clone(), None)))
            .collect()
    };
    let rss = || proc_status(cw.pid(), "VmRSS:") as f64 / 1024.0;
    let mut tasks = spawn(1);
    // Waits (bounded) until the status counts `n` viewers per camera, then lets them run.
    let settle = |n: u64| {
        let cw = &cw;
        async move {
            for _ in 0..100 {
                if viewers(cw).await >= n * cameras as u64 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            tokio::time::sleep(Duration::from_secs(secs)).await;
        }
    };
    settle(1).await;
    let one = rss();
    tasks.extend(spawn(added));
    settle(added as u64 + 1).await;
    let many = rss();
    let counted = viewers(&cw).await;
    stop.store(true, Ordering::Relaxed);
    let mut frames = 0usize;
    for t in tasks {
        frames += t
            .await
            .map_or(0, |s| s.frames.values().map(|v| v.len()).sum());
    }
    json!({
        "id": "S23",
        "setup": setup,
        "rss_mb_one_viewer": one,
        "rss_mb_all_viewers": many,
        "kb_per_viewer": (many - one) * 1024.0 / added as f64,
        "viewers_counted": counted,
        "frames": frames,
    })
}
