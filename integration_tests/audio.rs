//! The cameras' own audio to listeners, end to end: GStreamer RTSP cameras with a sine on
//! their audio track (AAC 440 Hz, G.711 µ-law 1 kHz), camwall reading them, and listeners:
//! a WebSocket client that asks for audio (protocol version 3; µ-law decoded by its table,
//! AAC by the ffmpeg CLI), a third-party WHEP player (aiortc: G.711 as it came, AAC as
//! camwall's Opus), and the wall page in chromium (its sound button, WebCodecs' AudioDecoder
//! with the picture held to the sound's clock, or WebRTC on an insecure page). What each heard
//! is checked for its pitch.

mod common;

use std::io::Write;
use std::time::Duration;

use base64::Engine;
use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// What a client received for one camera.
#[derive(Default)]
struct Heard {
    config: Option<Value>,
    /// (pts µs, payload) in arrival order.
    frames: Vec<(i64, Vec<u8>)>,
    video_units: usize,
}

/// Reads the socket until `done` says enough was heard of every camera, within `timeout`.
async fn listen(
    ws: &mut Ws,
    cameras: &[&str],
    timeout: Duration,
    done: impl Fn(&Heard) -> bool,
) -> std::collections::HashMap<String, Heard> {
    let mut heard: std::collections::HashMap<String, Heard> = cameras
        .iter()
        .map(|c| (c.to_string(), Heard::default()))
        .collect();
    let end = tokio::time::Instant::now() + timeout;
    while !heard.values().all(&done) {
        let Ok(Some(Ok(msg))) = tokio::time::timeout_at(end, ws.next()).await else {
            break;
        };
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "audio_config" {
                    if let Some(h) = heard.get_mut(v["camera"].as_str().unwrap()) {
                        h.config = Some(v);
                    }
                }
            }
            Message::Binary(b) => {
                let n = u16::from_be_bytes([b[1], b[2]]) as usize;
                let header: Value = serde_json::from_slice(&b[3..3 + n]).unwrap();
                let Some(h) = heard.get_mut(header["camera"].as_str().unwrap()) else {
                    continue;
                };
                match header["kind"].as_str() {
                    Some("audio") => {
                        assert!(h.config.is_some(), "a frame before its audio_config");
                        h.frames
                            .push((header["pts"].as_i64().unwrap(), b[3 + n..].to_vec()));
                    }
                    Some("video") => h.video_units += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    heard
}

/// G.711 µ-law to linear (ITU-T G.711).
fn ulaw(b: u8) -> i16 {
    let b = !b;
    let sign = b & 0x80;
    let exp = (b >> 4) & 7;
    let mantissa = i32::from(b & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exp) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// The pitch of a sine, from how often it crosses zero (upward) per second.
fn pitch(samples: &[i16], rate: u32) -> f64 {
    let ups = samples.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
    ups as f64 * f64::from(rate) / samples.len() as f64
}

/// Raw AAC frames in ADTS, as the ffmpeg CLI reads them, from the AudioSpecificConfig.
fn adts(config: &[u8], frames: &[(i64, Vec<u8>)]) -> Vec<u8> {
    let aot = config[0] >> 3;
    let sf = ((config[0] & 7) << 1) | (config[1] >> 7);
    let ch = (config[1] >> 3) & 0x0f;
    let mut out = Vec::new();
    for (_, f) in frames {
        let len = 7 + f.len();
        out.extend_from_slice(&[
            0xFF,
            0xF1,
            ((aot - 1) << 6) | (sf << 2) | (ch >> 2),
            ((ch & 3) << 6) | (len >> 11) as u8,
            ((len >> 3) & 0xff) as u8,
            (((len & 7) << 5) as u8) | 0x1F,
            0xFC,
        ]);
        out.extend_from_slice(f);
    }
    out
}

/// Decodes ADTS AAC to 16-bit mono PCM with the ffmpeg CLI.
fn decode_aac(adts: &[u8]) -> Vec<i16> {
    let mut child = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "aac",
            "-i",
            "pipe:0",
        ])
        .args(["-f", "s16le", "-ac", "1", "pipe:1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    let mut stdin = child.stdin.take().unwrap();
    let input = adts.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "ffmpeg decodes the AAC");
    out.stdout
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// A GStreamer RTSP camera, H.264 320x180 at 25 fps with a sine of `hz` in `codec` (`aac`,
/// `pcmu`, `opus`).
fn tone_camera(codec: &str, hz: &str) -> RtspServer {
    RtspServer::start(&[
        "--size",
        "320x180",
        "--fps",
        "25",
        "--audio",
        codec,
        "--audio-freq",
        hz,
    ])
}

#[tokio::test]
async fn a_listener_hears_each_camera_at_its_own_pitch_beside_its_video() {
    let aac = RtspServer::small(Some(("aac", 440)));
    let pcmu = RtspServer::small(Some(("pcmu", 1000)));
    let mute = RtspServer::small(None);
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "aac", "url": aac.url()},
        {"id": "pcmu", "url": pcmu.url()},
        {"id": "mute", "url": mute.url()}
    ]}));
    for id in ["aac", "pcmu", "mute"] {
        cw.wait_camera(id, Duration::from_secs(20), |c| c["state"] == "streaming")
            .await;
    }
    let mut ws = ws_connect(&cw).await;
    let hello = next_text(&mut ws, Duration::from_secs(5), |v| v["type"] == "hello")
        .await
        .expect("hello");
    assert_eq!(hello["version"], 4);
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": ["aac", "pcmu", "mute"], "codecs": ["h264"],
               "audio": ["aac", "pcmu", "opus"]}),
    )
    .await;
    // Two seconds of sound from each camera with audio, and the video of all three.
    let heard = listen(
        &mut ws,
        &["aac", "pcmu", "mute"],
        Duration::from_secs(20),
        |h| h.video_units >= 20 && (h.config.is_none() || h.frames.len() >= 100),
    )
    .await;
    let mute = &heard["mute"];
    assert!(mute.video_units >= 20, "the camera without audio plays on");
    assert!(mute.config.is_none() && mute.frames.is_empty());

    // µ-law at 8 kHz: each byte a sample, so each frame's pts follows the bytes before it.
    let p = &heard["pcmu"];
    let c = p.config.as_ref().expect("pcmu audio_config");
    assert_eq!(
        (&c["codec"], &c["family"], &c["sample_rate"], &c["channels"]),
        (&json!("ulaw"), &json!("pcmu"), &json!(8000), &json!(1))
    );
    assert!(p.frames.len() >= 100 && p.video_units >= 20);
    for w in p.frames.windows(2) {
        let expect = w[0].1.len() as i64 * 125;
        assert!(
            (w[1].0 - w[0].0 - expect).abs() <= 1,
            "pts steps by the samples"
        );
    }
    let samples: Vec<i16> = p
        .frames
        .iter()
        .flat_map(|(_, f)| f.iter().map(|b| ulaw(*b)))
        .collect();
    let hz = pitch(&samples, 8000);
    assert!((hz - 1000.0).abs() < 30.0, "pcmu pitch {hz} Hz");
    assert!(loudness(&samples) > 1000.0, "not silence");

    // AAC: 1024 samples a frame at 48 kHz, decoded by FFmpeg with the config's description.
    let a = &heard["aac"];
    let c = a.config.as_ref().expect("aac audio_config");
    assert_eq!(
        (&c["codec"], &c["sample_rate"], &c["channels"]),
        (&json!("mp4a.40.2"), &json!(48000), &json!(1))
    );
    let config = base64::engine::general_purpose::STANDARD
        .decode(c["description"].as_str().expect("AAC has a description"))
        .unwrap();
    for w in a.frames.windows(2) {
        let step = w[1].0 - w[0].0;
        assert!((step - 21_333).abs() <= 1, "AAC pts step {step} µs");
    }
    let samples = decode_aac(&adts(&config, &a.frames));
    assert!(samples.len() >= 48_000, "{} samples", samples.len());
    // The decoder's first frame is its priming: measure past it.
    let hz = pitch(&samples[4096..], 48_000);
    assert!((hz - 440.0).abs() < 15.0, "aac pitch {hz} Hz");
    assert!(loudness(&samples[4096..]) > 1000.0, "not silence");
}

