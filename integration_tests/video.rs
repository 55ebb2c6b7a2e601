//! End-to-end tests of the cameras' own video over the WebSocket: a real GStreamer RTSP H.264
//! camera, the real binary, tokio-tungstenite clients, and the ffmpeg CLI decoding what a
//! client received.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// One message from the server: a text event, or a binary frame split into header and payload.
enum Msg {
    Text(Value),
    Bin(Value, Vec<u8>),
}

async fn next_msg<S>(ws: &mut S, timeout: Duration) -> Option<Msg>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        match m {
            Message::Text(t) => return serde_json::from_str(&t).ok().map(Msg::Text),
            Message::Binary(b) => {
                assert_eq!(b[0], 1, "frame message version");
                let n = u16::from_be_bytes([b[1], b[2]]) as usize;
                let h: Value = serde_json::from_slice(&b[3..3 + n]).expect("frame header");
                return Some(Msg::Bin(h, b[3 + n..].to_vec()));
            }
            _ => continue,
        }
    }
}

async fn h264_camera(fps: u32) -> (RtspServer, Camwall) {
    h264_camera_with(fps, "ball").await
}

/// `pattern` is videotestsrc's: "snow" (noise) makes large units that fill socket buffers.
async fn h264_camera_with(fps: u32, pattern: &str) -> (RtspServer, Camwall) {
    let rtsp = RtspServer::start(&[
        "--pattern",
        pattern,
        "--size",
        "320x240",
        "--fps",
        &fps.to_string(),
    ]);
    let cw = start_camwall(json!({"server": {}, "cameras": [{"id": "cam", "url": rtsp.url()}]}));
    cw.wait_camera("cam", Duration::from_secs(20), |c| {
        c["state"] == "streaming" && c["video"]["units_in"].as_u64() > Some(fps as u64)
    })
    .await;
    (rtsp, cw)
}

/// Annex B from what a client received: the parameter sets from the avcC description, then
/// every access unit with its 4-byte lengths replaced by start codes.
fn annexb(description: &[u8], units: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    // avcC: 5 bytes of header, then SPS count (low 5 bits), [len16, sps]..., PPS count, ...
    let mut i = 5;
    let nsps = description[i] & 0x1f;
    i += 1;
    for _ in 0..nsps {
        let n = u16::from_be_bytes([description[i], description[i + 1]]) as usize;
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(&description[i + 2..i + 2 + n]);
        i += 2 + n;
    }
    let npps = description[i];
    i += 1;
    for _ in 0..npps {
        let n = u16::from_be_bytes([description[i], description[i + 1]]) as usize;
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(&description[i + 2..i + 2 + n]);
        i += 2 + n;
    }
    for u in units {
        let mut j = 0;
        while j + 4 <= u.len() {
            let n = u32::from_be_bytes([u[j], u[j + 1], u[j + 2], u[j + 3]]) as usize;
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(&u[j + 4..j + 4 + n]);
            j += 4 + n;
        }
    }
    out
}

#[tokio::test]
async fn h264_goes_to_the_browser_as_it_is_and_decodes_to_the_cameras_size() {
    let (_rtsp, cw) = h264_camera(15).await;
    let mut ws = ws_connect(&cw).await;
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": ["cam"], "codecs": ["h264"]}),
    )
    .await;
    let mut config: Option<Value> = None;
    let mut tier: Option<Value> = None;
    let mut units: Vec<Vec<u8>> = Vec::new();
    let mut seqs = Vec::new();
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        match next_msg(&mut ws, Duration::from_secs(2)).await {
            Some(Msg::Text(v)) if v["type"] == "video_config" => config = Some(v),
            Some(Msg::Text(v)) if v["type"] == "tier" => tier = Some(v),
            Some(Msg::Bin(h, payload)) => {
                assert_eq!(h["kind"], "video", "{h}");
                if units.is_empty() {
                    assert_eq!(h["key"], true, "the first unit is a keyframe: {h}");
                    assert!(config.is_some(), "video_config comes before the first unit");
                }
                seqs.push(h["seq"].as_u64().unwrap());
                units.push(payload);
            }
            Some(Msg::Text(_)) => {}
            None => break,
        }
    }
    let tier = tier.expect("a tier event");
    assert_eq!(
        (tier["codec"].as_str(), tier["mode"].as_str()),
        (Some("h264"), Some("full"))
    );
    let config = config.expect("a video_config event");
    assert!(
        config["codec"].as_str().unwrap().starts_with("avc1."),
        "{config}"
    );
    assert_eq!(
        (config["width"].as_u64(), config["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert_eq!(config["format"], "avcc");
    assert!(units.len() >= 40, "{} units in 4 s at 15 fps", units.len());
    // No unit missing: a fast client gets every one, in order.
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "consecutive units");
    }
    // What the client got decodes, with FFmpeg, to the camera's size and frame count.
    let description = base64::engine::general_purpose::STANDARD
        .decode(config["description"].as_str().unwrap())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("got.h264");
    std::fs::write(&path, annexb(&description, &units)).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,nb_read_frames",
            "-of",
            "json",
        ])
        .arg(&path)
        .output()
        .expect("ffprobe");
    let probe: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let s = &probe["streams"][0];
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(320), Some(240)),
        "{probe}"
    );
    let frames: usize = s["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(
        frames + 2 >= units.len(),
        "{frames} frames decoded from {} units",
        units.len()
    );
    // No decoding was needed for this client: frames went out as they came.
    let status = cw.camera("cam").await;
    assert_eq!(status["video"]["codec"], "h264");
    assert_eq!(status["jpeg_encodes"], 0, "{status}");
}

