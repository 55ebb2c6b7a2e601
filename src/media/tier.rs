//! Tiers and lanes: the only place for the rules on JPEG quality, picture size and frame rate.
//!
//! Parsing and validation of client parameters, snapping live requests to a small fixed set of
//! rungs (so that clients cannot grow the number of lanes per camera), the adaptation ladder,
//! and thinning frames to a rate cap all live here. Pure: no I/O, and no clock reads (callers
//! pass times in). Nothing here knows about cameras, HTTP or WebSockets.

use std::time::Duration;

use tokio::time::Instant;

/// JPEG qualities a request may name.
pub const QUALITY_RANGE: std::ops::RangeInclusive<u8> = 1..=100;
/// Downscale factors, full size first (libjpeg-turbo's scaled IDCT and our box filter take
/// powers of two).
pub const SCALES: [u8; 3] = [1, 2, 4];
/// Highest frame-rate cap accepted anywhere: config, HTTP and WebSocket.
pub const MAX_FPS: f64 = 240.0;
/// Frame-rate caps a live lane may have. A request snaps down to the nearest rung; a request
/// above the last rung means "every source frame".
pub const FPS_RUNGS: [f64; 17] = [
    0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.5, 10.0, 12.5, 15.0, 20.0, 25.0, 30.0, 50.0, 60.0,
];
/// Fixed qualities of live lanes are snapped to multiples of this (or to a configured tier).
const QUALITY_STEP: u8 = 5;
/// Most live lanes (tier plus rate cap) one camera serves at once; a request beyond it is
/// served from the nearest existing lane.
pub const MAX_LANES_PER_CAMERA: usize = 16;
/// Thinning keeps frames at least this fraction of the cap's period apart: 10 % slack so that
/// capture jitter around the exact period does not drop every other frame.
const THIN_SLACK: f64 = 0.9;

/// A client parameter that is out of range or unreadable. The text quotes at most 32
/// characters of what was sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("quality must be an integer from 1 to 100, got {0:?}")]
    Quality(String),
    #[error("max_width must be a positive integer, got {0:?}")]
    MaxWidth(String),
    #[error("max_fps must be a number in 0 < x <= 240, got {0:?}")]
    MaxFps(String),
}

fn shown(v: impl ToString) -> String {
    v.to_string().chars().take(32).collect()
}

/// A JPEG quality from a query string.
pub fn parse_quality(v: &str) -> Result<u8, ParamError> {
    match v.trim().parse::<u64>() {
        Ok(n) => check_quality(n).map_err(|_| ParamError::Quality(shown(v))),
        Err(_) => Err(ParamError::Quality(shown(v))),
    }
}

/// A JPEG quality from a number.
pub fn check_quality(n: u64) -> Result<u8, ParamError> {
    u8::try_from(n)
        .ok()
        .filter(|q| QUALITY_RANGE.contains(q))
        .ok_or_else(|| ParamError::Quality(shown(n)))
}

/// A `max_width` from a query string.
pub fn parse_max_width(v: &str) -> Result<u32, ParamError> {
    match v.trim().parse::<u64>() {
        Ok(n) => check_max_width(n).map_err(|_| ParamError::MaxWidth(shown(v))),
        Err(_) => Err(ParamError::MaxWidth(shown(v))),
    }
}

/// A `max_width` from a number: positive, and within u32.
pub fn check_max_width(n: u64) -> Result<u32, ParamError> {
    u32::try_from(n)
        .ok()
        .filter(|w| *w > 0)
        .ok_or_else(|| ParamError::MaxWidth(shown(n)))
}

/// A `max_fps` from a query string.
pub fn parse_max_fps(v: &str) -> Result<f64, ParamError> {
    match v.trim().parse::<f64>() {
        Ok(f) => check_max_fps(f).map_err(|_| ParamError::MaxFps(shown(v))),
        Err(_) => Err(ParamError::MaxFps(shown(v))),
    }
}

/// A `max_fps` from a number: `0 < x <= MAX_FPS`.
pub fn check_max_fps(f: f64) -> Result<f64, ParamError> {
    if f.is_finite() && f > 0.0 && f <= MAX_FPS {
        Ok(f)
    } else {
        Err(ParamError::MaxFps(shown(f)))
    }
}

/// A quality and downscale factor: the unit of "encode once".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tier {
    pub quality: u8,
    pub scale: u8,
}

