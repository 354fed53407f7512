//! Property test: the table behaves like a map from canonical key to originator key, and
//! burst lookups agree with single lookups.

use std::collections::HashMap;

use proptest::prelude::*;
use rampart_flow::*;
use rampart_wire::{proto, FlowKey};

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, bool),
    Remove(u8),
    Lookup(u8, bool),
    Burst(Vec<(u8, bool)>),
}

fn key(i: u8) -> FlowKey {
    // Few distinct addresses and ports so keys collide in interesting ways.
    FlowKey::v4(
        [10, 0, 0, i % 7],
        [10, 0, 0, i % 5],
        proto::UDP,
        u16::from(i % 3),
        u16::from(i / 3 % 4),
    )
}

fn oriented(i: u8, rev: bool) -> FlowKey {
    if rev {
        key(i).reversed()
    } else {
        key(i)
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<u8>(), any::<bool>()).prop_map(|(i, r)| Op::Insert(i, r)),
        any::<u8>().prop_map(Op::Remove),
        (any::<u8>(), any::<bool>()).prop_map(|(i, r)| Op::Lookup(i, r)),
        prop::collection::vec((any::<u8>(), any::<bool>()), 0..100).prop_map(Op::Burst),
    ]
}

proptest! {
    // Fixed seed: `make test` must be deterministic (fuzzing is where randomness lives).
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0xf10e_7ab1),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn table_matches_a_map(ops in prop::collection::vec(op(), 1..200), seed in any::<u64>()) {
        run(ops, seed, 512, u8::MAX)?;
    }

    /// 30 flows in 3 buckets of 15 slots: entries overflow into neighbouring buckets all the
    /// time, so this exercises the overflow counts and the probing on insert, lookup and free.
    #[test]
    fn tiny_table_with_overflow(ops in prop::collection::vec(op(), 1..300), seed in any::<u64>()) {
        run(ops, seed, 30, 30)?;
    }
}

fn run(ops: Vec<Op>, seed: u64, capacity: u32, keys: u8) -> Result<(), TestCaseError> {
    let m = |i: u8| i % keys;
    let ops: Vec<Op> = ops
        .into_iter()
        .map(|op| match op {
            Op::Insert(i, r) => Op::Insert(m(i), r),
            Op::Remove(i) => Op::Remove(m(i)),
            Op::Lookup(i, r) => Op::Lookup(m(i), r),
            Op::Burst(v) => Op::Burst(v.into_iter().map(|(i, r)| (m(i), r)).collect()),
        })
        .collect();
    {
        let mut t = FlowTable::new(&FlowConfig {
            capacity,
            hash_seed: seed,
            ..FlowConfig::default()
        })
        .unwrap();
        let mut model: HashMap<FlowKey, FlowKey> = HashMap::new(); // canonical -> originator
        let dir_in_model = |model: &HashMap<FlowKey, FlowKey>, k: &FlowKey| {
            model.get(&k.canonical().0).map(|o| {
                if o == k {
                    Direction::Original
                } else {
                    Direction::Reply
                }
            })
        };
        for op in ops {
            match op {
                Op::Insert(i, r) => {
                    let k = oriented(i, r);
                    let hit = t.insert(&k, RuleId(u32::from(i)), 1, 0).unwrap();
                    let expect = dir_in_model(&model, &k).unwrap_or(Direction::Original);
                    prop_assert_eq!(hit.dir, expect);
                    model.entry(k.canonical().0).or_insert(k);
                    prop_assert_eq!(t.flow(hit.handle).unwrap().key(), model[&k.canonical().0]);
                }
                Op::Remove(i) => {
                    let k = key(i);
                    let removed = t.lookup(&k, 0).map(|h| t.remove(h.handle)).unwrap_or(false);
                    prop_assert_eq!(removed, model.remove(&k.canonical().0).is_some());
                }
                Op::Lookup(i, r) => {
                    let k = oriented(i, r);
                    prop_assert_eq!(t.lookup(&k, 0).map(|h| h.dir), dir_in_model(&model, &k));
                }
                Op::Burst(v) => {
                    let keys: Vec<FlowKey> = v.iter().map(|&(i, r)| oriented(i, r)).collect();
                    let mut out = vec![None; keys.len()];
                    t.lookup_burst(&keys, 0, &mut out);
                    let mut out2 = vec![None; keys.len()];
                    t.lookup_burst_no_prefetch(&keys, 0, &mut out2);
                    prop_assert_eq!(&out, &out2);
                    let hints = std::cell::Cell::new(0usize);
                    let mut out3 = vec![None; keys.len()];
                    t.lookup_burst_with(&keys, 0, &mut out3, |_| hints.set(hints.get() + 1));
                    prop_assert_eq!(&out, &out3);
                    // one hint per bucket, two per candidate record
                    prop_assert!(hints.get() >= keys.len());
                    for (k, o) in keys.iter().zip(&out) {
                        prop_assert_eq!(o.map(|h| h.dir), dir_in_model(&model, k));
                        prop_assert_eq!(*o, t.lookup(k, 0));
                    }
                }
            }
            prop_assert_eq!(t.len(), model.len());
        }
        prop_assert_eq!(t.iter().count(), model.len());
    }
    Ok(())
}
