//! Per-worker counters, written by the owning worker once per burst and read by the stats
//! thread without locks.
//!
//! Each counter has exactly one writer (its worker), so an update is a relaxed load + store
//! (no locked read-modify-write); readers see a value at most one burst old.

use crate::stage::DropReason;
use crate::MAX_PORTS;
use std::sync::atomic::{AtomicU64, Ordering};

/// A single-writer monotonic counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add `n`. Only the owning worker may call this (single writer).
    #[inline(always)]
    pub fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    /// Overwrite with `v` (a gauge). Only the owning worker may call this.
    #[inline(always)]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Current value (any thread).
    #[inline(always)]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Buckets of [`BurstHistogram`]: powers of two from 2^6 to 2^(6+BUCKETS-1) cycles.
const HIST_BUCKETS: usize = 20;
const HIST_FIRST_SHIFT: u32 = 6;

/// Cycles spent on each received burst, in power-of-two buckets (single writer, lock-free;
/// a log2 histogram is enough to see p50/p99 shifts and costs one `lzcnt` per burst).
#[derive(Debug, Default)]
pub struct BurstHistogram {
    buckets: [Counter; HIST_BUCKETS],
    sum: Counter,
}

/// A copy of a [`BurstHistogram`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Count per bucket (not cumulative).
    pub buckets: [u64; HIST_BUCKETS],
    /// Sum of all recorded values.
    pub sum: u64,
}

impl BurstHistogram {
    /// Record one burst that took `cycles`. Only the owning worker may call this.
    #[inline(always)]
    pub fn record(&self, cycles: u64) {
        let log2 = 63 - (cycles | 1).leading_zeros();
        let b = (log2.saturating_sub(HIST_FIRST_SHIFT - 1) as usize).min(HIST_BUCKETS - 1);
        self.buckets[b].add(1);
        self.sum.add(cycles);
    }

    /// Inclusive upper bound of bucket `i` in cycles (the last bucket is open-ended).
    pub fn upper_bound(i: usize) -> u64 {
        (1u64 << (HIST_FIRST_SHIFT + i as u32)) - 1
    }

    /// Read it (any thread).
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].get()),
            sum: self.sum.get(),
        }
    }
}

/// Counters of one worker for one port.
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Packets received on this port.
    pub rx_pkts: Counter,
    /// Bytes received on this port.
    pub rx_bytes: Counter,
    /// Packets transmitted on this port.
    pub tx_pkts: Counter,
    /// Packets the TX queue of this port did not accept (freed).
    pub tx_full: Counter,
    /// Packets received on this port and dropped by a stage, by reason.
    pub drops: [Counter; DropReason::COUNT],
}

/// Counters of one worker: one [`PortCounters`] per port, plus loop statistics.
/// Cache-line aligned so two workers' counters never share a line.
#[derive(Debug)]
#[repr(align(64))]
pub struct WorkerCounters {
    /// Per port, indexed by `PortIndex`.
    pub ports: [PortCounters; MAX_PORTS],
    /// Poll iterations that received at least one packet.
    pub busy_polls: Counter,
    /// Poll iterations that received nothing.
    pub idle_polls: Counter,
    /// Cycles per received burst (receive, stages, transmit).
    pub burst_cycles: BurstHistogram,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            ports: std::array::from_fn(|_| PortCounters::default()),
            busy_polls: Counter::default(),
            idle_polls: Counter::default(),
            burst_cycles: BurstHistogram::default(),
        }
    }
}

/// A plain copy of one port's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortSnapshot {
    /// See [`PortCounters::rx_pkts`].
    pub rx_pkts: u64,
    /// See [`PortCounters::rx_bytes`].
    pub rx_bytes: u64,
    /// See [`PortCounters::tx_pkts`].
    pub tx_pkts: u64,
    /// See [`PortCounters::tx_full`].
    pub tx_full: u64,
    /// See [`PortCounters::drops`].
    pub drops: [u64; DropReason::COUNT],
}

