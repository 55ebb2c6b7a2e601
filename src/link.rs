//! The estimate of what one client's path carries, shared by every subscription of that
//! client: the round trip it has at best (the propagation delay plus the client's own steady
//! decode and draw time), the round trip it has now, and so the queueing delay (now over the
//! best, never an absolute number: a long link is not a slow link), and the rate at which the
//! client takes bytes.
//!
//! The model is BBR's (Cardwell et al., ACM Queue 2016): a round-trip propagation estimate
//! filtered as a windowed minimum, a delivery rate filtered as a windowed maximum. Pure: the
//! connection feeds it acknowledgements with their times; it reads no clock and knows nothing
//! of WebSockets, so a WebRTC session can feed it the same way.

pub mod share;

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How long the best round trip is remembered: long enough to span a burst of queueing, short
/// enough to follow a path that got longer (a new route, a phone that changed cells).
pub const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// How long the best delivery rate is remembered.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Buckets each window is kept in (one sample per bucket: the window's memory is bounded
/// whatever the frame rate).
const BUCKETS: u32 = 10;
/// Weight of a new sample in the smoothed round trip (RFC 6298's 1/8).
const SRTT_GAIN: f64 = 0.125;
/// A message this large tells the rate of the path's narrowest point by how much longer than
/// the best round trip it took (a train of packets); smaller ones are timing noise.
const BURST_MIN_BYTES: usize = 8 * 1024;
/// A delivery rate this much above the one before still grows: the sender's TCP is ramping
/// up (slow start) and queueing is expected (BBR's startup, its 25 %).
const GROWTH: f64 = 1.25;
/// Samples without such growth after which the path counts as filled.
const FILLED_AFTER: u32 = 3;

/// A windowed extreme kept as one value per bucket of the window: bounded memory, and an old
/// extreme leaves the window whole bucket by bucket.
#[derive(Debug, Clone)]
struct Windowed<T> {
    bucket: Duration,
    /// Whether the first value replaces the second as the extreme.
    better: fn(T, T) -> bool,
    /// (start of bucket, its extreme), oldest first.
    samples: VecDeque<(Instant, T)>,
}

impl<T: Copy + PartialOrd> Windowed<T> {
    fn new(window: Duration, better: fn(T, T) -> bool) -> Self {
        Self {
            bucket: window / BUCKETS,
            better,
            samples: VecDeque::new(),
        }
    }

    /// Takes `v` at `now`.
    fn record(&mut self, now: Instant, v: T) {
        let window = self.bucket * BUCKETS;
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= window)
        {
            self.samples.pop_front();
        }
        match self.samples.back_mut() {
            Some((t, best)) if now.saturating_duration_since(*t) < self.bucket => {
                if (self.better)(v, *best) {
                    *best = v;
                }
            }
            _ => self.samples.push_back((now, v)),
        }
    }

    fn best(&self) -> Option<T> {
        self.samples
            .iter()
            .map(|(_, v)| *v)
            .reduce(|a, b| if (self.better)(b, a) { b } else { a })
    }
}

/// One client's path.
#[derive(Debug, Clone)]
pub struct LinkEstimate {
    min_rtt: Windowed<Duration>,
    srtt: Option<Duration>,
    rate: Windowed<f64>,
    /// Bytes acknowledged since `interval_start`, for the next delivery-rate sample.
    acked: u64,
    interval_start: Option<Instant>,
    /// The latest delivery-rate sample: what the path carries now, when a queue says it is
    /// full (the windowed best remembers a rate that may be gone).
    recent: Option<f64>,
    /// The rate large messages crossed the path at (windowed best): its narrowest point's,
    /// also while the sender sends less than that.
    burst: Windowed<f64>,
    /// Startup: the best delivery rate so far, and samples since it grew by [`GROWTH`].
    grown_to: f64,
    flat_samples: u32,
}

