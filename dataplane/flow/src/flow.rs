//! The per-flow record: 88 bytes, so with the index (about 6 bytes a flow) the table stays
//! under 96 bytes per flow.

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
}

/// One tracked connection. Read it through [`crate::FlowTable::flow`] or
/// [`crate::FlowTable::iter`].
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct Flow {
    /// Canonical (direction-normalised) key.
    pub(crate) key: FlowKey,
    /// Bytes per direction.
    pub(crate) bytes: [u64; 2],
    /// Packets per direction (32-bit, wrapping; per-rule counters in the pipeline are 64-bit).
    pub(crate) packets: [u32; 2],
    /// Admitting rule; while the slot is free, the next free slot.
    pub(crate) rule: u32,
    /// Low 32 bits of the ruleset generation that admitted the flow.
    pub(crate) generation: u32,
    /// Time of the last accepted packet in table ticks (2^20 ns), wrapping.
    pub(crate) last_seen: u32,
    /// Strict TCP: highest sequence number each direction may send (right window edge the
    /// peer advertised).
    pub(crate) edge: [u32; 2],
    pub(crate) state: FlowState,
    pub(crate) flags: u8,
    /// Window-scale shift per direction: low nibble original, high nibble reply; 0xF = none.
    pub(crate) wscale: u8,
    pub(crate) _pad: u8,
}

const _: () = assert!(core::mem::size_of::<Flow>() == 88);

impl Flow {
    pub(crate) const FREE: Flow = Flow {
        key: FlowKey {
            src: [0; 16],
            dst: [0; 16],
            src_port: 0,
            dst_port: 0,
            proto: 0,
            segment: [0; 3],
        },
        bytes: [0; 2],
        packets: [0; 2],
        rule: 0,
        generation: 0,
        last_seen: 0,
        edge: [0; 2],
        state: FlowState::Free,
        flags: 0,
        wscale: 0xff,
        _pad: 0,
    };

    /// The key in the direction of the packet that created the flow.
    pub fn key(&self) -> FlowKey {
        if self.flags & flag::ORIG_SWAPPED != 0 {
            self.key.reversed()
        } else {
            self.key
        }
    }

    /// Protocol state.
    pub fn state(&self) -> FlowState {
        self.state
    }

    /// The rule that admitted the flow.
    pub fn rule(&self) -> RuleId {
        RuleId(self.rule)
    }

    /// Low 32 bits of the generation that admitted the flow.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// True if the flow was admitted under `generation` (compared on the low 32 bits: a
    /// false match needs 2^32 policy publishes between two packets of one flow).
    #[inline]
    pub fn admitted_under(&self, generation: u64) -> bool {
        self.generation == generation as u32
    }

    /// Packets seen in a direction.
    pub fn packets(&self, dir: Direction) -> u32 {
        self.packets[dir.index()]
    }

    /// Bytes seen in a direction.
    pub fn bytes(&self, dir: Direction) -> u64 {
        self.bytes[dir.index()]
    }

    /// Has seen traffic both ways (TCP: a completed handshake). Assured flows are never
    /// evicted to make room.
    pub fn is_assured(&self) -> bool {
        self.flags & flag::ASSURED != 0
    }

    /// Created mid-stream in loose mode.
    pub fn is_picked_up(&self) -> bool {
        self.flags & flag::PICKED_UP != 0
    }

    /// Last activity in nanoseconds, at the table's 2^20 ns resolution, reconstructed
    /// relative to `now_ns` (valid while the flow is younger than its timeout).
    pub fn last_seen_ns(&self, now_ns: u64) -> u64 {
        let now_t = crate::table::tick(now_ns);
        let age = now_t.wrapping_sub(self.last_seen);
        now_ns.saturating_sub(u64::from(age) << crate::table::TICK_SHIFT)
    }
}