#[tokio::test]
async fn audio_goes_only_to_a_client_that_asked_and_a_bad_list_is_refused() {
    let aac = RtspServer::small(Some(("aac", 440)));
    let cw = start_camwall(json!({"server": {}, "cameras": [{"id": "cam", "url": aac.url()}]}));
    cw.wait_camera("cam", Duration::from_secs(20), |c| {
        c["state"] == "streaming" && c["audio_frames_in"].as_u64() >= Some(10)
    })
    .await;
    let mut ws = ws_connect(&cw).await;
    // Not a list: an error event, and the connection lives on.
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": ["cam"], "codecs": ["h264"], "audio": "aac"}),
    )
    .await;
    let err = next_text(&mut ws, Duration::from_secs(5), |v| v["type"] == "error")
        .await
        .expect("an error event");
    assert_eq!(err["code"], "bad_message");
    // Video without audio: 50 units (more than three seconds of the camera's audio frames
    // at 15 fps) and not one audio frame.
    let fifty = |h: &Heard| h.video_units >= 50;
    let h = watch(&mut ws, json!(null), fifty).await;
    assert!(h.video_units >= 50 && h.config.is_none() && h.frames.is_empty());
    // A codec the camera does not send: nothing either; then the one it sends.
    let h = watch(&mut ws, json!(["pcmu"]), fifty).await;
    assert!(
        h.video_units >= 50 && h.frames.is_empty(),
        "no pcmu from an AAC camera"
    );
    let h = watch(&mut ws, json!(["aac"]), |h| h.frames.len() >= 20).await;
    assert!(h.frames.len() >= 20 && h.config.is_some());
    // Unsubscribed, then watched again without audio: the sound stops with the first (the
    // pong says everything sent before the unsubscribe was read).
    ws_send(&mut ws, json!({"type": "unsubscribe", "cameras": ["cam"]})).await;
    ws_send(&mut ws, json!({"type": "ping", "t0": 1})).await;
    next_text(&mut ws, Duration::from_secs(5), |v| v["type"] == "pong")
        .await
        .expect("pong");
    let h = watch(&mut ws, json!(null), fifty).await;
    assert!(
        h.video_units >= 50 && h.frames.is_empty(),
        "no audio after unsubscribe"
    );
}

