//! The steps between "a document arrived" and "it is enforced", shared by the broker and the
//! file source. Each step is blocking and runs off the async thread; the caller interleaves them
//! with the broker acknowledgement so the order is: compile → RCU publish → wait until every
//! worker passed a quiescent point → ack → report → persist → drop the old ruleset.
//!
//! Two kinds of documents arrive: a complete policy, and an inventory update on its own. The
//! latter is merged into the node's inventory and the enforced policy is resolved again against
//! it (tag-selected groups change members), then published the same way.

use crate::persist::{self, PersistError};
use crate::policy::{self, Compiled, InventoryUpdate, Refusal};
use crate::status::{DocumentKind, Outcome, RealizedState};
use rampart_classify::table::TableHandle;
use rampart_classify::Ruleset;
use rampart_config::policy::{Inventory, InventoryDocument, PolicyDocument};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the node resolves policies against, besides the ruleset the workers hold. Only the
/// control thread's tasks touch it, one document at a time, and nobody holds the lock while
/// compiling (the values are `Arc`s cloned out).
#[derive(Debug, Default)]
pub struct NodeState {
    /// The enforced policy document (`None`: the empty boot policy).
    pub document: Option<Arc<PolicyDocument>>,
    /// The standalone inventory, merged from every update applied.
    pub inventory: Arc<Inventory>,
    /// Revision of the last inventory update applied.
    pub inventory_revision: Option<u64>,
}

/// Who this node is and where it keeps things; cheap to clone into blocking tasks.
#[derive(Clone)]
pub struct Applier {
    /// Node name for reports.
    pub node: String,
    /// Cluster name for reports.
    pub cluster: Option<String>,
    /// The RCU handle shared with the workers.
    pub table: TableHandle,
    /// Where the last-good document goes.
    pub last_good_path: PathBuf,
    /// Where the merged standalone inventory goes.
    pub inventory_path: PathBuf,
    /// Upper bound on waiting for the workers after a swap.
    pub quiescent_timeout: Duration,
    /// The enforced document and the inventory.
    pub state: Arc<Mutex<NodeState>>,
}

/// A ruleset that is live on the workers, and the one it replaced (kept alive until persisted).
pub struct Enforced {
    /// The previous ruleset; dropping it frees it once no reader holds it.
    pub previous: Arc<Ruleset>,
    /// The report to send (outcome Applied).
    pub report: RealizedState,
    /// The document to persist (a policy change), if any.
    pub document: Option<Arc<PolicyDocument>>,
    /// Its JSON as received, if any.
    pub raw_json: Option<Vec<u8>>,
    /// The inventory to persist (an inventory change), if any.
    pub inventory_update: Option<InventoryUpdate>,
    /// The document and inventory this change replaced: freed with `previous`, after the
    /// report (freeing a large document takes a millisecond or more).
    retired: (Option<Arc<PolicyDocument>>, Option<Arc<Inventory>>),
}

impl Applier {
    fn state(&self) -> MutexGuard<'_, NodeState> {
        // A panic while holding it cannot leave it half-updated (single assignments).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The generation the workers enforce now.
    pub fn active_generation(&self) -> u64 {
        self.table.current().generation()
    }

    /// A report of what is enforced now (outcome Current).
    pub fn current_report(&self) -> RealizedState {
        let ruleset = self.table.current();
        let mut r = self.report(Outcome::Current, DocumentKind::Policy);
        r.generation = Some(ruleset.generation());
        r.active_generation = Some(ruleset.generation());
        r.rule_count = ruleset.rule_count();
        r.warnings = policy::warnings(&ruleset);
        r
    }

    fn report(&self, outcome: Outcome, kind: DocumentKind) -> RealizedState {
        let mut r = RealizedState::new(&self.node, self.cluster.as_deref(), outcome);
        r.kind = kind;
        r.inventory_revision = self.state().inventory_revision;
        r
    }

    /// The report for a document (of `kind`) that was not applied.
    pub fn refusal_report(&self, kind: DocumentKind, refusal: &Refusal) -> RealizedState {
        let ruleset = self.table.current();
        let what = match kind {
            DocumentKind::Policy => "generation",
            DocumentKind::Inventory => "inventory revision",
        };
        let (outcome, generation, error) = match refusal {
            Refusal::Stale { generation, active } => (
                Outcome::Stale,
                Some(*generation),
                Some(format!(
                    "{what} {generation} is not newer than the enforced {what} {active}"
                )),
            ),
            Refusal::Invalid { generation, error } => {
                (Outcome::Rejected, *generation, Some(error.clone()))
            }
        };
        let mut r = self.report(outcome, kind);
        r.generation = generation;
        r.active_generation = Some(ruleset.generation());
        r.rule_count = ruleset.rule_count();
        r.error = error;
        r
    }

    /// Parse and compile a JSON document (a broker message) if it is newer than what is enforced.
    pub fn compile_json(&self, bytes: Vec<u8>) -> Result<Compiled, Refusal> {
        let started = Instant::now();
        let doc = policy::parse_json(&bytes)?;
        let inventory = self.state().inventory.clone();
        policy::compile(
            doc,
            Some(bytes),
            Some(self.active_generation()),
            Some(&inventory),
            started,
        )
    }

