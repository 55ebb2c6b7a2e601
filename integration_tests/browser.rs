//! Browser tests in headless Debian Chromium: the pages against the real binary.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn advanced_test_page_polls_counts_304s_and_adapts_quality_to_latency() {
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "a", "url": "lavfi:testsrc2=size=320x240:rate=5"},
        {"id": "b", "url": "lavfi:testsrc=size=160x120:rate=5"}
    ]}));
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    cw.wait_camera("b", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    let mut b = Browser::open(&cw.url("/advanced_test")).await;
    b.call("Network.enable", json!({})).await;
    let report = "JSON.stringify({fps: state.fps, q: state.quality, lat: state.latency, nm: state.notModified, err: state.errors})";
    // Every tile draws frames, and polling faster than the camera gives 304s.
    b.wait_for(
        "state.cameras.length === 2 && state.cameras.every(c => state.fps[c.id] > 0 && state.notModified[c.id] > 0)",
        report,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(b.eval("CONFIG.FRAME_POLL_INTERVAL").await, json!(8));
    assert_eq!(b.eval("typeof state.latency.a").await, json!("number"));
    // Added latency: every camera steps down to quality 70 (over LATENCY_THRESHOLD_LOW).
    b.call(
        "Network.emulateNetworkConditions",
        json!({"offline": false, "latency": 150, "downloadThroughput": -1, "uploadThroughput": -1}),
    )
    .await;
    b.wait_for(
        "state.cameras.every(c => state.quality[c.id] === 70 && state.latency[c.id] >= 100)",
        report,
        Duration::from_secs(20),
    )
    .await;
    // Latency removed: back up to 85.
    b.call(
        "Network.emulateNetworkConditions",
        json!({"offline": false, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}),
    )
    .await;
    b.wait_for(
        "state.cameras.every(c => state.quality[c.id] === 85)",
        report,
        Duration::from_secs(20),
    )
    .await;
    // The server saw the qualities the page asked for.
    let status = cw.camera("a").await;
    let qualities: Vec<u64> = status["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["quality"].as_u64().unwrap())
        .collect();
    assert!(
        qualities.contains(&70) && qualities.contains(&85),
        "{qualities:?}"
    );
}

#[tokio::test]
async fn wall_page_draws_every_camera_over_the_websocket() {
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "a", "url": "lavfi:testsrc2=size=320x240:rate=10"},
        {"id": "b", "url": "lavfi:testsrc=size=320x240:rate=10"},
        {"id": "off", "url": "lavfi:testsrc2", "enabled": false}
    ]}));
    cw.wait_camera("a", Duration::from_secs(15), |c| c["state"] == "streaming")
        .await;
    let mut b = Browser::open(&cw.url("/")).await;
    let report = "JSON.stringify([...document.querySelectorAll('.tile')].map(t => t.innerText))";
    b.wait_for(
        "document.querySelectorAll('.tile').length === 3 && [...document.querySelectorAll('.tile canvas')].slice(0, 2).every(c => c.width === 320)",
        report,
        Duration::from_secs(20),
    )
    .await;
    // Live stats show on the live tiles; the disabled camera says so.
    b.wait_for(
        "[...document.querySelectorAll('.tile .stats')].slice(0, 2).every(s => /fps/.test(s.textContent))",
        report,
        Duration::from_secs(10),
    )
    .await;
    let text = b.eval(report).await.to_string();
    assert!(text.contains("disabled"), "{text}");
    // The page keeps receiving: encodes for its tier keep coming.
    let before = cw.camera("a").await["jpeg_encodes"].as_u64().unwrap();
    cw.wait_camera("a", Duration::from_secs(10), |c| {
        c["jpeg_encodes"].as_u64().unwrap() >= before + 10
    })
    .await;
    // A camera renamed through the API (no token configured: open) is renamed on the open
    // page, without a reload.
    let marker = "window.__sameDocument = true";
    b.eval(marker).await;
    let r = reqwest::Client::new()
        .patch(cw.url("/api/ip-cameras/b"))
        .json(&json!({"name": "Back door"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    b.wait_for(
        "[...document.querySelectorAll('.tile .name')].some(n => n.textContent === 'Back door')",
        report,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(b.eval("window.__sameDocument === true").await, json!(true));
}
