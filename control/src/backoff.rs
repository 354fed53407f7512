//! Reconnect delays: exponential growth with "full jitter" (a uniform draw below the exponential
//! ceiling), so a fleet of appliances that lost the same broker does not reconnect in lockstep.

use crate::config::BackoffConfig;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Delay generator; `reset` after a connection succeeded.
#[derive(Debug, Clone)]
pub struct Backoff {
    cfg: BackoffConfig,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// A generator seeded from the clock and the process id (jitter need not be cryptographic).
    pub fn new(cfg: BackoffConfig) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self::with_seed(cfg, nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// A generator with a fixed seed (tests).
    pub fn with_seed(cfg: BackoffConfig, seed: u64) -> Self {
        Self {
            cfg,
            attempt: 0,
            rng: seed | 1,
        }
    }

    /// The ceiling of the next delay, without jitter: initial · 2^attempt, capped at max.
    pub fn ceiling(&self) -> Duration {
        let initial = self.cfg.initial_ms.max(1);
        let grown = initial.saturating_mul(1u64 << self.attempt.min(32));
        Duration::from_millis(grown.min(self.cfg.max_ms.max(initial)))
    }

    /// The next delay: uniform in [ceiling/2, ceiling] (half jitter keeps a floor so a dead broker
    /// is not hammered), then the ceiling doubles.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling().as_millis() as u64;
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let jitter = self.next_u64() % (ceiling - half + 1);
        Duration::from_millis(half + jitter)
    }

    /// Back to the initial delay (after a successful connect).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BackoffConfig {
        BackoffConfig {
            initial_ms: 100,
            max_ms: 1_000,
        }
    }

    #[test]
    fn grows_exponentially_within_jitter_bounds_and_caps() {
        let mut b = Backoff::with_seed(cfg(), 42);
        let ceilings = [100u64, 200, 400, 800, 1_000, 1_000, 1_000];
        for ceiling in ceilings {
            let d = b.next_delay().as_millis() as u64;
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d} not in [{}, {ceiling}]",
                ceiling / 2
            );
        }
    }

    #[test]
    fn reset_returns_to_initial() {
        let mut b = Backoff::with_seed(cfg(), 7);
        for _ in 0..10 {
            b.next_delay();
        }
        assert_eq!(b.ceiling(), Duration::from_millis(1_000));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut seen = std::collections::HashSet::new();
        for seed in 0..20 {
            let mut b = Backoff::with_seed(cfg(), seed);
            for _ in 0..4 {
                b.next_delay();
            }
            seen.insert(b.next_delay());
        }
        assert!(seen.len() > 5, "delays barely vary: {seen:?}");
    }
}
