//! The geometric form of rules: each rule becomes one or more boxes (a range per field), and
//! each packet a point. IPv4 and IPv6 get their own layouts so the IPv4 hot path compares
//! eight `u32` lanes (one cache line per box) instead of `u128`s.
//!
//! Field order (the first five are the ones trees cut on): source address, destination
//! address, source port, destination port, protocol, VLAN, VNI, direction.

use rampart_config::policy::{Direction, Family, ResolvedRule};

use crate::fields::{PacketDirection, PacketFields};

/// Packet VLAN value when untagged (real ids are 0..=4095).
pub(crate) const VLAN_NONE: u32 = 4096;
/// Packet VNI value when not encapsulated (real VNIs are 24-bit).
pub(crate) const VNI_NONE: u32 = 1 << 24;

/// Widths in bits of the five cut fields, per family.
pub(crate) const fn cut_bits(family: Family) -> [u32; 5] {
    match family {
        Family::V4 => [32, 32, 16, 16, 8],
        Family::V6 => [128, 128, 16, 16, 8],
    }
}

/// A rule box in family-independent form, used while building.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GenericBox {
    pub lo: [u128; 8],
    pub hi: [u128; 8],
}

impl GenericBox {
    /// Whether `self` contains `other` in every field.
    pub fn contains(&self, other: &GenericBox) -> bool {
        (0..8).all(|d| self.lo[d] <= other.lo[d] && other.hi[d] <= self.hi[d])
    }

    /// Whether the box ignores VLAN, VNI and direction.
    pub fn extras_any(&self) -> bool {
        self.lo[5] == 0
            && self.hi[5] == VLAN_NONE as u128
            && self.lo[6] == 0
            && self.hi[6] == VNI_NONE as u128
            && self.lo[7] == 0
            && self.hi[7] == 1
    }
}

/// Expands a rule into boxes per family (cross product of its sources, destinations and
/// services). A rule with no boxes can never match.
pub(crate) fn rule_boxes(
    rule: &ResolvedRule,
    out_v4: &mut Vec<GenericBox>,
    out_v6: &mut Vec<GenericBox>,
) {
    let (vlan_lo, vlan_hi) = match rule.vlan {
        Some(v) => (v as u128, v as u128),
        None => (0, VLAN_NONE as u128),
    };
    let (vni_lo, vni_hi) = match rule.vni {
        Some(v) => (v as u128, v as u128),
        None => (0, VNI_NONE as u128),
    };
    let (dir_lo, dir_hi) = match rule.direction {
        Direction::In => (0, 0),
        Direction::Out => (1, 1),
        Direction::Both => (0, 1),
    };
    let src = rule.source.effective();
    let dst = rule.destination.effective();
    for s in &src {
        for d in dst.iter().filter(|d| d.range.family == s.range.family) {
            for svc in &rule.services {
                let (plo, phi) = match svc.proto {
                    Some(p) => (p as u128, p as u128),
                    None => (0, 255),
                };
                let b = GenericBox {
                    lo: [
                        s.range.lo,
                        d.range.lo,
                        svc.sport.lo as u128,
                        svc.dport.lo as u128,
                        plo,
                        vlan_lo,
                        vni_lo,
                        dir_lo,
                    ],
                    hi: [
                        s.range.hi,
                        d.range.hi,
                        svc.sport.hi as u128,
                        svc.dport.hi as u128,
                        phi,
                        vlan_hi,
                        vni_hi,
                        dir_hi,
                    ],
                };
                match s.range.family {
                    Family::V4 => out_v4.push(b),
                    Family::V6 => out_v6.push(b),
                }
            }
        }
    }
}

/// The packet as a point: generic form (for building and warnings).
pub(crate) fn point(p: &PacketFields) -> [u128; 8] {
    [
        p.src,
        p.dst,
        p.sport as u128,
        p.dport as u128,
        p.proto as u128,
        p.vlan.map_or(VLAN_NONE, |v| v as u32) as u128,
        p.vni.map_or(VNI_NONE, |v| v & 0xff_ffff) as u128,
        match p.direction {
            PacketDirection::In => 0,
            PacketDirection::Out => 1,
        },
    ]
}

