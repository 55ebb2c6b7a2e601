//! One camera's recorder: attached to its main stream through the output seam
//! (`Video::Record` and `Audio`), it cuts what the camera sends into segments (each from a
//! keyframe, closed at the first keyframe a second or more later), turns units and audio
//! frames into records in presentation order (a frame of audio goes in before the first unit
//! after it, in the segment that plays it), and hands them to the disk thread in batches, at most a second
//! apart. It never holds a live viewer back: it is one more receiver of the broadcasts, and
//! a recorder that falls behind (a slow disk) drops to the next keyframe and leaves a gap.
//!
//! A camera that sends no H.264/H.265 keeps JPEGs instead, each its own keyframe: an MJPEG
//! camera every JPEG as it came (a lane at full quality passes them through, no encode; not a
//! viewer in the status),
//! a raw source (lavfi, raw V4L2) only when it sets `"replay": true`, at most 5 a second.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::CancellationToken;

use super::disk::Op;
use super::segment::{self, Kind};
use crate::hub::audio::{AudioFrame, AudioInfo};
use crate::hub::video::VideoUnit;
use crate::hub::{Audio, LaneOutput, RecordPictures, Stream, Video};
use crate::media::clock::Stamp;
use crate::media::tier::{LaneAsk, LaneQuality};

/// A segment is closed at the first keyframe this long after its start.
pub const SEGMENT_MS: u64 = 1000;
/// How often the recorder takes what its camera sent meanwhile.
const DRAIN: Duration = Duration::from_millis(500);
/// Batches go to the disk thread every this many drains (a second): what a `kill -9` may
/// lose.
const FLUSH_EVERY: u32 = 2;
/// Most JPEGs a second kept of a raw source that sets `"replay": true`.
const RAW_FPS: f64 = 5.0;
/// Audio frames a recorder holds back for the video after them (about 5 s of AAC at
/// 48 kHz; a drain holds half a second).
const AUDIO_WAIT: usize = 256;
/// Most bytes a recorder holds while the disk thread is behind; beyond it the recorder drops
/// what it holds and starts again at the next keyframe.
const MAX_HELD: usize = 32 << 20;

/// Records `stream` until `cancel`.
pub async fn record(stream: Stream, tx: mpsc::Sender<Op>, cancel: CancellationToken) {
    let id: Arc<str> = Arc::from(stream.camera.id());
    let placement = stream.camera.placement_changes();
    let mut video = stream.attach(Video::Record);
    let mut audio = Some(stream.attach(Audio));
    let mut rec = Recorder::new(id.clone());
    for unit in std::mem::take(&mut video.gop) {
        rec.unit(&unit);
    }
    // Drained on a tick rather than woken by every unit and audio frame: a camera's 25 units
    // and 47 audio frames a second become 2 wakes (the broadcasts hold seconds of them).
    let mut drain = tokio::time::interval(DRAIN);
    drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u32;
    let mut jpegs: Option<LaneOutput> = None;
    'record: loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = drain.tick() => {}
            // JPEGs come at the camera's pace (an MJPEG camera sends few), each taken as it
            // comes: a lane keeps only the newest.
            got = next_jpeg(&mut jpegs) => {
                match got {
                    Some(Ok(p)) if !*placement.borrow() => rec.jpeg(&p.encoded.jpeg.data, p.encoded.stamp),
                    Some(_) => {}
                    None => jpegs = None,
                }
                continue;
            }
        }
        // Another node ingests the camera: its owner keeps the ring (a lane here would pull
        // the owner's pictures for nothing).
        if *placement.borrow() {
            jpegs = None;
        } else if jpegs.is_none() {
            jpegs = jpeg_lane(&stream);
        }
        // Audio first, into the recorder's wait: each unit then goes in after the audio
        // before it, so that a segment holds its records in presentation order.
        while let Some(got) = audio.as_mut().and_then(|a| a.next().now_or_never()) {
            match got {
                Some(Ok(frame)) => rec.audio(frame),
                Some(Err(_)) => {}
                None => audio = None,
            }
        }
        while let Some(got) = video.next().now_or_never() {
            match got {
                // Another node ingests the camera: its owner keeps the ring.
                Some(Ok(_)) if *placement.borrow() => rec.restart(),
                Some(Ok(unit)) => rec.unit(&unit),
                Some(Err(BroadcastStreamRecvError::Lagged(_))) => rec.restart(),
                None => break 'record,
            }
        }
        ticks += 1;
        rec.send(&tx, ticks % FLUSH_EVERY == 0);
    }
    rec.send(&tx, true);
    let _ = tx.try_send(Op::Close { id });
}

