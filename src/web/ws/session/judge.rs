//! How a live-wall connection judges its link and moves its subscriptions: the queue on the
//! way to the client, the verdict on the last moments of sending, the decision of
//! `link::share`, and the bytes its socket may hold unsent.

use std::time::Duration;

use tokio::time::Instant;

use super::super::adapt::{Drain, QUEUE_BAD, QUEUE_GOOD};
use super::super::protocol::QualityReq;
use super::{Session, STARTUP_QUEUE, UNSENT_TIME};
use crate::link::share::Signal;

impl Session {
    /// How long the oldest frame still out (of those sent since the link was last found
    /// full) has been out, less the time it takes to cross the path.
    fn oldest_unacked(&self, now: Instant) -> Option<Duration> {
        let since = self.congested_at;
        self.subs
            .values()
            .filter_map(|s| {
                s.in_flight
                    .iter()
                    .find(|&&(_, sent_at, _)| since.is_none_or(|at| sent_at >= at))
            })
            .map(|&(_, sent_at, bytes)| {
                now.saturating_duration_since(sent_at)
                    .saturating_sub(self.link.transmission(bytes))
            })
            .max()
    }

    /// The bound a queue may not pass: lower while a step up past the link's last known rate
    /// is being tried, so that a probe that fills the link is taken back at once.
    fn queue_bound(&self) -> Duration {
        if self.share.probing() {
            QUEUE_GOOD
        } else {
            QUEUE_BAD
        }
    }

    /// Whether the oldest frame still out has waited past the bound already.
    pub(super) fn queue_over_bound(&self, now: Instant) -> bool {
        self.oldest_unacked(now)
            .is_some_and(|age| self.link.queueing(age) > self.queue_bound())
    }

    /// Judges the connection's last moments of sending and moves its subscriptions to the
    /// levels the link's sharing decides.
    pub(super) fn adapt(&mut self, now: Instant) {
        let acking = self.window.acking;
        let mut window = std::mem::take(&mut self.window);
        self.window.acking = acking;
        window.oldest_unacked = self.oldest_unacked(now);
        let mut verdict = window.verdict(&self.link);
        if window
            .queueing(&self.link)
            .is_some_and(|q| q > self.queue_bound())
        {
            verdict = Drain::Bad;
        }
        // While the connection's TCP is still ramping up (its delivery rate grows sample after
        // sample), a queue is the ramp's: only a very long one counts.
        if verdict == Drain::Bad
            && window.acking
            && self.link.starting()
            && window
                .queueing(&self.link)
                .is_none_or(|q| q < STARTUP_QUEUE)
        {
            verdict = Drain::Ok;
        }
        // After the link was found full, it is judged again only on frames sent since: the
        // queue then takes a while to drain, and stepping down again for it overshoots.
        let fresh = window.rtt_n > 0 || window.oldest_unacked.is_some();
        if verdict == Drain::Bad && window.acking && self.congested_at.is_some() && !fresh {
            verdict = Drain::Ok;
        }
        // Every tile's report is taken (and cleared), not only the first busy one.
        let busy: Vec<bool> = self
            .subs
            .values_mut()
            .map(|s| std::mem::take(&mut s.viewer_busy))
            .collect();
        let viewer_busy = busy.contains(&true);
        let signal = match verdict {
            Drain::Bad => Signal::Congested {
                rate_bps: self.link.recent_bps().or(self.link.rate_bps()),
            },
            _ if viewer_busy => Signal::ViewerBusy,
            Drain::Ok => Signal::Steady,
            Drain::Good => Signal::Clear,
        };
        // A stable order, so that ties go the same way every time.
        let mut ids: Vec<String> = self.subs.keys().cloned().collect();
        ids.sort();
        let tiles: Vec<_> = ids
            .iter()
            .filter_map(|id| self.subs.get(id))
            .map(|s| s.tile(&self.ladder, now))
            .collect();
        let decision = self.share.decide(&tiles, signal);
        if matches!(signal, Signal::Congested { .. }) {
            self.congested_at = Some(now);
        }
        tracing::trace!(?window, ?verdict, ?signal, ?decision, "decision");
        for (id, level) in ids.iter().zip(decision.levels) {
            let Some(sub) = self.subs.get_mut(id) else {
                continue;
            };
            let w = sub.cam().width();
            let size_changed = w != sub.src_width;
            sub.src_width = w;
            let changed = sub.quality == QualityReq::Auto && level != sub.level;
            if changed {
                if level > sub.level {
                    sub.reason = decision.reason.or(sub.reason);
                } else if level == 0 {
                    sub.reason = None;
                }
                sub.level = level;
            }
            if changed {
                // Onto or off the sub stream, when the level says so.
                self.restream(id, now);
            }
            if changed || size_changed {
                self.retarget(id, now);
            }
        }
    }

    /// How many bytes the socket should hold unsent: 100 ms at the best rate the link was
    /// seen to carry, between 16 and 256 KiB (`None` until a rate is known). Whatever waits in
    /// the kernel cannot be replaced by a newer frame, so a narrow link's queue stays short.
    pub fn unsent_bytes(&self) -> Option<u32> {
        let rate = self.link.capacity_bps()?;
        let bytes = rate / 8.0 * UNSENT_TIME.as_secs_f64();
        Some(bytes.clamp(16.0 * 1024.0, 256.0 * 1024.0) as u32)
    }
}