#[tokio::test]
async fn a_client_joining_mid_gop_gets_the_keyframe_and_what_followed_at_once() {
    let (_rtsp, cw) = h264_camera(15).await;
    let mut burst_seen = false;
    for _ in 0..4 {
        let newest = cw.camera("cam").await["video"]["units_in"]
            .as_u64()
            .unwrap();
        let mut ws = ws_connect(&cw).await;
        ws_send(
            &mut ws,
            json!({"type": "subscribe", "cameras": ["cam"], "codecs": ["h264"]}),
        )
        .await;
        let mut first: Option<Value> = None;
        let mut got = 0;
        while got < 5 {
            match next_msg(&mut ws, Duration::from_secs(3)).await {
                Some(Msg::Bin(h, _)) => {
                    if first.is_none() {
                        assert_eq!(h["key"], true, "a joining client starts at a keyframe");
                        first = Some(h.clone());
                    }
                    got += 1;
                }
                Some(Msg::Text(_)) => {}
                None => panic!("no video within 3 s"),
            }
        }
        // The GOP was cached: the keyframe came from before the subscription (unless the
        // client happened to join right at a keyframe; then try again).
        if first
            .and_then(|f| f["seq"].as_u64())
            .is_some_and(|s| s < newest)
        {
            burst_seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(230)).await;
    }
    assert!(burst_seen, "a client joining mid-GOP got the cached GOP");
}

#[tokio::test]
async fn a_client_that_stops_reading_resumes_at_a_keyframe_and_never_slows_another() {
    let (_rtsp, cw) = h264_camera_with(25, "snow").await;
    let mut slow = ws_connect_small_buffer(&cw, 4096).await;
    let mut fast = ws_connect(&cw).await;
    for ws in [&mut slow] {
        ws_send(
            ws,
            json!({"type": "subscribe", "cameras": ["cam"], "codecs": ["h264"], "quality": 80}),
        )
        .await;
    }
    ws_send(
        &mut fast,
        json!({"type": "subscribe", "cameras": ["cam"], "codecs": ["h264"], "quality": 80}),
    )
    .await;
    // The slow client reads nothing for 7 s (more than the 128 units the broadcast holds);
    // the fast one reads everything meanwhile.
    let mut fast_seqs = Vec::new();
    let end = Instant::now() + Duration::from_secs(7);
    while Instant::now() < end {
        if let Some(Msg::Bin(h, _)) = next_msg(&mut fast, Duration::from_secs(2)).await {
            fast_seqs.push(h["seq"].as_u64().unwrap());
        }
    }
    assert!(
        fast_seqs.len() >= 140,
        "fast client got {} units in 7 s",
        fast_seqs.len()
    );
    for w in fast_seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "the fast client misses nothing");
    }
    // Now the slow one reads: after every gap in its sequence, the next unit is a keyframe.
    let mut prev: Option<u64> = None;
    let mut gaps = 0;
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        if let Some(Msg::Bin(h, _)) = next_msg(&mut slow, Duration::from_secs(2)).await {
            let seq = h["seq"].as_u64().unwrap();
            if let Some(p) = prev {
                if seq != p + 1 {
                    gaps += 1;
                    assert_eq!(
                        h["key"], true,
                        "after a gap ({p} -> {seq}) comes a keyframe"
                    );
                }
            }
            prev = Some(seq);
        }
    }
    assert!(gaps >= 1, "the stalled client skipped ahead");
}

