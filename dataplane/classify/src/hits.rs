//! Per-rule hit counters, carried by the [`Ruleset`](crate::Ruleset) they count for.
//!
//! A hit is one classification answer that decided something: a flow admitted by a rule, a
//! packet dropped or rejected by it, a monitor rule that would have acted. Established packets
//! of a flow are not classified again, so they cost nothing here.
//!
//! Workers write, the control thread reads. Each worker adds into its own row (rows are whole
//! cache lines, so two workers never write the same line unless they share a row); with more
//! workers than [`HIT_ROWS`] some share a row, which `fetch_add` keeps exact. Counters belong
//! to one generation: when a ruleset retires, the table handle folds its counts into totals
//! kept by rule id (see `table.rs`), so reordering or editing rules does not reset them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Rows of counters per ruleset: one per worker up to this many.
pub const HIT_ROWS: usize = 4;

/// Counters per cache line.
const PER_LINE: usize = 8;

#[repr(align(64))]
#[derive(Default)]
struct Line([AtomicU64; PER_LINE]);

/// `slots` counters (one per rule, plus one for the default action) in [`HIT_ROWS`] rows.
pub(crate) struct HitCounters {
    slots: usize,
    lines_per_row: usize,
    lines: Box<[Line]>,
}

impl HitCounters {
    pub(crate) fn new(slots: usize) -> Self {
        let lines_per_row = slots.div_ceil(PER_LINE).max(1);
        HitCounters {
            slots,
            lines_per_row,
            lines: (0..lines_per_row * HIT_ROWS)
                .map(|_| Line::default())
                .collect(),
        }
    }

    /// Adds one hit to `slot` in `row` (a worker's own row; any value is accepted).
    #[inline]
    pub(crate) fn add(&self, row: usize, slot: usize) {
        debug_assert!(slot < self.slots);
        let line = (row % HIT_ROWS) * self.lines_per_row + slot / PER_LINE;
        if let Some(l) = self.lines.get(line) {
            l.0[slot % PER_LINE].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The sum over rows of every slot.
    pub(crate) fn totals(&self) -> Vec<u64> {
        (0..self.slots)
            .map(|slot| {
                (0..HIT_ROWS)
                    .map(|row| {
                        self.lines[row * self.lines_per_row + slot / PER_LINE].0[slot % PER_LINE]
                            .load(Ordering::Relaxed)
                    })
                    .sum()
            })
            .collect()
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.lines.len() * std::mem::size_of::<Line>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sum_per_slot_and_rows_wrap() {
        let h = HitCounters::new(11);
        h.add(0, 0);
        h.add(1, 0);
        h.add(HIT_ROWS + 1, 10);
        h.add(2, 10);
        let t = h.totals();
        assert_eq!(t.len(), 11);
        assert_eq!((t[0], t[10]), (2, 2));
        assert_eq!(t.iter().sum::<u64>(), 4);
    }

    #[test]
    fn workers_counting_concurrently_lose_nothing() {
        let h = std::sync::Arc::new(HitCounters::new(3));
        // More threads than rows: some share a row.
        let threads: Vec<_> = (0..HIT_ROWS + 2)
            .map(|w| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        h.add(w, i % 3);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            h.totals().iter().sum::<u64>(),
            10_000 * (HIT_ROWS as u64 + 2)
        );
    }
}
