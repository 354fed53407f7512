//! The geometric form of rules: each rule becomes one or more boxes (a range per field), and
//! each packet a point. IPv4 and IPv6 get their own layouts so the IPv4 hot path compares
//! eight `u32` lanes (one cache line per box) instead of `u128`s.
//!
//! Field order (the first five are the ones trees cut on): source address, destination
//! address, source port, destination port, protocol, VLAN, VNI, direction.

use rampart_config::policy::{complement, AddrRange, AddrSet, Direction, Family, ResolvedRule};

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

/// The effective ranges of a rule side (negation and `any` expanded) into `buf`.
fn side_ranges(set: &AddrSet, buf: &mut Vec<AddrRange>) {
    buf.clear();
    if set.any {
        buf.extend([AddrRange::any(Family::V4), AddrRange::any(Family::V6)]);
    } else if set.negate {
        let v: Vec<AddrRange> = set.entries.iter().map(|e| e.range).collect();
        buf.extend(complement(&v));
    } else {
        buf.extend(set.entries.iter().map(|e| e.range));
    }
}

/// Reusable buffers for [`rule_boxes`].
#[derive(Default)]
pub(crate) struct Scratch {
    src: Vec<AddrRange>,
    dst: Vec<AddrRange>,
}

/// Expands a rule into boxes per family (cross product of its sources, destinations and
/// services). A rule with no boxes can never match.
pub(crate) fn rule_boxes(
    rule: &ResolvedRule,
    scratch: &mut Scratch,
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
    side_ranges(&rule.source, &mut scratch.src);
    side_ranges(&rule.destination, &mut scratch.dst);
    for s in &scratch.src {
        for d in scratch.dst.iter().filter(|d| d.family == s.family) {
            for svc in &rule.services {
                let (plo, phi) = match svc.proto {
                    Some(p) => (p as u128, p as u128),
                    None => (0, 255),
                };
                let b = GenericBox {
                    lo: [
                        s.lo,
                        d.lo,
                        svc.sport.lo as u128,
                        svc.dport.lo as u128,
                        plo,
                        vlan_lo,
                        vni_lo,
                        dir_lo,
                    ],
                    hi: [
                        s.hi,
                        d.hi,
                        svc.sport.hi as u128,
                        svc.dport.hi as u128,
                        phi,
                        vlan_hi,
                        vni_hi,
                        dir_hi,
                    ],
                };
                match s.family {
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

/// VLAN, VNI and direction constraints of a box: `[lo; 3]` then `[hi - lo; 3]`. Stored out of
/// line: most rulesets never use them, and the boxes stay at 32 bytes.
pub(crate) type Extras = [u32; 6];

/// Index of the "no constraint" entry of every extras table.
pub(crate) const NO_EXTRAS: u32 = 0;

/// The extras entry of a box, or `None` when it ignores VLAN, VNI and direction.
pub(crate) fn extras_of(b: &GenericBox) -> Option<Extras> {
    if b.extras_any() {
        return None;
    }
    Some([
        b.lo[5] as u32,
        b.lo[6] as u32,
        b.lo[7] as u32,
        (b.hi[5] - b.lo[5]) as u32,
        (b.hi[6] - b.lo[6]) as u32,
        (b.hi[7] - b.lo[7]) as u32,
    ])
}

#[inline(always)]
fn extras_match(e: &Extras, k: &[u32; 3]) -> bool {
    (k[0].wrapping_sub(e[0]) <= e[3])
        & (k[1].wrapping_sub(e[1]) <= e[4])
        & (k[2].wrapping_sub(e[2]) <= e[5])
}

/// Boxes per leaf chunk: a leaf's boxes are tested together, every lane at once, so a scan
/// is a fixed amount of straight-line work instead of a loop with a data-dependent exit.
pub(crate) const LANES: usize = 8;

/// Up to [`LANES`] boxes of one leaf, in priority order. A scan yields a byte mask (byte `l`
/// is `0xff` when lane `l` matches) and `idx[LANES]` is `u32::MAX`, so
/// `idx[mask.trailing_zeros() / 8]` is the first match or "none" without a branch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunk<L> {
    /// The boxes' fields in the layout's lane form.
    pub lanes: L,
    /// Box indices (into the forest's box table), ascending.
    pub idx: [u32; LANES + 1],
    /// Lanes that hold a box (byte mask).
    pub valid: u64,
    /// Lanes whose box also limits VLAN, VNI or direction (checked out of line).
    pub extras: u16,
    /// The leaf continues in the next chunk (only leaves the build could not split).
    pub more: bool,
}

/// A layout of boxes and points the trees work over.
pub(crate) trait Space: Sized {
    /// A packet as the lookup reads it.
    type Key: Copy + Default;
    /// A box as the leaves store it.
    type Rule: Copy;
    /// A chunk's boxes in the form its scan reads.
    type Lanes: Copy + Default;
    /// Widths of the five cut fields.
    const BITS: [u32; 5];
    /// Converts a build box whose extras live at `extras` in the table.
    fn rule(b: &GenericBox, extras: u32) -> Self::Rule;
    /// Converts a packet.
    fn key(p: &[u128; 8]) -> Self::Key;
    /// Child index along cut field `d`: `(key[d] >> shift) & mask`.
    fn child(key: &Self::Key, d: u8, shift: u8, mask: u32) -> usize;
    /// Whether the box contains the point.
    fn matches(r: &Self::Rule, key: &Self::Key, extras: &[Extras]) -> bool;
    /// Stores `r` in lane `l`.
    fn set_lane(lanes: &mut Self::Lanes, l: usize, r: &Self::Rule);
    /// Byte `l` is `0xff` when lane `l` of `c` contains the point, else 0 (lanes without a
    /// box: either).
    fn lanes_match(
        c: &Chunk<Self::Lanes>,
        rules: &[Self::Rule],
        key: &Self::Key,
        extras: &[Extras],
    ) -> u64;
}

/// IPv4 layout: every field fits a `u32`.
pub(crate) struct V4;

/// An IPv4 packet point: the five cut fields, then VLAN, VNI, direction (eight lanes, so a
/// cut field index masked with 7 needs no bounds check).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KeyV4 {
    pub f: [u32; 8],
    /// The five cut fields, each repeated four times: the operand form of the chunk scan.
    pub wide: [[u32; 4]; 5],
}

impl KeyV4 {
    /// From the five cut fields and VLAN, VNI, direction.
    #[inline(always)]
    pub fn new(f: [u32; 8]) -> Self {
        KeyV4 {
            f,
            wide: std::array::from_fn(|d| [f[d]; 4]),
        }
    }
}

/// An IPv4 box in 32 bytes: `lo` and `hi - lo` per field, so a test is one subtract and one
/// compare per field.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
pub(crate) struct RuleV4 {
    src_lo: u32,
    src_span: u32,
    dst_lo: u32,
    dst_span: u32,
    sport_lo: u16,
    sport_span: u16,
    dport_lo: u16,
    dport_span: u16,
    proto_lo: u8,
    proto_span: u8,
    _pad: u16,
    extras: u32,
}

/// IPv4 boxes of a chunk, one array per field (structure of arrays), every field widened to
/// 32 bits: the scan of a chunk is the same subtract-and-compare on every lane, which the
/// compiler turns into 4-wide vector code (SSE2, the x86-64 baseline). `lo` and `span` are
/// stored with their top bit flipped: then `k - lo` comes out flipped too, and the unsigned
/// `k - lo <= span` is a signed compare, the only 32-bit compare SSE2 has.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct LanesV4 {
    lo: [[u32; LANES]; 5],
    span: [[i32; LANES]; 5],
}

impl Default for LanesV4 {
    fn default() -> Self {
        LanesV4 {
            lo: [[0; LANES]; 5],
            span: [[i32::MIN; LANES]; 5],
        }
    }
}

/// Flips the top bit (see [`LanesV4`]).
const BIAS: u32 = 1 << 31;

impl Space for V4 {
    type Key = KeyV4;
    type Rule = RuleV4;
    type Lanes = LanesV4;
    const BITS: [u32; 5] = cut_bits(Family::V4);

    fn rule(b: &GenericBox, extras: u32) -> RuleV4 {
        RuleV4 {
            src_lo: b.lo[0] as u32,
            src_span: (b.hi[0] - b.lo[0]) as u32,
            dst_lo: b.lo[1] as u32,
            dst_span: (b.hi[1] - b.lo[1]) as u32,
            sport_lo: b.lo[2] as u16,
            sport_span: (b.hi[2] - b.lo[2]) as u16,
            dport_lo: b.lo[3] as u16,
            dport_span: (b.hi[3] - b.lo[3]) as u16,
            proto_lo: b.lo[4] as u8,
            proto_span: (b.hi[4] - b.lo[4]) as u8,
            _pad: 0,
            extras,
        }
    }

    fn key(p: &[u128; 8]) -> KeyV4 {
        KeyV4::new(std::array::from_fn(|d| p[d] as u32))
    }

    #[inline(always)]
    fn child(key: &KeyV4, d: u8, shift: u8, mask: u32) -> usize {
        ((key.f[d as usize & 7] >> shift) & mask) as usize
    }

    #[inline(always)]
    fn matches(r: &RuleV4, key: &KeyV4, extras: &[Extras]) -> bool {
        let ok = (key.f[0].wrapping_sub(r.src_lo) <= r.src_span)
            & (key.f[1].wrapping_sub(r.dst_lo) <= r.dst_span)
            & ((key.f[2] as u16).wrapping_sub(r.sport_lo) <= r.sport_span)
            & ((key.f[3] as u16).wrapping_sub(r.dport_lo) <= r.dport_span)
            & ((key.f[4] as u8).wrapping_sub(r.proto_lo) <= r.proto_span);
        ok && (r.extras == NO_EXTRAS
            || extras_match(&extras[r.extras as usize], &[key.f[5], key.f[6], key.f[7]]))
    }

    fn set_lane(c: &mut LanesV4, l: usize, r: &RuleV4) {
        let lo = [
            r.src_lo,
            r.dst_lo,
            r.sport_lo as u32,
            r.dport_lo as u32,
            r.proto_lo as u32,
        ];
        let span = [
            r.src_span,
            r.dst_span,
            r.sport_span as u32,
            r.dport_span as u32,
            r.proto_span as u32,
        ];
        for d in 0..5 {
            c.lo[d][l] = lo[d] ^ BIAS;
            c.span[d][l] = (span[d] ^ BIAS) as i32;
        }
    }

    #[inline(always)]
    fn lanes_match(c: &Chunk<LanesV4>, rules: &[RuleV4], key: &KeyV4, extras: &[Extras]) -> u64 {
        let x = &c.lanes;
        let mut m = lanes8(x, &key.wide);
        if c.extras != 0 {
            m &= extras_lanes(c, rules, key, extras);
        }
        m
    }
}

/// Byte `l` is `0xff` when lane `l` contains the point. The lanes are handled in groups of four,
/// the shape the vectorizer maps onto one SSE2 register each, and every key field comes
/// already repeated four times, in memory: given the key as plain `u32`s, or inlined into the
/// tree walk, the vectorizer mixes lanes and fields and the result is mostly scalar.
#[inline(never)]
fn lanes8(x: &LanesV4, k: &[[u32; 4]; 5]) -> u64 {
    let mut miss = [0u8; LANES];
    for g in 0..LANES / 4 {
        let mut acc = [0i32; 4];
        for d in 0..5 {
            for l in 0..4 {
                let diff = k[d][l].wrapping_sub(x.lo[d][g * 4 + l]) as i32;
                acc[l] |= -((diff > x.span[d][g * 4 + l]) as i32);
            }
        }
        for l in 0..4 {
            miss[g * 4 + l] = acc[l] as u8;
        }
    }
    !u64::from_le_bytes(miss)
}

/// Lanes of `c` whose VLAN/VNI/direction limits admit the key (all others set). Out of line:
/// ClassBench-like policies have none, real ones few.
#[cold]
#[inline(never)]
fn extras_lanes(c: &Chunk<LanesV4>, rules: &[RuleV4], key: &KeyV4, extras: &[Extras]) -> u64 {
    let k = [key.f[5], key.f[6], key.f[7]];
    let mut m = !0u64;
    for l in 0..LANES {
        if c.extras & (1 << l) != 0 {
            let e = rules[c.idx[l] as usize].extras;
            if !extras_match(&extras[e as usize], &k) {
                m &= !(0xff << (8 * l));
            }
        }
    }
    m
}

/// IPv6 layout: `u128` addresses, the other fields as in IPv4.
pub(crate) struct V6;

/// An IPv6 packet point.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KeyV6 {
    addr: [u128; 2],
    f: [u32; 5],
    ext: [u32; 3],
}

/// An IPv6 box.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RuleV6 {
    addr_lo: [u128; 2],
    addr_span: [u128; 2],
    lo: [u32; 3],
    span: [u32; 3],
    extras: u32,
}