/// Smallest downscale in [`SCALES`] that brings `src_width` within `max_width` (the last one
/// if none does; full size while the width is unknown).
pub fn scale_for_width(src_width: u32, max_width: Option<u32>) -> u8 {
    match max_width {
        Some(max) if src_width > 0 => SCALES
            .into_iter()
            .find(|&s| src_width.div_ceil(u32::from(s)) <= max)
            .unwrap_or(SCALES[SCALES.len() - 1]),
        _ => 1,
    }
}

/// One rung of the adaptation ladder: quality first, then size, then frame rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rung {
    pub quality: u8,
    pub scale: u8,
    /// Fraction of the source frame rate.
    pub fps_factor: f64,
}

/// The server's JPEG quality tiers (`server.quality_tiers`, best first, validated by the
/// config), and everything derived from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qualities(Vec<u8>);

impl Qualities {
    /// `tiers` best first; an empty list falls back to the seed's `[85, 80, 70]`.
    pub fn new(tiers: &[u8]) -> Self {
        if tiers.is_empty() {
            Self(vec![85, 80, 70])
        } else {
            Self(tiers.to_vec())
        }
    }

    /// Best first.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// The best tier: the default quality of a snapshot, and what "full quality" means when
    /// source JPEGs are passed through.
    pub fn best(&self) -> u8 {
        self.0[0]
    }

    /// The lowest tier: what the ladder uses once it trades size and rate instead.
    pub fn lowest(&self) -> u8 {
        self.0[self.0.len() - 1]
    }

    /// The ladder: every tier at full size, then the lowest at 1/2 size (at the full and at
    /// half the frame rate) and 1/4 size, then 1/4 size at 1/2 and 1/4 of the frame rate.
    /// Neighbouring rungs differ by about half in bits, so that a thin link finds one that
    /// uses most of it.
    pub fn ladder(&self) -> Vec<Rung> {
        let mut out: Vec<Rung> = self
            .0
            .iter()
            .map(|&q| Rung {
                quality: q,
                scale: 1,
                fps_factor: 1.0,
            })
            .collect();
        for (scale, fps_factor) in [(2, 1.0), (2, 0.5), (4, 1.0), (4, 0.5), (4, 0.25)] {
            out.push(Rung {
                quality: self.lowest(),
                scale,
                fps_factor,
            });
        }
        out
    }

    /// A live client's fixed quality snapped to a configured tier or a multiple of 5,
    /// whichever is nearer (ties go to the better quality).
    pub fn snap(&self, quality: u8) -> u8 {
        let step = (u16::from(quality) + u16::from(QUALITY_STEP) / 2) / u16::from(QUALITY_STEP)
            * u16::from(QUALITY_STEP);
        let stepped = step.clamp(u16::from(QUALITY_STEP), 100) as u8;
        let nearest_tier = self
            .0
            .iter()
            .copied()
            .min_by_key(|t| (t.abs_diff(quality), std::cmp::Reverse(*t)));
        match nearest_tier {
            Some(t) if t.abs_diff(quality) <= stepped.abs_diff(quality) => t,
            _ => stepped,
        }
    }
}

/// How a live viewer names its JPEG quality.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LaneQuality {
    /// A fixed quality, snapped to a configured tier or a multiple of 5 ([`Qualities::snap`]).
    Fixed(u8),
    /// A rung of the adaptation ladder ([`Qualities::ladder`]).
    Rung(Rung),
}

/// What a live viewer asks of a stream's JPEG pictures, before it is resolved to a lane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaneAsk {
    pub quality: LaneQuality,
    pub max_width: Option<u32>,
    pub max_fps: Option<f64>,
}

impl Qualities {
    /// The lane that serves `ask` for a source `src_width` wide at `src_fps` frames a second
    /// (0: not measured yet). A rung's rate is a fraction of the rounded source rate, so that
    /// viewers on the same rung share one lane (measured rates wobble: 24.9, 25.1); the
    /// viewer's own `max_fps` caps it further, and its `max_width` sets the smallest downscale.
    pub fn lane(&self, ask: &LaneAsk, src_width: u32, src_fps: f64) -> Lane {
        let min_scale = scale_for_width(src_width, ask.max_width);
        match ask.quality {
            LaneQuality::Fixed(q) => Lane::new(
                Tier {
                    quality: self.snap(q),
                    scale: min_scale,
                },
                ask.max_fps,
            ),
            LaneQuality::Rung(rung) => {
                let fps = (rung.fps_factor < 1.0 && src_fps > 0.0)
                    .then_some(src_fps.round().max(1.0) * rung.fps_factor);
                let cap = match (fps, ask.max_fps) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                Lane::new(
                    Tier {
                        quality: rung.quality,
                        scale: rung.scale.max(min_scale),
                    },
                    cap,
                )
            }
        }
    }
}

