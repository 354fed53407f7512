//! The policy document as published (JSON on the wire, JSON or YAML from files).
//! These are file types: strings and loose numbers that `validate` turns into checked values.

use serde::{Deserialize, Serialize};

use super::inventory::Workload;

/// A complete, versioned policy as a manager publishes it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Monotonically increasing version; a node ignores documents not newer than its own.
    pub generation: u64,
    /// What happens to a packet no rule matches.
    #[serde(default)]
    pub default_action: Action,
    /// Named address sets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupSpec>,
    /// Named protocol/port sets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceSpec>,
    /// Workloads (address ↔ tags) that tag-selected groups resolve against; merged with an
    /// inventory published on its own (see [`super::Inventory`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<Workload>,
    /// Rules; evaluated by category (emergency first) and then in document order.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// A named address set: literals, nested groups and a tag selector, united.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Name other groups and rules refer to.
    pub name: String,
    /// Hosts, prefixes (`10.0.0.0/8`) and ranges (`10.0.0.1-10.0.0.9`), IPv4 or IPv6.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Names of groups whose members are included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Every inventory workload carrying all of these tags is a member.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_tags: Vec<String>,
}

/// A named service: any of its entries matches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Name rules refer to.
    pub name: String,
    /// Alternatives.
    pub entries: Vec<ServiceEntry>,
}

/// One protocol with its ports (TCP/UDP/SCTP) or ICMP type/code.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntry {
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `sctp`, `any`, or a protocol number.
    pub protocol: ProtoSpec,
    /// Destination ports or ranges (`80`, `"8000-8080"`); empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    /// Source ports or ranges; empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ports: Vec<PortSpec>,
    /// ICMP/ICMPv6 type (only with those protocols); absent = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<i64>,
    /// ICMP/ICMPv6 code (only with `icmp_type`); absent = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<i64>,
}

/// A protocol name or number, as written.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ProtoSpec {
    /// A protocol number (0..=255).
    Number(i64),
    /// A protocol name.
    Name(String),
}

impl Default for ProtoSpec {
    fn default() -> Self {
        ProtoSpec::Name("any".into())
    }
}

/// A port or an inclusive range, as written: `80` or `"1024-65535"`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PortSpec {
    /// One port.
    Number(i64),
    /// `"80"` or `"lo-hi"`.
    Text(String),
}

/// One side of a rule (source or destination).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Address literals; together with `groups` empty = any address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Group names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Match every address NOT in the set above (over both families).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
    /// Inline ports on this side (with the rule's inline `protocol`); empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
}

/// Rule categories, evaluated in this order (then the default action).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Break-glass rules, first.
    Emergency,
    /// Infrastructure services (DNS, NTP, management).
    Infrastructure,
    /// Environment separation (prod vs dev).
    Environment,
    /// Application rules, last before the default.
    #[default]
    Application,
}

/// What a rule (or the default) does with a packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Forward it (and track the flow).
    Allow,
    /// Silently discard it.
    #[default]
    Drop,
    /// Discard it and answer with a TCP RST or an ICMP/ICMPv6 unreachable.
    Reject,
}

/// Which traffic a rule applies to, relative to the port pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Packets arriving on the outside port.
    In,
    /// Packets arriving on the inside port.
    Out,
    /// Both.
    #[default]
    Both,
}

/// TCP tracking strictness for flows admitted by a rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TcpStrictness {
    /// What the appliance's `firewall.strict_tcp` says (a rule that does not choose).
    #[default]
    Inherit,
    /// Sequence and window checks enforced.
    Strict,
    /// Only the state machine; out-of-window segments pass.
    Liberal,
}

/// One rule as written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Stable identity chosen by the publisher; counters and flows follow it.
    pub id: i64,
    /// Human name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Evaluation category.
    #[serde(default)]
    pub category: Category,
    /// Sources; absent = any.
    #[serde(default)]
    pub source: EndpointSpec,
    /// Destinations; absent = any.
    #[serde(default)]
    pub destination: EndpointSpec,
    /// Named services (any of them); exclusive with inline `protocol`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Inline protocol, with `source.ports`/`destination.ports`/`icmp_*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ProtoSpec>,
    /// Inline ICMP type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<i64>,
    /// Inline ICMP code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<i64>,
    /// Only packets with this 802.1Q VLAN id (0..=4095).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<i64>,
    /// Only packets with this VXLAN network identifier (0..=16777215).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<i64>,
    /// Which direction the rule applies to.
    #[serde(default)]
    pub direction: Direction,
    /// The verdict.
    pub action: Action,
    /// Log the first packet of each flow admitted or refused by this rule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log: bool,
    /// Keep the rule in the document but out of the ruleset.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Dry run: count matches ("would have …") but continue to the next rule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub monitor: bool,
    /// TCP strictness for flows this rule admits.
    #[serde(default)]
    pub tcp: TcpStrictness,
}

// `#[serde(untagged)]` would buffer every value into serde's generic content tree and then try
// each variant: a measurable share of parsing a 10K-rule document, which has one protocol and
// a port or two per rule. A number-or-string visitor takes the value as it comes.

/// Visits a JSON/YAML number or string as `N` or `S`.
struct NumberOrText<N, S> {
    expecting: &'static str,
    number: fn(i64) -> N,
    text: fn(String) -> S,
}

impl<'de, T> serde::de::Visitor<'de> for NumberOrText<T, T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
        Ok((self.number)(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
        i64::try_from(v)
            .map(self.number)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        Ok((self.text)(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<T, E> {
        Ok((self.text)(v))
    }
}

impl<'de> Deserialize<'de> for ProtoSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberOrText {
            expecting: "a protocol name or number",
            number: ProtoSpec::Number,
            text: ProtoSpec::Name,
        })
    }
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberOrText {
            expecting: "a port number or a \"lo-hi\" range",
            number: PortSpec::Number,
            text: PortSpec::Text,
        })
    }
}
