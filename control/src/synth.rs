//! Synthetic policy documents of any size, for the publish-latency benchmark, tests and demos:
//! ClassBench-like mixes of prefixes, port ranges and protocols, deterministic per seed.

use rampart_config::policy::{Action, EndpointSpec, PolicyDocument, PortSpec, ProtoSpec, RuleSpec};

/// A valid document with `rules` rules (ids 1..=rules) and a drop default.
pub fn policy(generation: u64, rules: usize, seed: u64) -> PolicyDocument {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let rules = (0..rules)
        .map(|i| {
            let r = next();
            let src_len = [8u32, 16, 24, 32][(r & 3) as usize];
            let dst_len = [16u32, 24, 28, 32][((r >> 2) & 3) as usize];
            let src = prefix(next() as u32, src_len);
            let dst = prefix(next() as u32, dst_len);
            let proto = if r >> 4 & 1 == 0 { "tcp" } else { "udp" };
            let dport = match (r >> 5) & 3 {
                0 => PortSpec::Number(i64::from((next() % 1024) as u16)),
                1 => {
                    let lo = next() % 60_000;
                    PortSpec::Text(format!("{lo}-{}", lo + next() % 5_000))
                }
                2 => PortSpec::Text("1024-65535".into()),
                _ => PortSpec::Number(443),
            };
            let action = match (r >> 7) % 8 {
                0 => Action::Drop,
                1 => Action::Reject,
                _ => Action::Allow,
            };
            RuleSpec {
                id: i as i64 + 1,
                name: None,
                source: EndpointSpec {
                    addresses: vec![src],
                    ..EndpointSpec::default()
                },
                destination: EndpointSpec {
                    addresses: vec![dst],
                    ports: vec![dport],
                    ..EndpointSpec::default()
                },
                protocol: Some(ProtoSpec::Name(proto.into())),
                action,
                ..RuleSpec::default()
            }
        })
        .collect();
    PolicyDocument {
        generation,
        default_action: Action::Drop,
        rules,
        ..PolicyDocument::default()
    }
}

fn prefix(addr: u32, len: u32) -> String {
    let masked = if len == 0 {
        0
    } else {
        addr & (u32::MAX << (32 - len))
    };
    format!("{}/{len}", std::net::Ipv4Addr::from(masked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_policies_validate_and_are_deterministic() {
        let a = policy(3, 200, 1);
        assert_eq!(a, policy(3, 200, 1));
        assert_ne!(a, policy(3, 200, 2));
        assert_eq!(a.rules.len(), 200);
        let v = a.validate_standalone();
        assert!(v.is_ok(), "{:?}", v.err());
    }
}