/// Subscribes to `cam` as video with `audio` (null: none listed) and listens until `done`.
async fn watch(ws: &mut Ws, audio: Value, done: impl Fn(&Heard) -> bool) -> Heard {
    let mut sub = json!({"type": "subscribe", "cameras": ["cam"], "codecs": ["h264"]});
    if !audio.is_null() {
        sub["audio"] = audio;
    }
    ws_send(ws, sub).await;
    let mut heard = listen(ws, &["cam"], Duration::from_secs(20), done).await;
    heard.remove("cam").unwrap_or_default()
}

#[tokio::test]
async fn a_whep_player_hears_aac_as_opus_and_g711_as_it_is_beside_25_fps_video() {
    use common::whep::{event, play};
    let (aac, pcmu, mute) = (
        tone_camera("aac", "440"),
        tone_camera("pcmu", "1000"),
        RtspServer::small(None),
    );
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "aac", "url": aac.url()},
        {"id": "pcmu", "url": pcmu.url()},
        {"id": "mute", "url": mute.url()}
    ]}));
    for id in ["aac", "pcmu"] {
        cw.wait_camera(id, Duration::from_secs(20), |c| {
            c["state"] == "streaming" && c["audio_frames_in"].as_u64() >= Some(10)
        })
        .await;
    }
    cw.wait_camera("mute", Duration::from_secs(20), |c| {
        c["state"] == "streaming"
    })
    .await;
    let transcoded = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("camwall_audio_transcoded_frames_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let m = cw.metrics().await;
    assert!(
        m.contains("camwall_audio_transcodes 0") && transcoded(&m) == 0.0,
        "no listener, no transcode:\n{m}"
    );
    let dir = tempfile::tempdir().unwrap();
    for (id, hz, rate) in [("aac", 440.0, 48_000), ("pcmu", 1000.0, 8000)] {
        let out = dir.path().join(format!("{id}.pcm"));
        let url = cw.url(&format!("/api/ip-cameras/{id}/whep"));
        let args = [
            "--kind",
            "av",
            "--frames",
            "50",
            "--audio-seconds",
            "2",
            "--audio-out",
        ];
        let mut args: Vec<&str> = args.to_vec();
        args.push(out.to_str().unwrap());
        let events = play(&url, &args, Duration::from_secs(40)).await;
        let done = event(&events, "done");
        assert_eq!(done["frames"], 50, "{id}: the video plays: {events:?}");
        let deltas: Vec<i64> = done["deltas"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        let live = &deltas[deltas.len() / 2..];
        let mean = live.iter().sum::<i64>() as f64 / live.len() as f64;
        assert!(
            (mean - 3600.0).abs() < 200.0,
            "{id}: 25 fps at 90 kHz: {deltas:?}"
        );
        assert_eq!(done["audio_rate"], rate, "{id}: {done}");
        let samples = common::whep::heard(&out, done);
        assert!(
            samples.len() >= rate as usize * 3 / 2,
            "{id}: {} samples",
            samples.len()
        );
        // Past the first 200 ms (the decoders' start), one second of it.
        let skip = rate as usize / 5;
        let second = &samples[skip..(skip + rate as usize).min(samples.len())];
        let peak = peak_hz(second, rate);
        assert!(
            (peak - hz).abs() <= 10.0,
            "{id}: spectral peak at {peak} Hz, not {hz}"
        );
        assert!(loudness(second) > 1000.0, "{id}: not silence");
    }
    // A camera without audio plays its video to a player that asked for sound too.
    let url = cw.url("/api/ip-cameras/mute/whep");
    let events = play(
        &url,
        &["--kind", "av", "--frames", "20"],
        Duration::from_secs(30),
    )
    .await;
    let done = event(&events, "done");
    assert_eq!(
        (&done["frames"], &done["audio_frames"]),
        (&json!(20), &json!(0))
    );
    // The transcode ran for the AAC camera's listener only, and stopped when it left.
    let m = cw
        .wait_metrics("the transcode stopped", Duration::from_secs(10), |m| {
            m.contains("camwall_audio_transcodes 0")
        })
        .await;
    let made = transcoded(&m);
    assert!(made >= 90.0, "two seconds of Opus were made: {made}");
}

#[tokio::test]
async fn the_wall_plays_the_sound_of_the_tile_asked_for_in_step_with_its_picture() {
    let aac = tone_camera("aac", "440");
    let mute = RtspServer::small(None);
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "aac", "url": aac.url()},
        {"id": "mute", "url": mute.url()}
    ]}));
    cw.wait_camera("aac", Duration::from_secs(20), |c| {
        c["state"] == "streaming" && c["audio_frames_in"].as_u64() >= Some(10)
    })
    .await;
    cw.wait_camera("mute", Duration::from_secs(20), |c| {
        c["state"] == "streaming"
    })
    .await;
    // On 127.0.0.1 the page is a secure context: WebCodecs decodes video and audio.
    let mut b = Browser::open(&cw.url("/")).await;
    let report = "JSON.stringify({sound: window.camwall && window.camwall.sound(), \
                  paths: window.camwall && window.camwall.paths()})";
    b.wait_for(
        "!!window.camwall && window.camwall.sound().speakers.join() === 'aac' \
         && window.camwall.paths().aac === 'webcodecs'",
        report,
        Duration::from_secs(30),
    )
    .await;
    // Off until asked: nothing heard, nothing decoded.
    let s = b.eval("window.camwall.sound()").await;
    assert_eq!(
        (&s["on"], &s["heard"], &s["decoded"]),
        (&json!(false), &Value::Null, &json!(0))
    );
    // The speaker button, clicked as a person would (a gesture: the page may start sound).
    b.click("[data-camera=aac] .sound").await;
    b.wait_for(
        "window.camwall.sound().decoded >= 150 && window.camwall.sound().skews.length >= 100",
        report,
        Duration::from_secs(30),
    )
    .await;
    let s = b.eval("window.camwall.sound()").await;
    assert_eq!(
        (&s["on"], &s["heard"], &s["state"]),
        (&json!(true), &json!("aac"), &json!("running"))
    );
    // What the page heard: the camera's 440 Hz tone.
    let rate = s["rate"].as_u64().unwrap() as u32;
    let heard: Vec<i16> = b
        .eval("window.camwall.heardSamples()")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v.as_f64().unwrap() * 32767.0) as i16)
        .collect();
    assert!(
        heard.len() >= rate as usize / 2,
        "{} samples at {rate}",
        heard.len()
    );
    let peak = peak_hz(&heard, rate);
    assert!((peak - 440.0).abs() <= 10.0, "the page heard {peak} Hz");
    assert!(loudness(&heard) > 1000.0, "not silence");
    // Each picture was painted when its sound played: lip sync within 100 ms. The GOP sent
    // at the subscribe (older than the sound, shown at once to catch up) is left out: the
    // last 50 pictures are live ones.
    let all: Vec<f64> = s["skews"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let mut skews: Vec<f64> = all[all.len() - 50..].iter().map(|v| v.abs()).collect();
    skews.sort_by(f64::total_cmp);
    let p90 = skews[skews.len() * 9 / 10];
    assert!(p90 <= 100.0, "picture to sound p90 {p90} ms: {skews:?}");
    // Focused and dragged 4 s back: the recording plays with its sound, the same tone.
    b.click("[data-camera=aac]").await;
    b.wait_for(
        "!!window.camwall.replay() && !!window.camwall.replay().span \
         && window.camwall.replay().span.from !== null \
         && window.camwall.replay().span.from < Date.now() - 4000",
        report,
        Duration::from_secs(15),
    )
    .await;
    let before = b
        .eval(
            "(() => { const r = document.querySelector('[data-camera=aac] .scrub'); \
             r.value = Date.now() - 4000; r.dispatchEvent(new Event('change')); \
             return window.camwall.sound().decoded; })()",
        )
        .await
        .as_u64()
        .unwrap();
    b.wait_for(
        &format!(
            "!window.camwall.replay().live && window.camwall.replay().shownTs !== null \
             && window.camwall.sound().heard === 'aac' && window.camwall.sound().decoded > {}",
            before + 100
        ),
        report,
        Duration::from_secs(20),
    )
    .await;
    let replayed: Vec<i16> = b
        .eval("window.camwall.heardSamples()")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v.as_f64().unwrap() * 32767.0) as i16)
        .collect();
    let peak = peak_hz(&replayed, rate);
    assert!((peak - 440.0).abs() <= 10.0, "the replay sounded {peak} Hz");
    b.click("[data-camera=aac] .replay .live").await;
    b.wait_for(
        "window.camwall.replay().live",
        report,
        Duration::from_secs(10),
    )
    .await;
    // Escape: back to the grid.
    b.eval("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape', bubbles: true}))")
        .await;
    b.wait_for(
        "window.camwall.replay() === null",
        report,
        Duration::from_secs(10),
    )
    .await;
    // The button again: sound off, and the server stops sending it.
    b.click("[data-camera=aac] .sound").await;
    b.wait_for(
        "window.camwall.sound().heard === null && !window.camwall.sound().on",
        report,
        Duration::from_secs(10),
    )
    .await;
    // Chromium's own WHEP offer with audio and video, to the camera without audio: the answer
    // is taken, its audio section is inactive, and the video decodes.
    let r = b
        .call(
            "Runtime.evaluate",
            json!({"returnByValue": true, "awaitPromise": true, "expression":
                "(async () => { const pc = new RTCPeerConnection();\
                 pc.addTransceiver('audio', {direction: 'recvonly'});\
                 pc.addTransceiver('video', {direction: 'recvonly'});\
                 await pc.setLocalDescription(await pc.createOffer());\
                 const r = await fetch('/api/ip-cameras/mute/whep', {method: 'POST',\
                   headers: {'Content-Type': 'application/sdp'}, body: pc.localDescription.sdp});\
                 await pc.setRemoteDescription({type: 'answer', sdp: await r.text()});\
                 let frames = 0;\
                 for (let i = 0; i < 100 && frames < 5; i++) {\
                   await new Promise((ok) => setTimeout(ok, 100));\
                   (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames = s.framesDecoded || 0; });\
                 }\
                 const audio = pc.getTransceivers().find((t) => t.receiver.track.kind === 'audio').currentDirection;\
                 pc.close();\
                 return {status: r.status, audio, frames}; })()"}),
        )
        .await["result"]["value"]
        .clone();
    assert_eq!(
        (&r["status"], &r["audio"]),
        (&json!(201), &json!("inactive")),
        "{r}"
    );
    assert!(r["frames"].as_u64() >= Some(5), "the video plays: {r}");
}

