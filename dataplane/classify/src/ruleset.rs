//! The immutable compiled ruleset: rule metadata by index, the classifier trees for enforcing
//! and monitor rules, compile-time warnings, and `explain`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use std::time::{Duration, Instant};

use rampart_config::policy::{
    Action, Category, Family, ResolvedRule, RuleId, TcpStrictness, ValidatedPolicy,
};

use crate::delta::{clear_since, kept_in_order, same_rule, Delta, Recheck, RuleCheck};
use crate::fields::{Match, PacketFields, RuleIndex};
use crate::forest::Forest;
use crate::hits::HitCounters;
use crate::ids::IdIndex;
use crate::space::{point, rule_boxes, GenericBox, KeyV4, Scratch, Space, V4, V6};
use crate::tree::TreeParams;
use crate::warnings::{find_warnings, Warning};

/// Why a validated policy could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// More rules than a `u32` index can name.
    #[error("{0} rules exceed the limit of {max}", max = u32::MAX - 1)]
    TooManyRules(usize),
    /// The cross product of sources, destinations and services is too large.
    #[error(
        "rule {rule} expands into {boxes} address/service combinations; the ruleset limit is {max}"
    )]
    TooManyBoxes {
        /// The rule that crossed the limit.
        rule: RuleId,
        /// Combinations so far.
        boxes: usize,
        /// The limit.
        max: usize,
    },
}

/// Largest number of boxes (source × destination × service combinations) in one ruleset.
pub const MAX_BOXES: usize = 1 << 22;

/// What the dataplane needs to know about a rule, by index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleMeta {
    /// Stable id.
    pub id: RuleId,
    /// Human name.
    pub name: Option<Arc<str>>,
    /// Category.
    pub category: Category,
    /// Verdict.
    pub action: Action,
    /// Log the first packet of each flow.
    pub log: bool,
    /// Dry run only.
    pub monitor: bool,
    /// TCP strictness for admitted flows.
    pub tcp: TcpStrictness,
}

/// Boxes of one rule class (enforcing or monitor) and their trees.
pub(crate) struct Classifier {
    v4: Forest<V4>,
    v6: Forest<V6>,
    /// Rule index of each box.
    v4_rule: Vec<u32>,
    v6_rule: Vec<u32>,
}

/// Boxes collected during compilation, kept only until warnings are computed.
#[derive(Default)]
pub(crate) struct BoxSet {
    pub v4: Vec<GenericBox>,
    pub v4_rule: Vec<u32>,
    pub v6: Vec<GenericBox>,
    pub v6_rule: Vec<u32>,
}

impl Classifier {
    fn build(b: &BoxSet, params: TreeParams) -> Self {
        Classifier {
            v4: Forest::build(&b.v4, params),
            v6: Forest::build(&b.v6, params),
            v4_rule: b.v4_rule.clone(),
            v6_rule: b.v6_rule.clone(),
        }
    }

    /// A classifier of only `rules` (each with its index in its ruleset, in index order),
    /// answering by that index; `None` past `max_boxes` boxes.
    pub(crate) fn of_rules<'a>(
        rules: impl Iterator<Item = (u32, &'a ResolvedRule)>,
        max_boxes: usize,
    ) -> Option<Classifier> {
        let mut set = BoxSet::default();
        let mut scratch = Scratch::default();
        for (i, r) in rules {
            rule_boxes(r, &mut scratch, &mut set.v4, &mut set.v6);
            set.v4_rule.resize(set.v4.len(), i);
            set.v6_rule.resize(set.v6.len(), i);
            if set.v4.len() + set.v6.len() > max_boxes {
                return None;
            }
        }
        Some(Classifier::build(&set, TreeParams::default()))
    }

    /// Index of the first matching rule, or `u32::MAX`.
    #[inline(always)]
    pub(crate) fn lookup(&self, p: &PacketFields) -> u32 {
        match p.family {
            Family::V4 => {
                let b = self.v4.lookup(&V4::key_of(p), u32::MAX);
                self.v4_rule.get(b as usize).copied().unwrap_or(u32::MAX)
            }
            Family::V6 => {
                let b = self.v6.lookup(&V6::key_of(p), u32::MAX);
                self.v6_rule.get(b as usize).copied().unwrap_or(u32::MAX)
            }
        }
    }

    /// [`Classifier::lookup`] for [`GROUP`] packets: IPv4 ones walk the trees together.
    #[inline(always)]
    fn lookup_group(&self, p: &[PacketFields; GROUP]) -> [u32; GROUP] {
        if p.iter().all(|p| p.family == Family::V4) {
            let keys = p.each_ref().map(V4::key_of);
            let b = self.v4.lookup_n(keys.each_ref());
            b.map(|b| self.v4_rule.get(b as usize).copied().unwrap_or(u32::MAX))
        } else {
            p.each_ref().map(|p| self.lookup(p))
        }
    }

