//! The per-flow record: a 64-byte hot line plus 24 bytes of counters, so with the index
//! (about 6 bytes a flow) the table stays under 96 bytes per flow.

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

/// The hot part of a flow: everything a lookup and a state update touch, in exactly one
/// 64-byte cache line (the array is line-aligned), so a lookup costs one bucket line and one
/// record line.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Record {
    /// Canonical (direction-normalised) key.
    pub(crate) key: FlowKey,
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
    pub(crate) _pad: u8,
}

const _: () = assert!(core::mem::size_of::<Record>() == 64);

/// The cold part: per-direction counters, written by `track`, read by `rampartctl flows`.
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
        key: FlowKey {
            src: [0; 16],
            dst: [0; 16],
            src_port: 0,
            dst_port: 0,
            proto: 0,
            segment: [0; 3],
        },
        last_seen: 0,
        rule: 0,
        generation: 0,
        edge: [0; 2],
        state: FlowState::Free,
        flags: 0,
        wscale: 0xff,
        _pad: 0,
    };
}

/// A read-only view of one tracked connection, from [`crate::FlowTable::flow`] or
/// [`crate::FlowTable::iter`].
#[derive(Debug, Clone, Copy)]
pub struct Flow<'a> {
    pub(crate) rec: &'a Record,
    pub(crate) ctr: &'a Counters,
}

impl Flow<'_> {
    /// The key in the direction of the packet that created the flow.
    pub fn key(&self) -> FlowKey {
        if self.rec.flags & flag::ORIG_SWAPPED != 0 {
            self.rec.key.reversed()
        } else {
            self.rec.key
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
        self.ctr.packets[dir.index()]
    }

    /// Bytes seen in a direction.
    pub fn bytes(&self, dir: Direction) -> u64 {
        self.ctr.bytes[dir.index()]
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