#[tokio::test]
async fn an_insecure_wall_hears_the_aac_camera_over_webrtc_when_asked() {
    let aac = tone_camera("aac", "440");
    let cw = start_camwall(json!({"server": {"allowed_hosts": ["camwall.test"]},
        "cameras": [{"id": "aac", "url": aac.url()}]}));
    cw.wait_camera("aac", Duration::from_secs(20), |c| {
        c["state"] == "streaming" && c["audio_frames_in"].as_u64() >= Some(10)
    })
    .await;
    // A LAN-style address: no WebCodecs, so the tile plays over WebRTC.
    let page = format!("http://camwall.test:{}/", port_of(&cw));
    let mut b =
        Browser::open_with_args(&page, &["--host-resolver-rules=MAP camwall.test 127.0.0.1"]).await;
    let report = "JSON.stringify({sound: window.camwall && window.camwall.sound(), \
                  paths: window.camwall && window.camwall.paths()})";
    b.wait_for(
        "!!window.camwall && window.camwall.paths().aac === 'webrtc' \
         && window.camwall.sound().speakers.join() === 'aac'",
        report,
        Duration::from_secs(30),
    )
    .await;
    let m = cw.metrics().await;
    assert!(
        m.contains("camwall_audio_transcodes 0"),
        "muted: no transcode"
    );
    b.click("[data-camera=aac] .sound").await;
    // The tile's session opens again with audio; its video element plays it unmuted.
    b.wait_for(
        "window.camwall.sound().rtcAudio === 1 && window.camwall.paths().aac === 'webrtc' \
         && !document.querySelector('[data-camera=aac] video').muted",
        report,
        Duration::from_secs(30),
    )
    .await;
    assert!(cw.metrics().await.contains("camwall_audio_transcodes 1"));
    // What the tile plays, through the page's own analyser: the camera's 440 Hz.
    let heard = b
        .call(
            "Runtime.evaluate",
            json!({"returnByValue": true, "awaitPromise": true, "expression":
                "(async () => { const v = document.querySelector('[data-camera=aac] video');\
                 const ctx = new AudioContext(); await ctx.resume();\
                 const an = ctx.createAnalyser(); an.fftSize = 8192;\
                 ctx.createMediaStreamSource(v.srcObject).connect(an);\
                 await new Promise((r) => setTimeout(r, 1500));\
                 const bins = new Float32Array(an.frequencyBinCount); an.getFloatFrequencyData(bins);\
                 let best = 1; for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;\
                 return {hz: best * ctx.sampleRate / an.fftSize, db: bins[best]}; })()"}),
        )
        .await["result"]["value"]
        .clone();
    let hz = heard["hz"].as_f64().unwrap();
    assert!((hz - 440.0).abs() <= 12.0, "the tile played {heard}");
    assert!(
        heard["db"].as_f64().unwrap() > -60.0,
        "not silence: {heard}"
    );
    // Off again: the session goes back to video only and the transcode stops.
    b.click("[data-camera=aac] .sound").await;
    cw.wait_metrics("the transcode stopped", Duration::from_secs(20), |m| {
        m.contains("camwall_audio_transcodes 0")
    })
    .await;
}

