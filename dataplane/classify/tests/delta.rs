//! Property test: delta revalidation never keeps a flow's rule when classifying again would
//! give another. Random policies go through random publishes of edits (a rule replaced,
//! inserted, removed, moved, its log flag flipped, the default action changed), and flows
//! stamped at various publishes are rechecked against the current ruleset: whenever
//! `recheck` says the rule holds (unchanged prefix or delta rules), a full classification
//! must return the same rule.

mod common;

use common::{packet, policy, rule};
use proptest::prelude::*;
use rampart_classify::{PacketFields, Recheck, RuleCheck, Ruleset, TableHandle};
use rampart_config::policy::{Action, ResolvedRule, RuleId, ValidatedPolicy};
use std::sync::Arc;

#[derive(Clone, Debug)]
enum Edit {
    Replace(usize, ResolvedRule),
    Insert(usize, ResolvedRule),
    Remove(usize),
    Move(usize, usize),
    FlipLog(usize),
    Default(Action),
    /// A rule gains the other rule's services and address entries (what an edit adds).
    Extend(usize, ResolvedRule),
    /// A rule loses its last service and address entries, where it has more than one.
    Narrow(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), rule()).prop_map(|(i, r)| Edit::Replace(i, r)),
        3 => (any::<usize>(), rule()).prop_map(|(i, r)| Edit::Insert(i, r)),
        2 => any::<usize>().prop_map(Edit::Remove),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Move(a, b)),
        1 => any::<usize>().prop_map(Edit::FlipLog),
        1 => prop::sample::select(vec![Action::Allow, Action::Drop]).prop_map(Edit::Default),
        3 => (any::<usize>(), rule()).prop_map(|(i, r)| Edit::Extend(i, r)),
        2 => any::<usize>().prop_map(Edit::Narrow),
    ]
}

fn apply(rules: &mut Vec<ResolvedRule>, default: &mut Action, e: &Edit, next_id: &mut u32) {
    let n = rules.len();
    match e.clone() {
        Edit::Replace(i, mut r) if n > 0 => {
            r.id = rules[i % n].id;
            rules[i % n] = r;
        }
        Edit::Insert(i, mut r) => {
            r.id = RuleId(*next_id);
            *next_id += 1;
            rules.insert(i % (n + 1), r);
        }
        Edit::Remove(i) if n > 0 => {
            rules.remove(i % n);
        }
        Edit::Move(a, b) if n > 0 => {
            let r = rules.remove(a % n);
            rules.insert(b % n, r);
        }
        Edit::FlipLog(i) if n > 0 => rules[i % n].log = !rules[i % n].log,
        Edit::Default(a) => *default = a,
        Edit::Extend(i, r) if n > 0 => {
            let t = &mut rules[i % n];
            t.services.extend(r.services);
            for (side, more) in [
                (&mut t.source, r.source),
                (&mut t.destination, r.destination),
            ] {
                if !side.any && !more.any {
                    side.entries.extend(more.entries);
                }
            }
        }
        Edit::Narrow(i) if n > 0 => {
            let t = &mut rules[i % n];
            if t.services.len() > 1 {
                t.services.pop();
            }
            for side in [&mut t.source, &mut t.destination] {
                if side.entries.len() > 1 {
                    side.entries.pop();
                }
            }
        }
        _ => {}
    }
}

/// A rule matching TCP to destination port `port`.
fn tcp_port_rule(id: u32, port: u16, action: Action) -> ResolvedRule {
    let mut r = ResolvedRule::new(RuleId(id), action);
    r.services = vec![rampart_config::policy::ServiceMatch {
        proto: Some(6),
        sport: rampart_config::policy::PortRange::ANY,
        dport: rampart_config::policy::PortRange::single(port),
        via: None,
    }];
    r
}

fn compile(g: u64, default: Action, rules: &[ResolvedRule]) -> Arc<Ruleset> {
    Arc::new(Ruleset::compile(&ValidatedPolicy::from_rules(g, default, rules.to_vec())).unwrap())
}

/// A flow: the packet that opened it, its rule (`None`: default action), its stamp.
type Flow = (PacketFields, Option<RuleId>, u32);

