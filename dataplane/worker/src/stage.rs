//! The pluggable part of the poll loop: a [`BurstStage`] decides a [`Verdict`] per packet.

use crate::worker::{PortIndex, WorkerId};
use rampart_dpdk::MbufBurst;

/// Why a packet was dropped by a stage. One enum for every drop counter (STYLE.md §6);
/// extend it here (and in [`DropReason::ALL`]) when a stage learns a new reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// The frame could not be parsed (truncated, bad header).
    Malformed = 0,
    /// The policy denied it.
    Policy = 1,
    /// Any other stage decision.
    Stage = 2,
    /// A flow's state machine refused it (e.g. bad TCP flags, out of window).
    Conntrack = 3,
    /// It could not open a flow and belongs to none (e.g. a mid-stream TCP segment).
    NoFlow = 4,
    /// Allowed, but the flow table was full and nothing could be evicted.
    TableFull = 5,
    /// A non-first IP fragment (no ports to classify by).
    Fragment = 6,
}

impl DropReason {
    /// Number of reasons (size of the counter arrays).
    pub const COUNT: usize = 7;
    /// Every reason, in counter order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Malformed,
        DropReason::Policy,
        DropReason::Stage,
        DropReason::Conntrack,
        DropReason::NoFlow,
        DropReason::TableFull,
        DropReason::Fragment,
    ];

    /// A short name for stats and metrics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Policy => "policy",
            DropReason::Stage => "stage",
            DropReason::Conntrack => "conntrack",
            DropReason::NoFlow => "no_flow",
            DropReason::TableFull => "table_full",
            DropReason::Fragment => "fragment",
        }
    }
}

/// What happens to one packet after the stages ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit to the paired port.
    Forward,
    /// Transmit back out of the ingress port (a reply the stage built in place, e.g. TCP RST).
    Reply,
    /// Free it and count the reason.
    Drop(DropReason),
}

/// Facts about the burst being processed, computed once per burst.
#[derive(Debug, Clone, Copy)]
pub struct BurstCtx {
    /// This worker.
    pub worker: WorkerId,
    /// The port the burst came in on.
    pub ingress: PortIndex,
    /// The paired port forwarded packets go out on.
    pub egress: PortIndex,
    /// TSC read once at the top of this poll iteration.
    pub now_tsc: u64,
}

/// A processing stage over a whole burst (parse → conntrack → classify slot in here).
///
/// `verdicts` has exactly `pkts.len()` entries, all preset to [`Verdict::Forward`]; the stage
/// overwrites what it decides otherwise and may rewrite packets in place. It must not allocate,
/// lock or make syscalls.
pub trait BurstStage: Send {
    /// Decide a verdict for every packet of the burst.
    fn process<const N: usize>(
        &mut self,
        ctx: &BurstCtx,
        pkts: &mut MbufBurst<N>,
        verdicts: &mut [Verdict],
    );

    /// Called once per poll iteration after every port was served (the quiescent point for RCU
    /// readers, and the place for timer work such as flow expiry). Default: nothing.
    fn end_of_poll(&mut self, _now_tsc: u64) {}
}

/// The raw forwarder: every packet goes to the paired port unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct ForwardAll;

impl BurstStage for ForwardAll {
    #[inline(always)]
    fn process<const N: usize>(&mut self, _: &BurstCtx, _: &mut MbufBurst<N>, _: &mut [Verdict]) {}
}
