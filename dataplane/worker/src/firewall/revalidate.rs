//! Revalidation of a flow admitted under an older ruleset, without classifying it when first
//! match proves its rule is still the one (see `rampart_classify::Recheck`).

use super::{FirewallCounters, DEFAULT_RULE};
use rampart_classify::{Current, PacketFields, Recheck};
use rampart_flow::{Admission, FlowTable, Hit};

/// Whether the flow of `hit` keeps its rule under the current ruleset, `opening` being the
/// fields of the packet that opened it. If so it is re-stamped with the current publish
/// number and counted; if not, the caller classifies it again.
#[inline]
pub(super) fn keeps_rule(
    table: &mut FlowTable,
    cur: &Current<'_>,
    c: &FirewallCounters,
    hit: Hit,
    opening: &PacketFields,
) -> bool {
    let Some(f) = table.flow(hit.handle) else {
        return false;
    };
    let rule = f.rule();
    let id = (rule != DEFAULT_RULE).then_some(rampart_classify::RuleId(rule.0));
    match cur.recheck(f.generation(), id, opening) {
        Recheck::Classify => return false,
        // Its rule and every rule before it are the same since the flow was stamped.
        Recheck::Unchanged => c.revalidated_unchanged.add(1),
        // Its rule is the same and none of the rules that changed before it matches.
        Recheck::DeltaRules => c.revalidated_delta.add(1),
    }
    c.revalidated.add(1);
    let adm = Admission {
        rule,
        generation: cur.stamp,
        strict_tcp: f.is_strict_tcp(),
    };
    table.readmit(hit.handle, &adm);
    true
}
