//! rampart-flow: one connection-tracking table per worker core.
//!
//! No locks, no allocation after [`FlowTable::new`], time passed in by the caller.
//!
//! # How the worker uses it (per burst)
//! 1. [`FlowTable::lookup_burst`] over the parsed keys → `Option<Hit>` per packet
//!    ([`Hit`] = [`FlowHandle`] + [`Direction`]).
//! 2. Hit: check [`Flow::admitted_under`] against the current ruleset generation (if not,
//!    reclassify and [`FlowTable::set_admission`] or [`FlowTable::remove`]); then
//!    [`FlowTable::track`] with [`PacketInfo::from_parsed`] → [`TrackVerdict`].
//! 3. Miss: ICMP errors go to [`FlowTable::lookup_related`] with
//!    `Parsed::icmp_inner`; other packets that [`FlowTable::can_open`] are classified, and
//!    an allowed one is [`FlowTable::insert_admitted`] (rule id + generation + the rule's TCP
//!    strictness) and then tracked — or, for a key the burst lookup just missed, both in one
//!    step with [`FlowTable::open_after_miss`].
//! 4. Once per loop: [`FlowTable::expire_burst`] with a small budget.
//!
//! With `FragmentPolicy::Deliver` in the parser, [`FragmentCache`] lets later fragments
//! follow the verdict their first fragment got (see [`frag`]).
//!
//! Handles are only valid within the burst that produced them. The TCP/UDP/ICMP state
//! machines and strict mode are described in [`state`]; layout, expiry and the full-table
//! eviction policy in [`table`]. [`FlowTable::iter`] and [`FlowTable::stats`] serve
//! `rampartctl flows` and the metrics.

mod config;
mod flow;
pub mod frag;
mod packet;
pub mod state;
pub mod table;

pub use config::{FlowConfig, FlowConfigError, Timeouts, MAX_CAPACITY};
pub use flow::{Admission, Direction, Flow, RuleId};
pub use frag::{FragStats, FragVerdict, FragmentCache};
pub use packet::PacketInfo;
pub use state::{FlowState, TrackError, TrackVerdict};
pub use table::{
    BurstTrack, FlowHandle, FlowStats, FlowTable, Hit, InsertError, Left, MemoryAdvice, Outcome,
    PreparedKey, BURST_MAX, TICK_SHIFT,
};
