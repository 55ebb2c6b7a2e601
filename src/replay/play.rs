//! Playing the ring back at the camera's pace: from the keyframe at or before an instant, the
//! recorded units as the video feed would have sent them (each with its parameters, its
//! original stamp), and at 1 times its recorded audio frames between them, paced by their pts
//! at 1, 2 or 4 times, into a small channel a viewer reads (sped up, no sound: as players do). A reader that falls behind slows the player down (it never skips); one that goes
//! away ends it. Segments recorded while it plays are played too; it ends at the newest.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::read::{records, ReadError};
use super::ring::{Ring, Segment};
use super::segment::{self, Kind};
use super::Replay;
use crate::hub::audio::{AudioFrame, AudioInfo};
use crate::hub::video::{VideoConfig, VideoUnit};

/// Units and audio frames between the player and its viewer.
const AHEAD: usize = 8;

/// What a player sends: the camera's units, and its audio at 1 times.
pub enum Played {
    Unit(Arc<VideoUnit>),
    Audio(Arc<AudioFrame>),
}
/// A step in pts longer than this is played as one frame's time (see [`due`]).
const MAX_STEP: Duration = Duration::from_secs(1);

impl Replay {
    /// Plays `id` from `at_ms` at `speed` times its pace.
    pub fn play(
        &self,
        id: &str,
        at_ms: u64,
        speed: u8,
    ) -> Result<mpsc::Receiver<Played>, ReadError> {
        let mut walk = self.walk(id, at_ms)?;
        let (tx, rx) = mpsc::channel(AHEAD);
        tokio::spawn(async move {
            let mut player = Player::new(at_ms, u32::from(speed.max(1)));
            while let Some(path) = walk.next() {
                let Ok(Ok(recs)) = tokio::task::spawn_blocking(move || records(&path)).await else {
                    return;
                };
                if !player.play(recs, &tx).await {
                    return;
                }
            }
        });
        Ok(rx)
    }

    /// The segments a replay of `id` from `at_ms` plays, in order.
    pub(super) fn walk(&self, id: &str, at_ms: u64) -> Result<Walk, ReadError> {
        let first = self.ring().at(id, at_ms).ok_or(ReadError::NotInReplay)?;
        Ok(Walk {
            ring: self.ring.clone(),
            id: id.to_string(),
            first: Some(first),
            last: None,
        })
    }
}

/// A camera's segments from the one a replay starts in: each next one is looked up once the
/// one before has been played, as it may have been written meanwhile.
pub(super) struct Walk {
    ring: Arc<Mutex<Ring>>,
    id: String,
    first: Option<Segment>,
    last: Option<Segment>,
}

impl Walk {
    /// The next segment's file; `None` at the newest.
    pub(super) fn next(&mut self) -> Option<PathBuf> {
        let seg = match self.first.take() {
            Some(first) => first,
            None => self
                .ring
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .after(&self.id, self.last.as_ref()?)?,
        };
        let path = seg.path.clone();
        self.last = Some(seg);
        Some(path)
    }
}

/// Where the first segment of a replay from `at_ms` starts: the parameters in force at (the
/// last `VideoParams` record before) its last keyframe (or kept JPEG) at or before the
/// instant, and that keyframe. A segment may hold more than one keyframe, and holds its
/// parameters once, at its start.
pub(super) fn start_of(recs: &[segment::Record], at_ms: u64) -> (Option<usize>, usize) {
    let Some(k) = recs.iter().rposition(|r| {
        matches!(r.kind, Kind::Video | Kind::Jpeg) && r.key && r.stamp.captured_unix_ms <= at_ms
    }) else {
        return (None, 0);
    };
    (
        recs[..k].iter().rposition(|r| r.kind == Kind::VideoParams),
        k,
    )
}

/// When the unit at `pts` is due, played at `speed`, after the last one (`clock`: when it
/// was due, its pts; `None`: now). A step in pts longer than [`MAX_STEP`] (a gap in the
/// ring, a camera's clock that jumped) is played as one frame's time.
pub(super) fn due<I>(clock: Option<(I, i64)>, pts: i64, speed: u32, now: I) -> I
where
    I: std::ops::Add<Duration, Output = I>,
{
    let Some((t, last)) = clock else {
        return now;
    };
    let step = Duration::from_micros(u64::try_from(pts - last).unwrap_or(0));
    let step = if step > MAX_STEP {
        Duration::from_millis(40)
    } else {
        step
    };
    t + step / speed.max(1)
}

