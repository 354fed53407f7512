//! Delta revalidation: what changed between published rulesets, so a flow from an older
//! ruleset can be re-checked by testing the few rules that changed instead of classifying it
//! again.
//!
//! First match makes this exact. A flow admitted by rule R under ruleset S_old is still
//! first-matched by R under S_new iff R is unchanged (same match fields, action and TCP
//! strictness) and none of the rules of S_new before R that are new or changed since S_old
//! matches it: every other rule before R was before R in S_old too, with the same match
//! fields, and did not match then (R was the first). Removed rules cannot create a match.
//!
//! At publish each ruleset records, by index, the rules that changed within the last few
//! publishes and the publish in which each last changed ([`Delta`]). "Unchanged" also means
//! "in the same relative order": among the rules present and equal on both sides, the
//! largest set that keeps its order stays unchanged and the rest count as changed (a moved
//! rule is a changed rule).

use std::cmp::Ordering;

use rampart_config::policy::{
    normalize, AddrMatch, AddrRange, AddrSet, Direction, PortRange, ResolvedRule, ServiceMatch,
};

use crate::fields::{PacketDirection, PacketFields};
use crate::ruleset::{Classifier, Ruleset};

/// Most changed rules a ruleset remembers: an eighth of its rules, at least
/// [`MIN_DELTA_RULES`], at most this; past that many, revalidation falls back to classifying
/// (~0.1–0.3 µs) and the oldest changes are forgotten. Up to [`LINEAR_DELTA_RULES`] each
/// costs a single-rule test per flow revalidated past it (a few ns); more are looked up at
/// once in a classifier of just those rules, built at every publish on the control thread:
/// the eighth keeps that to a fraction of the ruleset's own compile.
pub const MAX_DELTA_RULES: usize = 1024;

/// See [`MAX_DELTA_RULES`].
pub const MIN_DELTA_RULES: usize = 64;

/// Most changed rules tested one by one (see [`MAX_DELTA_RULES`]).
pub const LINEAR_DELTA_RULES: usize = 16;

/// Most boxes (source × destination × service combinations) of the changed rules'
/// classifier; past it only flows of the latest publish are covered.
const MAX_DELTA_BOXES: usize = 1 << 16;

/// How a flow from an older ruleset fares under the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recheck {
    /// Its rule and every rule before it are unchanged since the flow was stamped.
    Unchanged,
    /// Its rule is unchanged and none of the rules that changed before it match the flow.
    DeltaRules,
    /// Unknown: classify it again.
    Classify,
}

/// The part of a recheck decided without the packet's fields (see
/// [`crate::table::Current::recheck_rule`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleCheck {
    /// Its rule and every rule before it are unchanged since the flow was stamped.
    Unchanged,
    /// Its rule is unchanged and the rules before it that changed since the flow was stamped
    /// match none of its rule's packets (decided at publish): kept, counted as delta rules.
    Disjoint,
    /// Its rule is unchanged; whether a rule that changed before it matches the flow's
    /// opening packet decides ([`crate::table::Current::recheck_test`]).
    Test(DeltaTest),
    /// Unknown: classify it again.
    Classify,
}

/// What [`RuleCheck::Test`] tests: the changed rules before a flow's rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaTest {
    /// The flow's stamp (low 32 bits).
    stamp: u32,
    /// Its rule's index here; `u32::MAX` for the default action.
    end: u32,
}

/// Whether two versions of a rule decide the same packets the same way: everything but
/// its name, log flag, category and document position (the order is checked separately).
/// Log only applies to new flows, so a log edit does not touch established ones.
pub(crate) fn same_rule(a: &ResolvedRule, b: &ResolvedRule) -> bool {
    a.id == b.id
        && a.source == b.source
        && a.destination == b.destination
        && a.services == b.services
        && a.vlan == b.vlan
        && a.vni == b.vni
        && a.direction == b.direction
        && a.action == b.action
        && a.monitor == b.monitor
        && a.tcp == b.tcp
}