    fn memory_bytes(&self) -> usize {
        self.v4.memory_bytes()
            + self.v6.memory_bytes()
            + (self.v4_rule.capacity() + self.v6_rule.capacity()) * 4
    }
}

/// Packets a burst lookup walks the trees with at once: each tree walk ends in a branch whose
/// outcome (the leaf depth) varies from packet to packet; walked together, a group pays that
/// misprediction once, and the group's loads overlap. 8 rather than 4 since tree steps lost
/// their mask (wall time on the Xeon host, interleaved: acl1_10k about 1.2x, acl1_1k 1.1x,
/// fw1_1k even, despite 16% more instructions: more cache misses in flight); 16 was slower.
const GROUP: usize = 8;

/// A compiled, immutable ruleset of one generation.
pub struct Ruleset {
    generation: u64,
    default_action: Action,
    meta: Vec<RuleMeta>,
    resolved: Vec<ResolvedRule>,
    enforce: Classifier,
    monitor: Option<Classifier>,
    warnings: Vec<Warning>,
    build_time: Duration,
    memory_bytes: usize,
    stats: BuildStats,
    /// Hits per rule index, the last slot for the default action.
    hits: HitCounters,
    /// Rule index by stable id.
    by_id: IdIndex,
    /// Per rule index, then the default action: the publish number since which that rule and
    /// every rule before it are unchanged (written by the table handle before it publishes
    /// this ruleset; `u64::MAX` = unknown).
    stable_since: Box<[AtomicU64]>,
    /// Per rule index: the publish number since which neither that rule nor any rule before
    /// it that may match its packets changed ([`crate::delta::clear_since`]; written with
    /// `stable_since`).
    clear_since: Box<[AtomicU64]>,
    /// Per rule id (a slot of `by_id`, 8 bytes each), as [`KeepSince`]: since when a flow of
    /// that rule keeps its verdict, and since when because nothing up to it changed, so a
    /// flow's rule id and stamp decide it, and how, with one load ([`Ruleset::kept_rule`]).
    /// Written with `stable_since`.
    keep_since: Box<[AtomicU64]>,
    /// The publish number flows admitted under this ruleset are stamped with: that of the
    /// earliest publish in the unbroken run of rulesets with the same rules and default
    /// action that ends with this one (`u64::MAX` until installed in a table).
    flow_stamp: AtomicU64,
    /// The rules that changed in the publishes up to this ruleset's latest (replaced at
    /// every publish of it; readers keep the one they loaded with it).
    delta: ArcSwapOption<Delta>,
}

/// Shape of the compiled classifier (for benchmarks and tuning).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildStats {
    /// Boxes (rule × source × destination × service combinations).
    pub boxes: usize,
    /// Trees built.
    pub trees: usize,
    /// Box copies in leaves (boxes × replication).
    pub leaf_entries: usize,
    /// Trees that take masked steps (IPv4 only).
    pub masked_trees: usize,
}

impl fmt::Debug for Ruleset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ruleset")
            .field("generation", &self.generation)
            .field("rules", &self.meta.len())
            .field("default_action", &self.default_action)
            .field("warnings", &self.warnings.len())
            .field("build_time", &self.build_time)
            .field("memory_bytes", &self.memory_bytes)
            .finish()
    }
}

impl Ruleset {
    /// Compiles a validated policy.
    pub fn compile(policy: &ValidatedPolicy) -> Result<Ruleset, CompileError> {
        Self::compile_with(policy, TreeParams::default())
    }

    /// Compiles with explicit tree parameters (leaf size, space factor): for tuning.
    #[doc(hidden)]
    pub fn compile_tuned(
        policy: &ValidatedPolicy,
        binth: usize,
        spfac: usize,
        root_budget: usize,
    ) -> Result<Ruleset, CompileError> {
        Self::compile_with(
            policy,
            TreeParams {
                binth,
                spfac,
                root_budget,
                ..TreeParams::default()
            },
        )
    }

    /// Compiles with masked steps forced on (`true`) or off (`false`) in every IPv4 tree,
    /// instead of chosen per tree: for tests and tuning.
    #[doc(hidden)]
    pub fn compile_masked(policy: &ValidatedPolicy, masked: bool) -> Result<Ruleset, CompileError> {
        Self::compile_with(
            policy,
            TreeParams {
                masked: Some(masked),
                ..TreeParams::default()
            },
        )
    }

