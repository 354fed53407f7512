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
    /// Cut field `d` of the key shifted right by `shift`, both read from a tree entry `e`
    /// (field in bits 5-7, shift in bits 0-4 and 8-9; see `tree.rs`), truncated to 64 bits;
    /// 0 for field [`LEAF_DIM`].
    fn field_shr(key: &Self::Key, e: u64) -> u64;
    /// A child slot from `(e >> 10) + field_shr(key, e)` (arithmetic shift, wrapping add):
    /// the layout's cut fields decide how many of its bits are exact.
    fn wrap_index(slot: u64) -> usize;
    /// Whether trees of this layout may take masked steps (every cut field fits 32 bits).
    const MASKED_STEPS: bool;
    /// Cut field `d` of the key, `d` read from bits 5-7 of `e` (masked steps only).
    fn field32(key: &Self::Key, e: u64) -> u32;
    /// Whether the box contains the point.
    fn matches(r: &Self::Rule, key: &Self::Key, extras: &[Extras]) -> bool;
    /// The lane form of up to [`LANES`] boxes (`None`: an empty lane).
    fn pack(rules: [Option<&Self::Rule>; LANES]) -> Self::Lanes;
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

/// The cut field number of leaf entries: a key slot that is always 0, so a step from a leaf
/// stays on it (see `tree.rs`).
pub(crate) const LEAF_DIM: usize = 7;

/// An IPv4 packet point: the five cut fields, then zeros (eight lanes, so a cut field index
/// masked with 7 needs no bounds check, and lane [`LEAF_DIM`] is 0).
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyV4 {
    f: [u32; 8],
    /// VLAN, VNI, direction.
    ext: [u32; 3],
}

impl Default for KeyV4 {
    fn default() -> Self {
        KeyV4::new([0; 8])
    }
}

impl KeyV4 {
    /// From the five cut fields and VLAN, VNI, direction.
    #[inline(always)]
    pub fn new(f: [u32; 8]) -> Self {
        KeyV4 {
            f: [f[0], f[1], f[2], f[3], f[4], 0, 0, 0],
            ext: [f[5], f[6], f[7]],
        }
    }

    /// The cut fields in the operand form of the chunk scan, each repeated across a vector
    /// (addresses as 4 × 32 bits, ports and protocol as 8 × 16 bits), top bits flipped (see
    /// [`LanesV4`]). Made at each scan rather than kept in the key: a key of 44 bytes
    /// instead of 128 is cheaper to build and move for every packet than the splats are to
    /// redo for the 1-3 leaves a packet scans.
    #[inline(always)]
    fn wide(&self) -> [simd::V; 5] {
        let f = &self.f;
        [
            simd::splat32(f[0] ^ BIAS32),
            simd::splat32(f[1] ^ BIAS32),
            simd::splat16(f[2] as u16 ^ BIAS16),
            simd::splat16(f[3] as u16 ^ BIAS16),
            simd::splat16(f[4] as u16 ^ BIAS16),
        ]
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

/// IPv4 boxes of a chunk as structure of arrays in SSE2 vectors (the x86-64 baseline):
/// addresses 4 lanes of 32 bits per vector (two vectors per field), ports and protocol 8
/// lanes of 16 bits (one vector per field), so a chunk scan is 7 subtract-compare pairs, and
/// the masks narrow to one byte per lane with two saturating packs.
///
/// A box contains the key when `key - lo <= span` (unsigned, wrapping) in every field. SSE2
/// only compares signed, so keys, `lo` and `span` are stored with their top bit flipped:
/// `(key ^ B) - (lo ^ B) = key - lo`, and flipping both sides of an unsigned compare makes
/// it a signed one: lane misses when `(key - lo) ^ B > span ^ B`. The key is flipped once
/// per packet, so the scan computes `(key ^ B) - lo` with `lo` stored plain.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct LanesV4 {
    /// Source lanes 0-3, 4-7, then destination lanes 0-3, 4-7.
    lo32: [simd::V; 4],
    span32: [simd::V; 4],
    /// Source port, destination port, protocol (8 lanes each).
    lo16: [simd::V; 3],
    span16: [simd::V; 3],
}

impl Default for LanesV4 {
    fn default() -> Self {
        V4::pack([None; LANES])
    }
}

/// Top bits (see [`LanesV4`]).
const BIAS32: u32 = 1 << 31;
const BIAS16: u16 = 1 << 15;

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
    fn field_shr(key: &KeyV4, e: u64) -> u64 {
        // IPv4 shifts are below 32: the low 5 bits are the whole shift, and a 32-bit shift
        // by a register reads only those.
        key.f[(e as u8 >> 5) as usize].wrapping_shr(e as u32) as u64
    }