struct Player {
    at_ms: u64,
    speed: u32,
    started: bool,
    seq: u64,
    config: Option<Arc<VideoConfig>>,
    /// The audio track in force (`None` too when played faster than recorded).
    track: Option<Arc<AudioInfo>>,
    audio_seq: u64,
    /// When the record with the highest pts so far went, and its pts.
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
            track: None,
            audio_seq: 0,
            clock: None,
        }
    }

    /// A recorded audio track (an `AudioTrack` record's data) is the one in force; none when
    /// played faster than recorded.
    fn track(&mut self, data: &[u8]) {
        let info = segment::audio_track_of(data).filter(|_| self.speed == 1);
        if info.as_ref() != self.track.as_deref() {
            self.track = info.map(Arc::new);
        }
    }

    /// Waits until a record at `pts` is due: one behind the clock (audio recorded just
    /// after the unit it precedes) goes at once.
    async fn pace(&mut self, pts: i64) {
        if self.clock.is_some_and(|(_, last)| pts <= last) {
            return;
        }
        let due = due(self.clock, pts, self.speed, Instant::now());
        tokio::time::sleep_until(due).await;
        self.clock = Some((due, pts));
    }

    /// New parameters (a `VideoParams` record's data) make a new config generation.
    fn params(&mut self, data: &[u8]) {
        if let Some(params) = segment::params_of(data) {
            if self.config.as_ref().is_none_or(|c| *c.params != params) {
                let generation = self.config.as_ref().map_or(1, |c| c.generation + 1);
                self.config = Some(Arc::new(VideoConfig {
                    params: Arc::new(params),
                    generation,
                }));
            }
        }
    }

    /// Sends one segment's units; false when the viewer is gone.
    async fn play(&mut self, recs: Vec<segment::Record>, tx: &mpsc::Sender<Played>) -> bool {
        let skip = if self.started {
            0
        } else {
            let (params, key) = start_of(&recs, self.at_ms);
            if let Some(p) = params {
                self.params(&recs[p].data);
            }
            // The audio track in force at the keyframe, when the segment named it before.
            if let Some(t) = recs[..key].iter().rposition(|r| r.kind == Kind::AudioTrack) {
                self.track(&recs[t].data);
            }
            key
        };
        for r in recs.into_iter().skip(skip) {
            match r.kind {
                Kind::VideoParams => self.params(&r.data),
                Kind::Video => {
                    let Some(config) = self.config.clone() else {
                        continue;
                    };
                    if !self.started && !r.key {
                        continue;
                    }
                    self.started = true;
                    self.pace(r.stamp.pts_us).await;
                    self.seq += 1;
                    let unit = VideoUnit::new(self.seq, r.key, r.data, r.stamp, config);
                    if tx.send(Played::Unit(Arc::new(unit))).await.is_err() {
                        return false;
                    }
                }
                Kind::AudioTrack => self.track(&r.data),
                Kind::Audio if self.started => {
                    let Some(info) = self.track.clone() else {
                        continue;
                    };
                    self.pace(r.stamp.pts_us).await;
                    self.audio_seq += 1;
                    let frame = AudioFrame::new(r.data, r.stamp, self.audio_seq, info);
                    if tx.send(Played::Audio(Arc::new(frame))).await.is_err() {
                        return false;
                    }
                }
                _ => {}
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::media::clock::Stamp;

    fn rec(kind: Kind, key: bool, ms: u64) -> segment::Record {
        segment::Record {
            kind,
            key,
            stamp: Stamp {
                pts_us: ms as i64 * 1000,
                captured_unix_ms: ms,
            },
            data: Bytes::new(),
        }
    }

    #[test]
    fn a_replay_starts_at_the_last_keyframe_before_the_instant_with_the_segments_parameters() {
        // Parameters once, at the segment's start; two keyframes in it.
        let recs = vec![
            rec(Kind::VideoParams, false, 1000),
            rec(Kind::Video, true, 1000),
            rec(Kind::Video, false, 1500),
            rec(Kind::Video, true, 1990),
            rec(Kind::Video, false, 2500),
        ];
        assert_eq!(start_of(&recs, 2600), (Some(0), 3), "the second keyframe");
        assert_eq!(start_of(&recs, 1990), (Some(0), 3));
        assert_eq!(start_of(&recs, 1989), (Some(0), 1));
        assert_eq!(
            start_of(&recs, 999),
            (None, 0),
            "nothing before: from the start"
        );
        // A camera kept as JPEGs: each is its own keyframe, no parameters.
        let jpegs = vec![rec(Kind::Jpeg, true, 1000), rec(Kind::Jpeg, true, 1200)];
        assert_eq!(start_of(&jpegs, 1250), (None, 1));
    }
}
