//! End-to-end tests against a real RTSP server (GStreamer's, from Debian packages).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn h264_over_rtsp_streams_with_right_colours() {
    let rtsp = RtspServer::start(&["--pattern", "smpte100", "--size", "640x360", "--fps", "15"]);
    let cw = start_camwall(json!({"server": {}, "cameras": [{"id": "bars", "url": rtsp.url()}]}));
    let c = cw
        .wait_camera("bars", Duration::from_secs(20), |c| {
            c["state"] == "streaming"
        })
        .await;
    assert_eq!(c["codec"], "h264");
    assert_eq!(
        (c["width"].as_u64(), c["height"].as_u64()),
        (Some(640), Some(360))
    );
    let res = get_frame(&cw, "bars", "?quality=95").await;
    assert_eq!(res.status(), 200);
    let (w, h, rgb) = decode_rgb(&res.bytes().await.unwrap());
    assert_eq!((w, h), (640, 360));
    // smpte100: seven 100 % bars: white, yellow, cyan, green, magenta, red, blue.
    // Limited-range YUV encoded as is would give whites near 235 and blacks near 16.
    let expect: [[u8; 3]; 7] = [
        [255, 255, 255],
        [255, 255, 0],
        [0, 255, 255],
        [0, 255, 0],
        [255, 0, 255],
        [255, 0, 0],
        [0, 0, 255],
    ];
    for (i, want) in expect.iter().enumerate() {
        let x = w * (2 * i + 1) / 14;
        let y = h / 2;
        let px = &rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
        for ch in 0..3 {
            let d = (px[ch] as i32 - want[ch] as i32).abs();
            assert!(d <= 12, "bar {i} channel {ch}: got {px:?}, want {want:?}");
        }
    }
}

#[tokio::test]
async fn camera_recovers_when_the_rtsp_server_comes_back() {
    let mut rtsp = RtspServer::start(&["--pattern", "ball", "--size", "320x240", "--fps", "15"]);
    let port = rtsp.port;
    let cw = start_camwall(json!({
        "server": {},
        "cameras": [
            {"id": "cam", "url": rtsp.url(), "stall_timeout_ms": 2000},
            {"id": "other", "url": "lavfi:testsrc2=size=160x120:rate=10"}
        ]
    }));
    let before = cw
        .wait_camera("cam", Duration::from_secs(20), |c| {
            c["state"] == "streaming"
        })
        .await;
    rtsp.kill();
    let lost = cw
        .wait_camera("cam", Duration::from_secs(10), |c| c["state"] == "backoff")
        .await;
    assert!(lost["last_error"].as_str().is_some(), "{lost}");
    // The other camera is unaffected.
    let other = cw.camera("other").await;
    assert_eq!(other["state"], "streaming");
    let _rtsp2 = RtspServer::start_on(
        port,
        &["--pattern", "ball", "--size", "320x240", "--fps", "15"],
    );
    let back = cw
        .wait_camera("cam", Duration::from_secs(40), |c| {
            c["state"] == "streaming" && c["frames_in"].as_u64() > before["frames_in"].as_u64()
        })
        .await;
    assert!(back["reconnects"].as_u64().unwrap() >= 1, "{back}");
    assert_eq!(get_frame(&cw, "cam", "").await.status(), 200);
}

