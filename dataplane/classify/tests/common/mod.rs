//! Strategies for random policies and packets shared by the property tests.

#![allow(dead_code)]

use proptest::prelude::*;
use rampart_classify::{PacketDirection, PacketFields};
use rampart_config::policy::{
    Action, AddrMatch, AddrRange, AddrSet, Direction, Family, PortRange, ResolvedRule, RuleId,
    ServiceMatch, ValidatedPolicy,
};

pub const V6_BASE: u128 = 0xfd00_0000_0000_0000_0000_0000_0000_0000;
pub const V4_BASE: u128 = 0x0a00_0000;

/// Addresses come from a tiny universe (256 values per family) so rules overlap a lot.
pub fn addr_range() -> impl Strategy<Value = AddrRange> {
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

pub fn addr_set() -> impl Strategy<Value = AddrSet> {
    prop_oneof![
        1 => Just(AddrSet::any()),
        4 => (prop::collection::vec(addr_range(), 1..4), any::<bool>()).prop_map(|(rs, negate)| AddrSet {
            any: false,
            entries: rs.into_iter().map(|range| AddrMatch { range, via: None }).collect(),
            negate,
        }),
    ]
}

pub fn port_range() -> impl Strategy<Value = PortRange> {
    prop_oneof![
        1 => Just(PortRange::ANY),
        3 => (0u16..20, 0u16..20).prop_map(|(a, b)| PortRange { lo: a.min(b), hi: a.max(b) }),
        1 => (0u16..20).prop_map(|a| PortRange { lo: a, hi: 65535 }),
    ]
}

pub fn service() -> impl Strategy<Value = ServiceMatch> {
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

pub fn rule() -> impl Strategy<Value = ResolvedRule> {
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

pub fn packet() -> impl Strategy<Value = PacketFields> {
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

pub fn policy(rules: Vec<ResolvedRule>, default: Action) -> ValidatedPolicy {
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