impl Default for LinkEstimate {
    fn default() -> Self {
        Self {
            min_rtt: Windowed::new(MIN_RTT_WINDOW, |a, b| a < b),
            srtt: None,
            rate: Windowed::new(RATE_WINDOW, |a, b| a > b),
            acked: 0,
            interval_start: None,
            recent: None,
            burst: Windowed::new(RATE_WINDOW, |a, b| a > b),
            grown_to: 0.0,
            flat_samples: 0,
        }
    }
}

/// The shortest interval a delivery-rate sample spans: shorter ones are mostly timing noise.
const RATE_INTERVAL: Duration = Duration::from_millis(250);

impl LinkEstimate {
    /// The client acknowledged, at `now`, a message of `bytes` whose send began at `sent_at`.
    pub fn acked(&mut self, now: Instant, sent_at: Instant, bytes: usize) {
        let rtt = now.saturating_duration_since(sent_at);
        if let Some(extra) = self
            .min_rtt()
            .map(|m| rtt.saturating_sub(m))
            .filter(|e| bytes >= BURST_MIN_BYTES && *e >= Duration::from_millis(1))
        {
            self.burst
                .record(now, bytes as f64 * 8.0 / extra.as_secs_f64());
        }
        self.min_rtt.record(now, rtt);
        self.srtt = Some(match self.srtt {
            None => rtt,
            Some(s) => s.mul_f64(1.0 - SRTT_GAIN) + rtt.mul_f64(SRTT_GAIN),
        });
        let Some(start) = self.interval_start else {
            // The first ack opens the first interval: what it settles arrived before it.
            self.interval_start = Some(now);
            return;
        };
        self.acked = self.acked.saturating_add(bytes as u64);
        let span = now.saturating_duration_since(start);
        if span >= RATE_INTERVAL {
            let bps = self.acked as f64 * 8.0 / span.as_secs_f64();
            self.rate.record(now, bps);
            self.recent = Some(bps);
            if !self.starting() {
                // Started once: a rate that grows later is a probe or a better path, and a
                // queue then is the link's.
            } else if bps >= self.grown_to * GROWTH {
                self.grown_to = bps;
                self.flat_samples = 0;
            } else {
                self.flat_samples = self.flat_samples.saturating_add(1);
            }
            self.acked = 0;
            self.interval_start = Some(now);
        }
    }

