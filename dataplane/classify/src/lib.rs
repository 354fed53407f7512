//! rampart-classify: compiles a validated policy into an immutable [`Ruleset`] and classifies
//! packets against it in bursts; also the RCU [`table`] handle where control and workers meet.
//!
//! Algorithm (see `docs/policy.md` and BENCHMARKS.md): every rule becomes boxes (one range per
//! field); boxes are split into up to four groups by whether their source and destination
//! ranges are narrow (CutSplit/EffiCuts style), groups are merged where one tree is
//! estimated to cost less than two, and each gets a HiCuts-style decision tree with
//! power-of-two cuts and small leaves checked in full. [`linear::Linear`] is the
//! first-match oracle the trees are tested against.

pub mod classbench;
mod delta;
mod fields;
mod forest;
mod hits;
mod ids;
pub mod linear;
mod ruleset;
mod space;
pub mod table;
mod tree;
mod warnings;

pub use delta::{
    DeltaTest, Recheck, RuleCheck, LINEAR_DELTA_RULES, MAX_DELTA_RULES, MIN_DELTA_RULES,
};
pub use fields::{Match, PacketDirection, PacketFields, RuleIndex};
pub use hits::HIT_ROWS;
pub use rampart_config::policy::{Action, Family, RuleId, TcpStrictness};
pub use ruleset::{
    BuildStats, CompileError, Explanation, RuleExplanation, RuleMeta, Ruleset, MAX_BOXES,
};
pub use table::{Current, NotQuiescent, RuleHits, TableHandle, TableReader};
pub use warnings::Warning;