/// The JPEG lane a camera without H.264/H.265 is kept from, once its codec is known: every
/// JPEG of an MJPEG camera, 5 a second of a raw source that asks for replay; none otherwise.
fn jpeg_lane(stream: &Stream) -> Option<LaneOutput> {
    let codec = stream.camera.codec()?;
    let max_fps = match codec.as_str() {
        "h264" | "hevc" | "h265" => return None,
        "mjpeg" => None,
        _ if stream.camera.config().replay == Some(true) => Some(RAW_FPS),
        _ => return None,
    };
    let ask = LaneAsk {
        // The server's best quality: an MJPEG camera's own JPEGs pass through unencoded.
        quality: LaneQuality::Fixed(stream.camera.qualities().best()),
        max_width: None,
        max_fps,
    };
    let lane = stream.lane(&ask, tokio::time::Instant::now());
    Some(stream.attach(RecordPictures(lane)))
}

async fn next_jpeg(
    lane: &mut Option<LaneOutput>,
) -> Option<Result<Arc<crate::hub::Published>, BroadcastStreamRecvError>> {
    match lane {
        Some(l) => l.next().await,
        None => std::future::pending().await,
    }
}

/// The records of the segment being written and the batches not yet taken by the disk
/// thread.
struct Recorder {
    id: Arc<str>,
    /// The open segment's start (Unix ms of its keyframe); `None` until a keyframe.
    start_ms: Option<u64>,
    /// Whether the batch being filled opens its segment.
    new: bool,
    batch: segment::Batch,
    end_ms: u64,
    held: VecDeque<Op>,
    held_bytes: usize,
    params: Option<Arc<crate::hub::video::VideoConfig>>,
    track: Option<Arc<AudioInfo>>,
    /// Audio frames not yet in the batch: each waits for the first unit after it.
    audio_wait: VecDeque<Arc<AudioFrame>>,
}

impl Recorder {
    fn new(id: Arc<str>) -> Self {
        Self {
            id,
            start_ms: None,
            new: false,
            batch: segment::Batch::default(),
            end_ms: 0,
            held: VecDeque::new(),
            held_bytes: 0,
            params: None,
            track: None,
            audio_wait: VecDeque::new(),
        }
    }