#[tokio::test]
async fn clients_without_codecs_and_mjpeg_cameras_get_jpeg_as_before() {
    let (_rtsp, cw) = h264_camera(15).await;
    let mut ws = ws_connect(&cw).await;
    ws_send(&mut ws, json!({"type": "subscribe", "cameras": ["cam"]})).await;
    let mut seen_jpeg = 0;
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end && seen_jpeg < 3 {
        if let Some(Msg::Bin(h, payload)) = next_msg(&mut ws, Duration::from_secs(2)).await {
            assert_eq!(h["kind"], "jpeg");
            assert_eq!(&payload[..2], &[0xFF, 0xD8]);
            seen_jpeg += 1;
        }
    }
    assert_eq!(seen_jpeg, 3);
    // A client whose decoder fails falls back to JPEG for that camera.
    let mut v = ws_connect(&cw).await;
    ws_send(
        &mut v,
        json!({"type": "subscribe", "cameras": ["cam"], "codecs": ["h264"]}),
    )
    .await;
    loop {
        match next_msg(&mut v, Duration::from_secs(3)).await {
            Some(Msg::Bin(h, _)) if h["kind"] == "video" => break,
            Some(_) => {}
            None => panic!("no video"),
        }
    }
    ws_send(
        &mut v,
        json!({"type": "video_error", "camera": "cam", "message": "test decoder failed"}),
    )
    .await;
    let end = Instant::now() + Duration::from_secs(4);
    let mut jpeg_after = false;
    while Instant::now() < end {
        if let Some(Msg::Bin(h, _)) = next_msg(&mut v, Duration::from_secs(2)).await {
            if h["kind"] == "jpeg" {
                jpeg_after = true;
                break;
            }
        }
    }
    assert!(jpeg_after, "JPEG after video_error");
}

#[tokio::test]
async fn hevc_goes_as_video_only_to_clients_that_list_h265_and_mjpeg_cameras_stay_jpeg() {
    let rtsp = RtspServer::start(&[
        "--codec",
        "h265",
        "--pattern",
        "ball",
        "--size",
        "320x240",
        "--fps",
        "15",
    ]);
    let mjpeg = MjpegServer::start("testsrc2=size=160x120:rate=10", 3);
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "hevc", "url": rtsp.url()},
        {"id": "mj", "url": mjpeg.url()}
    ]}));
    let st = cw
        .wait_camera("hevc", Duration::from_secs(20), |c| {
            c["state"] == "streaming" && c["video"]["units_in"].as_u64() > Some(15)
        })
        .await;
    assert_eq!(st["video"]["codec"], "h265", "{st}");
    assert!(
        st["video"]["codec_string"]
            .as_str()
            .is_some_and(|c| c.starts_with("hvc1.")),
        "{st}"
    );
    cw.wait_camera("mj", Duration::from_secs(20), |c| c["state"] == "streaming")
        .await;
    // Wanting what a client says it decodes: h264 only → JPEG for the HEVC camera and for
    // the MJPEG one; h265 → the HEVC camera's own units.
    for (codecs, want) in [
        (json!(["h264"]), "jpeg"),
        (json!(["h264", "h265"]), "video"),
    ] {
        let mut ws = ws_connect(&cw).await;
        ws_send(
            &mut ws,
            json!({"type": "subscribe", "cameras": ["hevc", "mj"], "codecs": codecs}),
        )
        .await;
        let (mut hevc_kind, mut mj_kind, mut config) = (None, None, None);
        let end = Instant::now() + Duration::from_secs(8);
        while Instant::now() < end && (hevc_kind.is_none() || mj_kind.is_none()) {
            match next_msg(&mut ws, Duration::from_secs(2)).await {
                Some(Msg::Text(v)) if v["type"] == "video_config" => config = Some(v),
                Some(Msg::Bin(h, _)) => {
                    let kind = h["kind"].as_str().map(str::to_string);
                    if h["camera"] == "hevc" && hevc_kind.is_none() {
                        if kind.as_deref() == Some("video") {
                            assert_eq!(h["key"], true, "a keyframe first");
                        }
                        hevc_kind = kind;
                    } else if h["camera"] == "mj" && mj_kind.is_none() {
                        mj_kind = kind;
                    }
                }
                _ => {}
            }
        }
        assert_eq!(
            hevc_kind.as_deref(),
            Some(want),
            "HEVC camera with codecs {codecs}"
        );
        assert_eq!(
            mj_kind.as_deref(),
            Some("jpeg"),
            "MJPEG camera with codecs {codecs}"
        );
        if want == "video" {
            let c = config.expect("video_config");
            assert!(c["codec"].as_str().unwrap().starts_with("hvc1."), "{c}");
            assert_eq!(c["camera"], "hevc");
        }
    }
}