    const MASKED_STEPS: bool = true;

    #[inline(always)]
    fn field32(key: &KeyV4, e: u64) -> u32 {
        key.f[(e as u8 >> 5) as usize]
    }

    /// Exact: `lo >> shift` is below 2^32, so `base - (lo >> shift)` fits the entry's 54
    /// bits and comes back whole.
    #[inline(always)]
    fn wrap_index(slot: u64) -> usize {
        slot as usize
    }

    #[inline(always)]
    fn matches(r: &RuleV4, key: &KeyV4, extras: &[Extras]) -> bool {
        let ok = (key.f[0].wrapping_sub(r.src_lo) <= r.src_span)
            & (key.f[1].wrapping_sub(r.dst_lo) <= r.dst_span)
            & ((key.f[2] as u16).wrapping_sub(r.sport_lo) <= r.sport_span)
            & ((key.f[3] as u16).wrapping_sub(r.dport_lo) <= r.dport_span)
            & ((key.f[4] as u8).wrapping_sub(r.proto_lo) <= r.proto_span);
        ok && (r.extras == NO_EXTRAS || extras_match(&extras[r.extras as usize], &key.ext))
    }

    fn pack(rules: [Option<&RuleV4>; LANES]) -> LanesV4 {
        // An empty lane: `lo` 0 and the smallest span, so it matches only a zero key (the
        // chunk's `valid` mask drops it anyway).
        let f32 = |g: usize, lo: fn(&RuleV4) -> u32, span: fn(&RuleV4) -> u32| {
            let l: [u32; 4] = std::array::from_fn(|i| rules[g * 4 + i].map_or(0, lo));
            let s: [u32; 4] = std::array::from_fn(|i| rules[g * 4 + i].map_or(0, span) ^ BIAS32);
            (simd::from32(l), simd::from32(s))
        };
        let f16 = |lo: fn(&RuleV4) -> u16, span: fn(&RuleV4) -> u16| {
            let l: [u16; 8] = std::array::from_fn(|i| rules[i].map_or(0, lo));
            let s: [u16; 8] = std::array::from_fn(|i| rules[i].map_or(0, span) ^ BIAS16);
            (simd::from16(l), simd::from16(s))
        };
        let (s0, s0s) = f32(0, |r| r.src_lo, |r| r.src_span);
        let (s1, s1s) = f32(1, |r| r.src_lo, |r| r.src_span);
        let (d0, d0s) = f32(0, |r| r.dst_lo, |r| r.dst_span);
        let (d1, d1s) = f32(1, |r| r.dst_lo, |r| r.dst_span);
        let (sp, sps) = f16(|r| r.sport_lo, |r| r.sport_span);
        let (dp, dps) = f16(|r| r.dport_lo, |r| r.dport_span);
        let (pr, prs) = f16(|r| r.proto_lo as u16, |r| r.proto_span as u16);
        LanesV4 {
            lo32: [s0, s1, d0, d1],
            span32: [s0s, s1s, d0s, d1s],
            lo16: [sp, dp, pr],
            span16: [sps, dps, prs],
        }
    }

    #[inline(always)]
    fn lanes_match(c: &Chunk<LanesV4>, rules: &[RuleV4], key: &KeyV4, extras: &[Extras]) -> u64 {
        let mut m = lanes8(&c.lanes, &key.wide());
        if c.extras != 0 {
            m &= extras_lanes(c, rules, key, extras);
        }
        m
    }
}

/// Byte `l` is `0xff` when lane `l` contains the point (see [`LanesV4`]).
#[inline(always)]
fn lanes8(x: &LanesV4, k: &[simd::V; 5]) -> u64 {
    use simd::*;
    let miss32 = |k: V, lo: V, span: V| gt32(sub32(k, lo), span);
    let miss16 = |k: V, lo: V, span: V| gt16(sub16(k, lo), span);
    let g0 = or(
        miss32(k[0], x.lo32[0], x.span32[0]),
        miss32(k[1], x.lo32[2], x.span32[2]),
    );
    let g1 = or(
        miss32(k[0], x.lo32[1], x.span32[1]),
        miss32(k[1], x.lo32[3], x.span32[3]),
    );
    let ports = or(
        or(
            miss16(k[2], x.lo16[0], x.span16[0]),
            miss16(k[3], x.lo16[1], x.span16[1]),
        ),
        miss16(k[4], x.lo16[2], x.span16[2]),
    );
    !low_bytes(or(narrow32(g0, g1), ports))
}

