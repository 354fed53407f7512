//! A running node's live view, on the same management endpoint as the metrics:
//!
//! - `GET /flows?top=N` — the N flows with the most bytes, over every worker (JSON array of
//!   [`FlowEntry`]); `rampartctl flows` shows them as a table.
//! - `GET /explain?src=…&dst=…&proto=…&dport=…` — which rule of the enforced generation matches
//!   that packet and through which group and service, plus the conntrack entry of that flow if
//!   a worker tracks one (JSON [`LiveExplanation`]); `rampartctl explain --node`.
//!
//! The control crate does not link the dataplane: the appliance answers flow questions through
//! [`MetricsSource::flows`](crate::metrics::MetricsSource::flows), asking each worker at its
//! end of poll.

use rampart_classify::{PacketDirection, PacketFields};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Flows returned by `/flows` when `top` is not given.
pub const DEFAULT_TOP: usize = 20;
/// Most flows one `/flows` request may ask for.
pub const MAX_TOP: usize = 10_000;

/// What the appliance is asked about its flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowQuery {
    /// The `n` flows with the most bytes.
    Top(usize),
    /// The flow this packet belongs to (either direction).
    Packet(PacketQuery),
}

/// One tracked flow, as shown to an operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowEntry {
    /// The worker whose table holds it.
    pub worker: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Source of the packet that opened the flow.
    pub src: IpAddr,
    /// Its source port (ICMP: the echo id).
    pub sport: u16,
    /// Destination of the packet that opened the flow.
    pub dst: IpAddr,
    /// Its destination port.
    pub dport: u16,
    /// Conntrack state (e.g. `TcpEstablished`).
    pub state: String,
    /// Rule id that admitted it; `None` for the default action.
    pub rule: Option<u32>,
    /// Low 32 bits of the node's publish number of the ruleset that admitted or last
    /// revalidated it (each policy generation or inventory update applied advances it).
    pub ruleset_seq: u32,
    /// Packets in the original direction.
    pub packets_orig: u64,
    /// Packets in the reply direction.
    pub packets_reply: u64,
    /// Bytes in the original direction.
    pub bytes_orig: u64,
    /// Bytes in the reply direction.
    pub bytes_reply: u64,
    /// Milliseconds since its last packet.
    pub idle_ms: f64,
}

/// The answer of `/explain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveExplanation {
    /// The generation the explanation is from.
    pub generation: u64,
    /// The verdict: allow, drop or reject.
    pub action: String,
    /// Matched enforcing rule id (`None`: default action).
    pub rule: Option<u32>,
    /// Human explanation (rule, group and service that matched).
    pub text: String,
    /// The conntrack entries for this packet's flow (empty: not tracked).
    pub flows: Vec<FlowEntry>,
    /// Why the flows could not be looked up, if they could not.
    pub flows_error: Option<String>,
}

/// A packet description, as `rampartctl explain` takes it and `/explain` receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketQuery {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// ICMP type (ICMP/ICMPv6 rules match it in the source-port field).
    pub icmp_type: Option<u8>,
    /// ICMP code (in the destination-port field).
    pub icmp_code: Option<u8>,
    /// 802.1Q VLAN id.
    pub vlan: Option<u16>,
    /// VXLAN/Geneve VNI.
    pub vni: Option<u32>,
    /// Direction relative to the port pair.
    pub direction: PacketDirection,
}

/// A protocol by name (tcp, udp, icmp, icmpv6, sctp, …) or number.
pub fn parse_proto(s: &str) -> Result<u8, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmpv6" | "ipv6-icmp" => 58,
        "sctp" => 132,
        n => n.parse().map_err(|_| format!("unknown protocol {s:?}"))?,
    })
}

impl PacketQuery {
    /// The classifier's fields for this packet.
    pub fn fields(&self) -> Result<PacketFields, String> {
        if self.src.is_ipv4() != self.dst.is_ipv4() {
            return Err("src and dst must be of the same address family".into());
        }
        let (sport, dport) = match (self.icmp_type, self.icmp_code) {
            (None, None) => (self.sport, self.dport),
            (t, c) => (u16::from(t.unwrap_or(0)), u16::from(c.unwrap_or(0))),
        };
        let mut p = PacketFields::from_ips(self.src, self.dst, sport, dport, self.proto);
        p.vlan = self.vlan;
        p.vni = self.vni;
        p.direction = self.direction;
        Ok(p)
    }

