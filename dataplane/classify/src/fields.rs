//! What the classifier reads from a packet and what it answers: plain `Copy` values so a
//! worker fills them into per-burst scratch arrays without allocating.

pub use rampart_config::policy::{Action, Family, RuleId};

/// Direction of a packet relative to the appliance's port pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PacketDirection {
    /// Arrived on the outside port.
    #[default]
    In,
    /// Arrived on the inside port.
    Out,
}

/// The header fields a rule can test.
///
/// Addresses are `u128` with a family: IPv4 values live in the low 32 bits (first octet most
/// significant). For ICMP and ICMPv6, `sport` carries the message type and `dport` the code
/// (as VPP and most ACL engines do); for other protocols without ports both are 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PacketFields {
    /// Address family of `src` and `dst`.
    pub family: Family,
    /// Source address.
    pub src: u128,
    /// Destination address.
    pub dst: u128,
    /// Source port (ICMP: type).
    pub sport: u16,
    /// Destination port (ICMP: code).
    pub dport: u16,
    /// IP protocol number (IPv6: the upper-layer protocol).
    pub proto: u8,
    /// 802.1Q VLAN id, when tagged.
    pub vlan: Option<u16>,
    /// VXLAN network identifier, when encapsulated.
    pub vni: Option<u32>,
    /// Which port it came in on.
    pub direction: PacketDirection,
}

impl Default for PacketFields {
    fn default() -> Self {
        PacketFields::v4(0, 0, 0, 0, 0)
    }
}

impl PacketFields {
    /// An untagged inbound IPv4 packet.
    pub const fn v4(src: u32, dst: u32, sport: u16, dport: u16, proto: u8) -> Self {
        PacketFields {
            family: Family::V4,
            src: src as u128,
            dst: dst as u128,
            sport,
            dport,
            proto,
            vlan: None,
            vni: None,
            direction: PacketDirection::In,
        }
    }

    /// An untagged inbound IPv6 packet.
    pub const fn v6(src: u128, dst: u128, sport: u16, dport: u16, proto: u8) -> Self {
        PacketFields {
            family: Family::V6,
            src,
            dst,
            sport,
            dport,
            proto,
            vlan: None,
            vni: None,
            direction: PacketDirection::In,
        }
    }

    /// From `IpAddr`s (both must be of one family; a mismatch yields the source's family).
    pub fn from_ips(
        src: std::net::IpAddr,
        dst: std::net::IpAddr,
        sport: u16,
        dport: u16,
        proto: u8,
    ) -> Self {
        let (family, s) = rampart_config::policy::ip_to_u128(src);
        let (_, d) = rampart_config::policy::ip_to_u128(dst);
        PacketFields {
            family,
            src: s,
            dst: d,
            sport,
            dport,
            proto,
            vlan: None,
            vni: None,
            direction: PacketDirection::In,
        }
    }
}

/// Index of a rule in a ruleset's evaluation order (valid for that ruleset only; the stable
/// identity is [`RuleId`]).
pub type RuleIndex = u32;

/// The classifier's answer for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Match {
    /// The enforcing rule that matched, or `None` for the default action.
    pub rule: Option<RuleIndex>,
    /// Its stable id.
    pub rule_id: Option<RuleId>,
    /// The verdict (the rule's, or the default).
    pub action: Action,
    /// Whether the first packet of the flow should be logged.
    pub log: bool,
    /// The first monitor (dry-run) rule that matched before the enforcing rule, if any: count
    /// it as "would have …" its action.
    pub monitor: Option<RuleIndex>,
}

impl Match {
    /// The answer when nothing matched.
    pub const fn default_action(action: Action) -> Self {
        Match {
            rule: None,
            rule_id: None,
            action,
            log: false,
            monitor: None,
        }
    }
}

impl Default for Match {
    fn default() -> Self {
        Match::default_action(Action::Drop)
    }
}
