//! The replay ring's index: every camera's segments in time order with their span and size,
//! found again from the directory at start, the bounds (minutes, and bytes over all cameras
//! together) and which segments go when one is passed, and each camera's replay error. Written
//! by the disk thread, read by the routes, under one short lock; it never touches a file.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Segments further apart than this leave a gap in the ring (a camera that was down, a
/// writer that fell behind).
pub const GAP_MS: u64 = 2000;

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Wall-clock time of its first unit (a keyframe) and of its last, Unix ms.
    pub start_ms: u64,
    pub end_ms: u64,
    pub bytes: u64,
    pub path: PathBuf,
    /// Still being written (named `.part`).
    pub open: bool,
}

#[derive(Debug, Default)]
struct CameraRing {
    segments: VecDeque<Segment>,
    error: Option<String>,
}

/// What a camera's ring holds, as `GET /api/ip-cameras/{id}/replay` and the status show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub gaps: Vec<[u64; 2]>,
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every camera's segments and the bounds they are kept under.
#[derive(Debug)]
pub struct Ring {
    cameras: HashMap<String, CameraRing>,
    total: u64,
    keep_ms: u64,
    max_bytes: u64,
}

impl Ring {
    pub fn new(keep_ms: u64, max_bytes: u64) -> Self {
        Self {
            cameras: HashMap::new(),
            total: 0,
            keep_ms,
            max_bytes,
        }
    }

    /// Bytes all segments take.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// Adds a segment found at start or just opened; segments of a camera come in time order.
    pub fn add(&mut self, id: &str, seg: Segment) {
        self.total += seg.bytes;
        let cam = self.cameras.entry(id.to_string()).or_default();
        let at = cam.segments.partition_point(|s| s.start_ms <= seg.start_ms);
        cam.segments.insert(at, seg);
    }

    /// The open segment of `id` grew by `bytes` up to `end_ms`.
    pub fn grow(&mut self, id: &str, end_ms: u64, bytes: u64) {
        if let Some(seg) = self.open_mut(id) {
            seg.end_ms = seg.end_ms.max(end_ms);
            seg.bytes += bytes;
            self.total += bytes;
        }
    }

    /// The open segment of `id` is closed and now lives at `path`.
    pub fn close(&mut self, id: &str, path: PathBuf) {
        if let Some(seg) = self.open_mut(id) {
            seg.open = false;
            seg.path = path;
        }
    }

    fn open_mut(&mut self, id: &str) -> Option<&mut Segment> {
        self.cameras
            .get_mut(id)?
            .segments
            .back_mut()
            .filter(|s| s.open)
    }

    /// Sets or clears `id`'s replay error (a disk that failed).
    pub fn set_error(&mut self, id: &str, error: Option<String>) {
        self.cameras.entry(id.to_string()).or_default().error = error;
    }

    /// Takes out the segments past the bounds at `now_ms`: older than the ring's minutes, then
    /// the oldest of all cameras while the bytes pass the cap. Open segments stay. Answers the
    /// files to delete.
    pub fn evict(&mut self, now_ms: u64) -> Vec<PathBuf> {
        let mut gone = Vec::new();
        let cutoff = now_ms.saturating_sub(self.keep_ms);
        for cam in self.cameras.values_mut() {
            while cam
                .segments
                .front()
                .is_some_and(|s| !s.open && s.end_ms < cutoff)
            {
                if let Some(s) = cam.segments.pop_front() {
                    self.total -= s.bytes;
                    gone.push(s.path);
                }
            }
        }
        while self.total > self.max_bytes {
            let oldest = self
                .cameras
                .values_mut()
                .filter(|c| c.segments.front().is_some_and(|s| !s.open))
                .min_by_key(|c| c.segments.front().map_or(u64::MAX, |s| s.start_ms));
            let Some(s) = oldest.and_then(|c| c.segments.pop_front()) else {
                break;
            };
            self.total -= s.bytes;
            gone.push(s.path);
        }
        self.cameras
            .retain(|_, c| !c.segments.is_empty() || c.error.is_some());
        gone
    }

    /// What `id`'s ring holds.
    pub fn span(&self, id: &str) -> Span {
        let Some(cam) = self.cameras.get(id) else {
            return Span::default();
        };
        let segs = &cam.segments;
        let gaps = segs
            .iter()
            .zip(segs.iter().skip(1))
            .filter(|(a, b)| b.start_ms > a.end_ms + GAP_MS)
            .map(|(a, b)| [a.end_ms, b.start_ms])
            .collect();
        Span {
            from: segs.front().map(|s| s.start_ms),
            to: segs.back().map(|s| s.end_ms),
            gaps,
            bytes: segs.iter().map(|s| s.bytes).sum(),
            error: cam.error.clone(),
        }
    }

    /// The segment holding the instant `at_ms` of `id`: the last one starting at or before
    /// it, unless the instant is in a gap after it.
    pub fn at(&self, id: &str, at_ms: u64) -> Option<Segment> {
        let segs = &self.cameras.get(id)?.segments;
        let i = segs
            .partition_point(|s| s.start_ms <= at_ms)
            .checked_sub(1)?;
        let seg = &segs[i];
        (at_ms <= seg.end_ms + GAP_MS).then(|| seg.clone())
    }