/// Publishes `publishes` (each a list of edits) over `rules` and rechecks flows of `pkts`
/// stamped at various publishes after each: a flow kept (unchanged prefix or delta rules)
/// must be one whose rule a full classification returns again. Returns how many were kept
/// by the delta (so a caller can see the path was exercised).
fn recheck_agrees(
    rules: Vec<ResolvedRule>,
    pkts: &[PacketFields],
    publishes: &[Vec<Edit>],
    default: Action,
) -> Result<usize, TestCaseError> {
    let mut rules = policy(rules, default).rules;
    let mut default = default;
    let mut next_id = 5000;
    let mut by_delta = 0;
    let table = TableHandle::new(compile(1, default, &rules));
    let mut reader = table.register_reader();
    let cur = reader.load_current();
    let mut flows: Vec<Flow> = pkts
        .iter()
        .map(|p| (*p, cur.ruleset.classify(p).rule_id, cur.stamp as u32))
        .collect();
    for (g, edits) in publishes.iter().enumerate() {
        for e in edits {
            apply(&mut rules, &mut default, e, &mut next_id);
        }
        table.publish(compile(g as u64 + 2, default, &rules));
        let cur = reader.load_current();
        for (k, (p, rid, stamp)) in flows.iter_mut().enumerate() {
            let want = cur.ruleset.classify(p).rule_id;
            let r = cur.recheck(*stamp, *rid, p);
            if r != Recheck::Classify {
                prop_assert_eq!(want, *rid, "{:?} kept rule {:?} of stamp {}", r, rid, stamp);
            }
            by_delta += usize::from(r == Recheck::DeltaRules);
            // The record check's answer from the rule's since table: kept only if the
            // rule is still the first match, and for the reason recheck gives.
            if let Some(id) = *rid {
                if let Some(how) = cur.ruleset.kept_rule(id, *stamp) {
                    prop_assert_eq!(
                        want,
                        *rid,
                        "kept_rule kept rule {:?} of stamp {}",
                        id,
                        stamp
                    );
                    let recheck_says = match how {
                        RuleCheck::Unchanged => Recheck::Unchanged,
                        _ => Recheck::DeltaRules,
                    };
                    prop_assert_eq!(r, recheck_says, "kept_rule said {:?}", how);
                }
            }
            // The two-step form the worker uses decides the same.
            let two_step = match cur.recheck_rule(*stamp, *rid) {
                RuleCheck::Unchanged => Recheck::Unchanged,
                RuleCheck::Disjoint => Recheck::DeltaRules,
                RuleCheck::Test(t) if cur.recheck_test(t, p) => Recheck::DeltaRules,
                RuleCheck::Test(_) | RuleCheck::Classify => Recheck::Classify,
            };
            prop_assert_eq!(two_step, r);
            // The worker re-stamps every flow it sees (kept or classified again); some
            // flows stay idle across publishes, so their deltas chain.
            if (k + g) % 3 != 0 {
                *rid = want;
                *stamp = cur.stamp as u32;
            }
        }
    }
    Ok(by_delta)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0de1_7a00),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn delta_recheck_agrees_with_classification(
        rules in prop::collection::vec(rule(), 0..30),
        pkts in prop::collection::vec(packet(), 1..100),
        publishes in prop::collection::vec(prop::collection::vec(edit(), 1..4), 1..6),
        default in prop::sample::select(vec![Action::Allow, Action::Drop]),
    ) {
        recheck_agrees(rules, &pkts, &publishes, default)?;
    }

    /// More changed rules than are tested one by one: the changed rules' classifier decides.
    #[test]
    fn many_changed_rules_recheck_agrees_with_classification(
        rules in prop::collection::vec(rule(), 20..90),
        pkts in prop::collection::vec(packet(), 1..100),
        publishes in prop::collection::vec(prop::collection::vec(edit(), 1..40), 1..6),
        default in prop::sample::select(vec![Action::Allow, Action::Drop]),
    ) {
        recheck_agrees(rules, &pkts, &publishes, default)?;
    }
}

