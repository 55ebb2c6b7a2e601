//! S11, camera start to first frame: cameras added one at a time through the API against the
//! RTSP test server looping a clip with a 1 s GOP, timed from the request to the first
//! snapshot that answers 200. What a freshly configured or restarted camera costs a viewer.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::Http;
use crate::procfs::pct;
use crate::scenarios::Ctx;
use crate::sources::{start_camwall, start_rtsp};

pub async fn s11_camera_start(ctx: &Ctx, cameras: usize) -> Value {
    let rtsp = start_rtsp(&ctx.clips.join("clip720.h264"), cameras);
    let cw = start_camwall(&ctx.camwall, Vec::new());
    let client = reqwest::Client::new();
    let mut http = Http::new(&cw.base);
    let mut times = Vec::new();
    for i in 0..cameras {
        let id = format!("cam{i}");
        let body = json!({"id": id, "url": format!("rtsp://127.0.0.1:{}/cam{i}", rtsp.port)});
        let t0 = Instant::now();
        let added = client
            .post(format!("{}/api/ip-cameras", cw.base))
            .json(&body)
            .send()
            .await
            .map(|r| r.status().as_u16());
        if added.as_ref().ok() != Some(&201) {
            return json!({"id": "S11", "error": format!("adding {id}: {added:?}")});
        }
        let end = t0 + Duration::from_secs(30);
        loop {
            let r = http
                .get(&format!("/api/ip-cameras/frame/{id}"), &[])
                .await
                .map(|r| r.status);
            if matches!(r, Ok(200)) {
                times.push(t0.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if Instant::now() > end {
                return json!({"id": "S11", "error": format!("{id} showed no frame in 30 s")});
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    json!({
        "id": "S11",
        "setup": format!("{cameras} cameras added one at a time through the API, 720p25 RTSP, 1 s GOP; request to first snapshot"),
        "first_frame_ms": {"p50": pct(&mut times, 50.0), "max": pct(&mut times, 100.0)},
    })
}