impl Tier {
    /// The tier a peer names, if it is one (quality 1..100, a downscale in [`SCALES`]): bytes
    /// from another node are checked, not trusted.
    pub fn checked(quality: u8, scale: u8) -> Option<Self> {
        let quality = check_quality(u64::from(quality)).ok()?;
        SCALES.contains(&scale).then_some(Self { quality, scale })
    }
}

/// What one fan-out pump serves: a tier plus a frame-rate cap from [`FPS_RUNGS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lane {
    pub tier: Tier,
    /// Index into [`FPS_RUNGS`]; `None`: every source frame.
    cap: Option<u8>,
}

impl Lane {
    /// The lane for `tier` thinned to `max_fps`, snapped down to a rung (below the first rung:
    /// the first; above the last: uncapped). Non-finite or non-positive caps mean no cap.
    pub fn new(tier: Tier, max_fps: Option<f64>) -> Self {
        let cap = max_fps
            .filter(|f| f.is_finite() && *f > 0.0 && *f <= FPS_RUNGS[FPS_RUNGS.len() - 1])
            .map(|f| FPS_RUNGS.iter().rposition(|r| *r <= f + 1e-9).unwrap_or(0) as u8);
        Self { tier, cap }
    }

    /// The cap in frames per second, if any.
    pub fn max_fps(&self) -> Option<f64> {
        self.cap.map(|i| FPS_RUNGS[usize::from(i)])
    }

    /// How far apart two lanes are, for serving a request from the nearest existing lane:
    /// size matters most, then quality, then rate.
    pub fn distance(&self, other: &Lane) -> u32 {
        let scale = u32::from(self.tier.scale.abs_diff(other.tier.scale)) * 100;
        let quality = u32::from(self.tier.quality.abs_diff(other.tier.quality));
        let rung = |c: Option<u8>| c.map_or(FPS_RUNGS.len() as u32, u32::from);
        scale + quality + rung(self.cap).abs_diff(rung(other.cap)) * 3
    }

    /// A thinner for this lane's cap.
    pub fn thinner(&self) -> Thinner {
        Thinner::new(self.max_fps())
    }
}

/// Lets through at most `max_fps` frames a second, judged by capture time, so a capped
/// consumer drops frames before anything is spent on them.
#[derive(Debug, Clone)]
pub struct Thinner {
    min_spacing: Option<Duration>,
    last: Option<Instant>,
}

impl Thinner {
    /// No cap: every frame passes.
    pub fn new(max_fps: Option<f64>) -> Self {
        Self {
            min_spacing: max_fps
                .filter(|f| f.is_finite() && *f > 0.0)
                .map(|f| Duration::from_secs_f64(THIN_SLACK / f)),
            last: None,
        }
    }

    /// Whether a frame captured `at` passes; a frame that passes becomes the reference.
    pub fn admit(&mut self, at: Instant) -> bool {
        if let (Some(min), Some(last)) = (self.min_spacing, self.last) {
            if at.saturating_duration_since(last) < min {
                return false;
            }
        }
        self.last = Some(at);
        true
    }

