//! How one client's link is shared among what it watches: which rung each of its tiles gets,
//! from what each rung costs (bits per second, measured as sent) and what the link carries.
//!
//! One decision per connection, never per tile: sixteen tiles on one thin link share it,
//! instead of each believing it has all of it. The policy is BBR's in spirit (Cardwell et al.,
//! ACM Queue 2016): when a queue grows, fit everything under the rate the link delivers right
//! now, with a margin so that the queue drains; when nothing waits, probe up one tile by one
//! rung at a time, and remember the rate where the link last filled (the ceiling) so that a
//! probe past it is tried again only after a while, a longer while each time it fails.
//!
//! Pure: the connection feeds it verdicts and its tiles' costs; it reads no clock (time is
//! counted in decisions) and knows nothing of WebSockets, so a WebRTC session can use it.

/// The share of the delivered rate a congested link is fitted into: the rest drains the queue.
pub const DRAIN_GAIN: f64 = 0.85;
/// A step up that stays under this share of the ceiling is no probe: the link carried it.
pub const CEILING_GAIN: f64 = 0.9;
/// Good decisions in a row before the first step up; doubled by each failed probe.
pub const UP_AFTER: u32 = 6;
/// The most good decisions a step up waits for.
pub const UP_AFTER_MAX: u32 = 60;
/// Decisions a step up is watched for: a congestion this soon after it means it failed.
const PROBE_WATCH: u32 = 6;
/// Decisions a ceiling holds before a probe past it is allowed again (doubled by each failed
/// probe past it, up to [`CEILING_HOLD_MAX`]).
const CEILING_HOLD: u32 = 16;
const CEILING_HOLD_MAX: u32 = 120;
/// How far past the ceiling (or what is sent now, if more) a probe may reach once the ceiling
/// has held its time: a little over twice it (a link back to what it was before it narrowed),
/// a quarter further for every further hold. A probe that fails fills the link's queues with seconds of what it tried, so
/// a camera many times the link's rate is tried rarely.
const PROBE_REACH: f64 = 2.2;
const REACH_GROWTH: f64 = 1.25;

/// One tile's options: the cost of each rung in bits per second, best rung first, and where
/// it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    /// Which tile goes first: the larger on the client's screen (a focused tile is the
    /// largest).
    pub weight: u32,
    pub level: usize,
    /// Bits per second of each rung, best first. A tile that does not adapt (a fixed quality)
    /// has one rung: it still takes its part of the link.
    pub costs: Vec<f64>,
}

impl Tile {
    fn bottom(&self) -> usize {
        self.costs.len().saturating_sub(1)
    }

    fn cost(&self, level: usize) -> f64 {
        self.costs.get(level).copied().unwrap_or(0.0)
    }

    /// The nearest rung below `level` that costs less: one rung less for the link. (The rung
    /// right below may cost more: full-size JPEG at the frame rate is dearer than a camera's
    /// keyframes.)
    fn cheaper_below(&self, level: usize) -> Option<usize> {
        let here = self.cost(level);
        (level + 1..self.costs.len()).find(|&l| self.cost(l) < here)
    }
}

/// What the last moments of the connection said.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    /// A queue grew on the way to the client: the link is full. `rate_bps` is what it
    /// delivered most recently (`None` when nothing was acknowledged).
    Congested { rate_bps: Option<f64> },
    /// The client's own machine cannot keep up (its decoder's backlog grew): fewer or smaller
    /// tiles, whatever the link.
    ViewerBusy,
    /// Neither good nor bad.
    Steady,
    /// Nothing waits anywhere.
    Clear,
}

/// Why a tile is below its best rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Link,
    Viewer,
}

/// A connection's sharing state.
#[derive(Debug, Clone)]
pub struct Share {
    good_run: u32,
    up_after: u32,
    /// Decisions since the last step up (`None`: none yet).
    since_up: Option<u32>,
    /// The step up being watched went past the ceiling.
    probing: bool,
    /// The last step up: which tile, from which level, to which.
    last_up: Option<(usize, usize, usize)>,
    /// The rate at which the link last filled, and decisions since.
    ceiling: Option<(f64, u32)>,
    ceiling_hold: u32,
}

impl Default for Share {
    fn default() -> Self {
        Self {
            good_run: 0,
            up_after: UP_AFTER,
            since_up: None,
            probing: false,
            last_up: None,
            ceiling: None,
            ceiling_hold: CEILING_HOLD,
        }
    }
}

/// The levels decided, and why the tiles that moved down did.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub levels: Vec<usize>,
    pub reason: Option<Reason>,
}