    pub(crate) fn compile_with(
        policy: &ValidatedPolicy,
        params: TreeParams,
    ) -> Result<Ruleset, CompileError> {
        let start = Instant::now();
        if policy.rules.len() >= u32::MAX as usize {
            return Err(CompileError::TooManyRules(policy.rules.len()));
        }
        let mut enforce = BoxSet::default();
        let mut monitor = BoxSet::default();
        // Per rule: (is monitor, v4 box range, v6 box range) for the warnings pass.
        let mut spans = Vec::with_capacity(policy.rules.len());
        let mut total = 0usize;
        let mut scratch = Scratch::default();
        for (i, r) in policy.rules.iter().enumerate() {
            let set = if r.monitor {
                &mut monitor
            } else {
                &mut enforce
            };
            let (a4, a6) = (set.v4.len(), set.v6.len());
            rule_boxes(r, &mut scratch, &mut set.v4, &mut set.v6);
            set.v4_rule.resize(set.v4.len(), i as u32);
            set.v6_rule.resize(set.v6.len(), i as u32);
            total += set.v4.len() - a4 + set.v6.len() - a6;
            if total > MAX_BOXES {
                return Err(CompileError::TooManyBoxes {
                    rule: r.id,
                    boxes: total,
                    max: MAX_BOXES,
                });
            }
            spans.push((r.monitor, a4..set.v4.len(), a6..set.v6.len()));
        }
        let enforce_c = Classifier::build(&enforce, params);
        let monitor_c = (!monitor.v4.is_empty() || !monitor.v6.is_empty())
            .then(|| Classifier::build(&monitor, params));
        let warnings = find_warnings(
            policy,
            &spans,
            &enforce,
            &monitor,
            &enforce_c.v4,
            &enforce_c.v6,
        );
        let meta: Vec<RuleMeta> = policy
            .rules
            .iter()
            .map(|r| RuleMeta {
                id: r.id,
                name: r.name.clone(),
                category: r.category,
                action: r.action,
                log: r.log,
                monitor: r.monitor,
                tcp: r.tcp,
            })
            .collect();
        let stats = BuildStats {
            boxes: total,
            trees: enforce_c.v4.tree_count()
                + enforce_c.v6.tree_count()
                + monitor_c
                    .as_ref()
                    .map_or(0, |m| m.v4.tree_count() + m.v6.tree_count()),
            leaf_entries: enforce_c.v4.leaf_entries()
                + enforce_c.v6.leaf_entries()
                + monitor_c
                    .as_ref()
                    .map_or(0, |m| m.v4.leaf_entries() + m.v6.leaf_entries()),
            masked_trees: enforce_c.v4.masked_trees()
                + monitor_c.as_ref().map_or(0, |m| m.v4.masked_trees()),
        };
        let hits = HitCounters::new(meta.len() + 1);
        let by_id = IdIndex::new(policy.rules.iter().map(|r| r.id));
        let keep_since: Box<[AtomicU64]> = (0..by_id.slots()).map(|_| AtomicU64::new(0)).collect();
        let memory_bytes = by_id.memory_bytes()
            + keep_since.len() * 8
            + enforce_c.memory_bytes()
            + monitor_c.as_ref().map_or(0, |m| m.memory_bytes())
            + meta.capacity() * std::mem::size_of::<RuleMeta>()
            + hits.memory_bytes();
        Ok(Ruleset {
            generation: policy.generation,
            default_action: policy.default_action,
            meta,
            resolved: policy.rules.clone(),
            enforce: enforce_c,
            monitor: monitor_c,
            warnings,
            build_time: start.elapsed(),
            memory_bytes,
            stats,
            hits,
            by_id,
            stable_since: (0..=policy.rules.len())
                .map(|_| AtomicU64::new(u64::MAX))
                .collect(),
            clear_since: (0..policy.rules.len())
                .map(|_| AtomicU64::new(u64::MAX))
                .collect(),
            keep_since,
            flow_stamp: AtomicU64::new(u64::MAX),
            delta: ArcSwapOption::empty(),
        })
    }

    /// The policy generation this ruleset enforces.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of enabled rules (enforcing and monitor).
    pub fn rule_count(&self) -> usize {
        self.meta.len()
    }

    /// Shadowed, redundant and never-matching rules found at compile time.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Time `compile` took (boxes, trees and warnings).
    pub fn build_time(&self) -> Duration {
        self.build_time
    }

    /// Heap bytes of the lookup structures and rule metadata.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// Shape of the compiled classifier.
    pub fn build_stats(&self) -> BuildStats {
        self.stats
    }

    /// Verdict when no rule matches.
    pub fn default_action(&self) -> Action {
        self.default_action
    }

    /// Metadata of the rule at `index` (as found in [`Match::rule`]).
    pub fn rule(&self, index: RuleIndex) -> &RuleMeta {
        &self.meta[index as usize]
    }

