//! Playing the ring back at the camera's pace: from the keyframe at or before an instant, the
//! recorded units as the video feed would have sent them (each with its parameters, its
//! original stamp), paced by their pts at 1, 2 or 4 times, into a small channel a viewer
//! reads. A reader that falls behind slows the player down (it never skips); one that goes
//! away ends it. Segments recorded while it plays are played too; it ends at the newest.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::read::{records, ReadError};
use super::segment::{self, Kind};
use super::Replay;
use crate::hub::video::{VideoConfig, VideoUnit};

/// Units between the player and its viewer.
const AHEAD: usize = 8;
/// A step in pts longer than this (a gap in the ring, a camera's clock that jumped) is played
/// as one frame's time.
const MAX_STEP: Duration = Duration::from_secs(1);

impl Replay {
    /// Plays `id` from `at_ms` at `speed` times its pace.
    pub fn play(
        &self,
        id: &str,
        at_ms: u64,
        speed: u8,
    ) -> Result<mpsc::Receiver<Arc<VideoUnit>>, ReadError> {
        let first = self.ring().at(id, at_ms).ok_or(ReadError::NotInReplay)?;
        let (tx, rx) = mpsc::channel(AHEAD);
        let ring = self.ring.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let mut player = Player::new(at_ms, u32::from(speed.max(1)));
            let mut seg = Some(first);
            while let Some(s) = seg.take() {
                let path = s.path.clone();
                let Ok(Ok(recs)) = tokio::task::spawn_blocking(move || records(&path)).await else {
                    return;
                };
                if !player.play(recs, &tx).await {
                    return;
                }
                // The next segment, which may have been written while this one played.
                seg = ring
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .range(&id, s.end_ms + 1, u64::MAX)
                    .into_iter()
                    .find(|n| n.start_ms > s.start_ms);
            }
        });
        Ok(rx)
    }
}

struct Player {
    at_ms: u64,
    speed: u32,
    started: bool,
    seq: u64,
    config: Option<Arc<VideoConfig>>,
    /// When the last unit went, and its pts.
    clock: Option<(Instant, i64)>,
}

impl Player {
    fn new(at_ms: u64, speed: u32) -> Self {
        Self {
            at_ms,
            speed,
            started: false,
            seq: 0,
            config: None,
            clock: None,
        }
    }

    /// Sends one segment's units; false when the viewer is gone.
    async fn play(
        &mut self,
        recs: Vec<segment::Record>,
        tx: &mpsc::Sender<Arc<VideoUnit>>,
    ) -> bool {
        // The first segment starts at its last keyframe at or before the instant.
        let skip = if self.started {
            0
        } else {
            recs.iter()
                .rposition(|r| {
                    r.kind == Kind::Video && r.key && r.stamp.captured_unix_ms <= self.at_ms
                })
                .and_then(|k| recs[..k].iter().rposition(|r| r.kind == Kind::VideoParams))
                .unwrap_or(0)
        };
        for r in recs.into_iter().skip(skip) {
            match r.kind {
                Kind::VideoParams => {
                    if let Some(params) = segment::params_of(&r.data) {
                        if self.config.as_ref().is_none_or(|c| *c.params != params) {
                            let generation = self.config.as_ref().map_or(1, |c| c.generation + 1);
                            self.config = Some(Arc::new(VideoConfig {
                                params: Arc::new(params),
                                generation,
                            }));
                        }
                    }
                }
                Kind::Video => {
                    let Some(config) = self.config.clone() else {
                        continue;
                    };
                    if !self.started && !r.key {
                        continue;
                    }
                    self.started = true;
                    let pts = r.stamp.pts_us;
                    let due = match self.clock {
                        None => Instant::now(),
                        Some((t, last)) => {
                            let step =
                                Duration::from_micros(u64::try_from(pts - last).unwrap_or(0));
                            let step = if step > MAX_STEP {
                                Duration::from_millis(40)
                            } else {
                                step
                            };
                            t + step / self.speed
                        }
                    };
                    tokio::time::sleep_until(due).await;
                    self.clock = Some((due, pts));
                    self.seq += 1;
                    let unit = VideoUnit::new(self.seq, r.key, r.data, r.stamp, config);
                    if tx.send(Arc::new(unit)).await.is_err() {
                        return false;
                    }
                }
                _ => {}
            }
        }
        true
    }
}
