//! Live fan-out: per camera and lane in demand (a tier plus an optional frame-rate cap), one
//! pump task encodes each new frame once and publishes it on a tokio broadcast channel that
//! every live viewer of that lane reads.
//!
//! A capped lane thins the source *before* encoding, so a wall of small tiles at 5 fps costs
//! 5 encodes a second, not the camera's 25. Lanes of the same tier share the tier's cache, so
//! a frame that two lanes both take is still encoded once.
//!
//! The channel holds one frame: a viewer that falls behind gets `Lagged` and skips to the
//! newest, so a slow viewer costs at most that one shared frame and never slows the pump.
//! A tier nobody watches has no channel and no pump, so nothing is encoded for it.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use tokio::sync::broadcast;
use tracing::debug;

use crate::hub::{Camera, Encoded, Tier};

/// How often a pump counts its viewers when no frame arrives.
const VIEWER_CHECK: Duration = Duration::from_secs(5);

/// Wire format version of binary frame messages (see docs/PROTOCOL.md).
pub const FRAME_MESSAGE_VERSION: u8 = 1;

/// A tier plus the frame-rate cap its viewers asked for: what one pump serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lane {
    pub tier: Tier,
    /// Cap in hundredths of a frame per second; 0: every source frame.
    cap_centi_fps: u32,
}

impl Lane {
    /// The lane for `tier` thinned to `max_fps` (quantized to 0.01 fps so that equal requests
    /// share one lane).
    pub fn new(tier: Tier, max_fps: Option<f64>) -> Self {
        let cap_centi_fps = max_fps
            .filter(|f| f.is_finite() && *f > 0.0)
            .map_or(0, |f| ((f * 100.0).round() as u32).max(1));
        Self {
            tier,
            cap_centi_fps,
        }
    }

    /// Shortest spacing between two frames of this lane, by capture time. 10% slack so that
    /// capture jitter around the exact period does not drop every other frame.
    fn min_spacing(&self) -> Option<Duration> {
        (self.cap_centi_fps > 0).then(|| Duration::from_secs_f64(90.0 / self.cap_centi_fps as f64))
    }
}

/// A frame as published to live viewers, with its WebSocket message built once for all.
#[derive(Debug)]
pub struct Published {
    pub tier: Tier,
    pub encoded: Encoded,
    /// Version byte, header length, JSON header, JPEG: sent as is to every WebSocket viewer.
    pub ws_message: Bytes,
}

#[derive(Serialize)]
struct FrameHeader<'a> {
    camera: &'a str,
    seq: u64,
    ts: u64,
    quality: u8,
    scale: u8,
    width: u32,
    height: u32,
}

/// Builds the binary WebSocket message of a frame: `[version][u16 BE header length][JSON
/// header][JPEG]`; the JPEG starts with its SOI marker (FF D8).
pub fn frame_message(camera: &str, tier: Tier, e: &Encoded) -> Bytes {
    let header = serde_json::to_vec(&FrameHeader {
        camera,
        seq: e.seq,
        ts: e.captured_unix_ms,
        quality: e.jpeg.quality,
        scale: tier.scale,
        width: e.jpeg.width,
        height: e.jpeg.height,
    })
    .unwrap_or_default();
    let mut buf = BytesMut::with_capacity(3 + header.len() + e.jpeg.data.len());
    buf.put_u8(FRAME_MESSAGE_VERSION);
    buf.put_u16(header.len() as u16);
    buf.put_slice(&header);
    buf.put_slice(&e.jpeg.data);
    buf.freeze()
}

/// Subscribes to `lane` of `cam`, starting its pump if nobody watched it yet.
pub fn subscribe(cam: &Arc<Camera>, lane: Lane) -> broadcast::Receiver<Arc<Published>> {
    let mut channels = cam.channels.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(tx) = channels.get(&lane) {
        return tx.subscribe();
    }
    // Capacity 1: latest wins. Viewers never queue more than the newest frame.
    let (tx, rx) = broadcast::channel(1);
    channels.insert(lane, tx.clone());
    drop(channels);
    tokio::spawn(pump(cam.clone(), lane, tx));
    rx
}