    /// All rule metadata in evaluation order.
    pub fn rules(&self) -> &[RuleMeta] {
        &self.meta
    }

    /// Index of the rule with stable id `id`.
    pub fn index_of(&self, id: RuleId) -> Option<RuleIndex> {
        self.meta
            .iter()
            .position(|m| m.id == id)
            .map(|i| i as RuleIndex)
    }

    /// Records, as this ruleset is published with number `seq` over `prev`, since when each
    /// rule and every rule before it are unchanged, and which rules changed in the last few
    /// publishes ([`Delta`]). First match makes the first enough for a flow admitted by rule
    /// `i` under publish `s`: if rules `0..=i` are the same since `s`, rule `i` is still the
    /// first to match it, so revalidation need not classify it again; the second lets it
    /// test only the rules that changed (see [`Ruleset::recheck`]).
    pub(crate) fn settle(&self, prev: &Ruleset, seq: u64) {
        // A ruleset installed without `publish` (the table's first) counts from the publish
        // number just before this one.
        let prev_since = |j: usize| match prev.stable_since[j].load(Ordering::Relaxed) {
            u64::MAX => seq - 1,
            s => s,
        };
        let mut same = true;
        for (j, rule) in self.resolved.iter().enumerate() {
            same = same && prev.resolved.get(j).is_some_and(|p| same_rule(p, rule));
            let since = if same { prev_since(j) } else { seq };
            self.stable_since[j].store(since, Ordering::Relaxed);
        }
        same = same
            && prev.resolved.len() == self.resolved.len()
            && prev.default_action == self.default_action;
        let since = if same {
            prev_since(prev.resolved.len())
        } else {
            seq
        };
        self.stable_since[self.resolved.len()].store(since, Ordering::Relaxed);
        // Rulesets with the same rules and default action decide every packet the same way
        // (a flow's rule, verdict and TCP strictness; logging applies to new flows only):
        // flows admitted under the previous one need no revalidation under this one, so
        // both stamp flows alike.
        let stamp = if same {
            match prev.flow_stamp.load(Ordering::Relaxed) {
                u64::MAX => seq - 1,
                s => s,
            }
        } else {
            seq
        };
        self.flow_stamp.store(stamp, Ordering::Relaxed);
        self.settle_delta(prev, seq);
        for (j, rule) in self.resolved.iter().enumerate() {
            let known = |a: &AtomicU64| Some(a.load(Ordering::Relaxed)).filter(|&v| v != u64::MAX);
            let (stable, clear) = (known(&self.stable_since[j]), known(&self.clear_since[j]));
            let since = KeepSince {
                kept: match (stable, clear) {
                    (Some(a), Some(b)) => a.min(b) as u32,
                    (Some(a), None) | (None, Some(a)) => a as u32,
                    (None, None) => 0,
                },
                unchanged: stable.map_or(0, |a| a as u32),
            };
            if let Some(slot) = self.keep_since.get(self.by_id.slot(rule.id)) {
                slot.store(since.pack(), Ordering::Relaxed);
            }
        }
    }

