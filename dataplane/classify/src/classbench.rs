//! ClassBench rule and trace files (the format of `tests/data/classbench/README.md`):
//! loading, and conversion into a policy where rule id = 0-based line number and every rule
//! allows (the classifier answers the first matching line).

use std::io::Read;
use std::path::Path;

use rampart_config::policy::{
    Action, AddrRange, AddrSet, Family, PortRange, ResolvedRule, RuleId, ServiceMatch,
    ValidatedPolicy,
};

use crate::fields::PacketFields;

/// Why a ClassBench file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ClassBenchError {
    /// The file could not be read or decompressed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A line does not follow the format.
    #[error("{path}:{line}: {reason}")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// One ClassBench rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CbRule {
    /// Source prefix (address, length).
    pub src: (u32, u8),
    /// Destination prefix.
    pub dst: (u32, u8),
    /// Source port range (inclusive).
    pub sport: (u16, u16),
    /// Destination port range (inclusive).
    pub dport: (u16, u16),
    /// Protocol value and mask.
    pub proto: (u8, u8),
}

/// One ClassBench trace header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CbPacket {
    /// Source address.
    pub src: u32,
    /// Destination address.
    pub dst: u32,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Protocol.
    pub proto: u8,
    /// The rule the generator built the header from (a match, not always the first).
    pub rule: u32,
}

impl CbPacket {
    /// As classifier input.
    pub fn fields(&self) -> PacketFields {
        PacketFields::v4(self.src, self.dst, self.sport, self.dport, self.proto)
    }
}

fn read_text(path: &Path) -> Result<String, ClassBenchError> {
    let io = |source| ClassBenchError::Io {
        path: path.display().to_string(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .map_err(io)?;
        Ok(s)
    } else {
        String::from_utf8(bytes)
            .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
    }
}

fn parse_prefix(s: &str) -> Result<(u32, u8), String> {
    let (a, l) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a prefix"))?;
    let ip: std::net::Ipv4Addr = a
        .parse()
        .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
    let len: u8 = l.parse().map_err(|_| format!("bad prefix length {l:?}"))?;
    if len > 32 {
        return Err(format!("prefix length {len} exceeds 32"));
    }
    Ok((u32::from(ip), len))
}

fn parse_hex_pair(s: &str) -> Result<(u32, u32), String> {
    let (v, m) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not value/mask"))?;
    let hex = |x: &str| {
        u32::from_str_radix(x.trim_start_matches("0x").trim_start_matches("0X"), 16)
            .map_err(|_| format!("{x:?} is not hex"))
    };
    Ok((hex(v)?, hex(m)?))
}

/// Parses rule text.
pub fn parse_rules(text: &str, path: &str) -> Result<Vec<CbRule>, ClassBenchError> {
    let mut out = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |reason: String| ClassBenchError::Syntax {
            path: path.to_string(),
            line: ln + 1,
            reason,
        };
        let line = line
            .trim_start()
            .strip_prefix('@')
            .ok_or_else(|| err("a rule line starts with '@'".into()))?;
        let t: Vec<&str> = line.split_whitespace().collect();
        // src dst slo : shi dlo : dhi proto [flags]
        if t.len() < 9 || t[3] != ":" || t[6] != ":" {
            return Err(err(format!(
                "expected 'src dst lo : hi lo : hi proto/mask', got {line:?}"
            )));
        }
        let port = |x: &str| x.parse::<u16>().map_err(|_| err(format!("bad port {x:?}")));
        let src = parse_prefix(t[0]).map_err(err)?;
        let dst = parse_prefix(t[1]).map_err(err)?;
        let sport = (port(t[2])?, port(t[4])?);
        let dport = (port(t[5])?, port(t[7])?);
        let (pv, pm) = parse_hex_pair(t[8]).map_err(err)?;
        if pv > 255 || pm > 255 {
            return Err(err(format!("protocol {:?} out of range", t[8])));
        }
        if sport.0 > sport.1 || dport.0 > dport.1 {
            return Err(err("port range with lo > hi".into()));
        }
        out.push(CbRule {
            src,
            dst,
            sport,
            dport,
            proto: (pv as u8, pm as u8),
        });
    }
    Ok(out)
}

