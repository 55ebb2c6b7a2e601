//! S18 and S19: the cameras' own video over WebRTC. The load generator's WHEP player is a
//! str0m receiver per session on a UDP socket of its own (no decode: it counts the frames and
//! bytes it depacketizes, as the WebSocket clients of S9 count frames); S19 also times
//! aiortc, a third-party player, from its offer to its first decoded frame.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;

use crate::harness::{proc_status, repo_root};
use crate::procfs::{pct, CpuWindow};
use crate::scenarios::Ctx;
use crate::sources::{rtsp_cams, start_camwall, start_rtsp, status, wait_streaming};

/// What one WebRTC session received.
#[derive(Debug, Default, Clone)]
pub struct RtcStats {
    pub camera: String,
    /// Frames and payload bytes while measuring.
    pub frames: u64,
    pub bytes: u64,
    /// Datagrams received and their bytes while measuring (RTP, RTCP, everything).
    pub datagrams: u64,
    pub datagram_bytes: u64,
    /// From the POST of the offer to the first frame.
    pub first_frame_ms: Option<f64>,
    pub error: Option<String>,
}

/// One WHEP session of `camera` until `stop`; counts what arrives while `measuring`.
pub async fn whep_session(
    base: String,
    camera: String,
    stop: Arc<AtomicBool>,
    measuring: Arc<AtomicBool>,
) -> RtcStats {
    let mut st = RtcStats {
        camera: camera.clone(),
        ..Default::default()
    };
    if let Err(e) = run_session(&base, &camera, &stop, &measuring, &mut st).await {
        st.error = Some(e);
    }
    st
}

async fn run_session(
    base: &str,
    camera: &str,
    stop: &AtomicBool,
    measuring: &AtomicBool,
    st: &mut RtcStats,
) -> Result<(), String> {
    let mut c = WhepClient::open(base, camera, false).await?;
    let mut datagram = |n: usize| {
        if measuring.load(Ordering::Relaxed) {
            st.datagrams += 1;
            st.datagram_bytes += n as u64;
        }
    };
    while let Some(d) = c.next_media(stop, &mut datagram).await? {
        if measuring.load(Ordering::Relaxed) {
            st.frames += 1;
            st.bytes += d.data.len() as u64;
        }
        if st.first_frame_ms.is_none() {
            st.first_frame_ms = Some(c.posted.elapsed().as_secs_f64() * 1000.0);
        }
    }
    c.close().await;
    Ok(())
}

/// A WHEP player in the load generator: a str0m receiver on a UDP socket of its own.
pub struct WhepClient {
    socket: UdpSocket,
    local: SocketAddr,
    rtc: Rtc,
    http: reqwest::Client,
    base: String,
    location: String,
    /// The audio section's mid, when it asked for audio.
    pub audio_mid: Option<Mid>,
    /// When the offer went out.
    pub posted: Instant,
    buf: Vec<u8>,
}

impl WhepClient {
    /// Offers `recvonly` video (and audio first, with `audio`) to `camera` and takes the
    /// answer.
    pub async fn open(base: &str, camera: &str, audio: bool) -> Result<Self, String> {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let local: SocketAddr = socket.local_addr().map_err(|e| e.to_string())?;
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(audio, false)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").map_err(|e| e.to_string())?);
        let mut change = rtc.sdp_api();
        let audio_mid = audio
            .then(|| change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None));
        change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = change.apply().ok_or("no offer")?;
        let posted = Instant::now();
        let http = reqwest::Client::new();
        let (location, answer) = whep_exchange(&http, base, camera, offer.to_sdp_string()).await?;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            socket,
            local,
            rtc,
            http,
            base: base.to_string(),
            location,
            audio_mid,
            posted,
            buf: vec![0u8; 2048],
        })
    }

    /// Runs the connection until its next media frame; `None` once `stop` is set or the
    /// peer is gone. `datagram` hears the size of every datagram received.
    pub async fn next_media(
        &mut self,
        stop: &AtomicBool,
        datagram: &mut impl FnMut(usize),
    ) -> Result<Option<MediaData>, String> {
        while !stop.load(Ordering::Relaxed) && self.rtc.is_alive() {
            let timeout = match self.rtc.poll_output().map_err(|e| e.to_string())? {
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination).await;
                    continue;
                }
                Output::Event(Event::MediaData(d)) => return Ok(Some(d)),
                Output::Event(_) => continue,
                Output::Timeout(t) => t,
            };
            // Wake at least every 100 ms to see `stop`.
            let wait = timeout
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            let input = match tokio::time::timeout(wait, self.socket.recv_from(&mut self.buf)).await
            {
                Ok(Ok((n, from))) => {
                    datagram(n);
                    match Receive::new(Protocol::Udp, from, self.local, &self.buf[..n]) {
                        Ok(r) => Input::Receive(Instant::now(), r),
                        Err(_) => continue,
                    }
                }
                _ => Input::Timeout(Instant::now()),
            };
            self.rtc.handle_input(input).map_err(|e| e.to_string())?;
        }
        Ok(None)
    }

    /// Ends the session (`DELETE`).
    pub async fn close(self) {
        let _ = self
            .http
            .delete(format!("{}{}", self.base, self.location))
            .send()
            .await;
    }
}