fn total(tiles: &[Tile], levels: &[usize]) -> f64 {
    tiles.iter().zip(levels).map(|(t, &l)| t.cost(l)).sum()
}

/// Tile indices, the first to serve first: larger weight, then the order given.
fn by_priority(tiles: &[Tile]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tiles.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tiles[i].weight));
    order
}

/// The best levels, none above the tile's current one, whose total fits `budget`: every tile
/// starts at its bottom rung and they take turns moving up, in priority order, while it fits.
/// A move goes to the nearest better rung that fits: a ladder's costs need not fall with it
/// (a camera's keyframes cost less than full-size JPEG at its frame rate). Turns make it fair
/// (sixteen equal tiles get about a sixteenth each); a tile twice as large takes two moves a
/// turn, so the focused tile is served first.
pub fn fit(tiles: &[Tile], budget: f64) -> Vec<usize> {
    let mut levels: Vec<usize> = tiles.iter().map(Tile::bottom).collect();
    let order = by_priority(tiles);
    let smallest = tiles.iter().map(|t| t.weight.max(1)).min().unwrap_or(1);
    let moves = |t: &Tile| (t.weight.max(1) / smallest).clamp(1, 8);
    let mut spent = total(tiles, &levels);
    loop {
        let mut moved = false;
        for &i in &order {
            let t = &tiles[i];
            for _ in 0..moves(t) {
                let l = levels[i];
                let here = t.cost(l);
                let Some(to) = (t.level..l)
                    .rev()
                    .find(|&to| spent - here + t.cost(to) <= budget)
                else {
                    break;
                };
                levels[i] = to;
                spent += t.cost(to) - here;
                moved = true;
            }
        }
        if !moved {
            return levels;
        }
    }
}

/// The tile to give up a rung when one must, and the rung: the lowest priority, and among
/// equals the one best served; `None` when no tile has a cheaper rung left.
fn poorest_victim(tiles: &[Tile], levels: &[usize]) -> Option<(usize, usize)> {
    let order = by_priority(tiles);
    order
        .iter()
        .rev()
        .copied()
        .filter_map(|i| Some((i, tiles[i].cheaper_below(levels[i])?)))
        .min_by_key(|&(i, _)| (tiles[i].weight, levels[i]))
}

impl Share {
    /// Whether the last step up went past the rate where the link last filled and is still
    /// watched: a smaller queue is reason enough to take it back.
    pub fn probing(&self) -> bool {
        self.probing && self.since_up.is_some_and(|n| n <= PROBE_WATCH)
    }