impl Space for V6 {
    type Key = KeyV6;
    type Rule = RuleV6;
    /// IPv6 chunks are scanned through the box table (IPv6 policies are small here).
    type Lanes = ();
    const BITS: [u32; 5] = cut_bits(Family::V6);

    fn rule(b: &GenericBox, extras: u32) -> RuleV6 {
        RuleV6 {
            addr_lo: [b.lo[0], b.lo[1]],
            addr_span: [b.hi[0] - b.lo[0], b.hi[1] - b.lo[1]],
            lo: [b.lo[2] as u32, b.lo[3] as u32, b.lo[4] as u32],
            span: [
                (b.hi[2] - b.lo[2]) as u32,
                (b.hi[3] - b.lo[3]) as u32,
                (b.hi[4] - b.lo[4]) as u32,
            ],
            extras,
        }
    }

    fn key(p: &[u128; 8]) -> KeyV6 {
        KeyV6 {
            addr: [p[0], p[1]],
            f: [0, 0, p[2] as u32, p[3] as u32, p[4] as u32],
            ext: [p[5] as u32, p[6] as u32, p[7] as u32],
        }
    }

    #[inline(always)]
    fn child(key: &KeyV6, d: u8, shift: u8, mask: u32) -> usize {
        if d < 2 {
            ((key.addr[d as usize] >> shift) as u32 & mask) as usize
        } else {
            ((key.f[d as usize % 5] >> shift) & mask) as usize
        }
    }

    #[inline(always)]
    fn matches(r: &RuleV6, key: &KeyV6, extras: &[Extras]) -> bool {
        let ok = (key.f[2].wrapping_sub(r.lo[0]) <= r.span[0])
            & (key.f[3].wrapping_sub(r.lo[1]) <= r.span[1])
            & (key.f[4].wrapping_sub(r.lo[2]) <= r.span[2])
            & (key.addr[0].wrapping_sub(r.addr_lo[0]) <= r.addr_span[0])
            & (key.addr[1].wrapping_sub(r.addr_lo[1]) <= r.addr_span[1]);
        ok && (r.extras == NO_EXTRAS || extras_match(&extras[r.extras as usize], &key.ext))
    }

    fn set_lane(_: &mut (), _: usize, _: &RuleV6) {}

    #[inline(always)]
    fn lanes_match(c: &Chunk<()>, rules: &[RuleV6], key: &KeyV6, extras: &[Extras]) -> u64 {
        let mut m = 0u64;
        for l in 0..LANES {
            if c.valid & (1 << (8 * l)) != 0
                && Self::matches(&rules[c.idx[l] as usize], key, extras)
            {
                m |= 0xff << (8 * l);
            }
        }
        m
    }
}