/// A layout of boxes and points the trees work over.
pub(crate) trait Space {
    /// A packet as the lookup reads it.
    type Key: Copy;
    /// A box as the leaves store it.
    type Rule: Copy;
    /// Widths of the five cut fields.
    const BITS: [u32; 5];
    /// Converts a build box.
    fn rule(b: &GenericBox) -> Self::Rule;
    /// Converts a packet.
    fn key(p: &[u128; 8]) -> Self::Key;
    /// Child index along cut field `d`: `(key[d] >> shift) & mask`.
    fn child(key: &Self::Key, d: u8, shift: u8, mask: u32) -> usize;
    /// Whether the box contains the point.
    fn matches(r: &Self::Rule, key: &Self::Key) -> bool;
}

/// IPv4 layout: every field fits a `u32`.
pub(crate) struct V4;

/// An IPv4 box: `lo` and `hi - lo` per field (so a lane test is one subtract and compare).
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
pub(crate) struct RuleV4 {
    lo: [u32; 8],
    span: [u32; 8],
}

impl Space for V4 {
    type Key = [u32; 8];
    type Rule = RuleV4;
    const BITS: [u32; 5] = cut_bits(Family::V4);

    fn rule(b: &GenericBox) -> RuleV4 {
        let mut r = RuleV4 {
            lo: [0; 8],
            span: [0; 8],
        };
        for d in 0..8 {
            r.lo[d] = b.lo[d] as u32;
            r.span[d] = (b.hi[d] - b.lo[d]) as u32;
        }
        r
    }

    fn key(p: &[u128; 8]) -> [u32; 8] {
        p.map(|x| x as u32)
    }

    #[inline(always)]
    fn child(key: &[u32; 8], d: u8, shift: u8, mask: u32) -> usize {
        ((key[d as usize] >> shift) & mask) as usize
    }

    #[inline(always)]
    fn matches(r: &RuleV4, key: &[u32; 8]) -> bool {
        let mut ok = true;
        for d in 0..8 {
            ok &= key[d].wrapping_sub(r.lo[d]) <= r.span[d];
        }
        ok
    }
}

/// IPv6 layout: `u128` addresses, the other fields as in IPv4.
pub(crate) struct V6;

/// An IPv6 packet point.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyV6 {
    addr: [u128; 2],
    rest: [u32; 8],
}

/// An IPv6 box.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RuleV6 {
    addr_lo: [u128; 2],
    addr_span: [u128; 2],
    lo: [u32; 8],
    span: [u32; 8],
}

impl Space for V6 {
    type Key = KeyV6;
    type Rule = RuleV6;
    const BITS: [u32; 5] = cut_bits(Family::V6);

    fn rule(b: &GenericBox) -> RuleV6 {
        let mut r = RuleV6 {
            addr_lo: [b.lo[0], b.lo[1]],
            addr_span: [b.hi[0] - b.lo[0], b.hi[1] - b.lo[1]],
            lo: [0; 8],
            span: [0; 8],
        };
        // Lanes 0 and 1 stay 0..=0 (the key's lanes 0 and 1 are 0): addresses are tested above.
        for d in 2..8 {
            r.lo[d] = b.lo[d] as u32;
            r.span[d] = (b.hi[d] - b.lo[d]) as u32;
        }
        r
    }

    fn key(p: &[u128; 8]) -> KeyV6 {
        let mut rest = [0u32; 8];
        for d in 2..8 {
            rest[d] = p[d] as u32;
        }
        KeyV6 {
            addr: [p[0], p[1]],
            rest,
        }
    }

    #[inline(always)]
    fn child(key: &KeyV6, d: u8, shift: u8, mask: u32) -> usize {
        if d < 2 {
            ((key.addr[d as usize] >> shift) as u32 & mask) as usize
        } else {
            ((key.rest[d as usize] >> shift) & mask) as usize
        }
    }

    #[inline(always)]
    fn matches(r: &RuleV6, key: &KeyV6) -> bool {
        let mut ok = true;
        for d in 0..8 {
            ok &= key.rest[d].wrapping_sub(r.lo[d]) <= r.span[d];
        }
        ok && key.addr[0].wrapping_sub(r.addr_lo[0]) <= r.addr_span[0]
            && key.addr[1].wrapping_sub(r.addr_lo[1]) <= r.addr_span[1]
    }
}
