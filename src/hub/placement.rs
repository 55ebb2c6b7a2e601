//! Where a camera's pictures come from: this node's ingest (encoded here, from the newest
//! picture) or the cluster node that ingests it (that node's encodes, through the [`Remote`]
//! seam). The one type that decides it: lanes, snapshots and long-polls ask the camera's
//! [`Placement`] and never branch on it themselves.
//!
//! `control` marks a camera as ingested elsewhere (`Camera::set_elsewhere`); the cluster sets
//! the remote once (`Hub::set_remote`). A camera so marked, with a remote, is `Elsewhere`;
//! every other camera is `Here`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::watch;
use tracing::debug;

use super::cache::{Encoded, FrameError};
use super::camera::Camera;
use super::remote::Remote;
use crate::media::frame::Frame;
use crate::media::tier::{Lane, Thinner, Tier};

/// How long a remote lane waits before asking again when its relay ended (NATS away).
const REMOTE_RETRY: Duration = Duration::from_secs(1);

/// A lane's frames, each encoded once, thinned to the lane's cap, numbered in this node's
/// sequence; latest wins (a frame not taken in time is replaced, never queued). Ends only
/// when the camera is gone.
pub type LaneFeed = BoxStream<'static, Encoded>;

/// Where a camera's pictures come from now.
#[derive(Clone)]
pub enum Placement {
    /// This node ingests the camera: pictures are encoded here.
    Here,
    /// Another node ingests it: its pictures are that node's encodes.
    Elsewhere(Arc<dyn Remote>),
}

impl std::fmt::Debug for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Here => "Here",
            Self::Elsewhere(_) => "Elsewhere",
        })
    }
}

impl Camera {
    /// Where the camera's pictures come from now.
    pub fn placement(&self) -> Placement {
        match self.owner_elsewhere() {
            Some(remote) => Placement::Elsewhere(remote),
            None => Placement::Here,
        }
    }

    /// The latest picture as a JPEG at `tier`, through the TTL cache, from wherever the
    /// camera's pictures come from.
    pub(in crate::hub) async fn jpeg(&self, tier: Tier) -> Result<Encoded, FrameError> {
        self.placement().still(self, tier, None).await
    }

    /// A long-poll: waits up to `wait` for a picture whose tag differs from `after`; the
    /// current one if none came.
    pub(in crate::hub) async fn jpeg_after(
        &self,
        tier: Tier,
        after: &str,
        wait: Duration,
    ) -> Result<Encoded, FrameError> {
        self.placement()
            .still(self, tier, Some((after, wait)))
            .await
    }
}

impl Placement {
    pub fn is_elsewhere(&self) -> bool {
        matches!(self, Self::Elsewhere(_))
    }

    /// Lane `lane` of `cam`, from wherever its pictures come from now.
    pub(crate) fn lane(&self, cam: &Arc<Camera>, lane: Lane) -> LaneFeed {
        match self {
            Self::Here => encoded_here(cam.clone(), lane),
            Self::Elsewhere(remote) => from_owner(cam.clone(), remote.clone(), lane),
        }
    }

    /// One picture of `cam` at `tier` through the TTL cache; with `after` (an ETag and a
    /// wait), a long-poll for the first picture whose tag differs.
    pub(crate) async fn still(
        &self,
        cam: &Camera,
        tier: Tier,
        after: Option<(&str, Duration)>,
    ) -> Result<Encoded, FrameError> {
        match (self, after) {
            (Self::Here, None) => cam.jpeg_here(tier).await,
            (Self::Here, Some((etag, wait))) => cam.jpeg_after_here(tier, etag, wait).await,
            (Self::Elsewhere(remote), after) => {
                cam.jpeg_from_owner(remote.as_ref(), tier, after).await
            }
        }
    }
}

/// Every new picture the lane's cap lets through, encoded once. Thinned before the encode: a
/// frame no viewer of this lane takes costs nothing.
fn encoded_here(cam: Arc<Camera>, lane: Lane) -> LaneFeed {
    struct Here {
        cam: Arc<Camera>,
        frames: watch::Receiver<Option<Arc<Frame>>>,
        thinner: Thinner,
        last_seq: u64,
    }
    let start = Here {
        frames: cam.subscribe(),
        cam,
        thinner: lane.thinner(),
        last_seq: 0,
    };
    futures_util::stream::unfold(start, move |mut st| async move {
        loop {
            st.frames.changed().await.ok()?;
            let newest = st
                .frames
                .borrow_and_update()
                .as_ref()
                .map(|f| (f.seq, f.captured_at));
            let Some((seq, captured_at)) = newest else {
                continue;
            };
            if seq <= st.last_seq || !st.thinner.admit(captured_at) {
                continue;
            }
            match st.cam.jpeg_at_least(lane.tier, seq).await {
                Ok(encoded) => {
                    st.last_seq = encoded.seq;
                    return Some((encoded, st));
                }
                Err(e) => debug!(camera = %st.cam.id(), error = %e, "lane skipped a frame"),
            }
        }
    })
    .boxed()
}

/// The owner's frames of the same lane (already thinned and encoded there), renumbered here.
fn from_owner(cam: Arc<Camera>, remote: Arc<dyn Remote>, lane: Lane) -> LaneFeed {
    let frames = remote.lane(cam.id(), lane);
    futures_util::stream::unfold(
        (cam, remote, frames),
        move |(cam, remote, mut frames)| async move {
            loop {
                match frames.changed().await {
                    Ok(()) => {
                        let newest = frames.borrow_and_update().clone();
                        if let Some(e) = newest {
                            let e = cam.relayed(e);
                            return Some((e, (cam, remote, frames)));
                        }
                    }
                    // The relay ended it (NATS away): ask again after a pause.
                    Err(_) => {
                        tokio::time::sleep(REMOTE_RETRY).await;
                        frames = remote.lane(cam.id(), lane);
                    }
                }
            }
        },
    )
    .boxed()
}
