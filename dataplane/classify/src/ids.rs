//! Rule index by stable rule id, for revalidation: every packet of a flow from an older
//! ruleset asks where its rule (kept in the flow by id) is now. A `HashMap` with the default
//! hasher spent ~40–60 instructions hashing one `u32` there; this is one load for dense ids
//! (the usual case: ids numbered from 1 or nearly so) and a multiplicative hash with linear
//! probing otherwise.

use crate::fields::RuleIndex;
use rampart_config::policy::RuleId;

/// Marks an empty slot (no rule index is `u32::MAX`: compile refuses that many rules).
const NONE: u32 = u32::MAX;

/// Rule index by id.
#[derive(Clone, Debug)]
pub(crate) enum IdIndex {
    /// `index[id - base]` (`NONE`: no such rule), when the ids span at most a few times the
    /// number of rules.
    Direct { base: u32, index: Box<[u32]> },
    /// Open addressing: `(id, index)` per slot, a power of two of them, at most half full.
    Hashed {
        shift: u32,
        slots: Box<[(u32, u32)]>,
    },
}

/// Ids may span this many slots per rule (plus a constant) for a direct table.
const DIRECT_SPREAD: u64 = 4;

impl IdIndex {
    /// The index of `ids` (in rule order; ids are unique).
    pub(crate) fn new(ids: impl ExactSizeIterator<Item = RuleId> + Clone) -> IdIndex {
        let n = ids.len() as u64;
        let (lo, hi) = ids.clone().fold((u32::MAX, 0u32), |(lo, hi), id| {
            (lo.min(id.0), hi.max(id.0))
        });
        if n == 0 || u64::from(hi - lo) < DIRECT_SPREAD * n + 64 {
            let base = if n == 0 { 0 } else { lo };
            let span = if n == 0 { 0 } else { (hi - lo) as usize + 1 };
            let mut index = vec![NONE; span].into_boxed_slice();
            for (i, id) in ids.enumerate() {
                index[(id.0 - base) as usize] = i as u32;
            }
            return IdIndex::Direct { base, index };
        }
        let bits = (2 * n).next_power_of_two().trailing_zeros().max(1);
        let mut slots = vec![(0u32, NONE); 1usize << bits].into_boxed_slice();
        let shift = 32 - bits;
        let mask = slots.len() - 1;
        for (i, id) in ids.enumerate() {
            let mut s = hash(id.0, shift);
            while slots[s].1 != NONE {
                s = (s + 1) & mask;
            }
            slots[s] = (id.0, i as u32);
        }
        IdIndex::Hashed { shift, slots }
    }

    /// The index of the rule with id `id`, if there is one.
    #[inline]
    pub(crate) fn get(&self, id: RuleId) -> Option<RuleIndex> {
        let i = match self {
            IdIndex::Direct { base, index } => *index
                .get(id.0.wrapping_sub(*base) as usize)
                .unwrap_or(&NONE),
            IdIndex::Hashed { shift, slots } => {
                let mask = slots.len() - 1;
                let mut s = hash(id.0, *shift);
                loop {
                    let (k, i) = slots[s];
                    if i == NONE || k == id.0 {
                        break i;
                    }
                    s = (s + 1) & mask;
                }
            }
        };
        (i != NONE).then_some(i)
    }

    /// Where a table parallel to this one (of [`Self::slots`] entries) keeps the value of
    /// the rule with id `id`: for a direct index its position without a load (the slot of an
    /// id without a rule, or out of range, holds nothing); hashed, the probe's slot, or
    /// `usize::MAX` for an id without a rule.
    #[inline(always)]
    pub(crate) fn slot(&self, id: RuleId) -> usize {
        match self {
            IdIndex::Direct { base, .. } => id.0.wrapping_sub(*base) as usize,
            IdIndex::Hashed { shift, slots } => {
                let mask = slots.len() - 1;
                let mut s = hash(id.0, *shift);
                loop {
                    let (k, i) = slots[s];
                    if i == NONE {
                        break usize::MAX;
                    }
                    if k == id.0 {
                        break s;
                    }
                    s = (s + 1) & mask;
                }
            }
        }
    }

    /// Entries of a table parallel to this one (see [`Self::slot`]).
    pub(crate) fn slots(&self) -> usize {
        match self {
            IdIndex::Direct { index, .. } => index.len(),
            IdIndex::Hashed { slots, .. } => slots.len(),
        }
    }

    /// Heap bytes.
    pub(crate) fn memory_bytes(&self) -> usize {
        match self {
            IdIndex::Direct { index, .. } => index.len() * 4,
            IdIndex::Hashed { slots, .. } => slots.len() * 8,
        }
    }
}

/// Fibonacci hashing: the top bits of the id times 2^32/φ (spreads consecutive and strided
/// ids evenly).
#[inline(always)]
fn hash(id: u32, shift: u32) -> usize {
    (id.wrapping_mul(0x9e37_79b9) >> shift) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn check(ids: &[u32], probes: &[u32]) {
        let idx = IdIndex::new(ids.iter().map(|&i| RuleId(i)));
        let map: HashMap<u32, u32> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i as u32))
            .collect();
        // Slots: one per rule, distinct, in range; an id without a rule has none (hashed)
        // or one no rule uses (direct).
        let mut owner = vec![None; idx.slots()];
        for &id in ids {
            let s = idx.slot(RuleId(id));
            assert!(s < owner.len() && owner[s].is_none(), "id {id} slot {s}");
            owner[s] = Some(id);
        }
        for &p in ids.iter().chain(probes) {
            assert_eq!(idx.get(RuleId(p)), map.get(&p).copied(), "id {p}");
            let s = idx.slot(RuleId(p));
            let found = owner.get(s).copied().flatten();
            assert_eq!(found, map.contains_key(&p).then_some(p), "slot of id {p}");
        }
    }

    #[test]
    fn dense_sparse_and_empty() {
        check(&[], &[0, 1, u32::MAX]);
        let dense: Vec<u32> = (1..=1000).rev().collect();
        check(&dense, &[0, 1001, u32::MAX]);
        assert!(matches!(
            IdIndex::new(dense.iter().map(|&i| RuleId(i))),
            IdIndex::Direct { .. }
        ));
        let sparse: Vec<u32> = (0..500).map(|i| i * 100_003 + 7).collect();
        check(&sparse, &[0, 8, 100_003, u32::MAX]);
        assert!(matches!(
            IdIndex::new(sparse.iter().map(|&i| RuleId(i))),
            IdIndex::Hashed { .. }
        ));
        check(&[u32::MAX, 0], &[1, u32::MAX - 1]);
    }

    proptest! {
        #[test]
        fn agrees_with_a_hash_map(
            ids in prop::collection::hash_set(any::<u32>(), 0..200),
            dense in prop::collection::hash_set(0u32..300, 0..200),
            probes in prop::collection::vec(any::<u32>(), 0..50),
        ) {
            let ids: Vec<u32> = ids.into_iter().collect();
            check(&ids, &probes);
            let dense: Vec<u32> = dense.into_iter().collect();
            check(&dense, &(0..310).collect::<Vec<_>>());
        }
    }
}
