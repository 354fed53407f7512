//! The RCU table handle: the one type where the control plane and the workers meet.
//!
//! The control side publishes a complete `Arc<Ruleset>` with one pointer swap and then waits
//! until every registered reader has passed a quiescent point after the publish (QSBR, as in
//! DPDK's `rte_rcu_qsbr`). A worker loads the current ruleset once per burst — a relaxed
//! sequence check and, only after a publish, one `ArcSwap` load — and reports a quiescent
//! state after the burst, at which point it has also dropped any older ruleset. So once
//! `wait_quiescent` returns, the previous ruleset is referenced only by the control side,
//! which frees it off the worker cores.
//!
//! The handle also keeps per-rule hit totals across generations: a ruleset counts its own hits
//! while it is current; when it retires (every reader has moved past it) its counts are folded
//! into totals by rule id, so `rule_hits` is monotonic per id across publishes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::delta::{Delta, DeltaTest, Recheck, RuleCheck};
use crate::ruleset::Ruleset;
use crate::{Action, PacketFields, RuleId};

/// `seen` value of a reader that is offline (parked) and must not be waited for.
const OFFLINE: u64 = u64::MAX;

struct Shared {
    current: ArcSwap<Ruleset>,
    /// Incremented after every store to `current`.
    seq: AtomicU64,
    readers: Mutex<Vec<Weak<Slot>>>,
    ledger: Mutex<Ledger>,
}

/// Hit totals of retired rulesets, by rule id (`None`: the default action).
#[derive(Default)]
struct Ledger {
    totals: HashMap<Option<RuleId>, u64>,
    /// Published over but maybe still read by a worker (their counters may still move), with
    /// the publish sequence that replaced them.
    retiring: Vec<(u64, Arc<Ruleset>)>,
}

impl Ledger {
    fn add(totals: &mut HashMap<Option<RuleId>, u64>, rs: &Ruleset) {
        let counts = rs.hit_counts();
        let ids = rs.rules().iter().map(|m| Some(m.id)).chain([None]);
        for (id, n) in ids.zip(counts) {
            if n > 0 {
                *totals.entry(id).or_default() += n;
            }
        }
    }
}

/// Hits of one rule of the current ruleset, over every generation that had its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleHits {
    /// The rule's id, `None` for the default action.
    pub id: Option<RuleId>,
    /// Its name, if any.
    pub name: Option<Arc<str>>,
    /// Its action (the default action for `id == None`).
    pub action: Action,
    /// A monitor (dry-run) rule.
    pub monitor: bool,
    /// Flows admitted, packets dropped or rejected, or monitor matches.
    pub hits: u64,
}

/// One reader's published progress: the publish sequence it has caught up with.
struct Slot {
    seen: AtomicU64,
}

/// Control-side handle (cheap to clone).
#[derive(Clone)]
pub struct TableHandle {
    shared: Arc<Shared>,
}

/// Not every reader passed a quiescent point before the deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{lagging} table reader(s) did not pass a quiescent point in time")]
pub struct NotQuiescent {
    /// Readers still holding an older ruleset.
    pub lagging: usize,
}

impl TableHandle {
    /// A table starting with `initial`.
    pub fn new(initial: Arc<Ruleset>) -> Self {
        initial.install(1);
        TableHandle {
            shared: Arc::new(Shared {
                current: ArcSwap::new(initial),
                seq: AtomicU64::new(1),
                readers: Mutex::new(Vec::new()),
                ledger: Mutex::new(Ledger::default()),
            }),
        }
    }

    /// Makes `next` the current ruleset and returns the previous one. Keep the previous one
    /// until [`wait_quiescent`](Self::wait_quiescent) returns, then drop it (so it is freed
    /// here, not on a worker).
    pub fn publish(&self, next: Arc<Ruleset>) -> Arc<Ruleset> {
        // Under the ledger lock so `rule_hits` sees the old ruleset either as current or as
        // retiring, never as neither.
        let mut ledger = self.shared.ledger.lock().expect("hit ledger poisoned");
        // Publishes are serialized by the ledger lock, so `seq + 1` is this publish's number.
        let seq = self.shared.seq.load(Ordering::SeqCst) + 1;
        next.settle(&self.shared.current.load(), seq);
        let prev = self.shared.current.swap(next);
        let seq = self.shared.seq.fetch_add(1, Ordering::SeqCst) + 1;
        ledger.retiring.push((seq, prev.clone()));
        prev
    }