#[tokio::test]
async fn a_file_cameras_aac_track_reaches_a_listener_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("tone.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=15",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        "4",
        "-c:v",
        "libx264",
        "-g",
        "15",
        "-bf",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-ac",
        "1",
        "-shortest",
        clip.to_str().unwrap(),
    ]);
    let cw = start_camwall(json!({"server": {}, "cameras": [{"id": "f", "url": path_str(&clip)}]}));
    let c = cw
        .wait_camera("f", Duration::from_secs(20), |c| {
            c["state"] == "streaming" && c["audio_frames_in"].as_u64() >= Some(5)
        })
        .await;
    assert_eq!(
        (
            &c["audio"]["codec"],
            &c["audio"]["sample_rate"],
            &c["audio"]["channels"]
        ),
        (&json!("aac"), &json!(44100), &json!(1)),
        "{c}"
    );
    let mut ws = ws_connect(&cw).await;
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": ["f"], "codecs": ["h264"], "audio": ["aac"]}),
    )
    .await;
    let heard = listen(&mut ws, &["f"], Duration::from_secs(20), |h| {
        h.frames.len() >= 80
    })
    .await;
    let f = &heard["f"];
    let cfg = f.config.as_ref().expect("audio_config");
    assert_eq!(
        (&cfg["codec"], &cfg["sample_rate"]),
        (&json!("mp4a.40.2"), &json!(44100))
    );
    let config = base64::engine::general_purpose::STANDARD
        .decode(cfg["description"].as_str().unwrap())
        .unwrap();
    let samples = decode_aac(&adts(&config, &f.frames));
    let peak = peak_hz(&samples[4096..], 44_100);
    assert!((peak - 440.0).abs() <= 10.0, "the file's tone: {peak} Hz");
    assert!(loudness(&samples[4096..]) > 1000.0);
}

