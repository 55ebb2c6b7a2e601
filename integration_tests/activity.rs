//! End-to-end tests of the activity estimate: real GStreamer RTSP H.264 cameras showing a
//! still pattern or the same pattern scrolling, read by the real binary without decoding.
//! The level comes from compressed frame sizes only (no viewer, so nothing is decoded).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn level(c: &Value) -> Option<f64> {
    c["activity"].as_f64()
}

fn units(c: &Value) -> u64 {
    c["video"]["units_in"].as_u64().expect("video.units_in")
}

/// Six status readings of `id`, one per second of its video (15 units at 15 fps).
async fn readings(cw: &Camwall, id: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let mut c = cw
        .wait_camera(id, Duration::from_secs(20), |c| level(c).is_some())
        .await;
    for _ in 0..6 {
        let base = units(&c);
        c = cw
            .wait_camera(id, Duration::from_secs(10), |c| units(c) >= base + 15)
            .await;
        out.push(level(&c).unwrap_or_else(|| panic!("no activity: {c}")));
    }
    out
}

#[tokio::test]
async fn a_still_scene_scores_low_and_a_moving_one_clearly_higher() {
    let (_still, _moving, cw) = still_and_moving();
    let s = readings(&cw, "still").await;
    let m = readings(&cw, "moving").await;
    let s_max = s.iter().cloned().fold(0.0, f64::max);
    let m_min = m.iter().cloned().fold(1.0, f64::min);
    assert!(s_max < 0.2, "still {s:?}");
    assert!(m_min > s_max + 0.3, "still {s:?}, moving {m:?}");
    // Nothing was decoded for it.
    let c = cw.camera("moving").await;
    assert_eq!(c["decoding"], false, "{c}");
    let text = cw.metrics().await;
    assert!(
        text.contains("camwall_camera_activity{camera=\"moving\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn a_camera_that_starts_moving_rises_within_two_seconds_and_subscribers_hear_it() {
    let rtsp = RtspServer::start(&[
        "--pattern",
        "smpte100",
        "--size",
        "320x240",
        "--fps",
        "15",
        "--switch-after",
        "8",
    ]);
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "cam", "url": rtsp.url()}
    ]}));
    let mut ws = ws_connect(&cw).await;
    ws_send(&mut ws, json!({"type": "activity", "cameras": ["cam"]})).await;
    // Readings of the camera's status until it is busy: each with the units seen so far.
    let end = Instant::now() + Duration::from_secs(40);
    let mut last_quiet: Option<u64> = None;
    let mut busy_at = None;
    while Instant::now() < end {
        let c = cw.camera("cam").await;
        match level(&c) {
            Some(l) if l < 0.2 => last_quiet = Some(units(&c)),
            Some(l) if l > 0.5 && last_quiet.is_some() => {
                busy_at = Some(units(&c));
                break;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (quiet, busy) = (
        last_quiet.expect("a quiet reading first"),
        busy_at.expect("a busy reading after the switch"),
    );
    // The switch came after the last quiet reading: the rise took at most this many units,
    // two seconds of video (30 units at 15 fps) plus one reading's spacing.
    assert!(busy - quiet <= 32, "rose after {} units", busy - quiet);
    // The client that asked heard the rise, as an event.
    let ev = next_text(&mut ws, Duration::from_secs(10), |v| {
        v["type"] == "activity" && v["level"].as_f64().is_some_and(|l| l > 0.5)
    })
    .await
    .expect("an activity event with the high level");
    assert_eq!(ev["camera"], "cam");
}
