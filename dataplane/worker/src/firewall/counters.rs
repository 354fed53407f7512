//! Counters of the firewall stage, one set per worker (single writer, read by the stats thread).

use crate::counters::Counter;
use rampart_flow::{FlowStats, TrackError};
use rampart_wire::ParseError;

/// What the firewall stage did, per worker. Every field has exactly one writer: the worker.
#[derive(Debug)]
#[repr(align(64))]
pub struct FirewallCounters {
    /// Malformed frames, by parse error (indexed by [`ParseError::index`]).
    pub parse: [Counter; ParseError::COUNT],
    /// Packets a flow's state machine refused, by reason ([`TrackError::index`]).
    pub track: [Counter; TrackError::COUNT],
    /// Packets forwarded on an existing flow (no classification).
    pub established: Counter,
    /// Flows created after an `allow` verdict.
    pub new_flows: Counter,
    /// ICMP errors forwarded because they relate to a tracked flow.
    pub related: Counter,
    /// Non-IP frames passed through (ARP, with the pass policy).
    pub passed_non_ip: Counter,
    /// Packets that could not open a flow and matched none (e.g. a mid-stream TCP segment).
    pub no_flow: Counter,
    /// Packets classified `drop` (or `reject` whose reply could not be built).
    pub denied: Counter,
    /// Packets answered with a TCP RST or an ICMP unreachable.
    pub rejected: Counter,
    /// Flows re-checked after a ruleset generation change.
    pub revalidated: Counter,
    /// Of those, kept without classifying: the rules up to their own did not change.
    pub revalidated_unchanged: Counter,
    /// Of those, kept without classifying because no rule that changed before their own
    /// can match them: decided from the rule and stamp in the flow-table record check
    /// (`Ruleset::kept_rule`), or by testing the few rules that changed before it.
    pub revalidated_delta: Counter,
    /// Flows cut because the new ruleset no longer allows them.
    pub cut: Counter,
    /// Monitor (dry-run) rules that matched: what would have been enforced.
    pub monitor_hits: Counter,
    /// New flows refused because the table was full and nothing could be evicted.
    pub table_full: Counter,
    /// Rule-log records handed to the log thread.
    pub logs_emitted: Counter,
    /// Rule-log records dropped by the rate limit or a full log queue.
    pub logs_suppressed: Counter,
    /// Flows in the table (gauge, refreshed once per poll).
    pub flows: Counter,
    /// Flow-table evictions (from the table's own statistics).
    pub flow_evictions: Counter,
    /// Flows expired by timeout.
    pub flow_expired: Counter,
    /// Generation of the ruleset this worker last used.
    pub generation: Counter,
}

impl Default for FirewallCounters {
    fn default() -> Self {
        FirewallCounters {
            parse: std::array::from_fn(|_| Counter::default()),
            track: std::array::from_fn(|_| Counter::default()),
            established: Counter::default(),
            new_flows: Counter::default(),
            related: Counter::default(),
            passed_non_ip: Counter::default(),
            no_flow: Counter::default(),
            denied: Counter::default(),
            rejected: Counter::default(),
            revalidated: Counter::default(),
            revalidated_unchanged: Counter::default(),
            revalidated_delta: Counter::default(),
            cut: Counter::default(),
            monitor_hits: Counter::default(),
            table_full: Counter::default(),
            logs_emitted: Counter::default(),
            logs_suppressed: Counter::default(),
            flows: Counter::default(),
            flow_evictions: Counter::default(),
            flow_expired: Counter::default(),
            generation: Counter::default(),
        }
    }
}

impl FirewallCounters {
    /// Overwrite the gauges that mirror the flow table (single writer, so a plain store).
    pub(crate) fn set_flow_stats(&self, s: &FlowStats) {
        self.flows.set(u64::from(s.len));
        self.flow_evictions.set(s.evictions);
        self.flow_expired.set(s.expired);
    }

    /// A plain copy, for stats and metrics.
    pub fn snapshot(&self) -> FirewallSnapshot {
        FirewallSnapshot {
            parse: std::array::from_fn(|i| self.parse[i].get()),
            track: std::array::from_fn(|i| self.track[i].get()),
            established: self.established.get(),
            new_flows: self.new_flows.get(),
            related: self.related.get(),
            passed_non_ip: self.passed_non_ip.get(),
            no_flow: self.no_flow.get(),
            denied: self.denied.get(),
            rejected: self.rejected.get(),
            revalidated: self.revalidated.get(),
            revalidated_unchanged: self.revalidated_unchanged.get(),
            revalidated_delta: self.revalidated_delta.get(),
            cut: self.cut.get(),
            monitor_hits: self.monitor_hits.get(),
            table_full: self.table_full.get(),
            logs_emitted: self.logs_emitted.get(),
            logs_suppressed: self.logs_suppressed.get(),
            flows: self.flows.get(),
            flow_evictions: self.flow_evictions.get(),
            flow_expired: self.flow_expired.get(),
            generation: self.generation.get(),
        }
    }
}

/// A plain copy of [`FirewallCounters`] (fields mean the same).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirewallSnapshot {
    pub parse: [u64; ParseError::COUNT],
    pub track: [u64; TrackError::COUNT],
    pub established: u64,
    pub new_flows: u64,
    pub related: u64,
    pub passed_non_ip: u64,
    pub no_flow: u64,
    pub denied: u64,
    pub rejected: u64,
    pub revalidated: u64,
    pub revalidated_unchanged: u64,
    pub revalidated_delta: u64,
    pub cut: u64,
    pub monitor_hits: u64,
    pub table_full: u64,
    pub logs_emitted: u64,
    pub logs_suppressed: u64,
    pub flows: u64,
    pub flow_evictions: u64,
    pub flow_expired: u64,
    pub generation: u64,
}

impl FirewallSnapshot {
    /// Sum another worker's counters into this one (gauges add up too; `generation` keeps
    /// the lowest, i.e. the generation every worker has reached).
    pub fn accumulate(&mut self, o: &FirewallSnapshot) {
        for (a, b) in self.parse.iter_mut().zip(o.parse) {
            *a += b;
        }
        for (a, b) in self.track.iter_mut().zip(o.track) {
            *a += b;
        }
        self.established += o.established;
        self.new_flows += o.new_flows;
        self.related += o.related;
        self.passed_non_ip += o.passed_non_ip;
        self.no_flow += o.no_flow;
        self.denied += o.denied;
        self.rejected += o.rejected;
        self.revalidated += o.revalidated;
        self.revalidated_unchanged += o.revalidated_unchanged;
        self.revalidated_delta += o.revalidated_delta;
        self.cut += o.cut;
        self.monitor_hits += o.monitor_hits;
        self.table_full += o.table_full;
        self.logs_emitted += o.logs_emitted;
        self.logs_suppressed += o.logs_suppressed;
        self.flows += o.flows;
        self.flow_evictions += o.flow_evictions;
        self.flow_expired += o.flow_expired;
        self.generation = self.generation.min(o.generation);
    }
}
