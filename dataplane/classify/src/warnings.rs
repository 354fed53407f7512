//! Compile-time findings about rules that can never take effect.
//!
//! A rule is reported when every one of its boxes is contained in a single box of some
//! earlier enforcing rule (different action: shadowed; same action: redundant). Candidates
//! come from the compiled trees (the leaf holding the box's lowest corner), so the pass costs
//! a few leaf scans per box. Coverage by the union of several earlier rules is not detected,
//! and a covering rule pruned from that leaf behind an even earlier one can be missed: the
//! warnings never claim too much, but may miss a case.

use std::fmt;
use std::ops::Range;

use rampart_config::policy::{RuleId, ValidatedPolicy};

use crate::forest::Forest;
use crate::ruleset::BoxSet;
use crate::space::{GenericBox, Space, V4, V6};

/// A rule that can never take effect as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// Earlier rules with a different action take every packet this rule would match.
    Shadowed {
        /// The rule that never matches.
        rule: RuleId,
        /// The earlier rules covering it.
        by: Vec<RuleId>,
    },
    /// Earlier rules with the same action already match everything this rule would.
    Redundant {
        /// The rule that can be removed.
        rule: RuleId,
        /// The earlier rules covering it.
        by: Vec<RuleId>,
    },
    /// The rule matches no packet at all (e.g. an IPv4 source with an IPv6 destination, or
    /// an empty group).
    NeverMatches {
        /// The rule.
        rule: RuleId,
    },
}

impl Warning {
    /// The rule the warning is about.
    pub fn rule(&self) -> RuleId {
        match self {
            Warning::Shadowed { rule, .. }
            | Warning::Redundant { rule, .. }
            | Warning::NeverMatches { rule } => *rule,
        }
    }
}

fn ids(v: &[RuleId]) -> String {
    v.iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::Shadowed { rule, by } => write!(
                f,
                "rule {rule} is shadowed by rule(s) {} with a different action: it never matches",
                ids(by)
            ),
            Warning::Redundant { rule, by } => write!(
                f,
                "rule {rule} is redundant: rule(s) {} already match all its traffic with the same action",
                ids(by)
            ),
            Warning::NeverMatches { rule } => write!(
                f,
                "rule {rule} can never match (no source/destination of one address family, or an empty group)"
            ),
        }
    }
}

/// For each box of `boxes[range]`, the earliest enforcing rule before `rule` whose single
/// box contains it; `None` when some box is not covered.
fn covering<S: Space>(
    rule: u32,
    boxes: &[GenericBox],
    range: Range<usize>,
    forest: &Forest<S>,
    enforce_boxes: &[GenericBox],
    enforce_rule: &[u32],
    out: &mut Vec<u32>,
) -> bool {
    for b in &boxes[range] {
        let key = S::key(&b.lo);
        let best = forest
            .candidates(&key)
            .filter(|&c| enforce_rule[c as usize] < rule && enforce_boxes[c as usize].contains(b))
            .map(|c| enforce_rule[c as usize])
            .min();
        match best {
            Some(r) => out.push(r),
            None => return false,
        }
    }
    true
}

pub(crate) fn find_warnings(
    policy: &ValidatedPolicy,
    spans: &[(bool, Range<usize>, Range<usize>)],
    enforce: &BoxSet,
    monitor: &BoxSet,
    f4: &Forest<V4>,
    f6: &Forest<V6>,
) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut by = Vec::new();
    for (i, (is_monitor, r4, r6)) in spans.iter().enumerate() {
        let rule = &policy.rules[i];
        if r4.is_empty() && r6.is_empty() {
            out.push(Warning::NeverMatches { rule: rule.id });
            continue;
        }
        let set = if *is_monitor { monitor } else { enforce };
        by.clear();
        let covered = covering(
            i as u32,
            &set.v4,
            r4.clone(),
            f4,
            &enforce.v4,
            &enforce.v4_rule,
            &mut by,
        ) && covering(
            i as u32,
            &set.v6,
            r6.clone(),
            f6,
            &enforce.v6,
            &enforce.v6_rule,
            &mut by,
        );
        if !covered {
            continue;
        }
        by.sort_unstable();
        by.dedup();
        let same = !*is_monitor
            && by
                .iter()
                .all(|&c| policy.rules[c as usize].action == rule.action);
        let by_ids = by.iter().map(|&c| policy.rules[c as usize].id).collect();
        out.push(if same {
            Warning::Redundant {
                rule: rule.id,
                by: by_ids,
            }
        } else {
            Warning::Shadowed {
                rule: rule.id,
                by: by_ids,
            }
        });
    }
    out
}