/// The `pts` of consecutive messages of `kind` from one client: each step is the camera's
/// 40 ms per sequence number, whatever the arrival jitter.
async fn assert_pts_follow_the_camera<S>(ws: &mut S, kind: &str, want: usize)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut got: Vec<(u64, i64)> = Vec::new();
    while got.len() < want {
        match next_msg(ws, Duration::from_secs(10)).await {
            Some(Msg::Bin(h, _)) => {
                assert_eq!(h["kind"], kind, "{h}");
                let pts = h["pts"].as_i64().unwrap_or_else(|| panic!("no pts: {h}"));
                got.push((h["seq"].as_u64().expect("seq"), pts));
            }
            Some(Msg::Text(_)) => {}
            None => panic!("{kind}: {} frames, then nothing", got.len()),
        }
    }
    for w in got.windows(2) {
        let (dseq, dpts) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
        assert!(dseq >= 1, "{kind}: seqs increase: {w:?}");
        assert_eq!(dpts, 40_000 * dseq as i64, "{kind}: {w:?}");
    }
}

#[tokio::test]
async fn units_and_jpeg_frames_carry_the_cameras_own_clock() {
    let (_rtsp, cw) = h264_camera(25).await;
    let mut video = ws_connect(&cw).await;
    ws_send(
        &mut video,
        json!({"type": "subscribe", "cameras": ["cam"], "codecs": ["h264"]}),
    )
    .await;
    assert_pts_follow_the_camera(&mut video, "video", 30).await;
    drop(video);
    // A full-rate JPEG lane: each frame has the pts of the picture it shows.
    let mut jpeg = ws_connect(&cw).await;
    ws_send(
        &mut jpeg,
        json!({"type": "subscribe", "cameras": ["cam"], "quality": 85}),
    )
    .await;
    assert_pts_follow_the_camera(&mut jpeg, "jpeg", 30).await;
}

#[tokio::test]
async fn a_long_link_keeps_the_full_video_at_the_cameras_rate() {
    let (_rtsp, cw) = h264_camera_with(25, "ball").await;
    // 200 ms each way, no rate cap: a 400 ms round trip that carries everything.
    let mut ws = common::link::ws_over_long_link(&cw.base, Duration::from_millis(200)).await;
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": ["cam"], "quality": "auto", "codecs": ["h264"]}),
    )
    .await;
    // 300 access units (12 s of the camera), each acknowledged as drawn; not one tier event
    // may move the client off the full video.
    let mut units = 0;
    let mut tiers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while units < 300 {
        assert!(Instant::now() < deadline, "{units} units; tiers {tiers:?}");
        let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await
        else {
            panic!("the stream stopped after {units} units; tiers {tiers:?}");
        };
        match msg {
            Message::Binary(b) => {
                let n = u16::from_be_bytes([b[1], b[2]]) as usize;
                let header: Value = serde_json::from_slice(&b[3..3 + n]).unwrap();
                units += 1;
                ws_send(
                    &mut ws,
                    json!({"type": "ack", "camera": "cam", "seq": header["seq"]}),
                )
                .await;
            }
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "tier" {
                    tiers.push((v["level"].as_u64().unwrap(), v["mode"].clone()));
                }
            }
            _ => {}
        }
    }
    assert!(
        !tiers.is_empty() && tiers.iter().all(|(l, m)| *l == 0 && m == "full"),
        "left the full video on a link that carries everything: {tiers:?}"
    );
}
