//! Live fan-out: per camera and tier in demand, one pump task encodes each new frame once and
//! publishes it on a tokio broadcast channel that every live viewer of that tier reads.
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

/// Subscribes to `tier` of `cam`, starting its pump if nobody watched it yet.
pub fn subscribe(cam: &Arc<Camera>, tier: Tier) -> broadcast::Receiver<Arc<Published>> {
    let mut channels = cam.channels.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(tx) = channels.get(&tier) {
        return tx.subscribe();
    }
    // Capacity 1: latest wins. Viewers never queue more than the newest frame.
    let (tx, rx) = broadcast::channel(1);
    channels.insert(tier, tx.clone());
    drop(channels);
    tokio::spawn(pump(cam.clone(), tier, tx));
    rx
}

/// Number of live viewers of `tier` of `cam`.
pub fn viewers(cam: &Camera, tier: Tier) -> usize {
    cam.channels
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&tier)
        .map_or(0, |tx| tx.receiver_count())
}

/// Encodes every new frame of `cam` at `tier` once and publishes it, until nobody watches.
async fn pump(cam: Arc<Camera>, tier: Tier, tx: broadcast::Sender<Arc<Published>>) {
    let mut frames = cam.subscribe();
    let mut last_seq = 0;
    // Viewers are also counted on a timer, so a pump of a camera that stopped sending frames
    // does not outlive its last viewer.
    let mut check = tokio::time::interval(VIEWER_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let seq = tokio::select! {
            _ = cam.removed.cancelled() => break,
            _ = check.tick() => None,
            r = frames.changed() => match r {
                Err(_) => break,
                Ok(()) => frames.borrow_and_update().as_ref().map(|f| f.seq),
            },
        };
        {
            // Under the map lock, so that a new viewer either finds this channel alive or
            // finds it gone and starts a new pump.
            let mut channels = cam.channels.lock().unwrap_or_else(|e| e.into_inner());
            if tx.receiver_count() == 0 {
                channels.remove(&tier);
                debug!(camera = %cam.id(), ?tier, "no viewers left; tier pump stops");
                return;
            }
        }
        let Some(seq) = seq else { continue };
        if seq <= last_seq {
            continue;
        }
        match cam.jpeg_at_least(tier, seq).await {
            Ok(encoded) => {
                last_seq = encoded.seq;
                let ws_message = frame_message(cam.id(), tier, &encoded);
                let _ = tx.send(Arc::new(Published {
                    tier,
                    encoded,
                    ws_message,
                }));
            }
            Err(e) => debug!(camera = %cam.id(), error = %e, "tier pump skipped a frame"),
        }
    }
    cam.channels
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&tier);
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
}