    /// Takes one signal and returns the tiles' levels from now on.
    pub fn decide(&mut self, tiles: &[Tile], signal: Signal) -> Decision {
        let current: Vec<usize> = tiles.iter().map(|t| t.level.min(t.bottom())).collect();
        self.since_up = self.since_up.map(|n| n.saturating_add(1));
        if let Some((_, age)) = self.ceiling.as_mut() {
            *age = age.saturating_add(1);
        }
        let watched = self.since_up.is_some_and(|n| n <= PROBE_WATCH);
        match signal {
            Signal::Congested { rate_bps } => {
                self.good_run = 0;
                let last_up = self.last_up.take().filter(|_| watched);
                if watched {
                    // The last step up filled the link: wait longer before the next.
                    self.up_after = (self.up_after * 2).min(UP_AFTER_MAX);
                    if self.probing {
                        self.ceiling_hold = (self.ceiling_hold * 2).min(CEILING_HOLD_MAX);
                    }
                }
                self.since_up = None;
                self.probing = false;
                if let Some((i, from, _)) =
                    last_up.filter(|&(i, _, to)| current.get(i) == Some(&to))
                {
                    // What held before that step is known to fit: back to it, at once and no
                    // further (a rate sampled this soon after the step is not the link's yet).
                    // The ceiling stays, its time starts again.
                    match self.ceiling.as_mut() {
                        Some((_, age)) => *age = 0,
                        // What was sent with the step did not fit: the link carries less.
                        None => self.ceiling = Some((total(tiles, &current), 0)),
                    }
                    let mut levels = current.clone();
                    levels[i] = from;
                    return Decision {
                        levels,
                        reason: Some(Reason::Link),
                    };
                }
                let mut levels = match rate_bps.filter(|r| *r > 0.0) {
                    Some(rate) => {
                        self.ceiling = Some((rate, 0));
                        fit(tiles, rate * DRAIN_GAIN)
                    }
                    // Nothing acknowledged: no rate to fit, every tile one rung down; the link
                    // carries less than was sent, say half.
                    None => {
                        self.ceiling = Some((total(tiles, &current) / 2.0, 0));
                        tiles
                            .iter()
                            .zip(&current)
                            .map(|(t, &l)| t.cheaper_below(l).unwrap_or(l))
                            .collect()
                    }
                };
                if levels == current {
                    // Everything already fits the rate, yet a queue grew (a burst, someone
                    // else on the link): one rung less, from the tile that can best spare it.
                    if let Some((i, to)) = poorest_victim(tiles, &levels) {
                        levels[i] = to;
                    }
                }
                Decision {
                    reason: (levels != current).then_some(Reason::Link),
                    levels,
                }
            }
            Signal::ViewerBusy => {
                self.good_run = 0;
                if watched {
                    self.up_after = (self.up_after * 2).min(UP_AFTER_MAX);
                }
                self.since_up = None;
                self.probing = false;
                let mut levels = current.clone();
                if let Some((i, to)) = poorest_victim(tiles, &levels) {
                    levels[i] = to;
                }
                Decision {
                    reason: (levels != current).then_some(Reason::Viewer),
                    levels,
                }
            }
            Signal::Steady => {
                self.good_run = 0;
                Decision {
                    levels: current,
                    reason: None,
                }
            }
            Signal::Clear => {
                self.good_run += 1;
                if self.since_up.is_some_and(|n| n > PROBE_WATCH) {
                    // The last step up held: a probe past the ceiling raised it.
                    if self.probing {
                        self.ceiling = None;
                        self.ceiling_hold = CEILING_HOLD;
                        // The link carries more than it was thought to: climb at the usual pace.
                        self.up_after = UP_AFTER;
                        self.probing = false;
                    }
                    if self.since_up.is_some_and(|n| n > UP_AFTER_MAX * 2) {
                        self.up_after = UP_AFTER;
                    }
                }
                let mut levels = current.clone();
                if self.good_run >= self.up_after {
                    if let Some((i, to, probing)) = self.next_up(tiles, &current) {
                        levels[i] = to;
                        self.good_run = 0;
                        self.since_up = Some(0);
                        self.probing = probing;
                        self.last_up = Some((i, current[i], to));
                    }
                }
                Decision {
                    levels,
                    reason: None,
                }
            }
        }
    }

    /// The tile to move up, its new rung, and whether that goes past the ceiling: the first
    /// in priority among those furthest down. A better rung that costs no more is taken first
    /// (the best such). A move within the ceiling goes to the nearest
    /// better rung that stays within it (past dearer ones); one past it, only once the ceiling
    /// has held its time, is one rung up, and reaches [`PROBE_REACH`] times the ceiling,
    /// [`REACH_GROWTH`] times further for every further hold.
    fn next_up(&self, tiles: &[Tile], levels: &[usize]) -> Option<(usize, usize, bool)> {
        let spent = total(tiles, levels);
        let order = by_priority(tiles);
        let mut candidates: Vec<usize> = order.into_iter().filter(|&i| levels[i] > 0).collect();
        // Stable: priority order among tiles equally far down.
        candidates.sort_by_key(|&i| std::cmp::Reverse(levels[i]));
        let after = |i: usize, to: usize| spent - tiles[i].cost(levels[i]) + tiles[i].cost(to);
        // A better rung that costs no more than the one it has is no risk at all: the best one.
        let free = candidates.iter().find_map(|&i| {
            let here = tiles[i].cost(levels[i]);
            (0..levels[i])
                .find(|&to| tiles[i].cost(to) <= here)
                .map(|to| (i, to, false))
        });
        if free.is_some() {
            return free;
        }
        match self.ceiling {
            None => candidates.first().map(|&i| (i, levels[i] - 1, false)),
            Some((ceiling, age)) => candidates
                .iter()
                .find_map(|&i| {
                    (0..levels[i])
                        .rev()
                        .find(|&to| after(i, to) <= ceiling * CEILING_GAIN)
                        .map(|to| (i, to, false))
                })
                .or_else(|| {
                    if age < self.ceiling_hold {
                        return None;
                    }
                    let holds = f64::from(age / self.ceiling_hold - 1);
                    // From the ceiling, or from what is sent now if that is more (a client that
                    // was throttled far below its link climbs back rung by rung).
                    let reach =
                        ceiling.max(spent) * PROBE_REACH * REACH_GROWTH.powf(holds.min(16.0));
                    candidates
                        .iter()
                        .find(|&&i| after(i, levels[i] - 1) <= reach)
                        .map(|&i| (i, levels[i] - 1, true))
                }),
        }
    }
}

#[cfg(test)]
#[path = "share_tests.rs"]
mod tests;