#[tokio::test]
async fn an_opus_camera_is_read_by_ffmpeg_by_itself_and_heard_over_webrtc_without_a_transcode() {
    use common::whep::{event, play};
    let opus = tone_camera("opus", "440");
    // retina has no Opus depacketizer: camwall reads the camera with FFmpeg, which keeps the
    // track, without being told to.
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "opus", "url": opus.url()}
    ]}));
    let c = cw
        .wait_camera("opus", Duration::from_secs(20), |c| {
            c["state"] == "streaming" && c["audio_frames_in"].as_u64() >= Some(10)
        })
        .await;
    assert_eq!(
        (
            &c["audio"]["codec"],
            &c["audio"]["sample_rate"],
            &c["ingest"]
        ),
        (&json!("opus"), &json!(48000), &json!("ffmpeg")),
        "{c}"
    );
    // (GStreamer's server may refuse the FFmpeg session that follows retina's description at
    // once with a 5XX while it takes the described media down: one backoff, then it plays.)
    assert!(cw.logs().contains("read by FFmpeg"), "{}", cw.logs());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("opus.pcm");
    let url = cw.url("/api/ip-cameras/opus/whep");
    let events = play(
        &url,
        &[
            "--kind",
            "av",
            "--frames",
            "25",
            "--audio-seconds",
            "2",
            "--audio-out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(40),
    )
    .await;
    let done = event(&events, "done");
    assert_eq!(
        (&done["frames"], &done["audio_rate"]),
        (&json!(25), &json!(48000)),
        "{done}"
    );
    let samples = common::whep::heard(&out, done);
    let second = &samples[9_600..57_600];
    let peak = peak_hz(second, 48_000);
    assert!((peak - 440.0).abs() <= 10.0, "heard {peak} Hz");
    assert!(loudness(second) > 1000.0);
    let m = cw.metrics().await;
    assert!(
        m.contains("camwall_audio_transcoded_frames_total 0"),
        "Opus goes as it came, no transcode"
    );
}

