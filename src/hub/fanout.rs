//! Live fan-out of one camera: per lane in demand (a tier plus a frame-rate cap, see
//! `media::tier`), one pump task encodes each new frame once and publishes it on a tokio
//! broadcast channel that every live viewer of that lane reads.
//!
//! A capped lane thins the source *before* encoding, so a wall of small tiles at 5 fps costs 5
//! encodes a second, not the camera's 25. Lanes of the same tier share the tier's cache, so a
//! frame that two lanes both take is still encoded once. Lanes per camera are bounded
//! ([`MAX_LANES_PER_CAMERA`], and the cache's tier bound): beyond it a request is served from
//! the nearest existing lane.
//!
//! The channel holds one frame: a viewer that falls behind gets `Lagged` and skips to the
//! newest, so a slow viewer costs at most that one shared frame and never slows the pump. A
//! lane nobody watches has no channel and no pump, so nothing is encoded for it. This module
//! owns its lanes; it reads the camera and never writes to it.
//!
//! One pump serves a lane wherever the camera is ingested: it takes the lane's frames from the
//! camera's `placement` (encoded here, or the owner's frames of the same lane when another
//! cluster node ingests the camera) and publishes them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tracing::debug;

use super::cache::{Encoded, Pin};
use super::camera::Camera;
use super::demand::DemandHold;
use crate::media::tier::{Lane, Tier, MAX_LANES_PER_CAMERA};

/// How often a pump counts its viewers when no frame arrives.
const VIEWER_CHECK: Duration = Duration::from_secs(5);

/// A frame as published to live viewers.
#[derive(Debug)]
pub struct Published {
    pub tier: Tier,
    pub encoded: Encoded,
    /// The frame as one output's wire message, built by the first viewer of that output and
    /// shared by the rest (so a WebSocket header is serialized once per frame, not per viewer).
    wire: OnceLock<Bytes>,
}

impl Published {
    pub fn new(tier: Tier, encoded: Encoded) -> Self {
        Self {
            tier,
            encoded,
            wire: OnceLock::new(),
        }
    }

    /// The wire message, built once by `build` for every viewer.
    pub fn wire(&self, build: impl FnOnce(&Self) -> Bytes) -> Bytes {
        self.wire.get_or_init(|| build(self)).clone()
    }
}

struct LaneEntry {
    tx: broadcast::Sender<Arc<Published>>,
    /// Keeps the lane's tier in the camera's cache while the lane lives.
    _pin: Pin,
    /// Keeps the camera decoding while the lane lives (its pump needs pictures).
    _demand: DemandHold,
}

/// The live lanes of one camera.
pub struct Fanout {
    cam: Arc<Camera>,
    lanes: Mutex<HashMap<Lane, LaneEntry>>,
    /// Receivers that record (the replay ring's JPEGs), not counted as viewers.
    recorders: Arc<std::sync::atomic::AtomicUsize>,
}