    /// Read and compile a policy file if it is newer than what is enforced.
    pub fn compile_file(&self, path: &std::path::Path) -> Result<Compiled, Refusal> {
        let started = Instant::now();
        let doc = policy::parse_path(path)?;
        let inventory = self.state().inventory.clone();
        policy::compile(
            doc,
            None,
            Some(self.active_generation()),
            Some(&inventory),
            started,
        )
    }

    /// Parse and check an inventory update (JSON), merge it into a copy of the node's
    /// inventory and resolve the enforced policy against the result. Refused when invalid
    /// (errors name the path), without a revision, or not newer than the live revision.
    /// With no policy document enforced yet (the empty boot policy), the ruleset stays as it
    /// is and the inventory is kept for the next document.
    pub fn compile_inventory(&self, bytes: &[u8]) -> Result<Compiled, Refusal> {
        let started = Instant::now();
        let update = InventoryDocument::from_json_slice(bytes).map_err(|e| Refusal::Invalid {
            generation: revision_hint(bytes),
            error: format!("invalid inventory JSON: {e}"),
        })?;
        let invalid = |error: String| Refusal::Invalid {
            generation: update.generation,
            error,
        };
        update.validate().map_err(|e| invalid(e.to_string()))?;
        let Some(revision) = update.generation else {
            return Err(invalid(
                "generation: an inventory update needs a revision (`generation`) so that \
                 nodes apply updates in order"
                    .into(),
            ));
        };
        let (document, current, live) = {
            let s = self.state();
            (
                s.document.clone(),
                s.inventory.clone(),
                s.inventory_revision,
            )
        };
        if let Some(active) = live.filter(|&live| revision <= live) {
            return Err(Refusal::Stale {
                generation: revision,
                active,
            });
        }
        let mut merged = (*current).clone();
        merged.merge(&update);
        let ruleset = match &document {
            Some(doc) => policy::resolve(doc, Some(&merged)).map_err(|r| match r {
                Refusal::Invalid { error, .. } => invalid(format!(
                    "the enforced policy (generation {}) does not resolve against it: {error}",
                    doc.generation
                )),
                other => other,
            })?,
            None => self.table.current(),
        };
        Ok(Compiled {
            ruleset,
            document,
            raw_json: None,
            compile_time: started.elapsed(),
            inventory_update: Some(InventoryUpdate {
                inventory: Arc::new(merged),
                revision,
            }),
        })
    }

    /// Publish `compiled` to the workers and wait until each passed a quiescent point.
    /// A worker that does not report in time is named in the warnings; the swap itself has
    /// happened (readers pick the new ruleset up at their next burst).
    pub fn enforce(&self, compiled: Compiled) -> Enforced {
        let Compiled {
            ruleset,
            document,
            raw_json,
            compile_time,
            inventory_update,
        } = compiled;
        let started = Instant::now();
        let previous = self.table.publish(Arc::clone(&ruleset));
        let quiescent = self.table.wait_quiescent(self.quiescent_timeout);
        let enforce_time = started.elapsed();
        let (kind, retired) = {
            let mut s = self.state();
            match &inventory_update {
                Some(u) => {
                    s.inventory_revision = Some(u.revision);
                    let old = std::mem::replace(&mut s.inventory, u.inventory.clone());
                    (DocumentKind::Inventory, (None, Some(old)))
                }
                None => {
                    let old = std::mem::replace(&mut s.document, document.clone());
                    (DocumentKind::Policy, (old, None))
                }
            }
        };

        let mut report = self.report(Outcome::Applied, kind);
        report.generation = Some(ruleset.generation());
        report.active_generation = Some(ruleset.generation());
        report.rule_count = ruleset.rule_count();
        report.compile_ms = ms(compile_time);
        report.enforce_ms = ms(enforce_time);
        report.warnings = policy::warnings(&ruleset);
        if kind == DocumentKind::Inventory && document.is_none() {
            report.warnings.push(
                "no policy document is enforced yet: the inventory is kept for the next one".into(),
            );
        }
        if let Err(e) = quiescent {
            report.warnings.push(format!(
                "not every worker confirmed the swap within {:?}: {e}",
                self.quiescent_timeout
            ));
        }
        Enforced {
            previous,
            report,
            // An inventory change leaves the persisted document as it is.
            document: document.filter(|_| inventory_update.is_none()),
            raw_json,
            inventory_update,
            retired,
        }
    }

    /// Persist what was enforced (the document as last-good, or the merged inventory), then
    /// let the previous ruleset go.
    pub fn commit(&self, enforced: Enforced) -> Result<(), PersistError> {
        let result = match (&enforced.inventory_update, &enforced.document) {
            (Some(u), _) => persist::write_atomic(
                &self.inventory_path,
                &u.inventory.to_document(Some(u.revision)).to_json_vec(),
            ),
            (None, Some(doc)) => {
                let json = Compiled::into_json(doc, enforced.raw_json);
                persist::write_atomic(&self.last_good_path, &json)
            }
            (None, None) => Ok(()),
        };
        drop(enforced.previous);
        drop(enforced.retired);
        result
    }
}

/// The revision of an otherwise unusable inventory update, if it has a readable one.
fn revision_hint(bytes: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Rev {
        generation: u64,
    }
    serde_json::from_slice::<Rev>(bytes)
        .ok()
        .map(|g| g.generation)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