/// One rule's match fields in a form tested in a few comparisons: each side as sorted,
/// disjoint ranges searched by bisection (a group of thousands of members stays cheap).
#[derive(Clone, Debug)]
pub(crate) struct RuleMatcher {
    direction: Direction,
    vlan: Option<u16>,
    vni: Option<u32>,
    services: Box<[ServiceMatch]>,
    source: AddrMatcher,
    destination: AddrMatcher,
}

#[derive(Clone, Debug)]
struct AddrMatcher {
    any: bool,
    negate: bool,
    /// Normalized: sorted by (family, lo), disjoint.
    ranges: Box<[AddrRange]>,
}

/// Whether some packet matches both services.
fn services_meet(a: &ServiceMatch, b: &ServiceMatch) -> bool {
    let ports = |x: rampart_config::policy::PortRange, y: rampart_config::policy::PortRange| {
        x.lo <= y.hi && y.lo <= x.hi
    };
    !matches!((a.proto, b.proto), (Some(p), Some(q)) if p != q)
        && ports(a.sport, b.sport)
        && ports(a.dport, b.dport)
}

impl AddrMatcher {
    /// False only if no address is in both this set and `s` (negation: maybe).
    fn may_meet(&self, s: &AddrSet) -> bool {
        if self.any || self.negate || s.any || s.negate {
            return true;
        }
        s.entries.iter().any(|e| {
            let r = e.range;
            // The last of the sorted, disjoint ranges starting at or before `r`'s end is
            // the one reaching furthest: it meets `r` or none does.
            let n = self
                .ranges
                .partition_point(|x| (x.family, x.lo) <= (r.family, r.hi));
            n > 0 && {
                let x = &self.ranges[n - 1];
                x.family == r.family && x.hi >= r.lo
            }
        })
    }

    fn new(s: &AddrSet) -> Self {
        AddrMatcher {
            any: s.any,
            negate: s.negate,
            ranges: normalize(s.entries.iter().map(|e| e.range).collect()).into(),
        }
    }

    #[inline]
    fn matches(&self, family: rampart_config::policy::Family, addr: u128) -> bool {
        if self.any {
            return true;
        }
        // The last range starting at or before (family, addr).
        let n = self
            .ranges
            .partition_point(|r| (r.family, r.lo).cmp(&(family, addr)) != Ordering::Greater);
        let inside = n > 0 && {
            let r = &self.ranges[n - 1];
            r.family == family && addr <= r.hi
        };
        inside != self.negate
    }
}

impl RuleMatcher {
    /// False only if no packet matches both this rule and `r` (conservative: negated
    /// address sets are taken to meet anything).
    pub(crate) fn may_overlap(&self, r: &ResolvedRule) -> bool {
        let dir_apart = matches!(
            (self.direction, r.direction),
            (Direction::In, Direction::Out) | (Direction::Out, Direction::In)
        );
        let apart = |a: Option<u32>, b: Option<u32>| matches!((a, b), (Some(x), Some(y)) if x != y);
        !dir_apart
            && !apart(self.vlan.map(u32::from), r.vlan.map(u32::from))
            && !apart(self.vni, r.vni)
            && self
                .services
                .iter()
                .any(|s| r.services.iter().any(|t| services_meet(s, t)))
            && self.source.may_meet(&r.source)
            && self.destination.may_meet(&r.destination)
    }

    pub(crate) fn new(r: &ResolvedRule) -> Self {
        RuleMatcher {
            direction: r.direction,
            vlan: r.vlan,
            vni: r.vni,
            services: r.services.clone().into(),
            source: AddrMatcher::new(&r.source),
            destination: AddrMatcher::new(&r.destination),
        }
    }