/// Posts `offer` to `camera`'s WHEP endpoint: the session's `Location` and the answer.
pub async fn whep_exchange(
    http: &reqwest::Client,
    base: &str,
    camera: &str,
    offer: String,
) -> Result<(String, SdpAnswer), String> {
    let r = http
        .post(format!("{base}/api/ip-cameras/{camera}/whep"))
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status().as_u16() != 201 {
        return Err(format!("offer answered {}", r.status()));
    }
    let location = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let answer = r.text().await.map_err(|e| e.to_string())?;
    let answer = SdpAnswer::from_sdp_string(&answer).map_err(|e| e.to_string())?;
    Ok((location, answer))
}

/// S18: S9's setup (n cameras 720p25, 4 clients watching all) over WebRTC: one WHEP session
/// per client and camera.
pub async fn s18(ctx: &Ctx, n: usize, secs: u64) -> Value {
    let setup = format!("{n} cameras 720p25 RTSP, 4 WebRTC clients watching all (WHEP, h264)");
    let rtsp = start_rtsp(&ctx.clips.join("clip720.h264"), n);
    let cw = start_camwall(&ctx.camwall, rtsp_cams(rtsp.port, n));
    if !wait_streaming(&cw, n, Duration::from_secs(60)).await {
        return json!({"id": "S18", "setup": setup, "error": "cameras did not stream"});
    }
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _client in 0..4 {
        for i in 0..n {
            tasks.push(tokio::spawn(whep_session(
                cw.base.clone(),
                format!("cam{i}"),
                stop.clone(),
                measuring.clone(),
            )));
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s0 = status(&cw).await;
    measuring.store(true, Ordering::Relaxed);
    let cpu = CpuWindow::start(cw.pid());
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    measuring.store(false, Ordering::Relaxed);
    let cpu_pct = cpu.percent();
    let elapsed = t0.elapsed().as_secs_f64();
    let s1 = status(&cw).await;
    let rss = proc_status(cw.pid(), "VmRSS:") as f64 / 1024.0;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.unwrap_or_default());
    }
    let units = |s: &Value, id: &str| -> (u64, u64) {
        let c = s["cameras"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["id"] == id));
        c.map_or((0, 0), |c| {
            (
                c["video"]["units_in"].as_u64().unwrap_or(0),
                c["video"]["bytes_in"].as_u64().unwrap_or(0),
            )
        })
    };
    let mut ratios = Vec::new();
    let mut bytes_ratio = Vec::new();
    let mut errors = Vec::new();
    for st in &all {
        if let Some(e) = &st.error {
            errors.push(format!("{}: {e}", st.camera));
            continue;
        }
        let (u0, b0) = units(&s0, &st.camera);
        let (u1, b1) = units(&s1, &st.camera);
        ratios.push(st.frames as f64 / (u1 - u0).max(1) as f64);
        bytes_ratio.push(st.bytes as f64 / (b1 - b0).max(1) as f64);
    }
    let mut ttff: Vec<f64> = all.iter().filter_map(|s| s.first_frame_ms).collect();
    // The floor under any WebRTC server on this path: the same datagrams sent over loopback
    // by a thread that does nothing else (no RTP, no SRTP, no pacer).
    let datagrams: u64 = all.iter().map(|s| s.datagrams).sum();
    let datagram_bytes: u64 = all.iter().map(|s| s.datagram_bytes).sum();
    let rate = datagrams as f64 / elapsed.max(1e-3);
    let size = (datagram_bytes / datagrams.max(1)) as usize;
    let floor = tokio::task::spawn_blocking(move || udp_floor(rate, size, Duration::from_secs(10)))
        .await
        .unwrap_or(f64::NAN);
    let encodes: u64 = s1["cameras"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["jpeg_encodes"].as_u64().unwrap_or(0))
        .sum();
    json!({
        "id": "S18",
        "setup": setup,
        "cameras": n,
        "cpu_percent": cpu_pct,
        "webrtc": {
        "sessions": all.len(),
        "errors": errors,
        "seconds": elapsed,
        // Frames counted over the window against the units the camera sent in it: a frame in
        // flight at either edge shifts a session's ratio by about 1/(25 * seconds).
        "delivered_min": ratios.iter().cloned().fold(f64::INFINITY, f64::min),
        "delivered_mean": ratios.iter().sum::<f64>() / ratios.len().max(1) as f64,
        "bytes_over_source_max": bytes_ratio.iter().cloned().fold(0.0, f64::max),
        "bytes_over_source_mean": bytes_ratio.iter().sum::<f64>() / bytes_ratio.len().max(1) as f64,
        "first_frame_ms": {"p50": pct(&mut ttff, 50.0), "max": pct(&mut ttff, 100.0)},
        "jpeg_encodes": encodes,
        "rss_mb": rss,
        "datagrams_per_s": rate,
        "datagram_bytes_mean": size,
        "udp_floor_cpu_percent": floor,
        },
    })
}