/// The few SSE2 operations the chunk scan uses (through safe_arch's safe wrappers; SSE2 is
/// part of the x86-64 baseline), with a portable fallback elsewhere.
mod simd {
    #[cfg(target_arch = "x86_64")]
    mod imp {
        use safe_arch::*;

        pub type V = m128i;

        #[inline(always)]
        pub fn splat32(x: u32) -> V {
            set_splat_i32_m128i(x as i32)
        }
        #[inline(always)]
        pub fn splat16(x: u16) -> V {
            set_splat_i16_m128i(x as i16)
        }
        pub fn from32(a: [u32; 4]) -> V {
            m128i::from(a.map(|x| x as i32))
        }
        pub fn from16(a: [u16; 8]) -> V {
            m128i::from(a)
        }
        #[inline(always)]
        pub fn sub32(a: V, b: V) -> V {
            sub_i32_m128i(a, b)
        }
        #[inline(always)]
        pub fn sub16(a: V, b: V) -> V {
            sub_i16_m128i(a, b)
        }
        /// Signed `a > b` per 32-bit lane (all ones or zero).
        #[inline(always)]
        pub fn gt32(a: V, b: V) -> V {
            cmp_gt_mask_i32_m128i(a, b)
        }
        /// Signed `a > b` per 16-bit lane.
        #[inline(always)]
        pub fn gt16(a: V, b: V) -> V {
            cmp_gt_mask_i16_m128i(a, b)
        }
        #[inline(always)]
        pub fn or(a: V, b: V) -> V {
            bitor_m128i(a, b)
        }
        /// Two vectors of 32-bit masks as one of 16-bit masks (`a`'s lanes first).
        #[inline(always)]
        pub fn narrow32(a: V, b: V) -> V {
            pack_i32_to_i16_m128i(a, b)
        }
        /// Eight 16-bit masks as eight bytes (lane 0 in the low byte).
        #[inline(always)]
        pub fn low_bytes(a: V) -> u64 {
            get_i64_from_m128i_s(pack_i16_to_i8_m128i(a, a)) as u64
        }
    }

    /// The portable form; on x86-64 compiled for tests only, which check it against SSE2.
    #[cfg(any(not(target_arch = "x86_64"), test))]
    pub(super) mod portable {
        /// 16 bytes, read as 4 × 32 or 8 × 16 bits (little-endian lane order).
        pub type V = [u8; 16];