    /// Whether the rule matches `p` (as [`crate::linear::rule_matches`]).
    #[inline]
    pub(crate) fn matches(&self, p: &PacketFields) -> bool {
        let dir_ok = match self.direction {
            Direction::Both => true,
            Direction::In => p.direction == PacketDirection::In,
            Direction::Out => p.direction == PacketDirection::Out,
        };
        dir_ok
            && self.vlan.is_none_or(|v| p.vlan == Some(v))
            && self.vni.is_none_or(|v| p.vni == Some(v))
            && self
                .services
                .iter()
                .any(|s| s.matches(p.proto, p.sport, p.dport))
            && self.source.matches(p.family, p.src)
            && self.destination.matches(p.family, p.dst)
    }
}

/// A rule that changed within the remembered publishes.
#[derive(Clone, Debug)]
struct Changed {
    /// Its index in this ruleset.
    index: u32,
    /// The publish that last changed it.
    at: u64,
    /// Its match fields; `None` for a monitor rule (it never decides a verdict).
    matcher: Option<RuleMatcher>,
}

/// What changed in the publishes up to the one that made a ruleset current: the rules
/// (by index in that ruleset) that changed in the last few publishes and when.
#[derive(Debug)]
pub(crate) struct Delta {
    /// The publish it describes.
    at: u64,
    /// Every change after this publish is recorded: flows stamped at it or later can be
    /// rechecked.
    complete_since: u64,
    /// The last publish that changed the default action (0: none since `complete_since`).
    default_at: u64,
    /// Changed rules present in this ruleset, by index.
    changed: Box<[Changed]>,
    /// With more than [`LINEAR_DELTA_RULES`] of them: a classifier of just the enforcing
    /// ones, by their index here (the matchers are then not built).
    lookup: Option<ChangedLookup>,
}

/// A classifier of the changed enforcing rules: the first of them to match a packet, by rule
/// index in the ruleset (`u32::MAX`: none).
pub(crate) struct ChangedLookup(Classifier);

impl std::fmt::Debug for ChangedLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangedLookup")
    }
}

/// `a > b` for publish numbers whose low 32 bits are kept in flows (wrapping compare).
#[inline]
fn after(a: u64, b: u32) -> bool {
    ((a as u32).wrapping_sub(b) as i32) > 0
}

impl Delta {
    /// The publish it describes.
    pub(crate) fn at(&self) -> u64 {
        self.at
    }

    /// The delta of `next`, published as number `seq` over `prev` (whose own delta is
    /// `prev_delta`, if it has one for the publish just before).
    pub(crate) fn compute(
        prev: &Ruleset,
        prev_delta: Option<&Delta>,
        next: &Ruleset,
        kept: &[bool],
        seq: u64,
    ) -> Delta {
        let (old, new) = (prev.resolved(), next.resolved());
        let now: Vec<u32> = (0..new.len() as u32)
            .filter(|&i| !kept[i as usize])
            .collect();
        let default_now = prev.default_action() != next.default_action();
        let cap = (new.len() / 8).clamp(MIN_DELTA_RULES, MAX_DELTA_RULES);
        if now.len() > cap {
            // Too much changed: only flows of this very publish are covered.
            return Delta::only(seq);
        }
        // (index, at) of every remembered change, this publish's first.
        let mut all: Vec<(u32, u64)> = now.iter().map(|&i| (i, seq)).collect();
        let (mut complete_since, mut default_at) = (seq - 1, 0);
        if let Some(d) = prev_delta {
            complete_since = d.complete_since;
            default_at = d.default_at;
            for c in d.changed.iter() {
                let id = old[c.index as usize].id;
                // Changes of rules since removed cannot make a flow match.
                if let Some(i) = next.index_of_id(id) {
                    if kept[i as usize] {
                        all.push((i, c.at));
                    }
                }
            }
        }
        if default_now {
            default_at = seq;
        }
        if all.len() > cap {
            // Forget the oldest changes: flows stamped before them are classified again.
            all.sort_by_key(|&(_, at)| std::cmp::Reverse(at));
            complete_since = complete_since.max(all[cap].1);
            all.truncate(cap);
        }
        all.sort_unstable();
        let linear = all.len() <= LINEAR_DELTA_RULES;
        let lookup = if linear {
            None
        } else {
            let rules = all
                .iter()
                .map(|&(i, _)| (i, &new[i as usize]))
                .filter(|(_, r)| !r.monitor);
            match Classifier::of_rules(rules, MAX_DELTA_BOXES) {
                Some(c) => Some(ChangedLookup(c)),
                None => return Delta::only(seq),
            }
        };
        let changed = all
            .into_iter()
            .map(|(index, at)| {
                let r = &new[index as usize];
                Changed {
                    index,
                    at,
                    matcher: (linear && !r.monitor).then(|| RuleMatcher::new(r)),
                }
            })
            .collect();
        Delta {
            at: seq,
            complete_since,
            default_at,
            changed,
            lookup,
        }
    }