/// % of a core one thread takes to send `rate` datagrams a second of `size` bytes to a
/// socket on 127.0.0.1 for `dur`, in 5 ms bursts as camwall's sessions pace them. On
/// loopback the receiving socket's queueing runs in the sender's system call, as it does
/// for camwall.
fn udp_floor(rate: f64, size: usize, dur: Duration) -> f64 {
    let (Ok(tx), Ok(rx)) = (
        std::net::UdpSocket::bind("127.0.0.1:0"),
        std::net::UdpSocket::bind("127.0.0.1:0"),
    ) else {
        return f64::NAN;
    };
    let Ok(to) = rx.local_addr() else {
        return f64::NAN;
    };
    let done = Arc::new(AtomicBool::new(false));
    let drain = {
        let done = done.clone();
        let _ = rx.set_read_timeout(Some(Duration::from_millis(100)));
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !done.load(Ordering::Relaxed) {
                let _ = rx.recv(&mut buf);
            }
        })
    };
    let packet = vec![0x80u8; size.max(1)];
    let t0 = Instant::now();
    let ticks0 = crate::procfs::thread_cpu_ticks();
    let mut sent = 0u64;
    while t0.elapsed() < dur {
        let due = (t0.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            let _ = tx.send_to(&packet, to);
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let pct = (crate::procfs::thread_cpu_ticks() - ticks0) as f64 / t0.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = drain.join();
    pct
}

/// S19: time to the first picture over WebRTC: from the offer to the first frame in the
/// str0m receiver and to the first decoded frame in aiortc (when its venv is there), `tries`
/// times each, one 720p25 camera whose GOP is 1 s.
pub async fn s19(ctx: &Ctx, tries: usize) -> Value {
    let rtsp = start_rtsp(&ctx.clips.join("clip720.h264"), 1);
    let cw = start_camwall(&ctx.camwall, rtsp_cams(rtsp.port, 1));
    if !wait_streaming(&cw, 1, Duration::from_secs(60)).await {
        return json!({"id": "S19", "error": "camera did not stream"});
    }
    let mut str0m_ms = Vec::new();
    let mut aiortc_ms = Vec::new();
    let python = repo_root().join("target/whep-venv/bin/python");
    for i in 0..tries {
        // Spread the tries over the GOP: a new viewer may come at any point of it.
        tokio::time::sleep(Duration::from_millis(700 + 130 * i as u64)).await;
        let stop = Arc::new(AtomicBool::new(false));
        let t = tokio::spawn(whep_session(
            cw.base.clone(),
            "cam0".into(),
            stop.clone(),
            Arc::new(AtomicBool::new(false)),
        ));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::Relaxed);
        if let Ok(st) = t.await {
            str0m_ms.extend(st.first_frame_ms);
        }
        if python.exists() {
            let out = tokio::process::Command::new(&python)
                .arg(repo_root().join("integration_tests/whep_client.py"))
                .arg(format!("{}/api/ip-cameras/cam0/whep", cw.base))
                .args(["--frames", "1", "--timeout", "10"])
                .output()
                .await;
            if let Ok(out) = out {
                let first = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|v| v["event"] == "frame")
                    .and_then(|v| v["ms"].as_f64());
                aiortc_ms.extend(first);
            }
        }
    }
    // The wall as a LAN user opens it: plain http on a name that is not a secure context
    // (mapped to 127.0.0.1), so the page plays over WebRTC. A running browser (a fresh
    // profile) loads the page `tries` times: navigation start to the first WebRTC picture
    // painted. (A browser's own cold start, 70-240 ms before the first byte here, is not the
    // page's.)
    let port = cw.base.rsplit(':').next().unwrap_or_default().to_string();
    let page = format!("http://camwall.test:{port}/");
    let mut page_ms = Vec::new();
    let mut page_kind = String::new();
    let mut b = crate::browser::Browser::open_with_args(
        "about:blank",
        &["--host-resolver-rules=MAP camwall.test 127.0.0.1"],
    )
    .await;
    for _ in 0..tries {
        b.call("Page.navigate", json!({"url": "about:blank"})).await;
        b.wait_for(
            "location.href === 'about:blank'",
            "location.href",
            Duration::from_secs(10),
        )
        .await;
        // The last page's sessions are gone (DELETE on unload) before the next load.
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            let h: Value = match reqwest::get(format!("{}/health", cw.base)).await {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            if h["webrtc"]["sessions"] == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        b.call("Page.navigate", json!({"url": page})).await;
        b.wait_for(
            "!!window.camwallFirstPaint",
            "JSON.stringify({first: window.camwallFirstPaint || null, rtc: window.camwall && camwall.webrtc(), \
             paths: window.camwall && camwall.paths(), tiles: [...document.querySelectorAll('.tile')].map(t => t.textContent)})",
            Duration::from_secs(20),
        )
        .await;
        let v = b.eval("window.camwallFirstPaint").await;
        page_ms.extend(v["ms"].as_f64());
        page_kind = v["kind"].as_str().unwrap_or_default().to_string();
        // Where the time went: ms after navigation at the tile's start, offer, answer,
        // connection and first picture.
        let stages = b.eval("JSON.stringify(camwall.webrtc())").await;
        let html = b
            .eval("performance.getEntriesByType('navigation').map(e => e.responseEnd | 0)[0]")
            .await;
        eprintln!("S19 page: first paint {v}, page in at {html} ms, tile stages {stages}");
    }
    drop(b);
    json!({
        "id": "S19",
        "setup": "one 720p25 camera (1 s GOP); a new WebRTC viewer at a different point of the GOP each try",
        "tries": tries,
        "page_first_paint_ms": {"p50": pct(&mut page_ms.clone(), 50.0), "max": pct(&mut page_ms, 100.0), "kind": page_kind},
        "str0m_first_frame_ms": {"p50": pct(&mut str0m_ms.clone(), 50.0), "max": pct(&mut str0m_ms, 100.0)},
        "aiortc_first_decoded_ms": {"p50": pct(&mut aiortc_ms.clone(), 50.0), "max": pct(&mut aiortc_ms, 100.0), "n": aiortc_ms.len()},
    })
}