    /// Hits per rule of the current ruleset (then the default action), each including what
    /// earlier generations counted for the same rule id.
    pub fn rule_hits(&self) -> Vec<RuleHits> {
        let ledger = self.shared.ledger.lock().expect("hit ledger poisoned");
        let current = self.shared.current.load_full();
        let mut totals = ledger.totals.clone();
        for (_, rs) in &ledger.retiring {
            Ledger::add(&mut totals, rs);
        }
        Ledger::add(&mut totals, &current);
        let mut out: Vec<RuleHits> = current
            .rules()
            .iter()
            .map(|m| RuleHits {
                id: Some(m.id),
                name: m.name.clone(),
                action: m.action,
                monitor: m.monitor,
                hits: totals.get(&Some(m.id)).copied().unwrap_or(0),
            })
            .collect();
        out.push(RuleHits {
            id: None,
            name: None,
            action: current.default_action(),
            monitor: false,
            hits: totals.get(&None).copied().unwrap_or(0),
        });
        out
    }

    /// Folds the counts of rulesets replaced at or before publish `seq` (which every reader
    /// has moved past) into the totals.
    fn retire(&self, seq: u64) {
        let mut ledger = self.shared.ledger.lock().expect("hit ledger poisoned");
        let Ledger { totals, retiring } = &mut *ledger;
        retiring.retain(|(replaced_at, rs)| {
            let gone = *replaced_at <= seq;
            if gone {
                Ledger::add(totals, rs);
            }
            !gone
        });
    }

    /// The current ruleset.
    pub fn current(&self) -> Arc<Ruleset> {
        self.shared.current.load_full()
    }

    /// Registers a reader (one per worker); it starts online.
    pub fn register_reader(&self) -> TableReader {
        let seq = self.shared.seq.load(Ordering::SeqCst);
        let cached = self.shared.current.load_full();
        let slot = Arc::new(Slot {
            seen: AtomicU64::new(seq),
        });
        let mut readers = self.shared.readers.lock().expect("reader list poisoned");
        readers.retain(|w| w.strong_count() > 0);
        readers.push(Arc::downgrade(&slot));
        TableReader {
            shared: self.shared.clone(),
            slot,
            cached_delta: cached.delta(),
            cached_stamp: stamp_of(&cached, seq),
            cached,
            cached_seq: seq,
        }
    }

    /// Number of live readers.
    pub fn reader_count(&self) -> usize {
        let readers = self.shared.readers.lock().expect("reader list poisoned");
        readers.iter().filter(|w| w.strong_count() > 0).count()
    }