        fn l32(a: V) -> [i32; 4] {
            std::array::from_fn(|i| i32::from_le_bytes(a[4 * i..4 * i + 4].try_into().unwrap()))
        }
        fn l16(a: V) -> [i16; 8] {
            std::array::from_fn(|i| i16::from_le_bytes(a[2 * i..2 * i + 2].try_into().unwrap()))
        }
        fn v32(a: [i32; 4]) -> V {
            let mut v = [0; 16];
            for (i, x) in a.iter().enumerate() {
                v[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
            }
            v
        }
        fn v16(a: [i16; 8]) -> V {
            let mut v = [0; 16];
            for (i, x) in a.iter().enumerate() {
                v[2 * i..2 * i + 2].copy_from_slice(&x.to_le_bytes());
            }
            v
        }
        pub fn splat32(x: u32) -> V {
            v32([x as i32; 4])
        }
        pub fn splat16(x: u16) -> V {
            v16([x as i16; 8])
        }
        pub fn from32(a: [u32; 4]) -> V {
            v32(a.map(|x| x as i32))
        }
        pub fn from16(a: [u16; 8]) -> V {
            v16(a.map(|x| x as i16))
        }
        pub fn sub32(a: V, b: V) -> V {
            let (a, b) = (l32(a), l32(b));
            v32(std::array::from_fn(|i| a[i].wrapping_sub(b[i])))
        }
        pub fn sub16(a: V, b: V) -> V {
            let (a, b) = (l16(a), l16(b));
            v16(std::array::from_fn(|i| a[i].wrapping_sub(b[i])))
        }
        pub fn gt32(a: V, b: V) -> V {
            let (a, b) = (l32(a), l32(b));
            v32(std::array::from_fn(|i| -((a[i] > b[i]) as i32)))
        }
        pub fn gt16(a: V, b: V) -> V {
            let (a, b) = (l16(a), l16(b));
            v16(std::array::from_fn(|i| -((a[i] > b[i]) as i16)))
        }
        pub fn or(a: V, b: V) -> V {
            std::array::from_fn(|i| a[i] | b[i])
        }
        /// Inputs are masks (0 or -1), so saturation never applies.
        pub fn narrow32(a: V, b: V) -> V {
            let (a, b) = (l32(a), l32(b));
            v16(std::array::from_fn(|i| {
                if i < 4 {
                    a[i] as i16
                } else {
                    b[i - 4] as i16
                }
            }))
        }
        pub fn low_bytes(a: V) -> u64 {
            let a = l16(a);
            u64::from_le_bytes(a.map(|x| x as u8))
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    use portable as imp;

    pub use imp::*;

    #[cfg(all(test, target_arch = "x86_64"))]
    mod tests {
        use super::{imp as sse, portable};

        fn bytes(v: sse::V) -> [u8; 16] {
            <[u8; 16]>::from(v)
        }

        /// Every operation of the scan gives the same bits in both forms, on values that
        /// cross the signed/unsigned boundaries.
        #[test]
        fn portable_matches_sse2() {
            let vals32 = [0u32, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x1234_5678];
            let vals16 = [0u16, 1, 0x7fff, 0x8000, 0xffff, 0x1234];
            for (i, &a) in vals32.iter().enumerate() {
                for &b in &vals32[i..] {
                    let x32 = [a, b, a ^ b, b.wrapping_sub(a)];
                    let y32 = [b, a, a, b];
                    let x16 = [a as u16, b as u16, 0x8000, 0x7fff, 1, 0, 0xffff, a as u16];
                    let y16 = vals16.map(|v| v ^ b as u16);
                    let y16 = [y16[0], y16[1], y16[2], y16[3], y16[4], y16[5], 3, 0x8001];
                    let (sa, sb) = (sse::from32(x32), sse::from32(y32));
                    let (pa, pb) = (portable::from32(x32), portable::from32(y32));
                    assert_eq!(bytes(sa), pa);
                    assert_eq!(bytes(sse::sub32(sa, sb)), portable::sub32(pa, pb));
                    assert_eq!(bytes(sse::gt32(sa, sb)), portable::gt32(pa, pb));
                    assert_eq!(bytes(sse::or(sa, sb)), portable::or(pa, pb));
                    assert_eq!(bytes(sse::splat32(a)), portable::splat32(a));
                    let (sc, sd) = (sse::from16(x16), sse::from16(y16));
                    let (pc, pd) = (portable::from16(x16), portable::from16(y16));
                    assert_eq!(bytes(sc), pc);
                    assert_eq!(bytes(sse::sub16(sc, sd)), portable::sub16(pc, pd));
                    assert_eq!(bytes(sse::gt16(sc, sd)), portable::gt16(pc, pd));
                    assert_eq!(bytes(sse::splat16(b as u16)), portable::splat16(b as u16));
                    // Narrowing and packing see masks (0 or all ones) only.
                    let (m1, m2) = (sse::gt32(sa, sb), sse::gt32(sb, sa));
                    let (q1, q2) = (portable::gt32(pa, pb), portable::gt32(pb, pa));
                    let n = sse::narrow32(m1, m2);
                    assert_eq!(bytes(n), portable::narrow32(q1, q2));
                    let m = sse::or(n, sse::gt16(sc, sd));
                    let q = portable::or(portable::narrow32(q1, q2), portable::gt16(pc, pd));
                    assert_eq!(sse::low_bytes(m), portable::low_bytes(q));
                }
            }
        }
    }
}

/// Lanes of `c` whose VLAN/VNI/direction limits admit the key (all others set). Out of line:
/// ClassBench-like policies have none, real ones few.
#[cold]
#[inline(never)]
fn extras_lanes(c: &Chunk<LanesV4>, rules: &[RuleV4], key: &KeyV4, extras: &[Extras]) -> u64 {
    let k = key.ext;
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
    fn field_shr(key: &KeyV6, e: u64) -> u64 {
        let d = (e as u8 >> 5) as usize;
        let shift = (e as u32 & 31) | (e as u32 >> 3 & 0x60);
        match d {
            0 | 1 => (key.addr[d] >> shift) as u64,
            2..=4 => (key.f[d] >> shift) as u64,
            _ => 0,
        }
    }

    /// Addresses do not fit 32 bits: IPv6 trees take plain steps only.
    const MASKED_STEPS: bool = false;

    /// The low 32 bits of the field (never used: see [`Space::MASKED_STEPS`]).
    fn field32(key: &KeyV6, e: u64) -> u32 {
        match (e as u8 >> 5) as usize {
            d @ 0..=1 => key.addr[d] as u32,
            d @ 2..=4 => key.f[d],
            _ => 0,
        }
    }

    /// `lo >> shift` may need up to 128 bits; the slot is below 2^32 and the sum is right
    /// modulo 2^54.
    #[inline(always)]
    fn wrap_index(slot: u64) -> usize {
        (slot & ((1 << 54) - 1)) as usize
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

    fn pack(_: [Option<&RuleV6>; LANES]) {}

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