    /// Marks this ruleset as the first of a table created at publish number `seq`.
    pub(crate) fn install(&self, seq: u64) {
        let _ =
            self.flow_stamp
                .compare_exchange(u64::MAX, seq, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The publish number to stamp flows admitted under this ruleset with (see
    /// [`crate::table::Current::stamp`]): the earliest publish of the run of rulesets with
    /// the same rules and default action that ends with this one, so a publish that
    /// changes no rule (a new generation of the same policy) leaves every flow admitted as
    /// it was, with nothing to revalidate. `u64::MAX` until the ruleset is in a table.
    #[inline]
    pub fn flow_stamp(&self) -> u64 {
        self.flow_stamp.load(Ordering::Relaxed)
    }

    /// Whether a flow admitted by the rule with id `rule` under the ruleset published as
    /// `stamp` (its low 32 bits, as flows keep it) is still first-matched by that rule
    /// here, and why, decided from the rule's entry in a compact table (one load for dense
    /// ids): [`RuleCheck::Unchanged`] if neither the rule nor any rule before it changed
    /// since the stamp, [`RuleCheck::Disjoint`] if the rule is unchanged and no rule before
    /// it that changed since may match one of its packets (what
    /// [`crate::table::Current::recheck_rule`] says for such a flow). `None` means "not
    /// known here": ask `recheck_rule`.
    #[inline(always)]
    pub fn kept_rule(&self, rule: RuleId, stamp: u32) -> Option<RuleCheck> {
        let since = KeepSince::unpack(
            self.keep_since
                .get(self.by_id.slot(rule))
                .map_or(0, |s| s.load(Ordering::Relaxed)),
        );
        let ok = |since: u32| since != 0 && (stamp.wrapping_sub(since) as i32) >= 0;
        if !ok(since.kept) {
            None
        } else if ok(since.unchanged) {
            Some(RuleCheck::Unchanged)
        } else {
            Some(RuleCheck::Disjoint)
        }
    }

    fn settle_delta(&self, prev: &Ruleset, seq: u64) {
        let kept = kept_in_order(prev, self);
        let prev_clear = |j: usize| match prev.clear_since[j].load(Ordering::Relaxed) {
            u64::MAX => seq - 1,
            s => s,
        };
        for (slot, since) in self
            .clear_since
            .iter()
            .zip(clear_since(prev, self, &kept, seq, prev_clear))
        {
            slot.store(since, Ordering::Relaxed);
        }
        // The previous ruleset's delta, if it describes its publish (the one just before).
        let prev_delta = prev.delta.load_full().filter(|d| d.at() == seq - 1);
        let delta = Delta::compute(prev, prev_delta.as_deref(), self, &kept, seq);
        self.delta.store(Some(Arc::new(delta)));
    }

    /// The delta of this ruleset's latest publish (a reader loads it with the ruleset).
    pub(crate) fn delta(&self) -> Option<Arc<Delta>> {
        self.delta.load_full()
    }

    /// The part of a recheck that needs no packet fields: how a flow admitted by the rule
    /// with id `rule` (`None`: the default action) under the ruleset published as `stamp`
    /// (its low 32 bits, as flows keep it) fares under this one, or which test of its opening
    /// packet decides it; `delta` is what changed up to this ruleset's publish (see
    /// [`crate::table::Current::recheck_rule`]).
    #[inline]
    pub(crate) fn recheck_rule(
        &self,
        delta: Option<&Delta>,
        stamp: u32,
        rule: Option<RuleId>,
    ) -> RuleCheck {
        let since_ok = |since: u64| since_ok(since, stamp);
        // Nothing at all changed since the stamp (the default action's slot covers every
        // rule): no need to find the rule.
        let all = self.resolved.len();
        if since_ok(self.stable_since[all].load(Ordering::Relaxed)) {
            return RuleCheck::Unchanged;
        }
        let index = match rule {
            None => None,
            Some(id) => match self.by_id.get(id) {
                Some(i) => Some(i),
                None => return RuleCheck::Classify,
            },
        };
        let slot = index.map_or(all, |i| i as usize);
        if since_ok(self.stable_since[slot].load(Ordering::Relaxed)) {
            return RuleCheck::Unchanged;
        }
        // Only rules that cannot match its packets changed before its rule.
        if index.is_some() && since_ok(self.clear_since[slot].load(Ordering::Relaxed)) {
            return RuleCheck::Disjoint;
        }
        match delta {
            Some(d) => d.recheck_rule(stamp, index),
            None => RuleCheck::Classify,
        }
    }

    /// [`Ruleset::recheck_rule`] and, if it asks, the test of the opening packet `p`.
    #[inline]
    pub(crate) fn recheck(
        &self,
        delta: Option<&Delta>,
        stamp: u32,
        rule: Option<RuleId>,
        p: &PacketFields,
    ) -> Recheck {
        match self.recheck_rule(delta, stamp, rule) {
            RuleCheck::Unchanged => Recheck::Unchanged,
            RuleCheck::Disjoint => Recheck::DeltaRules,
            RuleCheck::Test(t) if delta.is_some_and(|d| d.recheck_test(t, p)) => {
                Recheck::DeltaRules
            }
            RuleCheck::Test(_) | RuleCheck::Classify => Recheck::Classify,
        }
    }

    /// The rules as validated, in evaluation order.
    pub(crate) fn resolved(&self) -> &[ResolvedRule] {
        &self.resolved
    }

    /// Index of the rule with id `id` (hashed).
    pub(crate) fn index_of_id(&self, id: RuleId) -> Option<RuleIndex> {
        self.by_id.get(id)
    }

    /// The publish number since which the rule with id `id` (`None`: the default action) and
    /// every rule before it are unchanged; `u64::MAX` when unknown (the rule is not here, or
    /// this ruleset was never published over another). The values are written before the
    /// publish that makes this ruleset current, so a worker that loaded it sees them.
    #[inline]
    pub fn unchanged_since(&self, id: Option<RuleId>) -> u64 {
        let slot = match id {
            None => self.resolved.len(),
            Some(id) => match self.by_id.get(id) {
                Some(i) => i as usize,
                None => return u64::MAX,
            },
        };
        self.stable_since[slot].load(Ordering::Relaxed)
    }

    /// Counts a hit on the rule at `index` (`None`: the default action) in the caller's
    /// counter row (a worker passes its own id; rows wrap at [`crate::HIT_ROWS`]).
    #[inline]
    pub fn count_hit(&self, row: usize, index: Option<RuleIndex>) {
        let slot = index.map_or(self.meta.len(), |i| i as usize);
        self.hits.add(row, slot.min(self.meta.len()));
    }

    /// Hits counted under this ruleset so far: one entry per rule in evaluation order, then
    /// one for the default action.
    pub fn hit_counts(&self) -> Vec<u64> {
        self.hits.totals()
    }

    /// Classifies one packet.
    #[inline]
    pub fn classify(&self, p: &PacketFields) -> Match {
        self.answer(p, self.enforce.lookup(p))
    }

    /// Classifies a burst: `out[i]` answers `pkts[i]` (extra entries of the longer slice are
    /// left alone).
    ///
    /// Groups of [`GROUP`] IPv4 packets walk each tree in lockstep (leaves step to
    /// themselves, so the group needs no per-packet exit test); the rest one by one. Walking
    /// a whole burst level by level with lists of live walkers was measured and lost, its
    /// bookkeeping costing more than the mispredictions it saves (see BENCHMARKS.md
    /// "Classifier").
    #[inline]
    pub fn classify_bulk(&self, pkts: &[PacketFields], out: &mut [Match]) {
        let n = pkts.len().min(out.len());
        let (pkts, out) = (&pkts[..n], &mut out[..n]);
        let mut pc = pkts.chunks_exact(GROUP);
        let mut oc = out.chunks_exact_mut(GROUP);
        for (p, o) in (&mut pc).zip(&mut oc) {
            let p: &[PacketFields; GROUP] = p.try_into().expect("chunk of GROUP");
            let hit = self.enforce.lookup_group(p);
            let mon = match &self.monitor {
                Some(m) => m.lookup_group(p),
                None => [u32::MAX; GROUP],
            };
            for i in 0..GROUP {
                o[i] = self.answer_with(hit[i], mon[i]);
            }
        }
        for (p, o) in pc.remainder().iter().zip(oc.into_remainder()) {
            *o = self.answer(p, self.enforce.lookup(p));
        }
    }

    #[inline(always)]
    fn answer(&self, p: &PacketFields, hit: u32) -> Match {
        let monitor = self.monitor.as_ref().map_or(u32::MAX, |m| m.lookup(p));
        self.answer_with(hit, monitor)
    }

    /// The answer for enforcing rule `hit` and monitor rule `monitor` (`u32::MAX` = none).
    #[inline(always)]
    fn answer_with(&self, hit: u32, monitor: u32) -> Match {
        let monitor = (monitor < hit).then_some(monitor);
        if hit == u32::MAX {
            return Match {
                monitor,
                ..Match::default_action(self.default_action)
            };
        }
        let r = &self.meta[hit as usize];
        Match {
            rule: Some(hit),
            rule_id: Some(r.id),
            action: r.action,
            log: r.log,
            monitor,
        }
    }

    /// Enforcing rule index only (`u32::MAX` = none), for the ClassBench harness.
    #[inline]
    pub fn classify_index_bulk(&self, pkts: &[PacketFields], out: &mut [u32]) {
        let n = pkts.len().min(out.len());
        let (pkts, out) = (&pkts[..n], &mut out[..n]);
        let mut pc = pkts.chunks_exact(GROUP);
        let mut oc = out.chunks_exact_mut(GROUP);
        for (p, o) in (&mut pc).zip(&mut oc) {
            let p: &[PacketFields; GROUP] = p.try_into().expect("chunk of GROUP");
            o.copy_from_slice(&self.enforce.lookup_group(p));
        }
        for (p, o) in pc.remainder().iter().zip(oc.into_remainder()) {
            *o = self.enforce.lookup(p);
        }
    }

    /// Lookup cost of one IPv4 packet in the enforcing trees: per tree (nodes visited,
    /// boxes compared). For tuning and benchmarks.
    #[doc(hidden)]
    pub fn lookup_cost(&self, p: &PacketFields) -> Vec<(usize, usize)> {
        match p.family {
            Family::V4 => self.enforce.v4.cost(&V4::key_of(p)),
            Family::V6 => self.enforce.v6.cost(&V6::key_of(p)),
        }
    }

    /// Which rule matches and through which group and service.
    pub fn explain(&self, p: &PacketFields) -> Explanation {
        let m = self.classify(p);
        let why = |i: RuleIndex| {
            let r = &self.resolved[i as usize];
            let side = |s: &rampart_config::policy::AddrSet, a: u128| match s.lookup(p.family, a) {
                Some(Some(e)) => match &e.via {
                    Some(v) => format!("{} via {v}", e.range),
                    None => e.range.to_string(),
                },
                Some(None) if s.any => "any".to_string(),
                Some(None) => "not in the negated set".to_string(),
                None => "?".to_string(),
            };
            let service = r
                .services
                .iter()
                .find(|s| s.matches(p.proto, p.sport, p.dport))
                .map(|s| {
                    let proto = s
                        .proto
                        .map_or("any protocol".to_string(), |x| format!("protocol {x}"));
                    let what = format!("{proto} sport {} dport {}", s.sport, s.dport);
                    match &s.via {
                        Some(v) => format!("{what} via {v}"),
                        None => what,
                    }
                })
                .unwrap_or_else(|| "?".into());
            RuleExplanation {
                index: i,
                id: r.id,
                name: r.name.clone(),
                action: r.action,
                source: side(&r.source, p.src),
                destination: side(&r.destination, p.dst),
                service,
            }
        };
        Explanation {
            generation: self.generation,
            verdict: m,
            rule: m.rule.map(why),
            monitor: m.monitor.map(why),
        }
    }
}

/// Why one rule matched a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleExplanation {
    /// Index in evaluation order.
    pub index: RuleIndex,
    /// Stable id.
    pub id: RuleId,
    /// Name.
    pub name: Option<Arc<str>>,
    /// The rule's action.
    pub action: Action,
    /// The source entry that matched and its group chain.
    pub source: String,
    /// The destination entry that matched and its group chain.
    pub destination: String,
    /// The protocol/port entry that matched and its service.
    pub service: String,
}

/// The answer of [`Ruleset::explain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// Generation of the ruleset asked.
    pub generation: u64,
    /// The classification.
    pub verdict: Match,
    /// The enforcing rule (none = the default action applied).
    pub rule: Option<RuleExplanation>,
    /// A monitor rule that matched first ("would have …").
    pub monitor: Option<RuleExplanation>,
}

impl fmt::Display for RuleExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {}", self.id)?;
        if let Some(n) = &self.name {
            write!(f, " ({n})")?;
        }
        write!(
            f,
            " [index {}]: {:?}\n  source:      {}\n  destination: {}\n  service:     {}",
            self.index, self.action, self.source, self.destination, self.service
        )
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "generation {}: verdict {:?}",
            self.generation, self.verdict.action
        )?;
        match &self.rule {
            Some(r) => writeln!(f, "matched {r}")?,
            None => writeln!(f, "no rule matched: default action")?,
        }
        if let Some(m) = &self.monitor {
            writeln!(f, "monitor (would have {:?}) {m}", m.action)?;
        }
        Ok(())
    }
}

