//! The oracle: a plain linear first-match over the validated policy's own semantics
//! (groups, negation, services), independent of the compiled boxes and trees.

use rampart_config::policy::{Action, Direction, ResolvedRule, ValidatedPolicy};

use crate::fields::{Match, PacketDirection, PacketFields, RuleIndex};

/// Linear first-match evaluation of a policy.
#[derive(Clone, Debug)]
pub struct Linear {
    rules: Vec<ResolvedRule>,
    default_action: Action,
}

/// Whether `rule` matches `p` (monitor flags ignored).
pub fn rule_matches(rule: &ResolvedRule, p: &PacketFields) -> bool {
    let dir_ok = matches!(
        (rule.direction, p.direction),
        (Direction::Both, _)
            | (Direction::In, PacketDirection::In)
            | (Direction::Out, PacketDirection::Out)
    );
    dir_ok
        && rule.vlan.is_none_or(|v| p.vlan == Some(v))
        && rule.vni.is_none_or(|v| p.vni == Some(v))
        && rule
            .services
            .iter()
            .any(|s| s.matches(p.proto, p.sport, p.dport))
        && rule.source.lookup(p.family, p.src).is_some()
        && rule.destination.lookup(p.family, p.dst).is_some()
}

impl Linear {
    /// Keeps a copy of the rules.
    pub fn new(policy: &ValidatedPolicy) -> Self {
        Linear {
            rules: policy.rules.clone(),
            default_action: policy.default_action,
        }
    }

    /// First match; monitor rules are recorded and skipped.
    pub fn classify(&self, p: &PacketFields) -> Match {
        let mut monitor = None;
        for (i, r) in self.rules.iter().enumerate() {
            if !rule_matches(r, p) {
                continue;
            }
            if r.monitor {
                monitor.get_or_insert(i as RuleIndex);
                continue;
            }
            return Match {
                rule: Some(i as RuleIndex),
                rule_id: Some(r.id),
                action: r.action,
                log: r.log,
                monitor,
            };
        }
        Match {
            monitor,
            ..Match::default_action(self.default_action)
        }
    }
}
