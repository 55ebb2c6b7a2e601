//! A camera's pictures as JPEG: through its tier cache (warming a cold decoder first), as a
//! long-poll for the next one, or from the node that ingests it when that is another one.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{Camera, CameraState, COLD_WAIT};
use crate::hub::cache::{etag_matches, Encoded, FrameError};
use crate::hub::remote::Remote;
use crate::media::tier::Tier;

impl Camera {
    /// A frame encoded by the node that ingests the camera, numbered in this node's sequence
    /// (the owner's numbers restart when another node takes the camera over; viewers here
    /// must only ever see them grow).
    pub fn relayed(&self, mut e: Encoded) -> Encoded {
        e.seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        e.encoded_at = Instant::now();
        e
    }

    /// A snapshot (or, with `after`, a long-poll) from the node that ingests the camera. A
    /// camera its owner does not report streaming answers at once: no wait on a dead node.
    pub(in crate::hub) async fn jpeg_from_owner(
        &self,
        remote: &dyn Remote,
        tier: Tier,
        after: Option<(&str, Duration)>,
    ) -> Result<Encoded, FrameError> {
        if self.state() != CameraState::Streaming {
            return Err(FrameError::NoFrameYet {
                retry_after_s: self.retry_after_s(),
            });
        }
        remote
            .snapshot(
                &self.id,
                tier,
                after.map(|(etag, wait)| (etag.to_string(), wait)),
            )
            .await
            .map(|e| self.relayed(e))
    }

    /// The latest frame as a JPEG at `tier`, through the TTL cache. Concurrent callers for the
    /// same tier share one encode; a frame is never encoded twice at the same tier.
    ///
    /// It marks demand (the decoder stays warm for `decode_linger_ms`). A camera whose decoder
    /// is stopped would answer with an old picture: the request waits (up to [`COLD_WAIT`]) for
    /// the first picture published after it asked; concurrent requests wait for the same one,
    /// so they share one warm-up.
    pub(in crate::hub) async fn jpeg_here(&self, tier: Tier) -> Result<Encoded, FrameError> {
        let linger = Duration::from_millis(self.config().decode_linger_ms);
        let mut frames = self.latest.subscribe();
        let seen = frames.borrow_and_update().as_ref().map_or(0, |f| f.seq);
        self.demand.touch(Instant::now(), linger);
        if !self.demand.is_cold() {
            return self.encode_tier(tier, None).await;
        }
        // Held while waiting: a zero linger still gets this one picture.
        let hold = self.demand.hold();
        // The session's decoder asked for the current GOP's newest picture at once (on its
        // own it would start only at the next packet); failing that, that warm-up.
        let fresh = match self.decode_cold(seen).await {
            Some(seq) => Some(seq),
            None => tokio::time::timeout(COLD_WAIT, async {
                while frames.changed().await.is_ok() {
                    let seq = frames.borrow_and_update().as_ref().map_or(0, |f| f.seq);
                    if seq > seen {
                        return Some(seq);
                    }
                }
                None
            })
            .await
            .ok()
            .flatten(),
        };
        // The linger counts from the answer, not from the request.
        self.demand.touch(Instant::now(), linger);
        drop(hold);
        // Past the TTL cache: an encode of the old picture younger than the TTL is no answer.
        self.encode_tier(tier, fresh).await
    }

    /// A long-poll of a camera ingested here: waits up to `wait` for a frame whose tag
    /// differs from `after`; the current one if none came.
    pub(in crate::hub) async fn jpeg_after_here(
        &self,
        tier: Tier,
        after: &str,
        wait: Duration,
    ) -> Result<Encoded, FrameError> {
        let deadline = Instant::now() + wait;
        // The decoder keeps running while the poll waits, however long its wait is.
        let _demand = self.demand.hold();
        let mut frames = self.subscribe();
        let mut enc = loop {
            match self.jpeg_here(tier).await {
                Ok(e) => break e,
                // No frame yet: wait for the first one within the same budget.
                Err(FrameError::NoFrameYet { .. }) => {
                    match tokio::time::timeout_at(deadline, frames.changed()).await {
                        Ok(Ok(())) => continue,
                        _ => return self.jpeg_here(tier).await,
                    }
                }
                Err(e) => return Err(e),
            }
        };
        while etag_matches(Some(after), &enc.etag) {
            match tokio::time::timeout_at(deadline, frames.changed()).await {
                Ok(Ok(())) => {
                    let seq = frames.borrow_and_update().as_ref().map_or(0, |f| f.seq);
                    enc = self.jpeg_at_least(tier, seq).await?;
                }
                _ => break,
            }
        }
        Ok(enc)
    }

    /// A cold snapshot's picture: asked of the decoder side of the video feed (registered by
    /// ingest), which decodes the feed's current GOP on a blocking thread and goes on from
    /// there; published here. `None` for cameras without one, or when nothing decoded. One
    /// decode at a time: a request that waited for another's finds a picture newer than
    /// `seen` and takes it.
    async fn decode_cold(&self, seen: u64) -> Option<u64> {
        let _one = self.cold_decode.lock().await;
        let newer = || self.latest().filter(|f| f.seq > seen).map(|f| f.seq);
        if let Some(seq) = newer() {
            return Some(seq);
        }
        let request = self.video.cold_decode()?;
        let p = tokio::task::spawn_blocking(move || request.run())
            .await
            .ok()??;
        // The decoder went on from this picture: one it published meanwhile is newer.
        if let Some(seq) = newer() {
            return Some(seq);
        }
        Some(self.publish(p.width, p.height, p.picture, p.stamp))
    }

    /// The latest frame as a JPEG at `tier`, at least as new as frame `min_seq`, ignoring the
    /// TTL: what live streams use, so that every source frame reaches them.
    pub async fn jpeg_at_least(&self, tier: Tier, min_seq: u64) -> Result<Encoded, FrameError> {
        self.encode_tier(tier, Some(min_seq)).await
    }

    async fn encode_tier(&self, tier: Tier, min_seq: Option<u64>) -> Result<Encoded, FrameError> {
        if self.latest.borrow().is_none() {
            return Err(FrameError::NoFrameYet {
                retry_after_s: self.retry_after_s(),
            });
        }
        self.cache.get(tier, min_seq, || self.latest()).await
    }

    fn retry_after_s(&self) -> u64 {
        let l = self.live();
        match l.next_retry_at {
            Some(t) => t
                .saturating_duration_since(Instant::now())
                .as_secs()
                .clamp(1, 30),
            None => 1,
        }
    }
}