/// The cases delta revalidation exists for are decided without classifying.
#[test]
fn single_edits_are_decided_by_the_delta() {
    use rampart_classify::linear::Linear;
    let rule = tcp_port_rule;
    let mut rules: Vec<ResolvedRule> = (0..40)
        .map(|i| rule(i, 100 + i as u16, Action::Allow))
        .collect();
    let table = TableHandle::new(compile(1, Action::Drop, &rules));
    let mut reader = table.register_reader();
    let stamp = reader.load_current().stamp as u32;
    // The flow of rule 30.
    let p = PacketFields::v4(1, 2, 3, 130, 6);
    let id = Some(RuleId(30));
    // Rule 5 edited, rule 50 inserted at 10, rule 7 removed, rule 20 moved to the end: all
    // before rule 30, none matching its flow.
    let check = |rules: &[ResolvedRule], reader: &mut rampart_classify::TableReader, want| {
        table.publish(compile(2, Action::Drop, rules));
        let cur = reader.load_current();
        assert_eq!(cur.recheck(stamp, id, &p), want);
        let oracle = Linear::new(&ValidatedPolicy::from_rules(
            2,
            Action::Drop,
            rules.to_vec(),
        ));
        assert_eq!(
            cur.ruleset.classify(&p).rule_id,
            oracle.classify(&p).rule_id
        );
    };
    rules[5].services[0].dport.hi = 199;
    rules[5].services[0].dport.lo = 140;
    check(&rules, &mut reader, Recheck::DeltaRules);
    rules.insert(10, rule(50, 999, Action::Drop));
    check(&rules, &mut reader, Recheck::DeltaRules);
    rules.remove(7);
    check(&rules, &mut reader, Recheck::DeltaRules);
    let r = rules.remove(19);
    rules.push(r);
    check(&rules, &mut reader, Recheck::DeltaRules);
    // A new deny before it that matches the flow: classify again.
    rules.insert(0, rule(51, 130, Action::Drop));
    check(&rules, &mut reader, Recheck::Classify);
}

/// More rules changed before a flow's rule than are tested one by one (32 edited, 20
/// inserted): the changed rules' classifier keeps the flow when none of them matches it, and
/// sends it to classification when one does or when its own rule changed.
#[test]
fn many_edits_are_decided_by_the_changed_rules_lookup() {
    let rule = tcp_port_rule;
    let mut rules: Vec<ResolvedRule> = (0..100)
        .map(|i| rule(i, 100 + i as u16, Action::Allow))
        .collect();
    let table = TableHandle::new(compile(1, Action::Drop, &rules));
    let mut reader = table.register_reader();
    let stamp = reader.load_current().stamp as u32;
    // Flows of rule 80 and of the default action.
    let p = PacketFields::v4(1, 2, 3, 180, 6);
    let q = PacketFields::v4(1, 2, 3, 999, 6);
    for r in rules.iter_mut().take(32) {
        r.services[0].dport.hi = 199;
        r.services[0].dport.lo = 190;
    }
    for k in 0..20 {
        rules.insert(40, rule(200 + k, 60_000 + k as u16, Action::Drop));
    }
    table.publish(compile(2, Action::Drop, &rules));
    let cur = reader.load_current();
    assert!(matches!(
        cur.recheck_rule(stamp, Some(RuleId(80))),
        RuleCheck::Test(_)
    ));
    assert_eq!(
        cur.recheck(stamp, Some(RuleId(80)), &p),
        Recheck::DeltaRules
    );
    assert_eq!(cur.recheck(stamp, None, &q), Recheck::DeltaRules);
    // The flow of edited rule 3 (its own rule changed).
    let r3 = PacketFields::v4(1, 2, 3, 103, 6);
    assert_eq!(
        cur.recheck_rule(stamp, Some(RuleId(3))),
        RuleCheck::Classify
    );
    assert_eq!(cur.recheck(stamp, Some(RuleId(3)), &r3), Recheck::Classify);
    // Another publish: an edited rule now matches rule 80's flow and the default flow.
    rules[0].services[0].dport.lo = 180;
    rules[1].services[0].dport.hi = 999;
    rules[1].services[0].dport.lo = 999;
    table.publish(compile(3, Action::Drop, &rules));
    let cur = reader.load_current();
    assert_eq!(cur.recheck(stamp, Some(RuleId(80)), &p), Recheck::Classify);
    assert_eq!(cur.recheck(stamp, None, &q), Recheck::Classify);
    assert_eq!(cur.ruleset.classify(&p).rule_id, Some(RuleId(0)));
}