    /// The delta of publish `seq` when it remembers nothing: only flows of this very
    /// publish are covered.
    fn only(seq: u64) -> Delta {
        Delta {
            at: seq,
            complete_since: seq,
            default_at: 0,
            changed: Box::new([]),
            lookup: None,
        }
    }

    /// The part of a recheck that needs no packet fields (see [`RuleCheck`]); `Unchanged`
    /// and `Disjoint` are not answers here (the ruleset's own checks come first).
    #[inline]
    pub(crate) fn recheck_rule(&self, stamp: u32, index: Option<u32>) -> RuleCheck {
        if after(self.complete_since, stamp) {
            return RuleCheck::Classify;
        }
        if index.is_none() && after(self.default_at, stamp) {
            return RuleCheck::Classify;
        }
        let end = index.unwrap_or(u32::MAX);
        if index.is_some() {
            // The rule itself changed since the flow's stamp.
            let k = self.changed.partition_point(|c| c.index < end);
            if self
                .changed
                .get(k)
                .is_some_and(|c| c.index == end && after(c.at, stamp))
            {
                return RuleCheck::Classify;
            }
        }
        RuleCheck::Test(DeltaTest { stamp, end })
    }

    /// Whether no rule that changed before the flow's rule (since its stamp) matches `p`, the
    /// fields of the packet that opened it ([`Delta::recheck_rule`] said `Test(t)`).
    ///
    /// With the changed rules' classifier, the first changed rule to match must come after
    /// the flow's rule (or be it): a changed rule before it that matches sends the flow to
    /// classification whenever it changed. One that last changed before the flow's stamp
    /// cannot match: it was then before the flow's rule, as now, and that rule was the first
    /// match; so the outcome is the linear test's.
    #[inline]
    pub(crate) fn recheck_test(&self, t: DeltaTest, p: &PacketFields) -> bool {
        if let Some(l) = &self.lookup {
            return l.0.lookup(p) >= t.end;
        }
        for c in self.changed.iter() {
            if c.index >= t.end {
                break;
            }
            if after(c.at, t.stamp) && c.matcher.as_ref().is_some_and(|m| m.matches(p)) {
                // A new or changed rule before it matches: the verdict may differ.
                return false;
            }
        }
        true
    }
}

/// Most rules changed in one publish for which [`clear_since`] tests every later rule
/// against each of them (rules × changed tests at publish); past it every rule after the
/// first changed one counts as touched.
const MAX_OVERLAP_RULES: usize = 32;

/// Addresses matched by `new` and not by `old` (`None`: none), as a plain set of ranges
/// where that is exact (neither negated, or both: the complement of a complement), else
/// all of `new` (a superset is always safe: it can only make more rules count as touched).
fn addr_added(new: &AddrSet, old: &AddrSet) -> Option<AddrSet> {
    if old.any {
        return None;
    }
    if new.any || new.negate != old.negate {
        return Some(new.clone());
    }
    let ranges = |s: &AddrSet| normalize(s.entries.iter().map(|e| e.range).collect());
    let (n, o) = (ranges(new), ranges(old));
    // Negated on both sides: not-in-n minus not-in-o is in-o minus in-n.
    let added = if new.negate {
        subtract(&o, &n)
    } else {
        subtract(&n, &o)
    };
    (!added.is_empty()).then(|| AddrSet {
        any: false,
        negate: false,
        entries: added
            .into_iter()
            .map(|range| AddrMatch { range, via: None })
            .collect(),
    })
}

