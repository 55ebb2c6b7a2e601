//! A WebRTC viewer's RTP clock: the camera's own time between live units, and a GOP sent at
//! once stamped one tick apart (see [`RtpClock`]).

/// 90 kHz RTP ticks per microsecond of the camera's clock, as a fraction.
const TICKS_PER_US: (i64, i64) = (9, 100);

/// The mapping from the camera's clock to the viewer's RTP clock: the camera's own time
/// between units, except for a GOP sent at once (a start, a picture request), whose units
/// are stamped one tick apart so that the browser's jitter buffer plays them at once
/// instead of holding the picture back by the GOP's length.
#[derive(Debug, Clone, Default)]
pub struct RtpClock {
    /// Ticks added to the camera's pts (in ticks) for live units.
    offset: Option<i64>,
    last: Option<u64>,
}

fn pts_ticks(pts_us: i64) -> i64 {
    pts_us.saturating_mul(TICKS_PER_US.0) / TICKS_PER_US.1
}

impl RtpClock {
    /// The RTP time of a live unit: the camera's time, never before the last one sent.
    pub fn live(&mut self, pts_us: i64) -> u64 {
        let t = pts_ticks(pts_us);
        let offset = *self.offset.get_or_insert(-t);
        let mut out = (t + offset).max(0) as u64;
        if let Some(last) = self.last {
            if out <= last {
                out = last + 1;
            }
        }
        self.last = Some(out);
        out
    }

    /// The RTP times of `n` units sent at once, the newest at `newest_pts_us`; live units
    /// go on from the newest on the camera's clock.
    pub fn burst(&mut self, n: usize, newest_pts_us: i64) -> Vec<u64> {
        let base = self.last.map_or(0, |l| l + 1);
        let times: Vec<u64> = (0..n as u64).map(|i| base + i).collect();
        if let Some(&newest) = times.last() {
            self.offset = Some(newest as i64 - pts_ticks(newest_pts_us));
            self.last = Some(newest);
        }
        times
    }
}