    /// Returns once every online reader has passed a quiescent point after the latest
    /// publish (offline and dropped readers do not block), or errs at the timeout.
    pub fn wait_quiescent(&self, timeout: Duration) -> Result<(), NotQuiescent> {
        let target = self.shared.seq.load(Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        let mut spins = 0u32;
        loop {
            let lagging = {
                let readers = self.shared.readers.lock().expect("reader list poisoned");
                readers
                    .iter()
                    .filter_map(|w| w.upgrade())
                    .filter(|s| {
                        let seen = s.seen.load(Ordering::SeqCst);
                        seen != OFFLINE && seen < target
                    })
                    .count()
            };
            if lagging == 0 {
                self.retire(target);
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(NotQuiescent { lagging });
            }
            // Workers pass a quiescent point every burst (microseconds): spin briefly, then sleep.
            spins += 1;
            if spins < 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
}

/// Worker-side reader (one per worker; `Send`, not shared).
pub struct TableReader {
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    cached: Arc<Ruleset>,
    cached_seq: u64,
    /// What changed up to `cached`'s publish, loaded with it.
    cached_delta: Option<Arc<Delta>>,
    /// `cached`'s flow stamp, loaded with it.
    cached_stamp: u64,
}

/// The stamp for flows admitted under `rs`, loaded at publish sequence `seq`: its flow stamp
/// (written before the publish that made it current, so never newer than `seq`), or `seq`
/// for a ruleset that never went through a table's publish or creation.
#[inline]
fn stamp_of(rs: &Ruleset, seq: u64) -> u64 {
    match rs.flow_stamp() {
        u64::MAX => seq,
        s => s,
    }
}

/// The ruleset of a burst, its publish number, and what changed up to it: what a worker
/// needs to stamp flows and recheck those of older rulesets.
pub struct Current<'a> {
    /// The ruleset.
    pub ruleset: &'a Ruleset,
    /// The publish number flows admitted under it are stamped with: the first publish of
    /// its rules ([`Ruleset::flow_stamp`], see [`TableReader::load_stamped`]).
    pub stamp: u64,
    delta: Option<&'a Delta>,
}

impl Current<'_> {
    /// How a flow admitted by the rule with id `rule` (`None`: the default action) under the
    /// ruleset published as `stamp` (its low 32 bits, as flows keep it) fares under this one,
    /// `opening` being the fields of the packet that opened the flow. `Unchanged`: that rule
    /// and every rule before it are the same since; `DeltaRules`: the rule is the same and
    /// none of the few rules that changed before it matches `opening`. Both mean it is still
    /// the first match (the verdict holds); `Classify`: classify it again.
    #[inline]
    pub fn recheck(&self, stamp: u32, rule: Option<RuleId>, opening: &PacketFields) -> Recheck {
        self.ruleset.recheck(self.delta, stamp, rule, opening)
    }

    /// [`Current::recheck`] in two steps, so the opening packet's fields are worked out only
    /// when they are needed: this one looks at the rule and the stamp alone. `Unchanged`
    /// keeps the flow; `Test(t)` is decided by [`Current::recheck_test`]; `Classify` as
    /// above.
    #[inline]
    pub fn recheck_rule(&self, stamp: u32, rule: Option<RuleId>) -> RuleCheck {
        self.ruleset.recheck_rule(self.delta, stamp, rule)
    }

    /// Whether the flow of a [`RuleCheck::Test`] keeps its rule (`DeltaRules`), `opening`
    /// being the fields of the packet that opened it; false: classify it again.
    #[inline]
    pub fn recheck_test(&self, t: DeltaTest, opening: &PacketFields) -> bool {
        self.delta.is_some_and(|d| d.recheck_test(t, opening))
    }
}

impl TableReader {
    #[inline]
    fn refresh(&mut self) -> u64 {
        let seq = self.shared.seq.load(Ordering::SeqCst);
        if seq != self.cached_seq {
            // The store to `current` precedes the increment we just saw, so this load returns
            // that ruleset or a newer one.
            self.cached = self.shared.current.load_full();
            self.cached_seq = seq;
            // Stored before the ruleset was published: the delta of its publish or a later
            // one, either true of it.
            self.cached_delta = self.cached.delta();
            self.cached_stamp = stamp_of(&self.cached, seq);
        }
        seq
    }

    /// The ruleset to use for this burst (no reference counting unless a publish happened).
    #[inline]
    pub fn load(&mut self) -> &Ruleset {
        self.refresh();
        &self.cached
    }

    /// The ruleset to use for this burst and the publish number to stamp flows with
    /// ([`Ruleset::flow_stamp`]). Every publish that changes a rule or the default action —
    /// a new policy generation or the same generation re-resolved (an inventory update) —
    /// has a new number, so flows stamped with it know when to be revalidated; a publish of
    /// the same rules keeps the number of the first publish of those rules, and so every
    /// flow admitted under them.
    #[inline]
    pub fn load_stamped(&mut self) -> (&Ruleset, u64) {
        self.refresh();
        (&self.cached, self.cached_stamp)
    }