/// `a` minus `b`, both sorted by (family, lo) and disjoint; the result is too.
fn subtract(a: &[AddrRange], b: &[AddrRange]) -> Vec<AddrRange> {
    let mut out = Vec::new();
    let mut k = 0;
    for r in a {
        // `b`'s ranges wholly before `r` are before every later range of `a` too.
        while k < b.len() && (b[k].family, b[k].hi) < (r.family, r.lo) {
            k += 1;
        }
        let mut lo = r.lo;
        let mut covered = false;
        for s in b[k..]
            .iter()
            .take_while(|s| s.family == r.family && s.lo <= r.hi)
        {
            if s.lo > lo {
                out.push(AddrRange {
                    family: r.family,
                    lo,
                    hi: s.lo - 1,
                });
            }
            if s.hi >= r.hi {
                covered = true;
                break;
            }
            // `s.hi < r.hi`: no overflow.
            lo = lo.max(s.hi + 1);
        }
        if !covered {
            out.push(AddrRange {
                family: r.family,
                lo,
                hi: r.hi,
            });
        }
    }
    out
}

/// Whether service `t` matches every packet service `s` matches.
fn service_covers(t: &ServiceMatch, s: &ServiceMatch) -> bool {
    let within = |x: PortRange, y: PortRange| y.lo <= x.lo && x.hi <= y.hi;
    t.proto.is_none_or(|p| s.proto == Some(p))
        && within(s.sport, t.sport)
        && within(s.dport, t.dport)
}

/// What an edit of a rule adds: pieces (each `new` with one match field narrowed to what
/// that field gained) whose union holds every packet `new` matches and `old` does not. A
/// rule is the product of its fields, so a packet it matches that the old version did not
/// has at least one field outside the old version's: it is in that field's piece. Empty:
/// the edit only narrowed the rule (or changed no match field). Fields gained only through
/// negation or a wildcard are taken whole (conservative).
pub(crate) fn added_parts(new: &ResolvedRule, old: &ResolvedRule) -> Vec<ResolvedRule> {
    let mut parts = Vec::new();
    let dir = match (new.direction, old.direction) {
        (_, Direction::Both) => None,
        (n, o) if n == o => None,
        (Direction::Both, Direction::In) => Some(Direction::Out),
        (Direction::Both, Direction::Out) => Some(Direction::In),
        (n, _) => Some(n),
    };
    if let Some(d) = dir {
        parts.push(ResolvedRule {
            direction: d,
            ..new.clone()
        });
    }
    if old.vlan.is_some() && new.vlan != old.vlan {
        parts.push(new.clone());
    }
    if old.vni.is_some() && new.vni != old.vni {
        parts.push(new.clone());
    }
    let services: Vec<ServiceMatch> = new
        .services
        .iter()
        .filter(|s| !old.services.iter().any(|t| service_covers(t, s)))
        .cloned()
        .collect();
    if !services.is_empty() {
        parts.push(ResolvedRule {
            services,
            ..new.clone()
        });
    }
    if let Some(source) = addr_added(&new.source, &old.source) {
        parts.push(ResolvedRule {
            source,
            ..new.clone()
        });
    }
    if let Some(destination) = addr_added(&new.destination, &old.destination) {
        parts.push(ResolvedRule {
            destination,
            ..new.clone()
        });
    }
    parts
}

/// A rule changed in a publish, as [`clear_since`] tests it against the rules after it.
struct ChangedRule {
    /// Its index in the new ruleset.
    index: usize,
    /// All of it.
    whole: RuleMatcher,
    /// Its index in the previous ruleset if it was an enforcing rule there (`None`: new, or
    /// a monitor rule turned enforcing), with what it gained since ([`added_parts`]).
    old: Option<(u32, Vec<RuleMatcher>)>,
}