    /// The shortest spacing between two frames that pass.
    pub fn min_spacing(&self) -> Option<Duration> {
        self.min_spacing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_in_one_place() {
        assert_eq!(parse_quality(" 70 "), Ok(70));
        for bad in ["0", "101", "abc", "-1", "300"] {
            assert!(
                matches!(parse_quality(bad), Err(ParamError::Quality(_))),
                "{bad}"
            );
        }
        assert_eq!(parse_max_width("320"), Ok(320));
        assert!(parse_max_width("0").is_err() && check_max_width(0).is_err());
        assert!(check_max_width(u64::from(u32::MAX) + 1).is_err());
        assert_eq!(parse_max_fps("5"), Ok(5.0));
        for bad in ["0", "-1", "NaN", "241", "inf"] {
            assert!(parse_max_fps(bad).is_err(), "{bad}");
        }
        assert!(check_max_fps(f64::INFINITY).is_err() && check_max_fps(240.0).is_ok());
        let long = "9".repeat(100);
        let ParamError::Quality(shown) = parse_quality(&long).unwrap_err() else {
            panic!("wrong variant")
        };
        assert_eq!(shown.len(), 32);
    }

    #[test]
    fn max_width_picks_the_smallest_sufficient_downscale() {
        assert_eq!(scale_for_width(1920, None), 1);
        assert_eq!(scale_for_width(1920, Some(1920)), 1);
        assert_eq!(scale_for_width(1920, Some(960)), 2);
        assert_eq!(scale_for_width(1920, Some(500)), 4);
        assert_eq!(scale_for_width(1920, Some(10)), 4);
        assert_eq!(scale_for_width(0, Some(10)), 1);
    }

    #[test]
    fn ladder_goes_quality_then_size_then_fps() {
        let l = Qualities::new(&[85, 80, 70]).ladder();
        let q: Vec<_> = l.iter().map(|r| (r.quality, r.scale)).collect();
        assert_eq!(
            q,
            vec![
                (85, 1),
                (80, 1),
                (70, 1),
                (70, 2),
                (70, 2),
                (70, 4),
                (70, 4),
                (70, 4)
            ]
        );
        assert_eq!(l[4].fps_factor, 0.5);
        assert_eq!(l[7].fps_factor, 0.25);
        assert_eq!(Qualities::new(&[]).best(), 85);
    }

    #[test]
    fn live_qualities_snap_to_few_values() {
        let q = Qualities::new(&[85, 82, 70]);
        assert_eq!(q.snap(40), 40);
        assert_eq!(q.snap(41), 40);
        assert_eq!(q.snap(43), 45);
        assert_eq!(q.snap(82), 82);
        assert_eq!(q.snap(83), 82);
        assert_eq!(q.snap(1), 5);
        assert_eq!(q.snap(100), 100);
        let distinct: std::collections::HashSet<u8> = (1..=100).map(|v| q.snap(v)).collect();
        assert!(distinct.len() <= 21, "{}", distinct.len());
    }

    #[test]
    fn lanes_snap_caps_to_rungs() {
        let t = Tier {
            quality: 80,
            scale: 1,
        };
        assert_eq!(Lane::new(t, None), Lane::new(t, Some(f64::NAN)));
        assert_eq!(Lane::new(t, Some(5.0)), Lane::new(t, Some(5.9)));
        assert_eq!(Lane::new(t, Some(5.0)).max_fps(), Some(5.0));
        assert_eq!(Lane::new(t, Some(12.5)).max_fps(), Some(12.5));
        assert_eq!(Lane::new(t, Some(6.25)).max_fps(), Some(6.0));
        assert_eq!(Lane::new(t, Some(0.1)).max_fps(), Some(0.25));
        assert_eq!(Lane::new(t, Some(240.0)), Lane::new(t, None));
        assert_ne!(Lane::new(t, Some(5.0)), Lane::new(t, Some(6.0)));
        // However many distinct caps clients send, lanes per tier stay few.
        let distinct: std::collections::HashSet<Lane> = (1..=24000)
            .map(|c| Lane::new(t, Some(f64::from(c) / 100.0)))
            .collect();
        assert_eq!(distinct.len(), FPS_RUNGS.len() + 1);
    }

    #[test]
    fn nearest_lane_prefers_same_size() {
        let lane = |q, s, f| {
            Lane::new(
                Tier {
                    quality: q,
                    scale: s,
                },
                f,
            )
        };
        let want = lane(75, 2, Some(5.0));
        let same_size = lane(70, 2, None);
        let other_size = lane(75, 1, Some(5.0));
        assert!(want.distance(&same_size) < want.distance(&other_size));
        assert_eq!(want.distance(&want), 0);
    }

    #[test]
    fn thinning_keeps_the_cap_with_slack() {
        let mut th = Thinner::new(Some(10.0));
        assert_eq!(th.min_spacing(), Some(Duration::from_millis(90)));
        let t0 = Instant::now();
        assert!(th.admit(t0));
        assert!(!th.admit(t0 + Duration::from_millis(40)));
        // Jitter: 95 ms after the last frame still passes at 10 fps.
        assert!(th.admit(t0 + Duration::from_millis(95)));
        let mut all = Thinner::new(None);
        assert!(all.admit(t0) && all.admit(t0));
    }
}
