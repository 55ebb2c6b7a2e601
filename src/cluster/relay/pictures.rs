//! The relay's pictures: JPEG lanes other nodes ask for (owner side), the `hub::remote`
//! seam for cameras ingested elsewhere (viewing side), and snapshots and long-polls as NATS
//! requests, with their wire formats.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{lock, pull, stream_of, subject, token, Relay, WANT_TTL};
use crate::hub::{Encoded, FrameError, Pictures, Remote, Still, Stream};
use crate::media::clock::Stamp;
use crate::media::jpeg::Jpeg;
use crate::media::tier::{Lane, Tier, MAX_LANES_PER_CAMERA};

/// How long a snapshot waits for the owner's answer (a long-poll: beyond its wait).
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest long-poll an owner holds for another node.
const MAX_REMOTE_WAIT: Duration = Duration::from_secs(60);
/// Most lanes of one camera that other nodes may ask for. Each node asks for at most
/// [`MAX_LANES_PER_CAMERA`], so this leaves room for nodes whose lanes differ; encoding stays
/// within the fan-out's own cap (a lane beyond it is served from the nearest one, on the
/// subject the asking node listens to).
const MAX_WANTED_LANES: usize = 4 * MAX_LANES_PER_CAMERA;

/// A snapshot as it crosses NATS: the JPEG and what the HTTP answer says of it.
#[derive(Debug, Serialize, Deserialize)]
struct SnapMeta {
    seq: u64,
    captured_unix_ms: u64,
    /// The picture's place on the camera's clock (the owner's timeline).
    #[serde(default)]
    pts_us: i64,
    width: u32,
    height: u32,
    quality: u8,
    etag: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapRequest {
    quality: u8,
    scale: u8,
    /// A long-poll: the ETag the client has, and how long to wait for another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    #[serde(default)]
    wait_ms: u64,
}

/// A lane as `.jwant` names it.
#[derive(Debug, Serialize, Deserialize)]
struct LaneWant {
    quality: u8,
    scale: u8,
    #[serde(default)]
    max_fps: Option<f64>,
}

impl LaneWant {
    fn of(lane: Lane) -> Self {
        Self {
            quality: lane.tier.quality,
            scale: lane.tier.scale,
            max_fps: lane.max_fps(),
        }
    }

    /// The lane, if the request names a valid one (another node's bytes: checked, not trusted).
    fn lane(&self) -> Option<Lane> {
        Some(Lane::new(
            Tier::checked(self.quality, self.scale)?,
            self.max_fps,
        ))
    }
}

/// The subject lane `lane` of camera `camera` is published on.
fn lane_subject(camera: &str, lane: Lane) -> String {
    let cap = lane.max_fps().map_or_else(
        || "all".to_string(),
        |f| format!("{}", (f * 1000.0).round() as u64),
    );
    format!(
        "camwall.relay.{}.jpeg.q{}s{}f{cap}",
        token(camera),
        lane.tier.quality,
        lane.tier.scale
    )
}

/// Why a remote snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("the node ingesting this camera did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the node ingesting this camera cannot be reached: {0}")]
    Unreachable(String),
    #[error("the node ingesting this camera has no picture: {0}")]
    Owner(String),
}

impl Relay {
    /// A node wants a lane of one of our cameras (`.jwant`).
    pub(super) fn lane_wanted(&self, subject: &str, payload: &[u8]) {
        let Some(id) = stream_of(subject).filter(|id| self.ingests(id)) else {
            return;
        };
        if self.hub.stream(&id).is_none() {
            return;
        }
        let Some(lane) = serde_json::from_slice::<LaneWant>(payload)
            .ok()
            .and_then(|w| w.lane())
        else {
            debug!(camera = %id, "cluster: unreadable lane request ignored");
            return;
        };
        let mut wanted = lock(&self.jpeg_wanted);
        let lanes = wanted.entry(id).or_default();
        if lanes.len() < MAX_WANTED_LANES || lanes.contains_key(&lane) {
            lanes.insert(lane, Instant::now());
        }
    }

    /// Starts and stops the outbound JPEG lanes: one per lane some node wants of a camera we
    /// ingest.
    pub(super) fn reconcile_jpeg(self: &Arc<Self>, cancel: &CancellationToken) {
        let now = Instant::now();
        let mut wanted = lock(&self.jpeg_wanted);
        for lanes in wanted.values_mut() {
            lanes.retain(|_, t| now.duration_since(*t) < WANT_TTL);
        }
        wanted.retain(|id, lanes| !lanes.is_empty() && self.ingests(id));
        let mut tasks = lock(&self.jpeg_tasks);
        tasks.retain(|(id, lane), t| {
            // A task that ended by itself (its camera removed) makes way for a new one.
            let keep = !t.is_cancelled() && wanted.get(id).is_some_and(|l| l.contains_key(lane));
            if !keep {
                t.cancel();
            }
            keep
        });
        for (id, lanes) in wanted.iter() {
            let Some(out) = self.hub.stream(id) else {
                continue;
            };
            for lane in lanes.keys() {
                if tasks.contains_key(&(id.clone(), *lane)) {
                    continue;
                }
                let token = cancel.child_token();
                let (me, o, l, t) = (self.clone(), out.clone(), *lane, token.clone());
                tokio::spawn(async move { me.jpeg_outbound(o, l, t).await });
                tasks.insert((id.clone(), *lane), token);
            }
        }
    }