#[tokio::test]
async fn sound_stays_on_across_a_tour_and_follows_the_page() {
    let rtsp = RtspServer::start(&[
        "--size", "160x120", "--fps", "10", "--mounts", "5", "--audio", "aac",
    ]);
    let cams: Vec<Value> = (0..5)
        .map(|i| json!({"id": format!("c{i}"), "url": format!("rtsp://127.0.0.1:{}/cam{i}", rtsp.port)}))
        .collect();
    let cw = start_camwall(json!({"server": {}, "cameras": cams}));
    for i in 0..5 {
        cw.wait_camera(&format!("c{i}"), Duration::from_secs(20), |c| {
            c["state"] == "streaming" && c["audio_frames_in"].as_u64() >= Some(5)
        })
        .await;
    }
    // Four tiles a page: c0..c3, then c4.
    let mut b = Browser::open(&cw.url("/?tour=4")).await;
    let report = "JSON.stringify({sound: window.camwall && window.camwall.sound(), \
                  page: window.camwall && window.camwall.page(), shown: window.camwall && window.camwall.shown()})";
    b.wait_for(
        "!!window.camwall && window.camwall.page() === 0 && window.camwall.sound().speakers.length === 5",
        report,
        Duration::from_secs(30),
    )
    .await;
    b.click("[data-camera=c1] .sound").await;
    b.wait_for(
        "window.camwall.sound().heard === 'c1' && window.camwall.sound().decoded > 10",
        report,
        Duration::from_secs(20),
    )
    .await;
    // The next page has no c1: its first camera with sound is heard, sound still on.
    b.wait_for(
        "window.camwall.page() === 1 && window.camwall.sound().on && window.camwall.sound().heard === 'c4'",
        report,
        Duration::from_secs(20),
    )
    .await;
    // Back on the first page, the camera asked for is heard again.
    b.wait_for(
        "window.camwall.page() === 0 && window.camwall.sound().heard === 'c1'",
        report,
        Duration::from_secs(20),
    )
    .await;
    // The sound came over the page's WebSocket.
    let m = cw.metrics().await;
    assert!(
        m.contains("camwall_audio_frames_sent_total{kind=\"websocket\"}"),
        "{m}"
    );
}