    /// The best round trip seen within [`MIN_RTT_WINDOW`].
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt.best()
    }

    /// The smoothed round trip now.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// How much longer than the best a round trip of `rtt` is: the time spent waiting in
    /// queues (the network's, the socket's, the client's decoder). Before the first sample the
    /// path is taken as having no length: all of `rtt` counts.
    pub fn queueing(&self, rtt: Duration) -> Duration {
        rtt.saturating_sub(self.min_rtt().unwrap_or(Duration::ZERO))
    }

    /// Whether the delivery rate has grown sample after sample since the connection began: its
    /// TCP is still ramping up, and a queue now is its ramp, not the path being full. Once the
    /// rate stopped growing, never again.
    pub fn starting(&self) -> bool {
        self.flat_samples < FILLED_AFTER
    }

    /// How long a message of `bytes` takes to cross the path at the best rate a large message
    /// was seen to cross it: a large frame's round trip is longer by this without anything
    /// waiting.
    pub fn transmission(&self, bytes: usize) -> Duration {
        // Only large messages tell the path's rate: the delivery rate of a stream that sends
        // less than the path carries is the stream's own rate, and would excuse any queue.
        match self.burst.best() {
            Some(r) if r > 0.0 => Duration::from_secs_f64(bytes as f64 * 8.0 / r),
            _ => Duration::ZERO,
        }
    }

    /// The best rate the path was seen to carry within [`RATE_WINDOW`], bits per second: the
    /// delivery rate, or the rate a large message crossed at, whichever is higher.
    pub fn capacity_bps(&self) -> Option<f64> {
        self.burst
            .best()
            .into_iter()
            .chain(self.rate_bps())
            .reduce(f64::max)
    }

    /// The latest delivery-rate sample, in bits per second: while a queue stands, the rate
    /// of the path's narrowest point now.
    pub fn recent_bps(&self) -> Option<f64> {
        self.recent
    }

    /// The best delivery rate seen within [`RATE_WINDOW`], in bits per second.
    pub fn rate_bps(&self) -> Option<f64> {
        self.rate.best()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_link_has_no_queue_and_a_growing_one_does() {
        let mut l = LinkEstimate::default();
        assert_eq!(l.queueing(ms(900)), ms(900), "no length known yet");
        // 400 ms round trip, 25 acks a second: long, but nothing waits.
        for _ in 0..50 {
            let sent = Instant::now();
            tokio::time::advance(ms(40)).await;
            l.acked(sent + ms(400), sent, 10_000);
        }
        assert_eq!(l.min_rtt(), Some(ms(400)));
        assert_eq!(l.queueing(l.srtt().unwrap()), Duration::ZERO);
        // A queue builds: each round trip 20 ms longer than the one before.
        for i in 1..=20u64 {
            let sent = Instant::now();
            tokio::time::advance(ms(40)).await;
            l.acked(sent + ms(400 + 20 * i), sent, 10_000);
        }
        assert!(l.queueing(l.srtt().unwrap()) > ms(150), "{:?}", l.srtt());
        assert_eq!(l.min_rtt(), Some(ms(400)), "the best is remembered");
    }

    #[tokio::test(start_paused = true)]
    async fn a_path_that_got_longer_is_learned_within_the_window() {
        let mut l = LinkEstimate::default();
        let t0 = Instant::now();
        l.acked(t0 + ms(50), t0, 1000);
        tokio::time::advance(ms(100)).await;
        // From now on every round trip is 300 ms.
        let until = Instant::now() + MIN_RTT_WINDOW + ms(1100);
        while Instant::now() < until {
            let sent = Instant::now();
            tokio::time::advance(ms(100)).await;
            l.acked(sent + ms(300), sent, 1000);
        }
        assert_eq!(l.min_rtt(), Some(ms(300)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_frame_is_not_a_queue_and_a_ramp_is_a_start() {
        let mut l = LinkEstimate::default();
        assert!(l.starting());
        // A 40 ms path; 2 KB frames at once, a 100 KB keyframe 400 ms over it (2 Mbit/s).
        for _ in 0..10 {
            let sent = Instant::now();
            tokio::time::advance(ms(100)).await;
            l.acked(sent + ms(40), sent, 2_000);
        }
        let sent = Instant::now();
        tokio::time::advance(ms(440)).await;
        l.acked(Instant::now(), sent, 100_000);
        let tx = l.transmission(100_000);
        assert!((ms(350)..ms(450)).contains(&tx), "{tx:?}");
        assert_eq!(l.queueing(ms(440).saturating_sub(tx)), Duration::ZERO);
        // A rate that grows sample after sample is a start; one that stops growing is not.
        let mut l = LinkEstimate::default();
        let mut bytes = 1000.0;
        for _ in 0..12 {
            let sent = Instant::now();
            tokio::time::advance(ms(100)).await;
            l.acked(Instant::now(), sent, bytes as usize);
            bytes *= 1.5;
        }
        assert!(l.starting());
        for _ in 0..20 {
            let sent = Instant::now();
            tokio::time::advance(ms(100)).await;
            l.acked(Instant::now(), sent, bytes as usize);
        }
        assert!(!l.starting());
    }

    #[tokio::test(start_paused = true)]
    async fn the_delivery_rate_is_the_best_recent_interval() {
        let mut l = LinkEstimate::default();
        // 12 500 bytes every 100 ms: 1 Mbit/s.
        for _ in 0..30 {
            let sent = Instant::now();
            tokio::time::advance(ms(100)).await;
            l.acked(Instant::now(), sent, 12_500);
        }
        let r = l.rate_bps().unwrap();
        assert!((0.9e6..1.2e6).contains(&r), "{r}");
    }
}
