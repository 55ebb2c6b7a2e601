//! The camera's own clock: one timeline per camera, in microseconds, onto which every session's
//! source timestamps (RTP timestamps, container pts) are rebased. Pure: arrival times are
//! inputs, so the rules run on paused time in tests.
//!
//! Why not the arrival time: network jitter is not the camera's. A 25 fps camera stamps its
//! frames 40 ms apart however they arrive, and WebCodecs, WebRTC, audio sync and MP4 sample
//! durations all need those stamps. The rules:
//! - a source's timestamps wrap at `wrap_bits` (32 for RTP, 33 for MPEG-TS): each new value
//!   is read as the nearest step from the last one, so a wrap is a small step forward;
//! - within a session the timeline follows the source's timestamps, B-frames included (their
//!   pts go back and forth in decode order by less than [`MAX_BACK`]);
//! - a step back further than that, or forward by more than [`MAX_AHEAD`] beyond the time
//!   that passed, is a jump (a restarted camera, a looped file, a broken stamp): the timeline
//!   starts a new generation and goes on from where it was by the time that passed;
//! - a new session (a reconnect) starts a new generation the same way: never a negative step;
//! - a source without timestamps is stamped by its arrival time.

use std::time::Duration;

use tokio::time::Instant;

/// The wall clock in Unix milliseconds: the clock of every arrival time (`ts`).
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// When a unit or picture was, on the camera's clock and on the wall clock. Both travel with
/// it through the GOP cache, JPEG tiers and the cluster relay to every client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// Presentation time on the camera's timeline, in microseconds.
    pub pts_us: i64,
    /// Arrival at the node that ingests the camera, milliseconds since the Unix epoch.
    pub captured_unix_ms: u64,
}

impl Stamp {
    /// `pts_us`, arriving now.
    pub fn now(pts_us: i64) -> Self {
        Self {
            pts_us,
            captured_unix_ms: unix_ms_now(),
        }
    }
}

/// A step back further than this is a jump, not B-frame reordering (16 reordered frames at
/// 25 fps are 0.64 s).
pub const MAX_BACK: Duration = Duration::from_secs(2);
/// A step forward by this much more than the time that passed is a jump. Generous: a
/// timelapse camera's frames come 20 s apart and are stamped 20 s apart, which is no jump.
pub const MAX_AHEAD: Duration = Duration::from_secs(10);

/// The unit of a source's timestamps: `num / den` seconds per tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBase {
    pub num: u32,
    pub den: u32,
    /// The timestamp's width: values wrap at `2^wrap_bits` (64: never).
    pub wrap_bits: u8,
}

impl TimeBase {
    /// RTP's 90 kHz video clock, 32 bits wide.
    pub const RTP_VIDEO: Self = Self {
        num: 1,
        den: 90_000,
        wrap_bits: 32,
    };
    /// Microseconds that never wrap (timestamps already on a camera's clock).
    pub const MICROS: Self = Self {
        num: 1,
        den: 1_000_000,
        wrap_bits: 64,
    };

    /// A time base from FFmpeg's rational and a stream's `pts_wrap_bits`; `None` when the
    /// rational is not positive.
    pub fn new(num: i32, den: i32, wrap_bits: i32) -> Option<Self> {
        (num > 0 && den > 0).then(|| Self {
            num: num as u32,
            den: den as u32,
            wrap_bits: wrap_bits.clamp(1, 64) as u8,
        })
    }

    fn to_us(self, ticks: i64) -> i64 {
        let us = i128::from(ticks) * i128::from(self.num) * 1_000_000 / i128::from(self.den);
        us.clamp(i128::from(i64::MIN / 2), i128::from(i64::MAX / 2)) as i64
    }

    /// `ticks` read as the nearest value to `last` (already unwrapped) modulo the width.
    fn unwrap_near(self, ticks: i64, last: i64) -> i64 {
        if self.wrap_bits >= 64 {
            return ticks;
        }
        let m = 1i128 << self.wrap_bits;
        let mut step = (i128::from(ticks) - i128::from(last)).rem_euclid(m);
        if step >= m / 2 {
            step -= m;
        }
        (i128::from(last) + step).clamp(i128::from(i64::MIN / 2), i128::from(i64::MAX / 2)) as i64
    }
}

/// Where a session's timestamps stand on the timeline.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    base: TimeBase,
    /// The last raw timestamp, unwrapped.
    last_ticks: i64,
    /// Added to a timestamp in microseconds to place it on the timeline.
    offset_us: i64,
}

/// One camera's timeline across its sessions.
#[derive(Debug, Default)]
pub struct Timeline {
    mapping: Option<Mapping>,
    /// The furthest point handed out, and when it arrived.
    head: Option<(i64, Instant)>,
    /// Bumped by every session and every jump.
    generation: u64,
}