#[tokio::test]
async fn audio_tracks_show_in_the_status_and_the_video_plays_on() {
    let aac = RtspServer::small(Some(("aac", 440)));
    let pcmu = RtspServer::small(Some(("pcmu", 1000)));
    let mute = RtspServer::small(None);
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "aac", "url": aac.url()},
        {"id": "pcmu", "url": pcmu.url()},
        {"id": "mute", "url": mute.url()},
        {"id": "old", "url": aac.url(), "ingest": "ffmpeg"}
    ]}));
    for (id, codec, rate) in [("aac", "aac", 48000), ("pcmu", "pcmu", 8000)] {
        let c = cw
            .wait_camera(id, Duration::from_secs(20), |c| {
                c["state"] == "streaming" && c["audio_frames_in"].as_u64() >= Some(20)
            })
            .await;
        assert_eq!(c["ingest"], "retina", "{c}");
        assert_eq!(
            c["audio"],
            json!({"codec": codec, "sample_rate": rate, "channels": 1}),
            "{c}"
        );
        assert_eq!(c["codec"], "h264");
        let res = get_frame(&cw, id, "").await;
        assert_eq!(res.status(), 200);
        let (w, h, _) = decode_rgb(&res.bytes().await.unwrap());
        assert_eq!((w, h), (320, 180), "{id}");
    }
    let c = cw
        .wait_camera("mute", Duration::from_secs(20), |c| {
            c["state"] == "streaming"
        })
        .await;
    assert_eq!(
        (&c["ingest"], &c["audio"]),
        (&json!("retina"), &json!(null))
    );
    // FFmpeg's reader, asked for by the camera's config, keeps the AAC track too.
    let c = cw
        .wait_camera("old", Duration::from_secs(20), |c| {
            c["state"] == "streaming" && c["audio_frames_in"].as_u64() >= Some(20)
        })
        .await;
    assert_eq!(
        (&c["ingest"], &c["audio"]),
        (
            &json!("ffmpeg"),
            &json!({"codec": "aac", "sample_rate": 48000, "channels": 1})
        )
    );
    assert_eq!(get_frame(&cw, "old", "").await.status(), 200);
}

#[tokio::test]
async fn a_camera_the_rtsp_reader_refuses_names_the_ffmpeg_fallback_which_reads_it() {
    let vp8 = RtspServer::start(&["--codec", "vp8", "--size", "160x120", "--fps", "10"]);
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "new", "url": vp8.url()},
        {"id": "old", "url": vp8.url(), "ingest": "ffmpeg"}
    ]}));
    let c = cw
        .wait_camera("new", Duration::from_secs(20), |c| {
            c["state"] == "backoff" && c["last_error"].is_string()
        })
        .await;
    let error = c["last_error"].as_str().unwrap();
    assert!(
        error.contains("video/vp8") && error.contains(r#""ingest": "ffmpeg""#),
        "{error}"
    );
    let c = cw
        .wait_camera("old", Duration::from_secs(20), |c| {
            c["state"] == "streaming"
        })
        .await;
    assert_eq!(
        (&c["ingest"], &c["codec"]),
        (&json!("ffmpeg"), &json!("vp8"))
    );
    assert_eq!(get_frame(&cw, "old", "").await.status(), 200);
}

#[tokio::test]
async fn rtsp_over_udp_when_the_config_asks() {
    let rtsp = RtspServer::start(&["--size", "320x180", "--fps", "15"]);
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "udp", "url": rtsp.url(), "options": {"rtsp_transport": "udp"}},
        {"id": "bad", "url": rtsp.url(), "options": {"rtsp_transport": "carrier-pigeon"}}
    ]}));
    cw.wait_camera("udp", Duration::from_secs(20), |c| {
        c["state"] == "streaming" && c["frames_in"].as_u64() >= Some(30)
    })
    .await;
    let res = get_frame(&cw, "udp", "").await;
    assert_eq!(res.status(), 200);
    assert_eq!(decode_rgb(&res.bytes().await.unwrap()).0, 320);
    let c = cw
        .wait_camera("bad", Duration::from_secs(20), |c| {
            c["last_error"].is_string()
        })
        .await;
    let error = c["last_error"].as_str().unwrap();
    assert!(error.contains("carrier-pigeon"), "{error}");
}