    fn unit(&mut self, unit: &VideoUnit) {
        while self
            .audio_wait
            .front()
            .is_some_and(|a| a.stamp.pts_us < unit.stamp.pts_us)
        {
            if let Some(a) = self.audio_wait.pop_front() {
                self.put_audio(&a);
            }
        }
        let ms = unit.stamp.captured_unix_ms;
        let roll = match self.start_ms {
            None => unit.key,
            Some(start) => unit.key && ms >= start + SEGMENT_MS,
        };
        if roll {
            self.cut();
            self.start_ms = Some(ms);
            self.new = true;
            self.params = None;
            self.track = None;
        }
        if self.start_ms.is_none() {
            return;
        }
        if !self
            .params
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, &unit.config))
        {
            let mut p = Vec::new();
            segment::put_params(&mut p, unit.stamp, &unit.config.params);
            self.batch.put_laid_out(p);
            self.params = Some(unit.config.clone());
        }
        self.batch
            .put(Kind::Video, unit.key, unit.stamp, &unit.data);
        self.end_ms = self.end_ms.max(ms);
    }

    /// A JPEG of a camera without video units: its own keyframe, a segment a second.
    fn jpeg(&mut self, data: &bytes::Bytes, stamp: Stamp) {
        let ms = stamp.captured_unix_ms;
        if self.start_ms.is_none_or(|start| ms >= start + SEGMENT_MS) {
            self.cut();
            self.start_ms = Some(ms);
            self.new = true;
        }
        self.batch.put(Kind::Jpeg, true, stamp, data);
        self.end_ms = self.end_ms.max(ms);
    }

    /// An audio frame, held until the first unit after it (or until more than
    /// [`AUDIO_WAIT`] wait: a camera whose video stalled, or whose audio runs ahead).
    fn audio(&mut self, frame: Arc<AudioFrame>) {
        if self.start_ms.is_none() {
            return;
        }
        self.audio_wait.push_back(frame);
        while self.audio_wait.len() > AUDIO_WAIT {
            if let Some(a) = self.audio_wait.pop_front() {
                self.put_audio(&a);
            }
        }
    }

    fn put_audio(&mut self, frame: &AudioFrame) {
        if self.start_ms.is_none() {
            return;
        }
        if !self
            .track
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(t, &frame.info))
        {
            let mut t = Vec::new();
            segment::put_audio_track(&mut t, frame.stamp, &frame.info);
            self.batch.put_laid_out(t);
            self.track = Some(frame.info.clone());
        }
        self.batch.put(Kind::Audio, false, frame.stamp, &frame.data);
    }

    /// Units were missed (or the camera moved to another node): what is held goes out, and
    /// recording starts again at the next keyframe.
    fn restart(&mut self) {
        self.cut();
        self.start_ms = None;
        self.audio_wait.clear();
    }

    /// Moves the batch being filled into the held ones.
    fn cut(&mut self) {
        let Some(start_ms) = self.start_ms else {
            return;
        };
        if self.batch.is_empty() {
            return;
        }
        let data = std::mem::take(&mut self.batch);
        self.held_bytes += data.len();
        self.held.push_back(Op::Write {
            id: self.id.clone(),
            start_ms,
            new: std::mem::replace(&mut self.new, false),
            end_ms: self.end_ms,
            data,
        });
    }

    /// Hands the held batches to the disk thread, as many as it takes now; the batch being
    /// filled goes too on the flush tick or once it is large.
    fn send(&mut self, tx: &mpsc::Sender<Op>, tick: bool) {
        if tick || self.batch.len() >= 1 << 20 {
            self.cut();
        }
        if self.held.is_empty() {
            return;
        }
        while let Some(op) = self.held.pop_front() {
            let bytes = match &op {
                Op::Write { data, .. } => data.len(),
                Op::Close { .. } => 0,
            };
            match tx.try_send(op) {
                Ok(()) => self.held_bytes -= bytes,
                Err(mpsc::error::TrySendError::Full(op)) => {
                    self.held.push_front(op);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.held.clear();
                    self.held_bytes = 0;
                    return;
                }
            }
        }
        if self.held_bytes + self.batch.len() > MAX_HELD {
            tracing::warn!(camera = %self.id, "replay disk behind: dropping to the next keyframe");
            self.held.clear();
            self.held_bytes = 0;
            self.batch = segment::Batch::default();
            self.start_ms = None;
            self.audio_wait.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::hub::video::VideoConfig;
    use crate::media::h26x::fixtures::*;
    use crate::media::h26x::{Codec, VideoParams};

    fn stamp(pts_ms: i64) -> Stamp {
        Stamp {
            pts_us: pts_ms * 1000,
            captured_unix_ms: 10_000 + pts_ms as u64,
        }
    }

    #[test]
    fn audio_goes_in_before_the_first_unit_after_it_and_in_the_segment_that_plays_it() {
        let config = Arc::new(VideoConfig {
            params: Arc::new(
                VideoParams::from_parameter_sets(Codec::H264, [H264_TINY_SPS, H264_TINY_PPS])
                    .unwrap(),
            ),
            generation: 1,
        });
        let info = Arc::new(AudioInfo {
            codec: "pcmu".into(),
            sample_rate: 8000,
            channels: 1,
            description: Vec::new(),
        });
        let unit = |ms: i64, key| {
            VideoUnit::new(
                ms as u64,
                key,
                Bytes::from_static(b"v"),
                stamp(ms),
                config.clone(),
            )
        };
        let frame = |ms: i64| {
            Arc::new(AudioFrame::new(
                Bytes::from_static(b"a"),
                stamp(ms),
                ms as u64,
                info.clone(),
            ))
        };
        let mut rec = Recorder::new(Arc::from("door"));
        rec.unit(&unit(0, true));
        // A drain: its audio first (up to 1030 ms), then its units (up to 1040 ms, a keyframe
        // at 1000 ms that starts the next segment).
        for ms in [10, 990, 1010, 1030] {
            rec.audio(frame(ms));
        }
        for (ms, key) in [(500, false), (1000, true), (1040, false)] {
            rec.unit(&unit(ms, key));
        }
        rec.cut();
        let segments: Vec<Vec<(Kind, i64)>> = rec
            .held
            .iter()
            .map(|op| {
                let Op::Write { data, .. } = op else {
                    panic!("a write");
                };
                let mut file = segment::MAGIC.to_vec();
                data.write_to(&[], &mut file).unwrap();
                let (recs, _) = segment::read(&Bytes::from(file)).unwrap();
                recs.iter()
                    .filter(|r| matches!(r.kind, Kind::Video | Kind::Audio))
                    .map(|r| (r.kind, r.stamp.pts_us / 1000))
                    .collect()
            })
            .collect();
        use Kind::{Audio as A, Video as V};
        assert_eq!(
            segments,
            vec![
                vec![(V, 0), (A, 10), (V, 500), (A, 990)],
                vec![(V, 1000), (A, 1010), (A, 1030), (V, 1040)],
            ]
        );
        assert!(rec.audio_wait.is_empty());
    }
}