    /// [`Self::load_stamped`] with what changed up to the ruleset, to recheck flows.
    #[inline]
    pub fn load_current(&mut self) -> Current<'_> {
        self.refresh();
        Current {
            ruleset: &self.cached,
            stamp: self.cached_stamp,
            delta: self.cached_delta.as_deref(),
        }
    }

    /// The ruleset as an `Arc` (for flows or logs that must outlive the burst).
    pub fn load_arc(&mut self) -> Arc<Ruleset> {
        self.refresh();
        self.cached.clone()
    }

    /// Reports that this worker holds no reference from before the latest publish: call
    /// after each burst (also when the burst was empty).
    #[inline]
    pub fn quiescent(&mut self) {
        let seq = self.refresh();
        self.slot.seen.store(seq, Ordering::SeqCst);
    }

    /// Parks the reader: writers stop waiting for it until [`online`](Self::online).
    pub fn offline(&mut self) {
        self.slot.seen.store(OFFLINE, Ordering::SeqCst);
    }

    /// Resumes after [`offline`](Self::offline).
    pub fn online(&mut self) {
        self.quiescent();
    }

    /// Generation of the cached ruleset (without refreshing).
    pub fn cached_generation(&self) -> u64 {
        self.cached.generation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_config::policy::{Action, ValidatedPolicy};
    use std::sync::atomic::AtomicBool;

    fn rs(generation: u64) -> Arc<Ruleset> {
        Arc::new(
            Ruleset::compile(&ValidatedPolicy::from_rules(
                generation,
                Action::Drop,
                vec![],
            ))
            .unwrap(),
        )
    }

    #[test]
    fn reader_sees_publish_and_wait_tracks_quiescence() {
        let h = TableHandle::new(rs(1));
        let mut r = h.register_reader();
        assert_eq!(r.load().generation(), 1);
        let old = h.publish(rs(2));
        assert_eq!(old.generation(), 1);
        // The reader has not passed a quiescent point since the publish.
        assert_eq!(
            h.wait_quiescent(Duration::from_millis(5)),
            Err(NotQuiescent { lagging: 1 })
        );
        // The reader still holds the old ruleset (and the hit ledger, until it retires).
        assert_eq!(Arc::strong_count(&old), 3);
        r.quiescent();
        h.wait_quiescent(Duration::from_millis(5)).unwrap();
        // After quiescence only the control side holds the old ruleset.
        assert_eq!(Arc::strong_count(&old), 1);
        assert_eq!(r.load().generation(), 2);
    }

    fn rs_of(generation: u64, ids: &[u32]) -> Arc<Ruleset> {
        use rampart_config::policy::ResolvedRule;
        let rules = ids
            .iter()
            .map(|&i| ResolvedRule::new(RuleId(i), Action::Allow))
            .collect();
        Arc::new(
            Ruleset::compile(&ValidatedPolicy::from_rules(
                generation,
                Action::Drop,
                rules,
            ))
            .unwrap(),
        )
    }

    fn hits_of(h: &TableHandle) -> Vec<(Option<u32>, u64)> {
        h.rule_hits()
            .iter()
            .map(|r| (r.id.map(|i| i.0), r.hits))
            .collect()
    }

    #[test]
    fn rule_hits_follow_the_id_across_publishes() {
        let h = TableHandle::new(rs_of(1, &[10, 20]));
        let mut r = h.register_reader();
        {
            let rs = r.load();
            rs.count_hit(0, rs.index_of(RuleId(10)));
            rs.count_hit(1, rs.index_of(RuleId(20)));
            rs.count_hit(0, rs.index_of(RuleId(20)));
            rs.count_hit(0, None);
        }
        assert_eq!(hits_of(&h), vec![(Some(10), 1), (Some(20), 2), (None, 1)]);
        // Reordered, one rule added, one removed: 20 keeps its count at its new position.
        h.publish(rs_of(2, &[30, 20]));
        // Before the reader moves on, the old generation's counts are still reported.
        assert_eq!(hits_of(&h), vec![(Some(30), 0), (Some(20), 2), (None, 1)]);
        r.quiescent();
        h.wait_quiescent(Duration::from_millis(100)).unwrap();
        {
            let rs = r.load();
            assert_eq!(rs.generation(), 2);
            rs.count_hit(3, rs.index_of(RuleId(20)));
            rs.count_hit(0, rs.index_of(RuleId(30)));
        }
        assert_eq!(hits_of(&h), vec![(Some(30), 1), (Some(20), 3), (None, 1)]);
        // 10 comes back later: its earlier hits are still its own.
        h.publish(rs_of(3, &[10]));
        r.quiescent();
        h.wait_quiescent(Duration::from_millis(100)).unwrap();
        assert_eq!(hits_of(&h), vec![(Some(10), 1), (None, 1)]);
    }

    #[test]
    fn publish_records_since_when_each_rule_prefix_is_unchanged() {
        let h = TableHandle::new(rs_of(1, &[1, 2, 3]));
        let since = |h: &TableHandle, id: Option<u32>| h.current().unchanged_since(id.map(RuleId));
        // The first ruleset was never published over another: unknown.
        assert_eq!(since(&h, Some(1)), u64::MAX);
        // Publish 2: rule 3 replaced by 4. Rules 1 and 2 (and their prefixes) are unchanged
        // since publish 1; rule 4 and the default action only since publish 2.
        h.publish(rs_of(2, &[1, 2, 4]));
        assert_eq!(
            [since(&h, Some(1)), since(&h, Some(2)), since(&h, Some(4))],
            [1, 1, 2]
        );
        assert_eq!(since(&h, None), 2);
        assert_eq!(since(&h, Some(3)), u64::MAX, "not in this ruleset");
        // Publish 3: the same rules compiled again keep their history.
        h.publish(rs_of(3, &[1, 2, 4]));
        assert_eq!(
            [since(&h, Some(1)), since(&h, Some(4)), since(&h, None)],
            [1, 2, 2]
        );
        // Publish 4: a rule inserted first changes every prefix.
        h.publish(rs_of(4, &[9, 1, 2, 4]));
        assert_eq!([since(&h, Some(1)), since(&h, None)], [4, 4]);
    }

    #[test]
    fn offline_and_dropped_readers_do_not_block() {
        let h = TableHandle::new(rs(1));
        let mut a = h.register_reader();
        let b = h.register_reader();
        a.offline();
        drop(b);
        h.publish(rs(2));
        h.wait_quiescent(Duration::from_millis(5)).unwrap();
        a.online();
        assert_eq!(a.load().generation(), 2);
        assert_eq!(h.reader_count(), 1);
    }

    #[test]
    fn threads_never_see_a_freed_or_older_ruleset_after_quiescence() {
        let h = TableHandle::new(rs(1));
        let stop = Arc::new(AtomicBool::new(false));
        let max_seen: Vec<Arc<AtomicU64>> = (0..3).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let mut joins = Vec::new();
        for seen in &max_seen {
            let mut r = h.register_reader();
            let stop = stop.clone();
            let seen = seen.clone();
            joins.push(std::thread::spawn(move || {
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    let g = r.load().generation();
                    // Generations never go backwards for one reader.
                    assert!(g >= last, "generation went back from {last} to {g}");
                    last = g;
                    seen.store(g, Ordering::SeqCst);
                    r.quiescent();
                }
            }));
        }
        for g in 2..=100u64 {
            let old = h.publish(rs(g));
            h.wait_quiescent(Duration::from_secs(10)).unwrap();
            // Every reader has moved past the old ruleset: we hold the last reference.
            assert_eq!(Arc::strong_count(&old), 1, "generation {g}");
            for s in &max_seen {
                assert!(s.load(Ordering::SeqCst) >= g - 1);
            }
        }
        stop.store(true, Ordering::Relaxed);
        for j in joins {
            j.join().unwrap();
        }
    }
}