impl Fanout {
    pub fn new(cam: Arc<Camera>) -> Arc<Self> {
        Arc::new(Self {
            cam,
            lanes: Mutex::new(HashMap::new()),
            recorders: Arc::default(),
        })
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, HashMap<Lane, LaneEntry>> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Live viewers of every lane of this camera.
    pub fn viewers(&self) -> usize {
        let all: usize = self.lanes().values().map(|e| e.tx.receiver_count()).sum();
        all.saturating_sub(self.recorders.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Counts a lane's receiver as a recorder until the guard is dropped.
    pub(super) fn recorder(&self) -> super::video::Recorder {
        super::video::Recorder::new(self.recorders.clone())
    }

    /// Lanes with a pump right now.
    pub fn lane_count(&self) -> usize {
        self.lanes().len()
    }

    /// Subscribes to `want`, starting its pump if nobody watched it yet. Returns the lane
    /// actually served: `want`, or the nearest existing lane when the camera has as many
    /// lanes (or pinned tiers) as it may.
    pub(super) fn subscribe(
        self: &Arc<Self>,
        want: Lane,
    ) -> (Lane, broadcast::Receiver<Arc<Published>>) {
        let mut lanes = self.lanes();
        if let Some(e) = lanes.get(&want) {
            return (want, e.tx.subscribe());
        }
        let full = lanes.len() >= MAX_LANES_PER_CAMERA || !self.cam.cache().can_pin(want.tier);
        if full {
            let nearest = lanes
                .iter()
                .min_by_key(|(l, _)| want.distance(l))
                .map(|(l, e)| (*l, e.tx.subscribe()));
            if let Some(found) = nearest {
                debug!(camera = %self.cam.id(), ?want, lane = ?found.0, "lane cap reached; nearest lane serves");
                return found;
            }
        }
        // Capacity 1: latest wins. Viewers never queue more than the newest frame.
        let (tx, rx) = broadcast::channel(1);
        lanes.insert(
            want,
            LaneEntry {
                tx: tx.clone(),
                _pin: self.cam.cache().pin(want.tier),
                _demand: self.cam.demand().hold_at(want.max_fps()),
            },
        );
        drop(lanes);
        tokio::spawn(self.clone().pump(want, tx));
        (want, rx)
    }

    /// Drops `lane` if nobody watches it. Under the map lock, so that a new viewer either finds
    /// the channel alive or finds it gone and starts a new pump.
    fn release_if_unwatched(&self, lane: Lane, tx: &broadcast::Sender<Arc<Published>>) -> bool {
        let mut lanes = self.lanes();
        if tx.receiver_count() == 0 {
            lanes.remove(&lane);
            return true;
        }
        false
    }

    /// Serves `lane` until nobody watches or the camera is removed, from wherever the
    /// camera's pictures come from ([`Placement`](super::placement::Placement)): encoded here
    /// while this node ingests the camera, the owner's lane while another node does, moving
    /// between the two when the camera moves.
    async fn pump(self: Arc<Self>, lane: Lane, tx: broadcast::Sender<Arc<Published>>) {
        let cam = &self.cam;
        let mut moves = cam.placement_changes();
        // Viewers are also counted on a timer, so a pump of a camera that stopped sending
        // frames does not outlive its last viewer.
        let mut check = viewer_check();
        'placed: loop {
            moves.borrow_and_update();
            let mut feed = cam.placement().lane(cam, lane);
            loop {
                let next = tokio::select! {
                    _ = cam.removed().cancelled() => break 'placed,
                    Ok(()) = moves.changed() => continue 'placed,
                    _ = check.tick() => None,
                    e = feed.next() => match e {
                        Some(e) => Some(e),
                        // The camera is gone.
                        None => break 'placed,
                    },
                };
                if self.release_if_unwatched(lane, &tx) {
                    debug!(camera = %cam.id(), ?lane, "no viewers left; lane pump stops");
                    return;
                }
                if let Some(encoded) = next {
                    let _ = tx.send(Arc::new(Published::new(lane.tier, encoded)));
                }
            }
        }
        self.lanes().remove(&lane);
    }
}

fn viewer_check() -> tokio::time::Interval {
    let mut check = tokio::time::interval(VIEWER_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::camera::HubSettings;
    use crate::hub::remote::Remote;
    use crate::media::tier::Qualities;
    use tokio::sync::watch;

    fn camera() -> Arc<Camera> {
        let cfg = serde_json::from_str(r#"{"id":"a","url":"lavfi:testsrc2"}"#).unwrap();
        let settings = HubSettings {
            frame_cache_ttl: Duration::from_millis(16),
            qualities: Qualities::new(&[85, 80, 70]),
            max_cached_tiers: 8,
            remote: Default::default(),
        };
        Arc::new(Camera::new(cfg, &settings, 1))
    }

    use crate::hub::camera::tests::publish;

    const T: Tier = Tier {
        quality: 90,
        scale: 1,
    };

    #[tokio::test(start_paused = true)]
    async fn pump_publishes_each_frame_once_and_stops_without_viewers() {
        let cam = camera();
        let fan = Fanout::new(cam.clone());
        let (lane, mut a) = fan.subscribe(Lane::new(T, None));
        let (_, mut b) = fan.subscribe(lane);
        assert_eq!(fan.lane_count(), 1);
        assert!(cam.demand().wanted(), "a live lane needs pictures");
        tokio::task::yield_now().await;
        let seq = publish(&cam);
        let pa = a.recv().await.unwrap();
        let pb = b.recv().await.unwrap();
        assert_eq!((pa.encoded.seq, pb.encoded.seq), (seq, seq));
        assert!(Arc::ptr_eq(&pa, &pb), "one publish shared by both viewers");
        // The wire message is built once.
        let mut builds = 0;
        let w1 = pa.wire(|_| {
            builds += 1;
            Bytes::from_static(b"x")
        });
        let w2 = pb.wire(|_| {
            builds += 1;
            Bytes::from_static(b"y")
        });
        assert_eq!(
            (w1, w2, builds),
            (Bytes::from_static(b"x"), Bytes::from_static(b"x"), 1)
        );
        drop((a, b));
        // The pump notices at its next wake-up (a frame or the viewer check).
        tokio::time::advance(VIEWER_CHECK + Duration::from_millis(1)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(fan.lane_count(), 0);
        assert_eq!(cam.cache().pinned_tiers(), 0);
        assert!(!cam.demand().wanted(), "no lane left: the decoder may stop");
    }

    #[tokio::test(start_paused = true)]
    async fn capped_lane_thins_before_encoding() {
        let cam = camera();
        let fan = Fanout::new(cam.clone());
        let (_, mut rx) = fan.subscribe(Lane::new(T, Some(5.0)));
        tokio::task::yield_now().await;
        let mut got = 0;
        // 25 fps for one second into a 5 fps lane.
        let t0 = tokio::time::Instant::now();
        for i in 0..25u32 {
            tokio::time::sleep_until(t0 + Duration::from_millis(40) * i).await;
            publish(&cam);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
                got += 1;
            }
        }
        assert!((4..=6).contains(&got), "{got} frames through a 5 fps lane");
    }

    #[tokio::test]
    async fn lanes_are_capped_and_overflow_goes_to_the_nearest() {
        let cam = camera();
        let fan = Fanout::new(cam.clone());
        let mut keep = Vec::new();
        for q in 1..=40u8 {
            let want = Lane::new(
                Tier {
                    quality: q,
                    scale: 1,
                },
                Some(5.0),
            );
            let (got, rx) = fan.subscribe(want);
            if q <= 8 {
                assert_eq!(got, want);
            }
            keep.push(rx);
        }
        assert!(fan.lane_count() <= MAX_LANES_PER_CAMERA);
        assert!(cam.cache().pinned_tiers() <= 8);
        let (got, _rx) = fan.subscribe(Lane::new(
            Tier {
                quality: 40,
                scale: 1,
            },
            Some(5.0),
        ));
        assert_eq!(
            got.tier.quality, 8,
            "nearest quality among the existing lanes"
        );
    }

    /// A scripted remote: the test plays the owner's lane frames.
    #[derive(Default)]
    struct Scripted {
        lanes: Mutex<Vec<(Lane, watch::Sender<Option<Encoded>>)>>,
    }

    impl Remote for Scripted {
        fn lane(&self, _camera: &str, lane: Lane) -> watch::Receiver<Option<Encoded>> {
            let (tx, rx) = watch::channel(None);
            self.lanes.lock().unwrap().push((lane, tx));
            rx
        }

        fn snapshot(
            &self,
            _camera: &str,
            _tier: Tier,
            _after: Option<(String, Duration)>,
        ) -> futures_util::future::BoxFuture<'static, Result<Encoded, crate::hub::FrameError>>
        {
            Box::pin(async { Err(crate::hub::FrameError::Remote("scripted".into())) })
        }
    }

    fn owner_frame(seq: u64) -> Encoded {
        Encoded {
            seq,
            stamp: crate::media::clock::Stamp {
                pts_us: 0,
                captured_unix_ms: 1,
            },
            jpeg: crate::media::jpeg::Jpeg {
                data: Bytes::from_static(&[0xff, 0xd8]),
                width: 8,
                height: 8,
                quality: 90,
            },
            encoded_at: tokio::time::Instant::now(),
            etag: format!("\"owner-{seq}\""),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_camera_ingested_elsewhere_passes_on_the_owners_lane_and_comes_back() {
        let remote = Arc::new(Scripted::default());
        let slot = crate::hub::remote::RemoteSlot::default();
        slot.set(remote.clone());
        let cfg = serde_json::from_str(r#"{"id":"a","url":"lavfi:testsrc2"}"#).unwrap();
        let settings = HubSettings {
            frame_cache_ttl: Duration::from_millis(16),
            qualities: Qualities::new(&[85, 80, 70]),
            max_cached_tiers: 8,
            remote: slot,
        };
        let cam = Arc::new(Camera::new(cfg, &settings, 1));
        cam.set_elsewhere(true);
        let fan = Fanout::new(cam.clone());
        let lane = Lane::new(T, Some(5.0));
        let (_, mut rx) = fan.subscribe(lane);
        tokio::task::yield_now().await;
        let owner = remote.lanes.lock().unwrap().remove(0);
        assert_eq!(owner.0, lane, "the owner is asked for the same lane");
        // The owner's numbers (here 500, then 7 after a takeover) become this node's, growing.
        owner.1.send_replace(Some(owner_frame(500)));
        let a = rx.recv().await.unwrap();
        owner.1.send_replace(Some(owner_frame(7)));
        let b = rx.recv().await.unwrap();
        assert!(
            b.encoded.seq > a.encoded.seq,
            "{} then {}",
            a.encoded.seq,
            b.encoded.seq
        );
        assert_eq!(b.encoded.etag, "\"owner-7\"", "the owner's tag is kept");
        assert_eq!(cam.cache().stats().jpeg_encodes, 0, "nothing encoded here");
        // This node takes the camera: the lane encodes local pictures, the owner's lane goes.
        cam.set_elsewhere(false);
        tokio::time::timeout(Duration::from_secs(1), owner.1.closed())
            .await
            .expect("the remote lane is dropped");
        let seq = publish(&cam);
        let c = rx.recv().await.unwrap();
        assert_eq!(c.encoded.seq, seq);
        assert!(c.encoded.seq > b.encoded.seq);
        assert_eq!(
            c.encoded.jpeg.width, 16,
            "encoded here from the local picture"
        );
    }
}