/// Converts packets into each layout's key.
pub(crate) trait KeyOf: Space {
    fn key_of(p: &PacketFields) -> Self::Key;
}

impl KeyOf for V4 {
    #[inline(always)]
    fn key_of(p: &PacketFields) -> KeyV4 {
        KeyV4::new([
            p.src as u32,
            p.dst as u32,
            p.sport as u32,
            p.dport as u32,
            p.proto as u32,
            match p.vlan {
                Some(v) => v as u32,
                None => crate::space::VLAN_NONE,
            },
            match p.vni {
                Some(v) => v & 0xff_ffff,
                None => crate::space::VNI_NONE,
            },
            p.direction as u32,
        ])
    }
}

impl KeyOf for V6 {
    #[inline(always)]
    fn key_of(p: &PacketFields) -> Self::Key {
        V6::key(&point(p))
    }
}

/// A rule's entry in [`Ruleset::kept_rule`]'s table: the low 32 bits of two publish numbers
/// (0: unknown, or no such rule), packed in one word so both are one load. A publish number
/// whose low bits are 0 reads as unknown: as `kept` that only sends the rule's flows to the
/// full recheck, as `unchanged` it only counts them as delta rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct KeepSince {
    /// Since when a flow of the rule keeps its verdict: the earlier of the rule's
    /// `stable_since` and `clear_since`.
    kept: u32,
    /// The rule's `stable_since`: since when it and every rule before it are unchanged.
    unchanged: u32,
}