/// The streams of an MP4 (type, codec, start) and its audio decoded to 8 kHz mono by ffmpeg,
/// with what ffmpeg said while decoding the whole file.
fn clip_streams_and_sound(file: &std::path::Path) -> (Vec<Value>, f64, Vec<i16>, String) {
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .args([
            "stream=codec_type,codec_name,start_time:format=duration",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .unwrap();
    let probe: Value = serde_json::from_slice(&probe.stdout).unwrap_or_default();
    let decode = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args([
            "-map", "0:a", "-f", "s16le", "-ac", "1", "-ar", "8000", "pipe:1",
        ])
        .output()
        .unwrap();
    let whole = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let samples = decode
        .stdout
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let duration = probe["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    (
        probe["streams"].as_array().cloned().unwrap_or_default(),
        duration,
        samples,
        String::from_utf8_lossy(&whole.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_and_clips_keep_the_cameras_sound() {
    let aac = tone_camera("aac", "440");
    let pcmu = tone_camera("pcmu", "1000");
    let cw = start_camwall(json!({"server": {}, "cameras": [
        {"id": "aac", "url": aac.url()},
        {"id": "pcmu", "url": pcmu.url()}
    ]}));
    let mut spans = std::collections::HashMap::new();
    for id in ["aac", "pcmu"] {
        let (from, to, _) = cw.wait_replay_span(id, 6000).await;
        spans.insert(id, (from, to));
    }

    // A clip holds the camera's sound beside its video, over the same span: AAC as it came,
    // G.711 (which MP4 cannot hold) as Opus; both decode without an error, at their pitch.
    for (id, codec, hz) in [("aac", "aac", 440.0), ("pcmu", "opus", 1000.0)] {
        let (_, to) = spans[id];
        let url = cw.url(&format!(
            "/api/ip-cameras/{id}/clip.mp4?from={}&to={to}",
            to - 4000
        ));
        let r = reqwest::get(&url).await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let file = cw.dir.path().join(format!("{id}.mp4"));
        std::fs::write(&file, r.bytes().await.unwrap()).unwrap();
        let (streams, duration, samples, errors) = clip_streams_and_sound(&file);
        let kinds: Vec<(&str, &str)> = streams
            .iter()
            .map(|s| {
                (
                    s["codec_type"].as_str().unwrap(),
                    s["codec_name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![("video", "h264"), ("audio", codec)],
            "{id}: {streams:?}"
        );
        assert!(errors.is_empty(), "{id}: {errors}");
        // The sound starts with the picture and lasts as long (a frame or two apart).
        let start: f64 = streams[1]["start_time"].as_str().unwrap().parse().unwrap();
        assert!(start.abs() < 0.1, "{id}: sound starts at {start} s");
        let heard = samples.len() as f64 / 8000.0;
        assert!(duration >= 3.5, "{id}: a {duration} s clip");
        assert!(
            (heard - duration).abs() < 0.3,
            "{id}: {heard} s of sound in {duration} s"
        );
        let pitch = pitch(&samples[800..], 8000);
        assert!((pitch - hz).abs() < hz * 0.03, "{id}: {pitch} Hz");
        assert!(loudness(&samples[800..]) > 1000.0, "{id}: not silence");
    }

    // A WebSocket replay at 1x brings the recorded sound with the picture, at its pitch; at
    // 2x, the picture only.
    let (from, _) = spans["pcmu"];
    let mut ws = ws_connect(&cw).await;
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "cameras": ["pcmu"], "codecs": ["h264"], "audio": ["pcmu"],
               "at": from + 1000}),
    )
    .await;
    let heard = listen(&mut ws, &["pcmu"], Duration::from_secs(20), |h| {
        h.frames.len() >= 100 && h.video_units >= 25
    })
    .await;
    let p = &heard["pcmu"];
    let c = p.config.as_ref().expect("an audio_config for the replay");
    assert_eq!(c["family"], "pcmu");
    assert!(p.frames.len() >= 100, "{} frames of sound", p.frames.len());
    let samples: Vec<i16> = p
        .frames
        .iter()
        .flat_map(|(_, f)| f.iter().map(|b| ulaw(*b)))
        .collect();
    let hz = pitch(&samples, 8000);
    assert!((hz - 1000.0).abs() < 30.0, "replayed pitch {hz} Hz");
    drop(ws);
    let mut fast = ws_connect(&cw).await;
    ws_send(
        &mut fast,
        json!({"type": "subscribe", "cameras": ["pcmu"], "codecs": ["h264"], "audio": ["pcmu"],
               "at": from + 1000, "speed": 2}),
    )
    .await;
    let heard = listen(&mut fast, &["pcmu"], Duration::from_secs(20), |h| {
        h.video_units >= 50
    })
    .await;
    let p = &heard["pcmu"];
    assert!(p.video_units >= 50, "{} units at 2x", p.video_units);
    assert!(p.config.is_none() && p.frames.is_empty(), "no sound at 2x");
}
