//! The verdict on a live client's last moments of sending (skips, send time, queueing over
//! the path's best round trip), which `link::share` turns into rungs.
//! Pure: the connection feeds it numbers; it reads no clock and touches no socket.
//!
//! Every time judged here is measured on the server's own clock: a browser's clock may be
//! seconds off, so the client's own latency report must never decide a verdict.

use std::time::Duration;

use crate::link::LinkEstimate;

/// What one window of sending looked like for a connection (all its subscriptions).
#[derive(Debug, Default, Clone)]
pub struct WindowStats {
    pub sent: u32,
    pub skipped: u32,
    pub send_time: Duration,
    pub acking: bool,
    /// Send to acknowledgement of acknowledged frames, on the server's clock: transfer,
    /// queueing in the network and the browser's decode and draw.
    pub rtt_sum: Duration,
    pub rtt_n: u32,
    /// At the window's end, how long the oldest frame still unacknowledged has been out: a
    /// round trip at least that long, so a client that stops acknowledging is judged too.
    pub oldest_unacked: Option<Duration>,
}

/// A window whose frames waited longer than this in queues, on average (their round trip
/// over the connection's best, see `link`), is bad. Never an absolute round trip: a
/// satellite link's 600 ms are its length, not a queue.
pub const QUEUE_BAD: Duration = Duration::from_millis(300);
/// ... and one under this may count as good.
pub const QUEUE_GOOD: Duration = Duration::from_millis(150);

/// Verdict on a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    Bad,
    Ok,
    Good,
}

impl WindowStats {
    /// How long frames waited in queues on the way to the client: the window's average round
    /// trip, or the age of the oldest frame still out if longer, over the path's best.
    pub fn queueing(&self, link: &LinkEstimate) -> Option<Duration> {
        let rtt = (self.rtt_n > 0).then(|| self.rtt_sum / self.rtt_n);
        rtt.max(self.oldest_unacked).map(|r| link.queueing(r))
    }

    /// The window judged against the connection's path: skipped frames (the socket did not
    /// take them), slow sends, and queueing on the way to the client's screen. Frames skipped
    /// while sends went through at once and nothing queued were the server's own lag (out of
    /// CPU, a burst from a lane), not the link's: they make a window only not good.
    pub fn verdict(&self, link: &LinkEstimate) -> Drain {
        let offered = self.sent + self.skipped;
        let avg_send_ms = if self.sent > 0 {
            self.send_time.as_secs_f64() * 1000.0 / self.sent as f64
        } else {
            0.0
        };
        let queueing = self.queueing(link);
        let pushed_back = avg_send_ms >= 10.0 || queueing.is_some_and(|q| q >= QUEUE_GOOD);
        let bad = (self.skipped > 0 && self.skipped * 5 >= offered && pushed_back)
            || avg_send_ms > 50.0
            || queueing.is_some_and(|q| q > QUEUE_BAD);
        let good =
            self.skipped == 0 && avg_send_ms < 10.0 && queueing.is_none_or(|q| q < QUEUE_GOOD);
        if bad {
            Drain::Bad
        } else if good {
            Drain::Good
        } else {
            Drain::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path whose best round trip is `best`.
    fn path(best: Duration) -> LinkEstimate {
        let mut l = LinkEstimate::default();
        let t = tokio::time::Instant::now();
        l.acked(t + best, t, 1000);
        l
    }

    #[test]
    fn verdicts() {
        let near = path(Duration::from_millis(20));
        let good = WindowStats {
            sent: 25,
            ..Default::default()
        };
        assert_eq!(good.verdict(&near), Drain::Good);
        // Frames skipped while sends took 20 ms each: the socket pushed back.
        let lagging = WindowStats {
            sent: 10,
            skipped: 15,
            send_time: Duration::from_millis(200),
            ..Default::default()
        };
        assert_eq!(lagging.verdict(&near), Drain::Bad);
        // The same skips with sends going through at once and nothing queued: the server fell
        // behind (out of CPU), not the link. Not good, not bad.
        let server_lag = WindowStats {
            send_time: Duration::from_millis(10),
            ..lagging.clone()
        };
        assert_eq!(server_lag.verdict(&near), Drain::Ok);
        let slow_send = WindowStats {
            sent: 2,
            send_time: Duration::from_millis(200),
            ..Default::default()
        };
        assert_eq!(slow_send.verdict(&near), Drain::Bad);
        // 400 ms round trips on a path whose best is 20 ms: frames wait in a queue.
        let queued = WindowStats {
            sent: 2,
            acking: true,
            rtt_sum: Duration::from_millis(800),
            rtt_n: 2,
            ..Default::default()
        };
        assert_eq!(queued.verdict(&near), Drain::Bad);
        // The same round trips on a path whose best is 400 ms: a long link, nothing waits.
        let far = path(Duration::from_millis(400));
        assert_eq!(queued.verdict(&far), Drain::Good);
        let prompt_acks = WindowStats {
            rtt_sum: Duration::from_millis(40),
            ..queued.clone()
        };
        assert_eq!(prompt_acks.verdict(&near), Drain::Good);
        // Acks that stopped: the oldest frame out for 900 ms is a queue on a near path,
        // nothing on one whose best is a second.
        let stopped = WindowStats {
            oldest_unacked: Some(Duration::from_millis(900)),
            ..prompt_acks.clone()
        };
        assert_eq!(stopped.verdict(&near), Drain::Bad);
        assert_eq!(stopped.verdict(&path(Duration::from_secs(1))), Drain::Good);
        let meh = WindowStats {
            sent: 25,
            skipped: 1,
            ..Default::default()
        };
        assert_eq!(meh.verdict(&near), Drain::Ok);
    }
}