impl ChangedRule {
    /// Whether it may match a packet of `r` (whose index in the previous ruleset is `r_old`)
    /// that it did not match before. If it was before `r` then too, its old version did not
    /// match `r`'s flows (`r` was their first match), so only what it gained can; otherwise
    /// all of it is new in front of `r`.
    fn may_newly_overlap(&self, r: &ResolvedRule, r_old: u32) -> bool {
        match &self.old {
            Some((o, parts)) if *o < r_old => parts.iter().any(|m| m.may_overlap(r)),
            _ => self.whole.may_overlap(r),
        }
    }
}

/// Per rule of `next`, published as `seq` over `prev` (`kept` from [`kept_in_order`];
/// `prev_clear(j)` is the value of `prev`'s rule `j`): the publish since which neither the
/// rule nor any enforcing rule before it that may match a packet it matches has changed.
///
/// First match makes this enough to keep a flow of that rule stamped at or after it without
/// looking at the packet: its rule matched the flow and was the first match; every rule now
/// before it either was before it then, unchanged (and did not match), or changed since but
/// matches none of the rule's packets, so none of the flow's. A rule that was before it
/// then and was edited (or moved within the rules before it) counts only with what the
/// edit added ([`added_parts`]): its old version did not match the flow.
pub(crate) fn clear_since(
    prev: &Ruleset,
    next: &Ruleset,
    kept: &[bool],
    seq: u64,
    prev_clear: impl Fn(usize) -> u64,
) -> Vec<u64> {
    let (old, new) = (prev.resolved(), next.resolved());
    let changed: Vec<usize> = (0..new.len()).filter(|&i| !kept[i]).collect();
    // The changed enforcing rules, with matchers (their address ranges normalized).
    let test: Vec<ChangedRule> = if changed.len() <= MAX_OVERLAP_RULES {
        changed
            .iter()
            .filter(|&&i| !new[i].monitor)
            .map(|&i| {
                let r = &new[i];
                let old = prev
                    .index_of_id(r.id)
                    .filter(|&o| !old[o as usize].monitor)
                    .map(|o| {
                        let parts = added_parts(r, &old[o as usize]);
                        (o, parts.iter().map(RuleMatcher::new).collect())
                    });
                ChangedRule {
                    index: i,
                    whole: RuleMatcher::new(r),
                    old,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let first_changed = changed.first().copied().unwrap_or(usize::MAX);
    new.iter()
        .enumerate()
        .map(|(i, r)| {
            if !kept[i] {
                return seq;
            }
            let r_old = prev.index_of_id(r.id).expect("a kept rule is in prev");
            let touched = if changed.len() <= MAX_OVERLAP_RULES {
                test.iter()
                    .take_while(|c| c.index < i)
                    .any(|c| c.may_newly_overlap(r, r_old))
            } else {
                i > first_changed
            };
            if touched {
                return seq;
            }
            prev_clear(r_old as usize)
        })
        .collect()
}

/// Per rule of `next`: equal to the rule with its id in `prev` and, among such rules, in a
/// largest set that keeps its relative order (longest increasing run of old indices).
pub(crate) fn kept_in_order(prev: &Ruleset, next: &Ruleset) -> Vec<bool> {
    let (old, new) = (prev.resolved(), next.resolved());
    // Old index of each rule of `next` that is equal there.
    let old_of: Vec<Option<u32>> = new
        .iter()
        .map(|r| {
            prev.index_of_id(r.id)
                .filter(|&j| same_rule(&old[j as usize], r))
        })
        .collect();
    // Longest increasing subsequence over the `Some`s (patience sorting with back links).
    let mut tails: Vec<usize> = Vec::new(); // positions in `new`, by run length
    let mut back: Vec<usize> = vec![usize::MAX; new.len()];
    for (i, o) in old_of.iter().enumerate() {
        let Some(o) = *o else { continue };
        let k = tails.partition_point(|&t| old_of[t].expect("tail is kept") < o);
        if k > 0 {
            back[i] = tails[k - 1];
        }
        if k == tails.len() {
            tails.push(i);
        } else {
            tails[k] = i;
        }
    }
    let mut kept = vec![false; new.len()];
    let mut at = tails.last().copied().unwrap_or(usize::MAX);
    while at != usize::MAX {
        kept[at] = true;
        at = back[at];
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::rule_matches;
    use rampart_config::policy::{Action, AddrMatch, Family, RuleId, ValidatedPolicy};

    fn rs(rules: Vec<ResolvedRule>) -> Ruleset {
        Ruleset::compile(&ValidatedPolicy::from_rules(1, Action::Drop, rules)).unwrap()
    }

    fn rule(id: u32, port: u16) -> ResolvedRule {
        let mut r = ResolvedRule::new(RuleId(id), Action::Allow);
        r.services = vec![ServiceMatch {
            proto: Some(6),
            sport: rampart_config::policy::PortRange::ANY,
            dport: rampart_config::policy::PortRange::single(port),
            via: None,
        }];
        r
    }

    #[test]
    fn moved_rules_count_as_changed_the_rest_keep_their_order() {
        let a = rs((1..=6).map(|i| rule(i, i as u16)).collect());
        // 6 moved to the front, 3 edited, 4 removed, 7 new.
        let mut edited = rule(3, 33);
        edited.log = true;
        let b = rs(vec![
            rule(6, 6),
            rule(1, 1),
            rule(2, 2),
            edited,
            rule(7, 7),
            rule(5, 5),
        ]);
        assert_eq!(
            kept_in_order(&a, &b),
            vec![false, true, true, false, false, true]
        );
        // A log edit alone keeps a rule.
        let mut logged = rule(2, 2);
        logged.log = true;
        let c = rs(vec![rule(1, 1), logged]);
        let d = rs(vec![rule(1, 1), rule(2, 2)]);
        assert_eq!(kept_in_order(&c, &d), vec![true, true]);
    }

    /// A xorshift generator: `next(n)` in `0..n`.
    fn rng(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut x = seed;
        move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        }
    }

    /// A small random rule over the space [`each_packet`] walks.
    fn random_rule(next: &mut dyn FnMut(u64) -> u64, id: u32) -> ResolvedRule {
        let mut r = ResolvedRule::new(RuleId(id), Action::Allow);
        let range = |next: &mut dyn FnMut(u64) -> u64, max: u64| {
            let lo = next(max);
            (lo, (lo + next(4)).min(max - 1))
        };
        r.services = (0..1 + next(2))
            .map(|_| {
                let (lo, hi) = range(next, 8);
                ServiceMatch {
                    proto: [None, Some(6), Some(17)][next(3) as usize],
                    sport: rampart_config::policy::PortRange::ANY,
                    dport: rampart_config::policy::PortRange {
                        lo: lo as u16,
                        hi: hi as u16,
                    },
                    via: None,
                }
            })
            .collect();
        for side in [&mut r.source, &mut r.destination] {
            if next(3) == 0 {
                continue;
            }
            side.any = false;
            side.negate = next(5) == 0;
            side.entries = (0..1 + next(2))
                .map(|_| {
                    let (lo, hi) = range(next, 16);
                    AddrMatch {
                        range: AddrRange {
                            family: Family::V4,
                            lo: u128::from(lo),
                            hi: u128::from(hi),
                        },
                        via: None,
                    }
                })
                .collect();
        }
        r.direction = [Direction::Both, Direction::In, Direction::Out][next(3) as usize];
        r.vlan = [None, Some(1), Some(2)][next(3) as usize];
        r
    }

    /// Every packet of the small space the random rules live in.
    fn each_packet(mut f: impl FnMut(&PacketFields)) {
        for src in 0..17u32 {
            for dst in 0..17u32 {
                for dport in 0..9u16 {
                    for proto in [6u8, 17, 1] {
                        for vlan in [None, Some(1), Some(2)] {
                            for direction in [PacketDirection::In, PacketDirection::Out] {
                                let mut p = PacketFields::v4(src, dst, 1, dport, proto);
                                p.vlan = vlan;
                                p.direction = direction;
                                f(&p);
                            }
                        }
                    }
                }
            }
        }
    }

    /// `may_overlap` may say "maybe" wrongly, never "no": brute force over a small space
    /// of packets, for random small rules.
    #[test]
    fn rules_said_disjoint_share_no_packet() {
        let mut next = rng(0x2545_f491_4f6c_dd1d);
        let mut random_rule = |id: u32| random_rule(&mut next, id);
        let rules: Vec<ResolvedRule> = (0..60).map(&mut random_rule).collect();
        let mut disjoint = 0;
        for a in &rules {
            let m = RuleMatcher::new(a);
            for b in &rules {
                if m.may_overlap(b) {
                    continue;
                }
                disjoint += 1;
                each_packet(|p| {
                    assert!(
                        !(rule_matches(a, p) && rule_matches(b, p)),
                        "{a:?} {b:?} {p:?}"
                    );
                });
            }
        }
        assert!(disjoint > 100, "only {disjoint} disjoint pairs");
    }

    /// What an edit adds covers every packet the new version matches and the old did not:
    /// brute force over random edits (the new version a random rule, or the old one with
    /// services, address entries, direction or VLAN widened or narrowed).
    #[test]
    fn added_parts_hold_every_packet_an_edit_adds() {
        let mut next = rng(0x9e37_79b9_7f4a_7c15);
        let (mut empty, mut partial) = (0, 0);
        for round in 0..400 {
            let old = random_rule(&mut next, 1);
            let new = if round % 4 == 0 {
                random_rule(&mut next, 1)
            } else {
                let other = random_rule(&mut next, 1);
                let mut r = old.clone();
                match next(5) {
                    0 => r.services.extend(other.services),
                    1 => {
                        if r.services.len() > 1 {
                            r.services.pop();
                        }
                    }
                    2 => {
                        if !r.source.any && !other.source.any {
                            r.source.entries.extend(other.source.entries);
                        } else {
                            r.source = other.source;
                        }
                    }
                    3 => r.direction = other.direction,
                    _ => {
                        r.vlan = other.vlan;
                        r.destination = other.destination;
                    }
                }
                r
            };
            let parts = added_parts(&new, &old);
            let mut added = 0;
            each_packet(|p| {
                let in_parts = parts.iter().any(|r| rule_matches(r, p));
                if rule_matches(&new, p) && !rule_matches(&old, p) {
                    added += 1;
                    assert!(in_parts, "{new:?} over {old:?}: {p:?} not in {parts:?}");
                }
                // Each part is a narrowed copy of the new version.
                assert!(
                    !in_parts || rule_matches(&new, p),
                    "{p:?} in a part, not in {new:?}"
                );
            });
            if parts.is_empty() {
                empty += 1;
            } else if added > 0 {
                partial += 1;
            }
        }
        assert!(
            empty > 50 && partial > 50,
            "{empty} empty, {partial} partial"
        );
    }

    #[test]
    fn matcher_agrees_with_the_linear_rule_test_on_ranges_and_negation() {
        let mut r = rule(1, 80);
        r.source = AddrSet {
            any: false,
            entries: [(10, 20), (15, 30), (50, 50)]
                .into_iter()
                .map(|(lo, hi)| AddrMatch {
                    range: AddrRange {
                        family: Family::V4,
                        lo,
                        hi,
                    },
                    via: None,
                })
                .collect(),
            negate: false,
        };
        for negate in [false, true] {
            r.source.negate = negate;
            let m = RuleMatcher::new(&r);
            for src in 0..60u32 {
                for dport in [79, 80] {
                    let p = PacketFields::v4(src, 1, 1, dport, 6);
                    assert_eq!(m.matches(&p), rule_matches(&r, &p), "{src} {negate}");
                }
                let p6 = PacketFields::v6(u128::from(src), 1, 1, 80, 6);
                assert_eq!(m.matches(&p6), rule_matches(&r, &p6));
            }
        }
    }
}
