//! The immutable compiled ruleset: rule metadata by index, the classifier trees for enforcing
//! and monitor rules, compile-time warnings, and `explain`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_config::policy::{
    Action, Category, Family, ResolvedRule, RuleId, TcpStrictness, ValidatedPolicy,
};

use crate::fields::{Match, PacketFields, RuleIndex};
use crate::forest::Forest;
use crate::space::{point, rule_boxes, GenericBox, Space, V4, V6};
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
struct Classifier {
    v4: Forest<V4>,
    v6: Forest<V6>,
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
            v4: Forest::build(&b.v4, &b.v4_rule, params),
            v6: Forest::build(&b.v6, &b.v6_rule, params),
        }
    }

    #[inline(always)]
    fn lookup(&self, p: &PacketFields, bound: u32) -> u32 {
        match p.family {
            Family::V4 => self.v4.lookup(&V4::key_of(p), bound),
            Family::V6 => self.v6.lookup(&V6::key_of(p), bound),
        }
    }

    fn memory_bytes(&self) -> usize {
        self.v4.memory_bytes() + self.v6.memory_bytes()
    }
}

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
        for (i, r) in policy.rules.iter().enumerate() {
            let set = if r.monitor {
                &mut monitor
            } else {
                &mut enforce
            };
            let (a4, a6) = (set.v4.len(), set.v6.len());
            rule_boxes(r, &mut set.v4, &mut set.v6);
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
        };
        let memory_bytes = enforce_c.memory_bytes()
            + monitor_c.as_ref().map_or(0, |m| m.memory_bytes())
            + meta.capacity() * std::mem::size_of::<RuleMeta>();
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

    /// Classifies one packet.
    #[inline]
    pub fn classify(&self, p: &PacketFields) -> Match {
        let hit = self.enforce.lookup(p, u32::MAX);
        let monitor = match &self.monitor {
            Some(m) => {
                let x = m.lookup(p, hit);
                (x < hit).then_some(x)
            }
            None => None,
        };
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

    /// Classifies a burst: `out[i]` answers `pkts[i]` (extra entries of the longer slice are
    /// left alone).
    #[inline]
    pub fn classify_bulk(&self, pkts: &[PacketFields], out: &mut [Match]) {
        for (p, o) in pkts.iter().zip(out.iter_mut()) {
            *o = self.classify(p);
        }
    }

    /// Rule index only (`u32::MAX` = none), for the ClassBench harness.
    #[inline]
    pub fn classify_index_bulk(&self, pkts: &[PacketFields], out: &mut [u32]) {
        for (p, o) in pkts.iter().zip(out.iter_mut()) {
            *o = self.enforce.lookup(p, u32::MAX);
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
    fn key_of(p: &PacketFields) -> [u32; 8] {
        [
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
        ]
    }
}

impl KeyOf for V6 {
    #[inline(always)]
    fn key_of(p: &PacketFields) -> Self::Key {
        V6::key(&point(p))
    }
}
