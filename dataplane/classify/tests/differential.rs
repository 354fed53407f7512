//! Property test: on random policies (IPv4 and IPv6, ranges, negation, several services,
//! VLAN/VNI/direction scopes, monitor rules) the compiled ruleset answers exactly what the
//! linear first-match oracle answers, for single and burst lookups.

use proptest::prelude::*;
use rampart_classify::linear::Linear;
use rampart_classify::{Match, PacketDirection, PacketFields, Ruleset};
use rampart_config::policy::{
    Action, AddrMatch, AddrRange, AddrSet, Direction, Family, PortRange, ResolvedRule, RuleId,
    ServiceMatch, ValidatedPolicy,
};

const V6_BASE: u128 = 0xfd00_0000_0000_0000_0000_0000_0000_0000;
const V4_BASE: u128 = 0x0a00_0000;

/// Addresses come from a tiny universe (256 values per family) so rules overlap a lot.
fn addr_range() -> impl Strategy<Value = AddrRange> {
    (
        any::<bool>(),
        0u128..256,
        0u32..=9,
        any::<bool>(),
        0u128..256,
    )
        .prop_map(|(v6, a, len, range, b)| {
            let (family, base) = if v6 {
                (Family::V6, V6_BASE)
            } else {
                (Family::V4, V4_BASE)
            };
            if range {
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                AddrRange {
                    family,
                    lo: base + lo,
                    hi: base + hi,
                }
            } else {
                // A prefix of length (bits - len) inside the universe.
                let host = (1u128 << len.min(8)) - 1;
                let lo = base + (a & !host);
                AddrRange {
                    family,
                    lo,
                    hi: lo + host,
                }
            }
        })
}

fn addr_set() -> impl Strategy<Value = AddrSet> {
    prop_oneof![
        1 => Just(AddrSet::any()),
        4 => (prop::collection::vec(addr_range(), 1..4), any::<bool>()).prop_map(|(rs, negate)| AddrSet {
            any: false,
            entries: rs.into_iter().map(|range| AddrMatch { range, via: None }).collect(),
            negate,
        }),
    ]
}

fn port_range() -> impl Strategy<Value = PortRange> {
    prop_oneof![
        1 => Just(PortRange::ANY),
        3 => (0u16..20, 0u16..20).prop_map(|(a, b)| PortRange { lo: a.min(b), hi: a.max(b) }),
        1 => (0u16..20).prop_map(|a| PortRange { lo: a, hi: 65535 }),
    ]
}

fn service() -> impl Strategy<Value = ServiceMatch> {
    (
        prop::option::of(prop::sample::select(vec![6u8, 17, 1])),
        port_range(),
        port_range(),
    )
        .prop_map(|(proto, sport, dport)| ServiceMatch {
            proto,
            sport,
            dport,
            via: None,
        })
}

fn rule() -> impl Strategy<Value = ResolvedRule> {
    (
        addr_set(),
        addr_set(),
        prop::collection::vec(service(), 1..3),
        prop::option::of(0u16..3),
        prop::option::of(0u32..3),
        prop::sample::select(vec![
            Direction::In,
            Direction::Out,
            Direction::Both,
            Direction::Both,
        ]),
        prop::sample::select(vec![Action::Allow, Action::Drop, Action::Reject]),
        0u8..10,
        any::<bool>(),
    )
        .prop_map(
            |(source, destination, services, vlan, vni, direction, action, mon, log)| {
                let mut r = ResolvedRule::new(RuleId(0), action);
                r.source = source;
                r.destination = destination;
                r.services = services;
                // Scopes on a minority of rules, as in real policies.
                r.vlan = vlan.filter(|_| mon % 3 == 0);
                r.vni = vni.filter(|_| mon % 4 == 0);
                r.direction = direction;
                r.monitor = mon == 0;
                r.log = log;
                r
            },
        )
}

fn packet() -> impl Strategy<Value = PacketFields> {
    (
        any::<bool>(),
        0u128..256,
        0u128..256,
        0u16..22,
        0u16..22,
        prop::sample::select(vec![6u8, 17, 1, 47]),
        prop::option::of(0u16..3),
        prop::option::of(0u32..3),
        any::<bool>(),
    )
        .prop_map(|(v6, s, d, sport, dport, proto, vlan, vni, out)| {
            let mut p = if v6 {
                PacketFields::v6(V6_BASE + s, V6_BASE + d, sport, dport, proto)
            } else {
                PacketFields::v4(
                    (V4_BASE + s) as u32,
                    (V4_BASE + d) as u32,
                    sport,
                    dport,
                    proto,
                )
            };
            p.vlan = vlan;
            p.vni = vni;
            p.direction = if out {
                PacketDirection::Out
            } else {
                PacketDirection::In
            };
            p
        })
}

fn policy(rules: Vec<ResolvedRule>, default: Action) -> ValidatedPolicy {
    let rules = rules
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.id = RuleId(1000 + i as u32);
            r
        })
        .collect();
    ValidatedPolicy::from_rules(7, default, rules)
}

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