    /// Owner side: one live lane of our fan-out, its JPEGs published as they come.
    async fn jpeg_outbound(self: Arc<Self>, out: Stream, lane: Lane, token: CancellationToken) {
        // Whatever ends it, its entry goes at the next reconcile.
        let _ended = token.clone().drop_guard();
        // The fan-out may serve the nearest lane when the camera has as many as it may.
        let mut frames = out.attach(Pictures(lane));
        let cam = out.camera;
        let subject = lane_subject(cam.id(), lane);
        let mut placement = cam.placement_changes();
        loop {
            let p = tokio::select! {
                biased;
                _ = token.cancelled() => return,
                _ = cam.removed().cancelled() => return,
                // Ours no more: our own lane now takes the new owner's frames from this very
                // subject, and publishing them back would echo them.
                _ = placement.changed() => {
                    if cam.placement().is_elsewhere() {
                        return;
                    }
                    continue;
                }
                r = frames.next() => match r {
                    Some(Ok(p)) => p,
                    // Latest wins, as for any viewer.
                    Some(Err(_lagged)) => continue,
                    None => return,
                },
            };
            let _ = self
                .client
                .publish(subject.clone(), ok_payload(&p.encoded))
                .await;
        }
    }

    pub(super) async fn answer_snapshot(&self, m: async_nats::Message) {
        let Some(reply) = m.reply.clone() else { return };
        let Some(id) = stream_of(&m.subject) else {
            return;
        };
        let Some(stream) = self.hub.stream(&id).filter(|_| self.ingests(&id)) else {
            // Not ours: the owner answers.
            return;
        };
        let answer = match serde_json::from_slice::<SnapRequest>(&m.payload) {
            Err(e) => error_payload(&format!("bad request: {e}")),
            Ok(r) => {
                let Some(tier) = Tier::checked(r.quality, r.scale) else {
                    let _ = self
                        .client
                        .publish(reply, error_payload("bad request: no such tier"))
                        .await;
                    return;
                };
                let wait = Duration::from_millis(r.wait_ms).min(MAX_REMOTE_WAIT);
                let after = r.after.map(|etag| (etag, wait));
                let enc = stream.attach(Still { tier, after }).await;
                match enc {
                    Ok(enc) => ok_payload(&enc),
                    Err(e) => error_payload(&e.to_string()),
                }
            }
        };
        let _ = self.client.publish(reply, answer).await;
    }

    /// A snapshot (or long-poll) of camera `id` from the node that ingests it.
    async fn ask_snapshot(
        client: async_nats::Client,
        id: String,
        tier: Tier,
        after: Option<(String, Duration)>,
    ) -> Result<Encoded, SnapshotError> {
        let wait = after.as_ref().map_or(Duration::ZERO, |(_, w)| *w);
        let req = serde_json::to_vec(&SnapRequest {
            quality: tier.quality,
            scale: tier.scale,
            after: after.map(|(a, _)| a),
            wait_ms: wait.as_millis() as u64,
        })
        .unwrap_or_default();
        let request = async_nats::Request::new()
            .payload(req.into())
            .timeout(Some(SNAPSHOT_TIMEOUT + wait));
        let m = match client.send_request(subject(&id, "snap"), request).await {
            Ok(m) => m,
            Err(e) if e.kind() == async_nats::RequestErrorKind::TimedOut => {
                return Err(SnapshotError::Timeout(SNAPSHOT_TIMEOUT + wait))
            }
            Err(e) => return Err(SnapshotError::Unreachable(e.kind().to_string())),
        };
        parse_answer(m.payload)
    }
}

impl Remote for Relay {
    fn lane(&self, camera: &str, lane: Lane) -> watch::Receiver<Option<Encoded>> {
        let (tx, rx) = watch::channel(None);
        let (data, want) = (lane_subject(camera, lane), subject(camera, "jwant"));
        let asked = Bytes::from(serde_json::to_vec(&LaneWant::of(lane)).unwrap_or_default());
        let client = self.client.clone();
        tokio::spawn(async move {
            // Ends when the lane's pump drops its receiver.
            pull(&client, data, want, asked, tx.closed(), |payload| {
                if let Ok(e) = parse_answer(payload) {
                    tx.send_replace(Some(e));
                }
            })
            .await;
        });
        rx
    }