/// A changed rule before a flow's rule that cannot match any of that rule's packets keeps
/// the flow without looking at it; one that can but does not match the flow needs the test.
#[test]
fn changes_disjoint_from_a_flows_rule_need_no_packet() {
    let rule = |id, port| tcp_port_rule(id, port, Action::Allow);
    let mut rules: Vec<ResolvedRule> = (0..10).map(|i| rule(i, 100 + i as u16)).collect();
    let table = TableHandle::new(compile(1, Action::Drop, &rules));
    let mut reader = table.register_reader();
    let stamp = reader.load_current().stamp as u32;
    // Rule 0 moves to port 99: it meets no packet of rule 5 (port 105).
    rules[0].services[0].dport = rampart_config::policy::PortRange::single(99);
    table.publish(compile(2, Action::Drop, &rules));
    let cur = reader.load_current();
    assert_eq!(
        cur.recheck_rule(stamp, Some(RuleId(5))),
        RuleCheck::Disjoint
    );
    // Rule 1 widened over port 105, but only from 10.0.0.0/8: it may meet rule 5's packets
    // (so the flow's own packet is tested) without matching a flow from 192.0.2.1.
    rules[1].services[0].dport.hi = 200;
    rules[1].source = rampart_config::policy::AddrSet {
        any: false,
        entries: vec![rampart_config::policy::AddrMatch {
            range: rampart_config::policy::AddrRange {
                family: rampart_config::policy::Family::V4,
                lo: 0x0a00_0000,
                hi: 0x0aff_ffff,
            },
            via: None,
        }],
        negate: false,
    };
    table.publish(compile(3, Action::Drop, &rules));
    let cur = reader.load_current();
    assert!(matches!(
        cur.recheck_rule(stamp, Some(RuleId(5))),
        RuleCheck::Test(_)
    ));
    let p = PacketFields::v4(0xc000_0201, 2, 3, 105, 6);
    assert_eq!(cur.recheck(stamp, Some(RuleId(5)), &p), Recheck::DeltaRules);
    let q = PacketFields::v4(0x0a00_0001, 2, 3, 105, 6);
    assert_eq!(cur.recheck(stamp, Some(RuleId(5)), &q), Recheck::Classify);
    // Rule 0's own flow: its rule changed.
    assert_eq!(
        cur.recheck_rule(stamp, Some(RuleId(0))),
        RuleCheck::Classify
    );
}

/// An edit of a rule counts only with what it adds: a flow of a later rule that the edit's
/// additions cannot match keeps its rule in the record check (`kept_rule`), while an
/// addition that may match it sends it on to the packet test.
#[test]
fn an_edit_counts_only_what_it_adds() {
    let rule = tcp_port_rule;
    let mut rules: Vec<ResolvedRule> = (0..20)
        .map(|i| rule(i, 100 + i as u16, Action::Allow))
        .collect();
    // Rule 15: TCP to ports 115..=140.
    rules[15].services[0].dport.hi = 140;
    let table = TableHandle::new(compile(1, Action::Drop, &rules));
    let mut reader = table.register_reader();
    let stamp = reader.load_current().stamp as u32;
    let id = RuleId(15);
    // Rule 2 gains UDP to port 130: nothing rule 15 matches (TCP only).
    let mut udp = rules[2].services[0].clone();
    udp.proto = Some(17);
    udp.dport = rampart_config::policy::PortRange::single(130);
    rules[2].services.push(udp);
    table.publish(compile(2, Action::Drop, &rules));
    let cur = reader.load_current();
    assert_eq!(cur.ruleset.kept_rule(id, stamp), Some(RuleCheck::Disjoint));
    assert_eq!(cur.recheck_rule(stamp, Some(id)), RuleCheck::Disjoint);
    // A flow of rule 1, before the edit, keeps its rule because nothing up to it changed.
    assert_eq!(
        cur.ruleset.kept_rule(RuleId(1), stamp),
        Some(RuleCheck::Unchanged)
    );
    // Rule 2 loses it again: it only narrows.
    rules[2].services.pop();
    table.publish(compile(3, Action::Drop, &rules));
    assert_eq!(
        reader.load_current().ruleset.kept_rule(id, stamp),
        Some(RuleCheck::Disjoint)
    );
    // Rule 2 gains TCP to 135..=150, which meets rule 15's 115..=140: its flows are tested.
    let mut tcp = rules[2].services[0].clone();
    tcp.dport = rampart_config::policy::PortRange { lo: 135, hi: 150 };
    rules[2].services.push(tcp);
    table.publish(compile(4, Action::Drop, &rules));
    let cur = reader.load_current();
    assert_eq!(cur.ruleset.kept_rule(id, stamp), None);
    assert!(matches!(
        cur.recheck_rule(stamp, Some(id)),
        RuleCheck::Test(_)
    ));
    // A flow of rule 15 to port 120 is still kept by its packet; one to 137 is not.
    let RuleCheck::Test(t) = cur.recheck_rule(stamp, Some(id)) else {
        unreachable!()
    };
    assert!(cur.recheck_test(t, &PacketFields::v4(1, 2, 3, 120, 6)));
    assert!(!cur.recheck_test(t, &PacketFields::v4(1, 2, 3, 137, 6)));
    // Flows stamped at publish 4 keep rule 15 again (the change is older than them).
    assert_eq!(
        cur.ruleset.kept_rule(id, cur.stamp as u32),
        Some(RuleCheck::Unchanged)
    );
}