    /// As a URL query string (addresses and numbers need no escaping).
    pub fn to_query(&self) -> String {
        let mut q = format!(
            "src={}&dst={}&proto={}&sport={}&dport={}&direction={}",
            self.src,
            self.dst,
            self.proto,
            self.sport,
            self.dport,
            match self.direction {
                PacketDirection::In => "in",
                PacketDirection::Out => "out",
            }
        );
        let mut opt = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                q.push_str(&format!("&{k}={v}"));
            }
        };
        opt("icmp_type", self.icmp_type.map(|v| v.to_string()));
        opt("icmp_code", self.icmp_code.map(|v| v.to_string()));
        opt("vlan", self.vlan.map(|v| v.to_string()));
        opt("vni", self.vni.map(|v| v.to_string()));
        q
    }

    /// From a URL query string; errors name the parameter.
    pub fn from_query(query: &str) -> Result<Self, String> {
        let get = |k: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v)
        };
        fn num<T: std::str::FromStr>(k: &str, v: Option<&str>) -> Result<Option<T>, String> {
            v.map(|v| {
                v.parse()
                    .map_err(|_| format!("parameter {k}: bad value {v:?}"))
            })
            .transpose()
        }
        let addr = |k: &str| -> Result<IpAddr, String> {
            let v = get(k).ok_or_else(|| format!("parameter {k} is required"))?;
            v.parse()
                .map_err(|_| format!("parameter {k}: {v:?} is not an IP address"))
        };
        Ok(PacketQuery {
            src: addr("src")?,
            dst: addr("dst")?,
            proto: match get("proto") {
                Some(p) => parse_proto(p).map_err(|e| format!("parameter proto: {e}"))?,
                None => 6,
            },
            sport: num("sport", get("sport"))?.unwrap_or(0),
            dport: num("dport", get("dport"))?.unwrap_or(0),
            icmp_type: num("icmp_type", get("icmp_type"))?,
            icmp_code: num("icmp_code", get("icmp_code"))?,
            vlan: num("vlan", get("vlan"))?,
            vni: num("vni", get("vni"))?,
            direction: match get("direction").unwrap_or("in") {
                "in" => PacketDirection::In,
                "out" => PacketDirection::Out,
                d => return Err(format!("parameter direction: {d:?} is not in or out")),
            },
        })
    }
}

/// `top` of a `/flows` query string, defaulted and capped.
pub fn top_of(query: &str) -> Result<usize, String> {
    match query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "top")
    {
        None => Ok(DEFAULT_TOP),
        Some((_, v)) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_TOP).contains(&n) => Ok(n),
            _ => Err(format!("parameter top: {v:?} is not 1..={MAX_TOP}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_query_round_trips_and_names_bad_parameters() {
        let q = PacketQuery {
            src: "10.0.0.1".parse().unwrap(),
            dst: "2001:db8::1".parse().unwrap(),
            proto: 17,
            sport: 5353,
            dport: 53,
            icmp_type: None,
            icmp_code: None,
            vlan: Some(100),
            vni: Some(5001),
            direction: PacketDirection::Out,
        };
        assert_eq!(PacketQuery::from_query(&q.to_query()), Ok(q.clone()));
        assert!(q.fields().unwrap_err().contains("address family"));
        let e = PacketQuery::from_query("src=10.0.0.1&dst=10.0.0.2&dport=99999").unwrap_err();
        assert!(e.contains("dport"), "{e}");
        let e = PacketQuery::from_query("dst=10.0.0.2").unwrap_err();
        assert!(e.contains("src is required"), "{e}");
        let e = PacketQuery::from_query("src=10.0.0.1&dst=10.0.0.2&proto=bogus").unwrap_err();
        assert!(e.contains("proto"), "{e}");
        assert_eq!(top_of(""), Ok(DEFAULT_TOP));
        assert_eq!(top_of("top=5"), Ok(5));
        assert!(top_of("top=0").is_err());
    }
}