    /// The segment of `id` after `seg` (which may have been written since `seg` was read).
    pub fn after(&self, id: &str, seg: &Segment) -> Option<Segment> {
        self.range(id, seg.end_ms + 1, u64::MAX)
            .into_iter()
            .find(|n| n.start_ms > seg.start_ms)
    }

    /// The segments of `id` from the one holding `from_ms` (or the first after it) through
    /// the last one starting before `to_ms`.
    pub fn range(&self, id: &str, from_ms: u64, to_ms: u64) -> Vec<Segment> {
        let Some(cam) = self.cameras.get(id) else {
            return Vec::new();
        };
        let segs = &cam.segments;
        let first = segs
            .partition_point(|s| s.start_ms <= from_ms)
            .saturating_sub(1);
        segs.iter()
            .skip(first)
            .filter(|s| s.end_ms >= from_ms && s.start_ms <= to_ms)
            .cloned()
            .collect()
    }
}

/// A segment file's name: `START.part` while written, `START-END.seg` once closed.
pub fn closed_name(start_ms: u64, end_ms: u64) -> String {
    format!("{start_ms}-{end_ms}.seg")
}

pub fn open_name(start_ms: u64) -> String {
    format!("{start_ms}.part")
}

/// What a file name in a camera's directory says: closed segments' span; `.part` files' start.
pub fn parse_name(path: &Path) -> Option<(u64, Option<u64>)> {
    let name = path.file_name()?.to_str()?;
    if let Some(stem) = name.strip_suffix(".seg") {
        let (a, b) = stem.split_once('-')?;
        return Some((a.parse().ok()?, Some(b.parse().ok()?)));
    }
    Some((name.strip_suffix(".part")?.parse().ok()?, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start_ms: u64, end_ms: u64, bytes: u64) -> Segment {
        Segment {
            start_ms,
            end_ms,
            bytes,
            path: PathBuf::from(closed_name(start_ms, end_ms)),
            open: false,
        }
    }

    #[test]
    fn span_lookup_and_gaps() {
        let mut r = Ring::new(600_000, u64::MAX);
        r.add("a", seg(1000, 1960, 10));
        r.add("a", seg(2000, 2960, 10));
        r.add("a", seg(10_000, 10_960, 10));
        let span = r.span("a");
        assert_eq!(
            (span.from, span.to, span.bytes),
            (Some(1000), Some(10_960), 30)
        );
        assert_eq!(span.gaps, vec![[2960, 10_000]]);
        assert_eq!(r.at("a", 2500).map(|s| s.start_ms), Some(2000));
        assert_eq!(r.at("a", 1000).map(|s| s.start_ms), Some(1000));
        assert!(r.at("a", 999).is_none(), "before the ring");
        assert!(r.at("a", 6000).is_none(), "in the gap");
        assert!(r.at("b", 1500).is_none());
        let got: Vec<u64> = r
            .range("a", 1500, 10_500)
            .iter()
            .map(|s| s.start_ms)
            .collect();
        assert_eq!(got, vec![1000, 2000, 10_000]);
        let got: Vec<u64> = r
            .range("a", 2500, 2600)
            .iter()
            .map(|s| s.start_ms)
            .collect();
        assert_eq!(got, vec![2000]);
    }

    #[test]
    fn the_oldest_go_first_by_age_then_by_bytes_over_all_cameras() {
        let mut r = Ring::new(60_000, 25);
        r.add("a", seg(0, 900, 10));
        r.add("a", seg(1000, 1900, 10));
        r.add("b", seg(500, 1400, 10));
        assert_eq!(r.total_bytes(), 30);
        let gone = r.evict(2000);
        assert_eq!(
            gone,
            vec![PathBuf::from(closed_name(0, 900))],
            "a's first is oldest"
        );
        assert_eq!(r.total_bytes(), 20);
        let gone = r.evict(1400 + 60_001);
        assert_eq!(
            gone,
            vec![PathBuf::from(closed_name(500, 1400))],
            "b aged out"
        );
        assert_eq!(r.span("b"), Span::default());
    }

    #[test]
    fn an_open_segment_grows_and_is_never_evicted() {
        let mut r = Ring::new(1000, 5);
        r.add(
            "a",
            Segment {
                open: true,
                ..seg(0, 0, 8)
            },
        );
        r.grow("a", 900, 4);
        assert_eq!(r.span("a").to, Some(900));
        assert!(r.evict(100_000).is_empty());
        r.close("a", PathBuf::from("x.seg"));
        assert_eq!(r.evict(100_000), vec![PathBuf::from("x.seg")]);
        assert_eq!(r.total_bytes(), 0);
    }

    #[test]
    fn names() {
        assert_eq!(parse_name(Path::new("/r/a/5-9.seg")), Some((5, Some(9))));
        assert_eq!(parse_name(Path::new("7.part")), Some((7, None)));
        assert_eq!(parse_name(Path::new("x.seg")), None);
        assert_eq!(parse_name(Path::new("notes.txt")), None);
    }
}
