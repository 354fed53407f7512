//! Rule-hit logging, kept off the worker core: the worker pushes a small `Copy` record into
//! a bounded lock-free queue (no allocation, no syscall); a log thread drains it and writes.
//! A token bucket per worker caps the rate, so a flood of logged flows cannot turn into a
//! flood of log work.

use crossbeam_queue::ArrayQueue;
use rampart_classify::{Action, RuleId};
use rampart_wire::FlowKey;
use std::sync::Arc;

/// One rule-log record: the first packet of a flow (or a denied packet) hit a rule with `log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleLog {
    /// The worker that saw it.
    pub worker: u16,
    /// Ruleset generation it was classified under.
    pub generation: u64,
    /// The rule's stable id.
    pub rule: RuleId,
    /// What the rule decided.
    pub action: Action,
    /// The packet's flow key (as seen, not normalised).
    pub key: FlowKey,
    /// TSC when the burst was received.
    pub tsc: u64,
}

/// The queue between workers and the log thread.
pub type LogQueue = Arc<ArrayQueue<RuleLog>>;

/// A queue with room for `capacity` records.
pub fn log_queue(capacity: usize) -> LogQueue {
    Arc::new(ArrayQueue::new(capacity.max(1)))
}

/// Token bucket on the TSC: `rate_per_sec` records per second, bursts up to `burst`.
#[derive(Debug, Clone)]
pub(crate) struct RateLimit {
    tokens: u64,
    burst: u64,
    tsc_per_token: u64,
    last_tsc: u64,
}

impl RateLimit {
    pub(crate) fn new(rate_per_sec: u32, burst: u32, tsc_hz: u64) -> Self {
        let rate = u64::from(rate_per_sec.max(1));
        RateLimit {
            tokens: u64::from(burst),
            burst: u64::from(burst),
            tsc_per_token: (tsc_hz / rate).max(1),
            last_tsc: 0,
        }
    }

    /// Refill from the clock read once per burst.
    #[inline]
    pub(crate) fn refill(&mut self, now_tsc: u64) {
        let elapsed = now_tsc.saturating_sub(self.last_tsc);
        let add = elapsed / self.tsc_per_token;
        if add > 0 {
            self.tokens = (self.tokens + add).min(self.burst);
            self.last_tsc += add * self.tsc_per_token;
        }
        if self.tokens == self.burst {
            // Don't bank time while full.
            self.last_tsc = now_tsc;
        }
    }

    #[inline]
    pub(crate) fn take(&mut self) -> bool {
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_caps_bursts_and_refills_with_time() {
        let hz = 1_000_000;
        let mut r = RateLimit::new(10, 3, hz); // one token per 100_000 ticks
        r.refill(0);
        assert!(r.take() && r.take() && r.take());
        assert!(!r.take(), "burst of 3 exhausted");
        r.refill(50_000);
        assert!(!r.take(), "half a token is no token");
        r.refill(100_000);
        assert!(r.take());
        assert!(!r.take());
        r.refill(10_000_000);
        assert!(r.take() && r.take() && r.take());
        assert!(!r.take(), "refill never exceeds the burst");
    }
}
