//! rampart-dataplane: the worker poll loop (STYLE.md §4, §5).
//!
//! A [`Worker`] owns one RX and one TX queue on every port, its scratch bursts and its
//! [`WorkerCounters`]. Each poll iteration reads the TSC once, then for every port:
//! receive a burst → run the [`BurstStage`] (the firewall pipeline plugs in here; the raw
//! forwarder is [`ForwardAll`]) → route each packet by its [`Verdict`] → transmit to the paired
//! port (or back out of the ingress port for replies) → free and count what could not be sent.

mod counters;
pub mod firewall;
mod stage;
mod worker;

pub use counters::{
    BurstHistogram, Counter, CounterSnapshot, HistogramSnapshot, PortCounters, PortSnapshot,
    WorkerCounters,
};
pub use firewall::{
    AskError, Firewall, FirewallCounters, FirewallSettings, FirewallSnapshot, FlowRow, Inspector,
    LogQueue, Question, RuleLog,
};
pub use stage::{BurstCtx, BurstStage, DropReason, ForwardAll, Verdict};
pub use worker::{assign_queues, PortIndex, Worker, WorkerId, WorkerQueues, WorkerSettings, BURST};

/// Most ports one appliance handles (counters are fixed arrays indexed by [`PortIndex`]).
pub const MAX_PORTS: usize = 16;
