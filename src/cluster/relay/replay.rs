//! Replay across nodes: the node that ingests a camera keeps its ring and answers other nodes'
//! requests for its span (`.rspan`) and for the picture at an instant (`.rat`, the snapshot's
//! wire format); the `replay::RemoteRing` seam asks them for cameras ingested elsewhere.
//! Clips and WebSocket replays are not relayed: they would carry the camera's bitrate through
//! the broker for each replaying viewer; they are served by the owner.

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::pictures::{error_payload, ok_payload, parse_answer, SNAPSHOT_TIMEOUT};
use super::{stream_of, subject, Relay};
use crate::hub::Encoded;
use crate::media::clock::Stamp;
use crate::media::jpeg::Jpeg;
use crate::media::tier::Tier;
use crate::replay::read::ReadError;
use crate::replay::ring::Span;
use crate::replay::RemoteRing;

/// A picture-at-an-instant request as it crosses NATS.
#[derive(Debug, Serialize, Deserialize)]
struct AtRequest {
    at_ms: u64,
    quality: u8,
    scale: u8,
}

impl Relay {
    /// Answers another node's `.rspan` or `.rat` for a camera this node ingests.
    pub(super) async fn answer_replay(&self, m: async_nats::Message) {
        let (Some(reply), Some(id)) = (m.reply.clone(), stream_of(&m.subject)) else {
            return;
        };
        let Some(ring) = self.replay.clone().filter(|_| self.ingests(&id)) else {
            // Not ours, or replay is off here: the owner answers, or nobody (a timeout).
            return;
        };
        let answer = if m.subject.ends_with(".rspan") {
            serde_json::to_vec(&ring.span(&id))
                .unwrap_or_default()
                .into()
        } else {
            let req = serde_json::from_slice::<AtRequest>(&m.payload).ok();
            match req.and_then(|r| Tier::checked(r.quality, r.scale).map(|t| (r.at_ms, t))) {
                None => error_payload("bad request"),
                Some((at, tier)) => match ring.local_picture_at(&id, at, tier).await {
                    Ok((jpeg, stamp)) => ok_payload(&encoded(jpeg, stamp)),
                    Err(ReadError::NotInReplay) => error_payload(NOT_IN_REPLAY),
                    Err(e) => error_payload(&e.to_string()),
                },
            }
        };
        let _ = self.client.publish(reply, answer).await;
    }
}

/// The owner's answer for an instant it does not hold.
const NOT_IN_REPLAY: &str = "not_in_replay";

fn encoded(jpeg: Jpeg, stamp: Stamp) -> Encoded {
    Encoded {
        seq: 0,
        stamp,
        jpeg,
        encoded_at: tokio::time::Instant::now(),
        etag: String::new(),
    }
}

async fn ask(
    client: async_nats::Client,
    id: &str,
    kind: &str,
    payload: Vec<u8>,
) -> Result<bytes::Bytes, ReadError> {
    let request = async_nats::Request::new()
        .payload(payload.into())
        .timeout(Some(SNAPSHOT_TIMEOUT));
    client
        .send_request(subject(id, kind), request)
        .await
        .map(|m| m.payload)
        .map_err(|e| ReadError::Decode(format!("the camera's node did not answer: {}", e.kind())))
}

impl RemoteRing for Relay {
    fn span(&self, id: &str) -> BoxFuture<'static, Result<Span, ReadError>> {
        let (client, id) = (self.client.clone(), id.to_string());
        Box::pin(async move {
            let p = ask(client, &id, "rspan", Vec::new()).await?;
            serde_json::from_slice(&p).map_err(|_| ReadError::Corrupt)
        })
    }

    fn picture_at(
        &self,
        id: &str,
        at_ms: u64,
        tier: Tier,
    ) -> BoxFuture<'static, Result<(Jpeg, Stamp), ReadError>> {
        let (client, id) = (self.client.clone(), id.to_string());
        let req = serde_json::to_vec(&AtRequest {
            at_ms,
            quality: tier.quality,
            scale: tier.scale,
        })
        .unwrap_or_default();
        Box::pin(async move {
            let p = ask(client, &id, "rat", req).await?;
            match parse_answer(p) {
                Ok(e) => Ok((e.jpeg, e.stamp)),
                Err(e) if e.to_string().contains(NOT_IN_REPLAY) => Err(ReadError::NotInReplay),
                Err(e) => Err(ReadError::Decode(e.to_string())),
            }
        })
    }
}