/// The RTSP reader's sessions are tasks: a hundred cameras take no more threads than one.
#[tokio::test]
async fn a_hundred_rtsp_cameras_run_on_the_threads_of_one() {
    let rtsp = RtspServer::start(&["--size", "160x120", "--fps", "10"]);
    let threads_with = |n: usize| {
        let url = rtsp.url();
        async move {
            let cams: Vec<_> = (0..n)
                .map(|i| json!({"id": format!("c{i}"), "url": url}))
                .collect();
            let cw = start_camwall(json!({"server": {}, "cameras": cams}));
            for i in 0..n {
                cw.wait_camera(&format!("c{i}"), Duration::from_secs(60), |c| {
                    c["state"] == "streaming" && c["frames_published"].as_u64() >= Some(1)
                })
                .await;
            }
            proc_status(cw.pid(), "Threads")
        }
    };
    let one = threads_with(1).await;
    let hundred = threads_with(100).await;
    // Slack for the runtime's blocking pool (a status request, a log flush).
    assert!(
        hundred <= one + 4,
        "1 camera: {one} threads, 100: {hundred}"
    );
}

#[tokio::test]
async fn a_resolution_change_mid_stream_keeps_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut both = Vec::new();
    for size in ["320x240", "480x272"] {
        let path = dir.path().join(format!("{size}.h264"));
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=10"),
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-g",
            "10",
            "-bf",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "h264",
            &path_str(&path),
        ]);
        both.extend(std::fs::read(&path).unwrap());
    }
    // Raw Annex B streams concatenate into one whose parameter sets change mid-way; the server
    // loops it, so the camera switches size every second.
    let clip = dir.path().join("both.h264");
    std::fs::write(&clip, both).unwrap();
    let rtsp = RtspServer::start(&["--clip", &path_str(&clip), "--fps", "10"]);
    let cw = start_camwall(json!({"server": {}, "cameras": [{"id": "sw", "url": rtsp.url()}]}));
    cw.wait_camera("sw", Duration::from_secs(20), |c| c["state"] == "streaming")
        .await;
    let mut sizes = std::collections::HashSet::new();
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while sizes.len() < 2 && std::time::Instant::now() < end {
        let r = get_frame(&cw, "sw", "").await;
        if r.status() == 200 {
            let (w, h, _) = decode_rgb(&r.bytes().await.unwrap());
            sizes.insert((w, h));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        sizes,
        std::collections::HashSet::from([(320, 240), (480, 272)])
    );
    let c = cw.camera("sw").await;
    assert_eq!(
        (&c["ingest"], &c["reconnects"]),
        (&json!("retina"), &json!(0)),
        "{c}"
    );
}

#[tokio::test]
async fn the_probe_reads_an_rtsp_camera_with_the_reader_it_will_use() {
    let rtsp = RtspServer::start(&["--size", "320x180", "--fps", "15", "--audio", "aac"]);
    let cw = start_camwall(json!({"server": {}, "cameras": []}));
    let c = reqwest::Client::new();
    for ingest in ["retina", "ffmpeg"] {
        let mut body = json!({"url": rtsp.url()});
        if ingest == "ffmpeg" {
            body["ingest"] = json!("ffmpeg");
        }
        let res = c
            .post(cw.url("/api/ip-cameras/probe"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let found: serde_json::Value = res.json().await.unwrap();
        assert_eq!(found["ingest"], ingest, "{found}");
        assert_eq!(found["codec"], "h264", "{found}");
        assert_eq!(found["audio"], true, "{found}");
        // Both readers keep the AAC track (the test server sends 48 kHz mono).
        assert_eq!(
            (
                &found["audio_codec"],
                &found["audio_sample_rate"],
                &found["audio_channels"]
            ),
            (&json!("aac"), &json!(48000), &json!(1)),
            "{found}"
        );
        let snap = found["snapshot"].as_str().unwrap();
        use base64::Engine;
        let jpeg = base64::engine::general_purpose::STANDARD
            .decode(snap.trim_start_matches("data:image/jpeg;base64,"))
            .unwrap();
        assert_eq!(decode_rgb(&jpeg).0, 320, "{ingest}");
    }
}
