//! Revalidation of a flow admitted under an older ruleset, without classifying it when first
//! match proves its rule is still the one (see `rampart_classify::Recheck`).
//!
//! In two steps, so that the common outcomes cost no packet fields: [`check_rule`] looks at
//! the flow's rule and stamp alone (nothing changed up to its rule: kept), and only when a
//! few rules changed before it does the caller work out the opening packet's fields for
//! `Current::recheck_test` (or for classification).

use super::{FirewallCounters, DEFAULT_RULE};
use rampart_classify::{Current, RuleCheck};
use rampart_flow::{FlowTable, Hit, RuleId};

/// What the flow of `hit` needs under the current ruleset, decided from its rule and stamp
/// alone, and its rule (to re-stamp it with if it is kept).
#[inline]
pub(super) fn check_rule(table: &FlowTable, cur: &Current<'_>, hit: Hit) -> (RuleCheck, RuleId) {
    let Some(f) = table.flow(hit.handle) else {
        return (RuleCheck::Classify, DEFAULT_RULE);
    };
    let rule = f.rule();
    let id = (rule != DEFAULT_RULE).then_some(rampart_classify::RuleId(rule.0));
    (cur.recheck_rule(f.generation(), id), rule)
}

/// Keeps the flow of `hit` with its rule `rule` (same rule, so same TCP strictness): only
/// its stamp moves to the current publish number.
#[inline]
pub(super) fn keep(
    table: &mut FlowTable,
    cur: &Current<'_>,
    c: &FirewallCounters,
    hit: Hit,
    rule: RuleId,
) {
    c.revalidated.add(1);
    table.set_admission(hit.handle, rule, cur.stamp);
}