impl Timeline {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts sessions and jumps: units of one generation share one mapping.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A new session of the source: its timestamps owe nothing to the last one's.
    pub fn new_session(&mut self) {
        self.mapping = None;
    }

    /// Places a unit that arrived at `arrived` with the source's timestamp `ts` (in `base`) on
    /// the timeline, and moves the timeline on. Units come in decode order.
    pub fn stamp(&mut self, ts: Option<i64>, base: TimeBase, arrived: Instant) -> i64 {
        let pts = match (ts, self.mapping) {
            (Some(ts), Some(m)) if m.base == base => {
                let ticks = base.unwrap_near(ts, m.last_ticks);
                let pts = base.to_us(ticks).saturating_add(m.offset_us);
                if self.is_jump(pts, arrived) {
                    self.restart(ticks, base, arrived)
                } else {
                    self.mapping = Some(Mapping {
                        last_ticks: ticks,
                        ..m
                    });
                    pts
                }
            }
            (Some(ts), _) => self.restart(ts, base, arrived),
            // No timestamp: the time that passed since the head.
            (None, _) => {
                self.mapping = None;
                self.continue_from_head(arrived)
            }
        };
        let head = match self.head {
            Some((h, at)) if h >= pts => (h, at),
            _ => (pts, arrived),
        };
        self.head = Some(head);
        pts
    }

    /// Where a picture decoded from this session's units falls: the same mapping as its unit,
    /// without moving the timeline (a decoder may hand out a GOP's old pictures at once).
    /// `None` without a timestamp or before the session's first unit.
    pub fn map(&self, ts: Option<i64>) -> Option<i64> {
        let (ts, m) = (ts?, self.mapping?);
        let ticks = m.base.unwrap_near(ts, m.last_ticks);
        Some(m.base.to_us(ticks).saturating_add(m.offset_us))
    }

    /// The newest point handed out (what an unstamped picture gets).
    pub fn head(&self) -> Option<i64> {
        self.head.map(|(h, _)| h)
    }

    /// Where the clock stands at `at`: the head moved on by the time since it arrived (what
    /// audio arriving beside the video is placed against, whatever the video's frame rate).
    pub fn at(&self, at: Instant) -> Option<i64> {
        self.head.map(|(h, arrived)| {
            h.saturating_add(at.saturating_duration_since(arrived).as_micros() as i64)
        })
    }

    fn is_jump(&self, pts: i64, arrived: Instant) -> bool {
        let Some((head, at)) = self.head else {
            return false;
        };
        let passed = arrived.saturating_duration_since(at).as_micros() as i64;
        pts < head - MAX_BACK.as_micros() as i64
            || pts - head > passed + MAX_AHEAD.as_micros() as i64
    }

    /// A new generation whose first unit is `ticks`: it goes on from the head by the time
    /// that passed.
    fn restart(&mut self, ticks: i64, base: TimeBase, arrived: Instant) -> i64 {
        self.generation += 1;
        let pts = self.continue_from_head(arrived);
        self.mapping = Some(Mapping {
            base,
            last_ticks: ticks,
            offset_us: pts.saturating_sub(base.to_us(ticks)),
        });
        pts
    }

