//! The per-flow record: one 64-byte line holding a compact key, the state and the counters.
//! An IPv4 flow lives entirely in it; the first 12 bytes of an IPv6 flow's two addresses
//! are kept apart (24 bytes, see [`crate::table`]), so with the index (about 6 bytes a flow)
//! the table stays under 96 bytes per flow, and an IPv4 lookup touches one record line.

use rampart_wire::FlowKey;

use crate::state::FlowState;

/// Which way a packet travels relative to the packet that created its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Direction {
    /// Same direction as the first packet.
    Original = 0,
    /// The reverse direction.
    Reply = 1,
}

impl Direction {
    /// 0 for Original, 1 for Reply (index into per-direction counters).
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// The other direction.
    #[inline]
    pub fn flip(self) -> Self {
        match self {
            Direction::Original => Direction::Reply,
            Direction::Reply => Direction::Original,
        }
    }
}

/// The rule that admitted a flow (from the classifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RuleId(pub u32);

/// Why a flow may exist and how it is tracked: stamped on it by
/// [`crate::FlowTable::insert_admitted`] and [`crate::FlowTable::readmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Admission {
    /// The admitting rule.
    pub rule: RuleId,
    /// The ruleset generation it was admitted under.
    pub generation: u64,
    /// Check TCP segments against the advertised windows (the rule's TCP strictness; see
    /// [`crate::state`]). Window edges are learned either way, so a flow re-admitted as strict
    /// is checked from its next segment on.
    pub strict_tcp: bool,
}

pub(crate) mod flag {
    /// The originator is the canonical key's destination side.
    pub const ORIG_SWAPPED: u8 = 1 << 0;
    /// Seen traffic both ways (TCP: handshake completed); never evicted under pressure.
    pub const ASSURED: u8 = 1 << 1;
    /// Original side sent FIN.
    pub const FIN_ORIG: u8 = 1 << 2;
    /// Reply side sent FIN.
    pub const FIN_REPLY: u8 = 1 << 3;
    /// `edge[0]` is known.
    pub const EDGE_ORIG: u8 = 1 << 4;
    /// `edge[1]` is known.
    pub const EDGE_REPLY: u8 = 1 << 5;
    /// Created mid-stream in loose mode.
    pub const PICKED_UP: u8 = 1 << 6;
    /// TCP sequence/window checks apply to this flow (the admitting rule asked for them).
    pub const STRICT: u8 = 1 << 7;
}

/// [`Record::family`] of an IPv4 flow (both canonical addresses IPv4-mapped): the whole key
/// is in the record.
pub(crate) const FAMILY_V4: u8 = 0;
/// [`Record::family`] of an IPv6 flow: the record's key holds the last 4 bytes of each
/// address, the table's IPv6 address array the first 12 of each.
pub(crate) const FAMILY_V6: u8 = 1;

/// The compact canonical key of a record: 16 bytes, compared as two words.
///
/// `addrs` is the last four bytes of the source address (as a little-endian `u32`) in the
/// high half and those of the destination in the low half — for an IPv4 flow the two
/// addresses, for an IPv6 flow a part of them (with [`Record::family`] and the full
/// addresses deciding). `tail` is the ports as they sit on the wire (the four bytes read as
/// one little-endian `u32`, see [`wire_ports`]), then the protocol and the segment as in
/// [`FlowKey::words`]' last word: the parser's fast path hands the ports over without
/// byte swaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub(crate) struct SlotKey {
    pub(crate) addrs: u64,
    pub(crate) tail: u64,
}

impl SlotKey {
    /// The IP protocol number.
    #[inline(always)]
    pub(crate) fn proto(&self) -> u8 {
        (self.tail >> 32) as u8
    }

    /// The key of an IPv4 `FlowKey` (canonical or not; segment 0).
    #[cfg(test)]
    pub(crate) fn v4(src: [u8; 4], dst: [u8; 4], proto: u8, src_port: u16, dst_port: u16) -> Self {
        SlotKey {
            addrs: u64::from(u32::from_le_bytes(src)) << 32 | u64::from(u32::from_le_bytes(dst)),
            tail: u64::from(wire_ports(src_port, dst_port)) | u64::from(proto) << 32,
        }
    }

    /// The full key: for an IPv6 flow `v6` holds the first 12 bytes of the source address
    /// then those of the destination (ignored for IPv4).
    pub(crate) fn full(&self, family: u8, v6: &[u8; 24]) -> FlowKey {
        let t = self.tail.to_le_bytes();
        let (src, dst) = if family == FAMILY_V4 {
            (
                rampart_wire::map_v4(((self.addrs >> 32) as u32).to_le_bytes()),
                rampart_wire::map_v4((self.addrs as u32).to_le_bytes()),
            )
        } else {
            let mut a = [[0u8; 16]; 2];
            a[0][..12].copy_from_slice(&v6[..12]);
            a[0][12..].copy_from_slice(&((self.addrs >> 32) as u32).to_le_bytes());
            a[1][..12].copy_from_slice(&v6[12..]);
            a[1][12..].copy_from_slice(&(self.addrs as u32).to_le_bytes());
            (a[0], a[1])
        };
        FlowKey {
            src,
            dst,
            src_port: u16::from_be_bytes([t[0], t[1]]),
            dst_port: u16::from_be_bytes([t[2], t[3]]),
            proto: t[4],
            segment: [t[5], t[6], t[7]],
        }
    }
}