/// Encodes every new frame of `cam` that `lane`'s cap lets through once and publishes it,
/// until nobody watches.
async fn pump(cam: Arc<Camera>, lane: Lane, tx: broadcast::Sender<Arc<Published>>) {
    let tier = lane.tier;
    let spacing = lane.min_spacing();
    let mut frames = cam.subscribe();
    let mut last_seq = 0;
    let mut last_captured: Option<std::time::Instant> = None;
    // Viewers are also counted on a timer, so a pump of a camera that stopped sending frames
    // does not outlive its last viewer.
    let mut check = tokio::time::interval(VIEWER_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = tokio::select! {
            _ = cam.removed.cancelled() => break,
            _ = check.tick() => None,
            r = frames.changed() => match r {
                Err(_) => break,
                Ok(()) => frames.borrow_and_update().as_ref().map(|f| (f.seq, f.captured_at)),
            },
        };
        {
            // Under the map lock, so that a new viewer either finds this channel alive or
            // finds it gone and starts a new pump.
            let mut channels = cam.channels.lock().unwrap_or_else(|e| e.into_inner());
            if tx.receiver_count() == 0 {
                channels.remove(&lane);
                debug!(camera = %cam.id(), ?lane, "no viewers left; lane pump stops");
                return;
            }
        }
        let Some((seq, captured_at)) = next else {
            continue;
        };
        if seq <= last_seq {
            continue;
        }
        // Thinned before the encode: a frame no viewer of this lane takes costs nothing.
        if let (Some(min), Some(last)) = (spacing, last_captured) {
            if captured_at.saturating_duration_since(last) < min {
                continue;
            }
        }
        match cam.jpeg_at_least(tier, seq).await {
            Ok(encoded) => {
                last_seq = encoded.seq;
                last_captured = Some(captured_at);
                let ws_message = frame_message(cam.id(), tier, &encoded);
                let _ = tx.send(Arc::new(Published {
                    tier,
                    encoded,
                    ws_message,
                }));
            }
            Err(e) => debug!(camera = %cam.id(), error = %e, "lane pump skipped a frame"),
        }
    }
    cam.channels
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&lane);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jpeg::Jpeg;

    #[test]
    fn frame_message_layout() {
        let e = Encoded {
            seq: 7,
            captured_unix_ms: 1234,
            jpeg: Jpeg {
                data: Bytes::from_static(&[0xFF, 0xD8, 1, 2, 0xFF, 0xD9]),
                width: 640,
                height: 360,
                quality: 80,
            },
            encoded_at: tokio::time::Instant::now(),
            etag: String::new(),
        };
        let m = frame_message(
            "cam-1",
            Tier {
                quality: 80,
                scale: 2,
            },
            &e,
        );
        assert_eq!(m[0], FRAME_MESSAGE_VERSION);
        let n = u16::from_be_bytes([m[1], m[2]]) as usize;
        let header: serde_json::Value = serde_json::from_slice(&m[3..3 + n]).unwrap();
        assert_eq!(header["camera"], "cam-1");
        assert_eq!(header["seq"], 7);
        assert_eq!(header["ts"], 1234);
        assert_eq!(header["scale"], 2);
        assert_eq!(&m[3 + n..3 + n + 2], &[0xFF, 0xD8]);
    }

    #[test]
    fn lanes_quantize_caps() {
        let t = Tier {
            quality: 80,
            scale: 1,
        };
        assert_eq!(Lane::new(t, None), Lane::new(t, Some(f64::NAN)));
        assert_eq!(Lane::new(t, Some(5.0)), Lane::new(t, Some(5.001)));
        assert_ne!(Lane::new(t, Some(5.0)), Lane::new(t, Some(6.0)));
        assert_eq!(Lane::new(t, None).min_spacing(), None);
        assert_eq!(
            Lane::new(t, Some(10.0)).min_spacing(),
            Some(Duration::from_millis(90))
        );
    }
}