    /// The head moved on by the time since it arrived (at least a microsecond, so that the
    /// timeline never stands still across a jump); 0 for the first unit ever.
    fn continue_from_head(&self, arrived: Instant) -> i64 {
        match self.head {
            None => 0,
            Some((head, at)) => {
                let passed = arrived.saturating_duration_since(at).as_micros() as i64;
                head.saturating_add(passed.max(1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1000;

    fn rtp(ms: i64) -> i64 {
        ms * 90
    }

    #[test]
    fn units_follow_the_source_clock_not_their_arrival() {
        let t0 = Instant::now();
        let mut tl = Timeline::new();
        let base = TimeBase::RTP_VIDEO;
        // 25 fps stamped by the camera, arriving with up to 30 ms of jitter.
        let jitter = [0, 30, 5, 22, 0, 17];
        let pts: Vec<i64> = jitter
            .iter()
            .enumerate()
            .map(|(i, j)| {
                let at = t0 + Duration::from_millis(40 * i as u64 + j);
                tl.stamp(Some(rtp(1_000 + 40 * i as i64)), base, at)
            })
            .collect();
        assert_eq!(pts[0], 0, "the first unit starts the timeline");
        for w in pts.windows(2) {
            assert_eq!(w[1] - w[0], 40 * MS);
        }
    }

    #[test]
    fn a_32_bit_rtp_timestamp_wraps_forward() {
        let t0 = Instant::now();
        let mut tl = Timeline::new();
        let base = TimeBase::RTP_VIDEO;
        let start = (1i64 << 32) - 3600 * 2; // two frames before the wrap at 25 fps
        let mut last = None;
        for i in 0..6 {
            let raw = (start + 3600 * i) & 0xFFFF_FFFF;
            let pts = tl.stamp(Some(raw), base, t0 + Duration::from_millis(40 * i as u64));
            if let Some(prev) = last {
                assert_eq!(pts - prev, 40 * MS, "unit {i} (raw {raw})");
            }
            last = Some(pts);
        }
        assert_eq!(tl.generation(), 1, "a wrap is no jump");
    }

    #[test]
    fn a_jump_back_after_a_restart_is_a_new_generation_not_a_negative_step() {
        let t0 = Instant::now();
        let mut tl = Timeline::new();
        let base = TimeBase::RTP_VIDEO;
        let a = tl.stamp(Some(rtp(500_000)), base, t0);
        let b = tl.stamp(Some(rtp(500_040)), base, t0 + Duration::from_millis(40));
        assert_eq!(b - a, 40 * MS);
        let g = tl.generation();
        // The camera rebooted: its clock starts again near zero, 80 ms later.
        let c = tl.stamp(Some(rtp(10)), base, t0 + Duration::from_millis(120));
        assert_eq!(tl.generation(), g + 1);
        assert_eq!(c - b, 80 * MS, "on by the time that passed");
        // And follows the new clock from there.
        let d = tl.stamp(Some(rtp(50)), base, t0 + Duration::from_millis(170));
        assert_eq!(d - c, 40 * MS);

        // A reconnect (a new session) is a new generation too, whatever its stamps say.
        tl.new_session();
        let e = tl.stamp(Some(rtp(900_000)), base, t0 + Duration::from_millis(1170));
        assert_eq!(tl.generation(), g + 2);
        assert_eq!(e - d, 1000 * MS);
    }

    #[test]
    fn a_forward_jump_beyond_the_time_passed_is_a_new_generation() {
        let t0 = Instant::now();
        let mut tl = Timeline::new();
        let base = TimeBase::MICROS;
        tl.stamp(Some(0), base, t0);
        let g = tl.generation();
        // A timelapse frame 20 s later, stamped 20 s later: no jump.
        let p = tl.stamp(Some(20_000 * MS), base, t0 + Duration::from_secs(20));
        assert_eq!((p, tl.generation()), (20_000 * MS, g));
        // An hour's jump in a second: a broken stamp.
        let q = tl.stamp(Some(3_600_000 * MS), base, t0 + Duration::from_secs(21));
        assert_eq!((q, tl.generation()), (21_000 * MS, g + 1));
    }

    #[test]
    fn a_source_without_timestamps_is_stamped_by_arrival() {
        let t0 = Instant::now();
        let mut tl = Timeline::new();
        let base = TimeBase::MICROS;
        let a = tl.stamp(None, base, t0);
        let b = tl.stamp(None, base, t0 + Duration::from_millis(33));
        let c = tl.stamp(None, base, t0 + Duration::from_millis(100));
        assert_eq!((a, b - a, c - b), (0, 33 * MS, 67 * MS));
        assert_eq!(tl.map(None), None);
    }

    #[test]
    fn b_frames_keep_their_presentation_order_and_pictures_map_without_moving_the_clock() {
        let t0 = Instant::now();
        let mut tl = Timeline::new();
        let base = TimeBase::new(1, 25, 64).expect("base");
        // Decode order I0 P3 B1 B2 P6 B4 B5, stamped in frames of 40 ms.
        let order = [0, 3, 1, 2, 6, 4, 5];
        let pts: Vec<i64> = order
            .iter()
            .enumerate()
            .map(|(i, f)| tl.stamp(Some(*f), base, t0 + Duration::from_millis(40 * i as u64)))
            .collect();
        let want: Vec<i64> = order.iter().map(|f| f * 40 * MS).collect();
        assert_eq!(pts, want);
        assert_eq!(tl.generation(), 1, "reordering is no jump");
        // A decoder hands out old pictures of the GOP: mapped, the head stays.
        assert_eq!(tl.map(Some(1)), Some(40 * MS));
        assert_eq!(tl.head(), Some(6 * 40 * MS));
    }

    #[test]
    fn ffmpeg_time_bases_are_checked() {
        assert_eq!(TimeBase::new(0, 90_000, 32), None);
        assert_eq!(TimeBase::new(1, -5, 32), None);
        assert_eq!(TimeBase::new(1, 90_000, 99).map(|b| b.wrap_bits), Some(64));
    }
}
