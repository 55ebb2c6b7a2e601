//! Unit tests of `hub::camera`: the tier cache through a camera, backoff status, the fps meter.
use super::*;
use crate::hub::FrameError;
use crate::media::tier::Tier;
use bytes::Bytes;

pub(crate) fn jpeg_bytes() -> Bytes {
    let y = vec![128u8; 16 * 16];
    let c = vec![128u8; 8 * 8];
    let p = crate::media::jpeg::YuvPlanes {
        planes: [&y, &c, &c],
        strides: [16, 8, 8],
        width: 16,
        height: 16,
        subsamp: turbojpeg::Subsamp::Sub2x2,
        limited_range: false,
    };
    crate::media::jpeg::encode_planes(&p, 90, 1).unwrap().data
}

fn camera(ttl_ms: u64) -> Camera {
    let cfg: CameraConfig = serde_json::from_str(r#"{"id":"a","url":"lavfi:testsrc2"}"#).unwrap();
    let settings = HubSettings {
        frame_cache_ttl: Duration::from_millis(ttl_ms),
        qualities: Qualities::new(&[85, 80, 70]),
        max_cached_tiers: 8,
        remote: Default::default(),
    };
    Camera::new(cfg, &settings, 7)
}

/// Publishes a 16x16 source JPEG (passed through at quality >= 85); returns its seq.
pub(crate) fn publish(cam: &Camera) -> u64 {
    cam.publish(
        16,
        16,
        Picture::Jpeg {
            data: jpeg_bytes(),
            quality: Some(90),
        },
        crate::media::clock::Stamp::now(0),
    )
}

const T50: Tier = Tier {
    quality: 50,
    scale: 1,
};

#[tokio::test(start_paused = true)]
async fn ttl_cache_serves_the_same_jpeg_until_it_expires() {
    let cam = camera(16);
    assert!(matches!(
        cam.jpeg(T50).await,
        Err(FrameError::NoFrameYet { .. })
    ));
    publish(&cam);
    let a = cam.jpeg(T50).await.unwrap();
    assert_eq!(cam.status().jpeg_encodes, 1);
    // A newer frame within the TTL: the cached JPEG is served again.
    publish(&cam);
    let b = cam.jpeg(T50).await.unwrap();
    assert_eq!(a.seq, b.seq);
    assert_eq!(cam.status().jpeg_encodes, 1);
    // After the TTL, the newer frame is encoded.
    tokio::time::advance(Duration::from_millis(17)).await;
    let c = cam.jpeg(T50).await.unwrap();
    assert_eq!(c.seq, a.seq + 1);
    assert_eq!(cam.status().jpeg_encodes, 2);
    // Same frame, long after the TTL: still no second encode.
    tokio::time::advance(Duration::from_millis(100)).await;
    let d = cam.jpeg(T50).await.unwrap();
    assert_eq!(d.etag, c.etag);
    assert_eq!(cam.status().jpeg_encodes, 2);
    assert_eq!(cam.status().cache_hits, 2);
    // Live streams ask for "at least this frame" and ignore the TTL.
    publish(&cam);
    let e = cam.jpeg_at_least(T50, d.seq + 1).await.unwrap();
    assert_eq!(e.seq, d.seq + 1);
}

#[tokio::test]
async fn passthrough_does_not_encode_and_tiers_are_bounded() {
    let cam = camera(0);
    publish(&cam);
    let e = cam
        .jpeg(Tier {
            quality: 90,
            scale: 1,
        })
        .await
        .unwrap();
    assert_eq!(e.jpeg.data, jpeg_bytes());
    assert_eq!(cam.status().jpeg_encodes, 0);
    for q in 1..=20 {
        cam.jpeg(Tier {
            quality: q,
            scale: 1,
        })
        .await
        .unwrap();
    }
    assert!(cam.status().tiers.len() <= 8);
}

#[tokio::test]
async fn pinned_tiers_stay_and_the_bound_is_hard() {
    let cam = camera(0);
    publish(&cam);
    let pins: Vec<_> = (1..=8)
        .map(|q| {
            let t = Tier {
                quality: q * 10,
                scale: 1,
            };
            assert!(cam.cache().can_pin(t));
            cam.cache().pin(t)
        })
        .collect();
    assert_eq!(cam.cache().pinned_tiers(), 8);
    assert!(!cam.cache().can_pin(Tier {
        quality: 5,
        scale: 1
    }));
    // A snapshot at a ninth tier is still answered, without growing the cache.
    cam.jpeg(Tier {
        quality: 5,
        scale: 2,
    })
    .await
    .unwrap();
    assert_eq!(cam.status().tiers.len(), 8);
    drop(pins);
    assert_eq!(cam.cache().pinned_tiers(), 0);
}

struct Refused;
impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rtsp://u:secret@h/x said 401")
    }
}
impl SessionFailure for Refused {
    fn is_unauthorized(&self) -> bool {
        true
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_state_is_redacted_and_counts() {
    let cam = camera(0);
    cam.set_backoff(&Refused, Duration::from_secs(2));
    let s = cam.status();
    assert_eq!(s.state, CameraState::Unauthorized);
    assert_eq!(s.reconnects, 1);
    assert_eq!(s.retry_in_ms, Some(2000));
    assert!(!s.last_error.unwrap_or_default().contains("secret"));
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(cam.status().retry_in_ms, Some(1500));
}

/// Publishes one frame every `every` for `n` frames, on paused time.
async fn feed(cam: &Camera, n: u32, every: Duration) {
    for _ in 0..n {
        tokio::time::advance(every).await;
        publish(cam);
    }
}

#[tokio::test(start_paused = true)]
async fn fps_ignores_a_startup_burst() {
    let cam = camera(0);
    // Eight buffered frames at once, as a camera that just opened hands them out.
    for _ in 0..8 {
        publish(&cam);
    }
    assert_eq!(cam.status().fps, 0.0, "a burst alone is no rate");
    feed(&cam, 12, Duration::from_millis(100)).await;
    assert_eq!(cam.status().fps, 10.0);
}

#[tokio::test(start_paused = true)]
async fn a_slow_camera_shows_its_rate_between_frames() {
    let cam = camera(0);
    feed(&cam, 3, Duration::from_secs(5)).await;
    assert_eq!(cam.status().fps, 0.2);
    // Four seconds into the next five-second gap it is still streaming at 0.2.
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(cam.status().fps, 0.2);
    // Three intervals without a frame: it stopped.
    tokio::time::advance(Duration::from_secs(12)).await;
    assert_eq!(cam.status().fps, 0.0);
}

#[tokio::test(start_paused = true)]
async fn fps_is_zero_once_the_camera_stops_or_fails() {
    let cam = camera(0);
    feed(&cam, 30, Duration::from_millis(40)).await;
    assert_eq!(cam.status().fps, 25.0);
    cam.set_stopped();
    assert_eq!(cam.status().fps, 0.0);
    feed(&cam, 40, Duration::from_millis(40)).await;
    assert_eq!(cam.status().fps, 25.0);
    cam.set_backoff(&Refused, Duration::from_secs(1));
    assert_eq!(cam.fps_at(Instant::now()), 0.0);
    // And it stays 0 with no frame coming.
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(cam.status().fps, 0.0);
}

#[tokio::test]
async fn a_new_name_keeps_the_picture_a_new_url_drops_it() {
    let cam = camera(0);
    publish(&cam);
    let mut cfg = (*cam.config()).clone();
    cfg.name = Some("Front door".into());
    cam.set_config(cfg.clone());
    assert!(cam.latest().is_some());
    assert_eq!(cam.info().name, "Front door");
    cfg.url = "lavfi:testsrc".into();
    cam.set_config(cfg);
    assert!(cam.latest().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_marks_demand_for_the_linger_time() {
    let cam = camera(1000);
    publish(&cam);
    assert!(!cam.demand().wanted());
    cam.jpeg(T50).await.unwrap();
    // The default linger: 10 s after the snapshot.
    tokio::time::advance(Duration::from_millis(9_990)).await;
    assert!(
        cam.demand().wanted(),
        "a recent snapshot keeps the decoder warm"
    );
    tokio::time::advance(Duration::from_millis(20)).await;
    assert!(!cam.demand().wanted(), "the linger passed");
}

#[tokio::test(start_paused = true)]
async fn snapshots_of_a_cold_camera_share_the_next_picture_and_never_get_the_old_one() {
    let cam = Arc::new(camera(60_000));
    publish(&cam);
    let old = cam.jpeg(T50).await.unwrap();
    tokio::time::advance(Duration::from_secs(60)).await;
    // The decoder stopped: the newest picture is a minute old.
    cam.demand().set_cold();
    assert!(!cam.demand().wanted());
    let (a, b) = (cam.clone(), cam.clone());
    let first = tokio::spawn(async move { a.jpeg(T50).await });
    let second = tokio::spawn(async move { b.jpeg(T50).await });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!first.is_finished() && !second.is_finished(), "they wait");
    assert!(cam.demand().wanted(), "waiting requests want pictures");
    tokio::time::advance(Duration::from_millis(40)).await;
    publish(&cam);
    let (first, second) = (
        first.await.unwrap().unwrap(),
        second.await.unwrap().unwrap(),
    );
    assert!(first.seq > old.seq, "not the old picture");
    assert_eq!(first.etag, second.etag, "one warm-up, one encode, for both");
    // Warm now: the next snapshot answers at once from the cache.
    assert!(!cam.demand().is_cold());
    assert_eq!(cam.jpeg(T50).await.unwrap().etag, first.etag);
    // No picture within the bound: the newest one, rather than no answer.
    cam.demand().set_cold();
    let t0 = Instant::now();
    let late = cam.jpeg(T50).await.unwrap();
    assert_eq!((late.seq, t0.elapsed()), (first.seq, COLD_WAIT));
}

#[test]
fn a_camera_that_goes_to_another_node_forgets_its_last_picture() {
    let cam = camera(100);
    publish(&cam);
    cam.set_elsewhere(false);
    assert!(cam.latest().is_some(), "staying here keeps it");
    cam.set_elsewhere(true);
    assert!(cam.latest().is_none(), "another node has the camera now");
    // Back here: nothing to show until this node's own next picture.
    cam.set_elsewhere(false);
    assert!(cam.latest().is_none());
    assert!(
        !cam.placement().is_elsewhere(),
        "no remote without a cluster"
    );
}

#[test]
fn a_cold_cameras_picture_is_dropped_and_a_new_one_is_kept() {
    let cam = camera(100);
    publish(&cam);
    cam.forget_cold_picture();
    assert!(cam.latest().is_some(), "not cold: kept");
    cam.demand().set_cold();
    cam.forget_cold_picture();
    assert!(cam.latest().is_none(), "cold: older than the GOP, dropped");
    // A picture published after (a snapshot's warm-up) makes the camera current again.
    let seq = publish(&cam);
    cam.forget_cold_picture();
    assert_eq!(cam.latest().map(|f| f.seq), Some(seq));
}
