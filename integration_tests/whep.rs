//! End-to-end tests of WebRTC output over WHEP: a real GStreamer RTSP camera (H.264 High
//! profile), the real binary, and a third-party WHEP player (aiortc from PyPI, run from the
//! venv `scripts/whep-venv` makes) that decodes what it receives.

mod common;

use std::time::{Duration, Instant};

use common::whep::{event, play, Player};
use common::*;
use serde_json::{json, Value};

const TOKEN: &str = "viewer-token-0123456789";
const ORIGIN: &str = "https://dash.example";

/// A 720p25 High-profile camera `cam` and camwall with `server` settings.
async fn high_profile_camera(server: Value) -> (RtspServer, Camwall) {
    let rtsp = RtspServer::start(&HIGH_720P);
    let cw =
        start_camwall(json!({"server": server, "cameras": [{"id": "cam", "url": rtsp.url()}]}));
    (rtsp, cw)
}

async fn wait_streaming(cw: &Camwall) {
    cw.wait_camera("cam", Duration::from_secs(30), |c| {
        c["state"] == "streaming" && c["video"]["units_in"].as_u64() > Some(25)
    })
    .await;
}

async fn health(cw: &Camwall) -> Value {
    reqwest::get(cw.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `/health` until WebRTC has `n` sessions (bounded).
async fn wait_sessions(cw: &Camwall, n: u64, timeout: Duration) {
    let end = Instant::now() + timeout;
    loop {
        let h = health(cw).await;
        if h["webrtc"]["sessions"].as_u64() == Some(n) {
            return;
        }
        assert!(Instant::now() < end, "WebRTC sessions never {n}: {h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_whep_player_decodes_a_high_profile_camera_at_its_size_and_rate() {
    let (_rtsp, cw) = high_profile_camera(json!({})).await;
    wait_streaming(&cw).await;
    let codec = cw.camera("cam").await["video"]["codec_string"].clone();
    assert!(
        codec.as_str().is_some_and(|c| c.starts_with("avc1.64")),
        "the camera sends High profile: {codec}"
    );
    let url = cw.url("/api/ip-cameras/cam/whep");
    let events = play(
        &url,
        &["--frames", "75", "--timeout", "90"],
        Duration::from_secs(120),
    )
    .await;
    let answer = event(&events, "answer");
    assert_eq!(answer["status"], 201);
    assert_eq!(answer["content_type"], "application/sdp");
    assert!(answer["location"]
        .as_str()
        .is_some_and(|l| l.starts_with("/api/ip-cameras/cam/whep/")));
    let done = event(&events, "done");
    assert_eq!(done["frames"], 75, "{done}");
    assert_eq!(
        (done["width"].as_u64(), done["height"].as_u64()),
        (Some(1280), Some(720))
    );
    // The GOP a player starts with comes at once (one tick apart); then every frame of the
    // camera follows at its own 40 ms: the full rate, not keyframes only.
    let deltas: Vec<u64> = done["deltas"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    let live: Vec<u64> = deltas.iter().copied().skip_while(|&d| d <= 1).collect();
    assert!(live.len() >= 40, "live frames: {deltas:?}");
    assert!(
        live.iter().all(|d| (3500..=3700).contains(d)),
        "every frame at 90 kHz / 25 fps: {live:?}"
    );
    assert_eq!(event(&events, "deleted")["status"], 200);
    wait_sessions(&cw, 0, Duration::from_secs(10)).await;
    let cam = cw.camera("cam").await;
    assert_eq!(cam["jpeg_encodes"], 0, "no JPEG for a WebRTC viewer: {cam}");
    let metrics = cw.metrics().await;
    assert!(
        metrics.contains("camwall_webrtc_sessions_opened_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("camwall_clients{kind=\"webrtc\"} 0"));
}

#[tokio::test]
async fn whep_refuses_what_it_cannot_answer_with_json_and_lives_on() {
    let (_rtsp, cw) = high_profile_camera(json!({
        "auth": {"viewer_tokens": [TOKEN]},
        "allowed_origins": [ORIGIN],
    }))
    .await;
    cw.wait_camera_with_token("cam", TOKEN).await;
    let url = cw.url("/api/ip-cameras/cam/whep");
    let refused = |events: &[Value]| {
        let r = event(events, "refused").clone();
        let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).expect("JSON error");
        (
            r["status"].as_u64().unwrap(),
            body["error"].as_str().unwrap().to_string(),
        )
    };
    let t = Duration::from_secs(60);
    let no_token = play(&url, &["--frames", "1"], t).await;
    assert_eq!(refused(&no_token), (401, "unauthorized".into()));
    let audio = play(&url, &["--token", TOKEN, "--kind", "audio"], t).await;
    assert_eq!(refused(&audio), (400, "offer_without_video".into()));

    let http = reqwest::Client::new();
    let post = |url: String, ct: &'static str, body: &'static str| {
        http.post(url)
            .bearer_auth(TOKEN)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let check = |r: reqwest::Response, status: u16, code: &'static str| async move {
        assert_eq!(r.status().as_u16(), status);
        let v: Value = r.json().await.expect("a JSON error");
        assert_eq!(v["error"], code, "{v}");
    };
    check(
        post(url.clone(), "application/sdp", "not an offer")
            .await
            .unwrap(),
        400,
        "bad_offer",
    )
    .await;
    check(
        post(url.clone(), "application/json", "{}").await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    let unknown = cw.url("/api/ip-cameras/nope/whep");
    check(
        post(unknown, "application/sdp", "v=0").await.unwrap(),
        404,
        "unknown_camera",
    )
    .await;
    let session = cw.url("/api/ip-cameras/cam/whep/0123");
    let r = http
        .patch(&session)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    check(r, 405, "trickle_not_supported").await;
    let r = http
        .delete(&session)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    check(r, 404, "unknown_session").await;
    // A player on another origin asks first; only an allowed origin may read the answer.
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let ok = preflight(ORIGIN).await.unwrap();
    assert_eq!(ok.status().as_u16(), 204);
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], ORIGIN);
    assert!(h["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("Location"));
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("Authorization"));
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // A browser page on another origin that is not allowed may not open a session.
    let r = http
        .post(&url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/sdp")
        .header("origin", "https://evil.example")
        .body("v=0")
        .send()
        .await
        .unwrap();
    check(r, 403, "bad_origin").await;

    // Still serving, and a good offer still plays.
    let events = play(&url, &["--token", TOKEN, "--frames", "5"], t).await;
    assert_eq!(event(&events, "done")["frames"], 5);
}

#[tokio::test]
async fn vanished_peers_and_abandoned_offers_leave_nothing_behind() {
    let (_rtsp, cw) = high_profile_camera(json!({
        "webrtc": {"max_sessions_per_ip": 200},
    }))
    .await;
    wait_streaming(&cw).await;
    let url = cw.url("/api/ip-cameras/cam/whep");
    let pid = cw.pid();
    let fds_before = fds(pid);

    // Eight players that vanish: no DELETE, no DTLS close, no more packets.
    let mut players: Vec<Player> = (0..8)
        .map(|_| Player::start(&url, &["--frames", "10", "--vanish", "--timeout", "60"]))
        .collect();
    for p in &mut players {
        let got = p.until("done", Duration::from_secs(90)).await;
        assert_eq!(event(&got, "done")["frames"], 10, "{got:?}");
    }
    for p in players {
        p.wait(Duration::from_secs(10)).await;
    }
    wait_sessions(&cw, 0, Duration::from_secs(60)).await;
    assert_eq!(cw.camera("cam").await["viewers"], 0);
    let end = Instant::now() + Duration::from_secs(60);
    while fds(pid) > fds_before {
        assert!(
            Instant::now() < end,
            "descriptors {} > {fds_before}",
            fds(pid)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 200 offers answered and never connected.
    let offer = play(&url, &["--print-offer"], Duration::from_secs(60)).await;
    let sdp = event(&offer, "offer")["sdp"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let offer = || {
        http.post(&url)
            .header("content-type", "application/sdp")
            .body(sdp.clone())
            .send()
    };
    let rss_before = rss_kib(pid);
    for i in 0..200 {
        let r = offer().await.unwrap();
        assert_eq!(r.status().as_u16(), 201, "offer {i}");
    }
    assert_eq!(health(&cw).await["webrtc"]["sessions"], 200);
    let r = offer().await.unwrap();
    assert_eq!(r.status().as_u16(), 503, "past the per-address cap");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "too_many_clients");
    wait_sessions(&cw, 0, Duration::from_secs(60)).await;
    let rss_after = rss_kib(pid);
    assert!(
        rss_after < rss_before + 16 * 1024,
        "memory after 200 abandoned offers: {rss_after} KiB against {rss_before} KiB"
    );
    assert_eq!(cw.camera("cam").await["viewers"], 0);
}

/// A WHEP player with no UDP at all (as behind a firewall that blocks it): str0m with an
/// active TCP candidate only, framing its packets on one TCP connection (RFC 4571) to the
/// passive candidate camwall announces on its HTTP port. Returns the frames it received.
async fn tcp_only_player(base: &str, camera: &str, want: usize) -> usize {
    use std::net::SocketAddr;
    use str0m::change::SdpAnswer;
    use str0m::media::{Direction, MediaKind};
    use str0m::net::{Protocol, Receive, TcpType};
    use str0m::{Candidate, Event, Input, Output, RtcConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_h264(true)
        .build(Instant::now());
    // Active candidates take port 9 (RFC 6544): the connection's own port is the system's.
    let local: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let c = Candidate::builder()
        .tcp()
        .host(local)
        .tcptype(TcpType::Active)
        .build()
        .unwrap();
    rtc.add_local_candidate(c);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    let r = reqwest::Client::new()
        .post(format!("{base}/api/ip-cameras/{camera}/whep"))
        .header("content-type", "application/sdp")
        .body(offer.to_sdp_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let answer = r.text().await.unwrap();
    assert!(
        answer.contains("tcptype passive"),
        "a passive TCP candidate: {answer}"
    );
    let answer = SdpAnswer::from_sdp_string(&answer).unwrap();
    rtc.sdp_api().accept_answer(pending, answer).unwrap();
    let mut conn: Option<(tokio::net::TcpStream, SocketAddr)> = None;
    let mut frames = 0;
    let end = Instant::now() + Duration::from_secs(60);
    while frames < want && Instant::now() < end {
        let timeout = match rtc.poll_output().unwrap() {
            Output::Transmit(t) => {
                if t.proto == Protocol::Tcp {
                    if conn.is_none() {
                        let s = tokio::net::TcpStream::connect(t.destination).await.unwrap();
                        conn = Some((s, t.destination));
                    }
                    let (s, _) = conn.as_mut().unwrap();
                    let mut framed = (t.contents.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&t.contents);
                    s.write_all(&framed).await.unwrap();
                }
                continue;
            }
            Output::Event(Event::MediaData(_)) => {
                frames += 1;
                continue;
            }
            Output::Event(_) => continue,
            Output::Timeout(t) => t,
        };
        let wait = timeout
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(50));
        let input = match conn.as_mut() {
            Some((s, server)) => {
                let read = async {
                    let n = s.read_u16().await.ok()? as usize;
                    let mut buf = vec![0u8; n];
                    s.read_exact(&mut buf).await.ok()?;
                    Some(buf)
                };
                match tokio::time::timeout(wait, read).await {
                    Ok(Some(buf)) => {
                        let r = Receive::new(Protocol::Tcp, *server, local, &buf).unwrap();
                        rtc.handle_input(Input::Receive(Instant::now(), r)).unwrap();
                        continue;
                    }
                    Ok(None) => panic!("camwall closed the ICE-TCP connection"),
                    Err(_) => Input::Timeout(Instant::now()),
                }
            }
            None => {
                tokio::time::sleep(wait).await;
                Input::Timeout(Instant::now())
            }
        };
        rtc.handle_input(input).unwrap();
    }
    frames
}

#[tokio::test]
async fn ice_over_tcp_on_the_http_port_plays_where_udp_is_blocked() {
    let (_rtsp, cw) = high_profile_camera(json!({})).await;
    wait_streaming(&cw).await;
    let frames = tcp_only_player(&cw.base, "cam", 50).await;
    assert_eq!(frames, 50, "frames over ICE-TCP");
    // The HTTP port still serves HTTP beside it.
    assert_eq!(health(&cw).await["webrtc"]["sessions"], 1);
}
