//! Checked, resolved policy values: what the classifier compiles. Every group, service and
//! literal has been resolved to numeric ranges, and each range remembers where it came from
//! (`via`) so `explain` can say "through group web".

use std::sync::Arc;

use super::addr::{complement, AddrRange, Family};
use super::document::{Action, Category, Direction, TcpStrictness};

/// Stable rule identity chosen by the publisher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub u32);

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port (inclusive).
    pub hi: u16,
}

impl PortRange {
    /// Every port.
    pub const ANY: PortRange = PortRange { lo: 0, hi: 65535 };

    /// One port.
    pub const fn single(p: u16) -> Self {
        PortRange { lo: p, hi: p }
    }

    /// Whether `p` is inside.
    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// One resolved address range and the group chain it came through (`None` = a literal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrMatch {
    /// The addresses.
    pub range: AddrRange,
    /// E.g. `group web-servers > workload web-1`.
    pub via: Option<Arc<str>>,
}

/// A rule side: any address, or a set of ranges, possibly negated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrSet {
    /// No addresses or groups were given: every address of both families.
    pub any: bool,
    /// The union of these ranges (ignored when `any`).
    pub entries: Vec<AddrMatch>,
    /// Match addresses NOT in `entries` (over both families).
    pub negate: bool,
}

impl AddrSet {
    /// Every address.
    pub fn any() -> Self {
        AddrSet {
            any: true,
            entries: Vec::new(),
            negate: false,
        }
    }

    /// Exactly these ranges.
    pub fn of(ranges: impl IntoIterator<Item = AddrRange>) -> Self {
        AddrSet {
            any: false,
            entries: ranges
                .into_iter()
                .map(|range| AddrMatch { range, via: None })
                .collect(),
            negate: false,
        }
    }

    /// Whether `addr` is in the set; for a positive match, the entry that matched
    /// (`Some(None)` for `any` or a negated set).
    pub fn lookup(&self, family: Family, addr: u128) -> Option<Option<&AddrMatch>> {
        if self.any {
            return Some(None);
        }
        let hit = self.entries.iter().find(|e| e.range.contains(family, addr));
        match (hit, self.negate) {
            (Some(e), false) => Some(Some(e)),
            (None, true) => Some(None),
            _ => None,
        }
    }

    /// The effective ranges with their provenance (negation and `any` expanded).
    pub fn effective(&self) -> Vec<AddrMatch> {
        if self.any {
            return [Family::V4, Family::V6]
                .into_iter()
                .map(|f| AddrMatch {
                    range: AddrRange::any(f),
                    via: None,
                })
                .collect();
        }
        if self.negate {
            let set: Vec<AddrRange> = self.entries.iter().map(|e| e.range).collect();
            let via: Arc<str> = Arc::from("negated set");
            return complement(&set)
                .into_iter()
                .map(|range| AddrMatch {
                    range,
                    via: Some(via.clone()),
                })
                .collect();
        }
        self.entries.clone()
    }
}

/// One resolved protocol/port alternative.
///
/// Port fields are compared as raw packet fields: for ICMP and ICMPv6 the packet's source
/// port carries the type and the destination port the code (see `PacketFields`), so an ICMP
/// type/code match is a `sport`/`dport` range of one value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceMatch {
    /// IP protocol number; `None` = any.
    pub proto: Option<u8>,
    /// Source ports (ICMP: type).
    pub sport: PortRange,
    /// Destination ports (ICMP: code).
    pub dport: PortRange,
    /// The named service this came from (`None` = inline).
    pub via: Option<Arc<str>>,
}

impl ServiceMatch {
    /// Any protocol, any port.
    pub fn any() -> Self {
        ServiceMatch {
            proto: None,
            sport: PortRange::ANY,
            dport: PortRange::ANY,
            via: None,
        }
    }

    /// Whether the packet fields match.
    pub fn matches(&self, proto: u8, sport: u16, dport: u16) -> bool {
        self.proto.is_none_or(|p| p == proto)
            && self.sport.contains(sport)
            && self.dport.contains(dport)
    }
}

/// A rule after validation and resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedRule {
    /// Stable identity.
    pub id: RuleId,
    /// Human name.
    pub name: Option<Arc<str>>,
    /// Category (already applied to the order).
    pub category: Category,
    /// Index of the rule in the document's `rules` array.
    pub position: usize,
    /// Sources.
    pub source: AddrSet,
    /// Destinations.
    pub destination: AddrSet,
    /// Protocol/port alternatives (at least one; [`ServiceMatch::any`] when unrestricted).
    pub services: Vec<ServiceMatch>,
    /// VLAN scope.
    pub vlan: Option<u16>,
    /// VXLAN VNI scope.
    pub vni: Option<u32>,
    /// Direction scope.
    pub direction: Direction,
    /// Verdict.
    pub action: Action,
    /// Log first packet of each flow.
    pub log: bool,
    /// Dry run: counted, evaluation continues.
    pub monitor: bool,
    /// TCP strictness for admitted flows.
    pub tcp: TcpStrictness,
}

impl ResolvedRule {
    /// A rule matching everything with `action`; fields are public to narrow it.
    pub fn new(id: RuleId, action: Action) -> Self {
        ResolvedRule {
            id,
            name: None,
            category: Category::Application,
            position: id.0 as usize,
            source: AddrSet::any(),
            destination: AddrSet::any(),
            services: vec![ServiceMatch::any()],
            vlan: None,
            vni: None,
            direction: Direction::Both,
            action,
            log: false,
            monitor: false,
            tcp: TcpStrictness::Strict,
        }
    }
}

/// A policy that passed validation: rules in evaluation order, disabled rules removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedPolicy {
    /// The document's generation.
    pub generation: u64,
    /// Verdict when no rule matches.
    pub default_action: Action,
    /// Enabled rules in evaluation order (category, then document order).
    pub rules: Vec<ResolvedRule>,
    /// Ids of rules present but disabled.
    pub disabled: Vec<RuleId>,
}

impl ValidatedPolicy {
    /// Builds a policy from already-resolved rules (tests, ClassBench); the caller guarantees
    /// unique ids and the order.
    pub fn from_rules(generation: u64, default_action: Action, rules: Vec<ResolvedRule>) -> Self {
        ValidatedPolicy {
            generation,
            default_action,
            rules,
            disabled: Vec::new(),
        }
    }
}
