//! Property test: on random policies (IPv4 and IPv6, ranges, negation, several services,
//! VLAN/VNI/direction scopes, monitor rules) the compiled ruleset answers exactly what the
//! linear first-match oracle answers, for single and burst lookups.

mod common;

use common::{packet, policy, rule};
use proptest::prelude::*;
use rampart_classify::linear::Linear;
use rampart_classify::{Match, Ruleset};
use rampart_config::policy::Action;

proptest! {
    // Fixed seed: `make test` must be deterministic (a new seed is a code change, reviewed).
    #![proptest_config(ProptestConfig {
        cases: 96,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x00c1_a55f),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn compiled_agrees_with_linear(
        rules in prop::collection::vec(rule(), 0..40),
        pkts in prop::collection::vec(packet(), 1..300),
        default in prop::sample::select(vec![Action::Allow, Action::Drop]),
    ) {
        let policy = policy(rules, default);
        let rs = Ruleset::compile(&policy).unwrap();
        let oracle = Linear::new(&policy);
        let mut bulk = vec![Match::default(); pkts.len()];
        rs.classify_bulk(&pkts, &mut bulk);
        for (p, b) in pkts.iter().zip(&bulk) {
            let want = oracle.classify(p);
            prop_assert_eq!(rs.classify(p), want, "packet {:?}", p);
            prop_assert_eq!(*b, want);
            if let Some(i) = want.rule {
                prop_assert_eq!(rs.rule(i).id, policy.rules[i as usize].id);
            }
        }
    }

    #[test]
    fn masked_and_plain_steps_agree_too(
        rules in prop::collection::vec(rule(), 0..60),
        pkts in prop::collection::vec(packet(), 1..200),
    ) {
        // Every IPv4 tree masked, then none: both step forms answer as the oracle does.
        let policy = policy(rules, Action::Drop);
        let oracle = Linear::new(&policy);
        for masked in [true, false] {
            let rs = Ruleset::compile_masked(&policy, masked).unwrap();
            let mut idx = vec![0u32; pkts.len()];
            rs.classify_index_bulk(&pkts, &mut idx);
            for (p, &i) in pkts.iter().zip(&idx) {
                let want = oracle.classify(p);
                prop_assert_eq!(rs.classify(p), want);
                prop_assert_eq!(i, want.rule.unwrap_or(u32::MAX));
            }
        }
    }

    #[test]
    fn small_leaves_and_wide_fanout_agree_too(
        rules in prop::collection::vec(rule(), 0..60),
        pkts in prop::collection::vec(packet(), 1..200),
    ) {
        // Tree shape parameters must not change answers. Leaves of up to 20 boxes span
        // several 8-lane chunks (the continuation path of the leaf scan).
        let policy = policy(rules, Action::Drop);
        let oracle = Linear::new(&policy);
        for (binth, spfac, root) in [(1, 2, 0), (2, 16, 1 << 12), (20, 2, 0)] {
            let rs = Ruleset::compile_tuned(&policy, binth, spfac, root).unwrap();
            let mut idx = vec![0u32; pkts.len()];
            rs.classify_index_bulk(&pkts, &mut idx);
            for (p, &i) in pkts.iter().zip(&idx) {
                let want = oracle.classify(p);
                prop_assert_eq!(rs.classify(p), want);
                prop_assert_eq!(i, want.rule.unwrap_or(u32::MAX));
            }
        }
    }
}