impl PortSnapshot {
    /// Every packet dropped on this port: TX full plus every stage drop reason.
    pub fn dropped(&self) -> u64 {
        self.tx_full + self.drops.iter().sum::<u64>()
    }

    /// Add another snapshot (to sum workers).
    pub fn accumulate(&mut self, o: &PortSnapshot) {
        self.rx_pkts += o.rx_pkts;
        self.rx_bytes += o.rx_bytes;
        self.tx_pkts += o.tx_pkts;
        self.tx_full += o.tx_full;
        for (a, b) in self.drops.iter_mut().zip(o.drops.iter()) {
            *a += b;
        }
    }
}

/// A plain copy of one worker's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Per port.
    pub ports: [PortSnapshot; MAX_PORTS],
    /// See [`WorkerCounters::busy_polls`].
    pub busy_polls: u64,
    /// See [`WorkerCounters::idle_polls`].
    pub idle_polls: u64,
}

impl Default for CounterSnapshot {
    fn default() -> Self {
        CounterSnapshot {
            ports: [PortSnapshot::default(); MAX_PORTS],
            busy_polls: 0,
            idle_polls: 0,
        }
    }
}

impl CounterSnapshot {
    /// Add another worker's snapshot.
    pub fn accumulate(&mut self, o: &CounterSnapshot) {
        for (a, b) in self.ports.iter_mut().zip(o.ports.iter()) {
            a.accumulate(b);
        }
        self.busy_polls += o.busy_polls;
        self.idle_polls += o.idle_polls;
    }
}

impl WorkerCounters {
    /// Read every counter (from any thread).
    pub fn snapshot(&self) -> CounterSnapshot {
        let mut s = CounterSnapshot::default();
        for (out, c) in s.ports.iter_mut().zip(self.ports.iter()) {
            out.rx_pkts = c.rx_pkts.get();
            out.rx_bytes = c.rx_bytes.get();
            out.tx_pkts = c.tx_pkts.get();
            out.tx_full = c.tx_full.get();
            for (d, cd) in out.drops.iter_mut().zip(c.drops.iter()) {
                *d = cd.get();
            }
        }
        s.busy_polls = self.busy_polls.get();
        s.idle_polls = self.idle_polls.get();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_histogram_buckets_by_power_of_two() {
        let h = BurstHistogram::default();
        h.record(0); // below the first bound: bucket 0
        h.record(63);
        h.record(64); // bucket 1: 64..=127
        h.record(127);
        h.record(1 << 40); // beyond the last bound: clamped into the last bucket
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 2);
        assert_eq!(s.buckets[1], 2);
        assert_eq!(s.buckets[HIST_BUCKETS - 1], 1);
        assert_eq!(s.sum, 63 + 64 + 127 + (1 << 40));
        assert_eq!(BurstHistogram::upper_bound(0), 63);
        assert_eq!(BurstHistogram::upper_bound(1), 127);
    }

    #[test]
    fn snapshot_sums_workers_and_drop_reasons() {
        let a = WorkerCounters::default();
        let b = WorkerCounters::default();
        a.ports[0].rx_pkts.add(10);
        a.ports[0].tx_full.add(2);
        a.ports[0].drops[DropReason::Stage as usize].add(3);
        b.ports[0].rx_pkts.add(5);
        b.ports[1].tx_pkts.add(7);
        let mut total = a.snapshot();
        total.accumulate(&b.snapshot());
        assert_eq!(total.ports[0].rx_pkts, 15);
        assert_eq!(total.ports[0].dropped(), 5);
        assert_eq!(total.ports[1].tx_pkts, 7);
        assert_eq!(total.ports[2], PortSnapshot::default());
    }

    #[test]
    fn counters_are_readable_from_another_thread() {
        let c = std::sync::Arc::new(WorkerCounters::default());
        let w = c.clone();
        std::thread::spawn(move || {
            for _ in 0..1000 {
                w.ports[3].tx_pkts.add(2);
            }
        })
        .join()
        .unwrap();
        assert_eq!(c.snapshot().ports[3].tx_pkts, 2000);
    }
}