/// Parses trace text.
pub fn parse_trace(text: &str, path: &str) -> Result<Vec<CbPacket>, ClassBenchError> {
    let mut out = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |reason: String| ClassBenchError::Syntax {
            path: path.to_string(),
            line: ln + 1,
            reason,
        };
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 5 {
            return Err(err(format!("expected at least 5 columns, got {}", t.len())));
        }
        let num = |i: usize, max: u64| -> Result<u64, ClassBenchError> {
            let v: u64 = t[i]
                .parse()
                .map_err(|_| err(format!("column {} {:?} is not a number", i + 1, t[i])))?;
            if v > max {
                return Err(err(format!("column {} value {v} exceeds {max}", i + 1)));
            }
            Ok(v)
        };
        out.push(CbPacket {
            src: num(0, u32::MAX as u64)? as u32,
            dst: num(1, u32::MAX as u64)? as u32,
            sport: num(2, 65535)? as u16,
            dport: num(3, 65535)? as u16,
            proto: num(4, 255)? as u8,
            rule: if t.len() >= 7 {
                num(6, u32::MAX as u64)? as u32
            } else {
                u32::MAX
            },
        });
    }
    Ok(out)
}

/// Loads a rule file.
pub fn load_rules(path: &Path) -> Result<Vec<CbRule>, ClassBenchError> {
    parse_rules(&read_text(path)?, &path.display().to_string())
}

/// Loads a trace file (`.gz` is decompressed).
pub fn load_trace(path: &Path) -> Result<Vec<CbPacket>, ClassBenchError> {
    parse_trace(&read_text(path)?, &path.display().to_string())
}

/// The policy of a rule list: rule i has id i, action allow; nothing matched = drop.
pub fn to_policy(rules: &[CbRule]) -> ValidatedPolicy {
    let resolved = rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut rr = ResolvedRule::new(RuleId(i as u32), Action::Allow);
            rr.source = AddrSet::of([AddrRange::prefix(
                Family::V4,
                r.src.0 as u128,
                r.src.1 as u32,
            )]);
            rr.destination = AddrSet::of([AddrRange::prefix(
                Family::V4,
                r.dst.0 as u128,
                r.dst.1 as u32,
            )]);
            let sport = PortRange {
                lo: r.sport.0,
                hi: r.sport.1,
            };
            let dport = PortRange {
                lo: r.dport.0,
                hi: r.dport.1,
            };
            let (v, m) = r.proto;
            let protos: Vec<Option<u8>> = if m == 0 {
                vec![None]
            } else {
                // A partial mask matches several protocol numbers.
                (0..=255u8).filter(|p| p & m == v & m).map(Some).collect()
            };
            rr.services = protos
                .into_iter()
                .map(|proto| ServiceMatch {
                    proto,
                    sport,
                    dport,
                    via: None,
                })
                .collect();
            rr
        })
        .collect();
    ValidatedPolicy::from_rules(0, Action::Drop, resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_lines() {
        let r = parse_rules("@195.120.234.169/32\t16.254.228.0/24\t0 : 65535\t19856 : 19856\t0x06/0xFF\t0x1000/0x1000\t\n", "x").unwrap();
        assert_eq!(r[0].src, (0xc378_eaa9, 32));
        assert_eq!(r[0].dst, (0x10fe_e400, 24));
        assert_eq!(r[0].sport, (0, 65535));
        assert_eq!(r[0].dport, (19856, 19856));
        assert_eq!(r[0].proto, (6, 0xff));
        let t = parse_trace("1044126168\t1559590493\t0\t65535\t6\t0\t743\n", "t").unwrap();
        assert_eq!(
            t[0],
            CbPacket {
                src: 1044126168,
                dst: 1559590493,
                sport: 0,
                dport: 65535,
                proto: 6,
                rule: 743
            }
        );
        assert!(parse_rules(
            "195.120.234.169/32\t16.254.228.0/24\t0 : 65535\t1 : 1\t0x06/0xFF\n",
            "x"
        )
        .is_err());
        assert!(parse_rules("@1.2.3.4/33 1.2.3.4/32 0 : 1 0 : 1 0x06/0xFF\n", "x").is_err());
        assert!(parse_trace("1 2 3 70000 6 0 1\n", "t").is_err());
    }

    #[test]
    fn partial_protocol_masks_expand() {
        let r = parse_rules("@0.0.0.0/0 0.0.0.0/0 0 : 65535 0 : 65535 0x06/0xFE\n", "x").unwrap();
        let p = to_policy(&r);
        let protos: Vec<_> = p.rules[0].services.iter().map(|s| s.proto).collect();
        assert_eq!(protos, vec![Some(6), Some(7)]);
    }
}