const _: () = assert!(core::mem::size_of::<SlotKey>() == 16);

/// Two ports as they sit on the wire (big-endian, source first), read as one little-endian
/// `u32`: the low 32 bits of [`SlotKey::tail`].
#[inline(always)]
pub(crate) fn wire_ports(src_port: u16, dst_port: u16) -> u32 {
    let (s, d) = (src_port.to_be_bytes(), dst_port.to_be_bytes());
    u32::from_le_bytes([s[0], s[1], d[0], d[1]])
}

/// A flow: everything a lookup, a state update and the counters touch, in exactly one
/// 64-byte cache line (the array is line-aligned), so a lookup of an established IPv4 flow
/// costs one bucket line and one record line.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Record {
    /// Canonical (direction-normalised) key, compact (see [`SlotKey`]).
    pub(crate) key: SlotKey,
    /// Time of the last accepted packet in table ticks (2^20 ns), wrapping.
    pub(crate) last_seen: u32,
    /// Admitting rule; while the slot is free, the next free slot.
    pub(crate) rule: u32,
    /// Low 32 bits of the ruleset generation that admitted the flow.
    pub(crate) generation: u32,
    /// Strict TCP: highest sequence number each direction may send (right window edge the
    /// peer advertised).
    pub(crate) edge: [u32; 2],
    pub(crate) state: FlowState,
    pub(crate) flags: u8,
    /// Window-scale shift per direction: low nibble original, high nibble reply; 0xF = none.
    pub(crate) wscale: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`]: the key compare checks it, so an IPv6 flow whose
    /// compact key equals an IPv4 flow's never matches it.
    pub(crate) family: u8,
    /// Written by `track`, read by `rampartctl flows`.
    pub(crate) counters: Counters,
}

const _: () = assert!(core::mem::size_of::<Record>() == 64);

/// Per-direction counters.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct Counters {
    pub(crate) bytes: [u64; 2],
    /// 32-bit, wrapping; per-rule counters in the pipeline are 64-bit.
    pub(crate) packets: [u32; 2],
}

const _: () = assert!(core::mem::size_of::<Counters>() == 24);

impl Record {
    pub(crate) const FREE: Record = Record {
        key: SlotKey { addrs: 0, tail: 0 },
        last_seen: 0,
        rule: 0,
        generation: 0,
        edge: [0; 2],
        state: FlowState::Free,
        flags: 0,
        wscale: 0xff,
        family: FAMILY_V4,
        counters: Counters {
            bytes: [0; 2],
            packets: [0; 2],
        },
    };
}

/// A read-only view of one tracked connection, from [`crate::FlowTable::flow`] or
/// [`crate::FlowTable::iter`].
#[derive(Debug, Clone, Copy)]
pub struct Flow<'a> {
    pub(crate) rec: &'a Record,
    /// The first 12 bytes of the flow's IPv6 addresses (unused for IPv4).
    pub(crate) v6: &'a [u8; 24],
}

impl Flow<'_> {
    /// The key in the direction of the packet that created the flow.
    pub fn key(&self) -> FlowKey {
        let k = self.rec.key.full(self.rec.family, self.v6);
        if self.rec.flags & flag::ORIG_SWAPPED != 0 {
            k.reversed()
        } else {
            k
        }
    }

    /// Protocol state.
    pub fn state(&self) -> FlowState {
        self.rec.state
    }

    /// The rule that admitted the flow.
    pub fn rule(&self) -> RuleId {
        RuleId(self.rec.rule)
    }

    /// Low 32 bits of the generation that admitted the flow.
    pub fn generation(&self) -> u32 {
        self.rec.generation
    }

    /// True if the flow was admitted under `generation` (compared on the low 32 bits: a
    /// false match needs 2^32 policy publishes between two packets of one flow).
    #[inline]
    pub fn admitted_under(&self, generation: u64) -> bool {
        self.rec.generation == generation as u32
    }

    /// Packets seen in a direction (32-bit, wrapping).
    pub fn packets(&self, dir: Direction) -> u32 {
        self.rec.counters.packets[dir.index()]
    }

    /// Bytes seen in a direction.
    pub fn bytes(&self, dir: Direction) -> u64 {
        self.rec.counters.bytes[dir.index()]
    }

    /// Has seen traffic both ways (TCP: a completed handshake). Assured flows are never
    /// evicted to make room.
    pub fn is_assured(&self) -> bool {
        self.rec.flags & flag::ASSURED != 0
    }

    /// Created mid-stream in loose mode.
    pub fn is_picked_up(&self) -> bool {
        self.rec.flags & flag::PICKED_UP != 0
    }

    /// TCP sequence/window checks apply to this flow.
    pub fn is_strict_tcp(&self) -> bool {
        self.rec.flags & flag::STRICT != 0
    }

    /// Last activity in nanoseconds, at the table's 2^20 ns resolution, reconstructed
    /// relative to `now_ns` (valid while the flow is younger than its timeout).
    pub fn last_seen_ns(&self, now_ns: u64) -> u64 {
        let now_t = crate::table::tick(now_ns);
        let age = now_t.wrapping_sub(self.rec.last_seen);
        now_ns.saturating_sub(u64::from(age) << crate::table::TICK_SHIFT)
    }
}