impl KeepSince {
    fn pack(self) -> u64 {
        u64::from(self.unchanged) << 32 | u64::from(self.kept)
    }

    #[inline(always)]
    fn unpack(w: u64) -> Self {
        KeepSince {
            kept: w as u32,
            unchanged: (w >> 32) as u32,
        }
    }
}

/// Whether a rule position unchanged since publish `since` (`u64::MAX`: not known) was
/// unchanged at `stamp` too. Stamps are kept as their low 32 bits: compared on the wrapping
/// difference.
fn since_ok(since: u64, stamp: u32) -> bool {
    since != u64::MAX && (stamp.wrapping_sub(since as u32) as i32) >= 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_config::policy::PolicyDocument;

    fn compile(json: &str) -> Ruleset {
        let doc = PolicyDocument::from_json_slice(json.as_bytes()).unwrap();
        Ruleset::compile(&doc.validate_standalone().unwrap()).unwrap()
    }

    #[test]
    fn warns_about_shadowed_redundant_and_dead_rules() {
        let rs = compile(
            r#"{"generation":1,"rules":[
                {"id":1,"action":"drop","source":{"addresses":["10.0.0.0/8"]}},
                {"id":2,"action":"allow","source":{"addresses":["10.1.0.0/16"]},"protocol":"tcp","destination":{"ports":[80]}},
                {"id":3,"action":"drop","source":{"addresses":["10.2.3.4"]}},
                {"id":4,"action":"allow","source":{"addresses":["192.168.0.1"]}},
                {"id":5,"action":"allow","source":{"addresses":["10.0.0.1"]},"destination":{"addresses":["::1"]}},
                {"id":6,"action":"allow","source":{"addresses":["192.168.0.0/24"]}}]}"#,
        );
        let w = rs.warnings();
        assert!(
            w.contains(&Warning::Shadowed {
                rule: RuleId(2),
                by: vec![RuleId(1)]
            }),
            "{w:?}"
        );
        assert!(
            w.contains(&Warning::Redundant {
                rule: RuleId(3),
                by: vec![RuleId(1)]
            }),
            "{w:?}"
        );
        assert!(
            w.contains(&Warning::NeverMatches { rule: RuleId(5) }),
            "{w:?}"
        );
        // Rule 6 is wider than rule 4: not covered.
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].to_string().contains("rule 2 is shadowed by rule(s) 1"));
    }

    #[test]
    fn explain_names_groups_services_and_monitor() {
        let rs = compile(
            r#"{"generation":9,"default_action":"drop",
                "inventory":[{"name":"web-1","addresses":["10.0.0.5"],"tags":["web"]}],
                "groups":[{"name":"web","match_tags":["web"]}],
                "services":[{"name":"https","entries":[{"protocol":"tcp","ports":[443]}]}],
                "rules":[
                  {"id":50,"action":"reject","monitor":true,"services":["https"]},
                  {"id":60,"name":"to web","action":"allow","log":true,"destination":{"groups":["web"]},"services":["https"]}]}"#,
        );
        let p = PacketFields::v4(0x0101_0101, 0x0a00_0005, 5555, 443, 6);
        let e = rs.explain(&p);
        assert_eq!(e.generation, 9);
        assert_eq!(e.verdict.action, Action::Allow);
        assert!(e.verdict.log);
        let r = e.rule.as_ref().unwrap();
        assert_eq!(r.id, RuleId(60));
        assert_eq!(
            r.destination,
            "10.0.0.5 via group web (tags web) > workload web-1"
        );
        assert_eq!(r.source, "any");
        assert!(r.service.contains("via service https"), "{}", r.service);
        assert_eq!(e.monitor.as_ref().unwrap().id, RuleId(50));
        let text = e.to_string();
        assert!(
            text.contains("monitor (would have Reject) rule 50"),
            "{text}"
        );
        // Port 80 matches nothing: the default.
        let e = rs.explain(&PacketFields::v4(1, 0x0a00_0005, 1, 80, 6));
        assert!(e.rule.is_none() && e.monitor.is_none());
        assert_eq!(e.verdict.action, Action::Drop);
    }

    #[test]
    fn metadata_by_index_and_id() {
        let rs = compile(
            r#"{"generation":3,"default_action":"allow","rules":[
                {"id":20,"action":"allow","category":"application","tcp":"liberal"},
                {"id":10,"action":"drop","category":"emergency","protocol":"udp","log":true}]}"#,
        );
        assert_eq!(rs.generation(), 3);
        assert_eq!(rs.rule_count(), 2);
        assert_eq!(rs.default_action(), Action::Allow);
        // Emergency first.
        assert_eq!(rs.rule(0).id, RuleId(10));
        assert_eq!(rs.index_of(RuleId(20)), Some(1));
        assert_eq!(rs.rule(1).tcp, TcpStrictness::Liberal);
        let m = rs.classify(&PacketFields::v4(1, 2, 3, 4, 17));
        assert_eq!(
            (m.rule, m.rule_id, m.action, m.log),
            (Some(0), Some(RuleId(10)), Action::Drop, true)
        );
        assert!(rs.memory_bytes() > 0);
    }
}