    fn snapshot(
        &self,
        camera: &str,
        tier: Tier,
        after: Option<(String, Duration)>,
    ) -> futures_util::future::BoxFuture<'static, Result<Encoded, FrameError>> {
        let ask = Self::ask_snapshot(self.client.clone(), camera.to_string(), tier, after);
        Box::pin(async move { ask.await.map_err(|e| FrameError::Remote(e.to_string())) })
    }
}

pub(super) fn ok_payload(enc: &Encoded) -> Bytes {
    let meta = serde_json::to_vec(&SnapMeta {
        seq: enc.seq,
        captured_unix_ms: enc.stamp.captured_unix_ms,
        pts_us: enc.stamp.pts_us,
        width: enc.jpeg.width,
        height: enc.jpeg.height,
        quality: enc.jpeg.quality,
        etag: enc.etag.clone(),
    })
    .unwrap_or_default();
    let mut b = BytesMut::with_capacity(3 + meta.len() + enc.jpeg.data.len());
    b.put_u8(0);
    b.put_u16(meta.len() as u16);
    b.put_slice(&meta);
    b.put_slice(&enc.jpeg.data);
    b.freeze()
}

pub(super) fn error_payload(message: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(1 + message.len());
    b.put_u8(1);
    b.put_slice(message.as_bytes());
    b.freeze()
}

pub(super) fn parse_answer(p: Bytes) -> Result<Encoded, SnapshotError> {
    let bad = || SnapshotError::Owner("unreadable answer".into());
    match p.first() {
        Some(0) if p.len() >= 3 => {
            let n = usize::from(u16::from_be_bytes([p[1], p[2]]));
            let meta: SnapMeta =
                serde_json::from_slice(p.get(3..3 + n).ok_or_else(bad)?).map_err(|_| bad())?;
            Ok(Encoded {
                seq: meta.seq,
                stamp: Stamp {
                    pts_us: meta.pts_us,
                    captured_unix_ms: meta.captured_unix_ms,
                },
                jpeg: Jpeg {
                    data: p.slice(3 + n..),
                    width: meta.width,
                    height: meta.height,
                    quality: meta.quality,
                },
                encoded_at: Instant::now(),
                etag: meta.etag,
            })
        }
        Some(1) => Err(SnapshotError::Owner(
            String::from_utf8_lossy(&p[1..]).into_owned(),
        )),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_answers_round_trip() {
        let enc = Encoded {
            seq: 7,
            stamp: Stamp {
                pts_us: -40_000,
                captured_unix_ms: 123,
            },
            jpeg: Jpeg {
                data: Bytes::from_static(&[0xff, 0xd8, 1, 2]),
                width: 320,
                height: 240,
                quality: 80,
            },
            encoded_at: Instant::now(),
            etag: "\"x\"".into(),
        };
        let back = parse_answer(ok_payload(&enc)).unwrap();
        assert_eq!((back.seq, back.jpeg.width, back.jpeg.height), (7, 320, 240));
        assert_eq!(back.jpeg.data, enc.jpeg.data);
        assert_eq!(back.etag, "\"x\"");
        let e = parse_answer(error_payload("camera has no frame yet")).unwrap_err();
        assert!(e.to_string().contains("no frame yet"), "{e}");
        assert!(parse_answer(Bytes::from_static(&[0, 0])).is_err());
    }

    #[test]
    fn lane_requests_are_checked_and_name_their_subject() {
        let lane = Lane::new(
            Tier {
                quality: 70,
                scale: 2,
            },
            Some(5.0),
        );
        let asked = serde_json::to_vec(&LaneWant::of(lane)).unwrap();
        let back: LaneWant = serde_json::from_slice(&asked).unwrap();
        assert_eq!(back.lane(), Some(lane));
        assert_eq!(
            lane_subject("door", lane),
            "camwall.relay.door.jpeg.q70s2f5000"
        );
        let full = Lane::new(lane.tier, None);
        assert_eq!(
            lane_subject("door", full),
            "camwall.relay.door.jpeg.q70s2fall"
        );
        for bad in [
            r#"{"quality":0,"scale":1}"#,
            r#"{"quality":101,"scale":1}"#,
            r#"{"quality":80,"scale":3}"#,
        ] {
            let w: LaneWant = serde_json::from_str(bad).unwrap();
            assert_eq!(w.lane(), None, "{bad}");
        }
        assert!(serde_json::from_str::<LaneWant>(r#"{"quality":"x"}"#).is_err());
    }
}
