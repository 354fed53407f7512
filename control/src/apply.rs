//! The steps between "a document arrived" and "it is enforced", shared by the broker and the
//! file source. Each step is blocking and runs off the async thread; the caller interleaves them
//! with the broker acknowledgement so the order is: compile → RCU publish → wait until every
//! worker passed a quiescent point → ack → report → persist → drop the old ruleset.

use crate::persist::{self, PersistError};
use crate::policy::{self, Compiled, Refusal};
use crate::status::{Outcome, RealizedState};
use rampart_classify::table::TableHandle;
use rampart_classify::Ruleset;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Upper bound on waiting for the workers after a swap.
    pub quiescent_timeout: Duration,
}

/// A ruleset that is live on the workers, and the one it replaced (kept alive until persisted).
pub struct Enforced {
    /// The previous ruleset; dropping it frees it once no reader holds it.
    pub previous: Arc<Ruleset>,
    /// The report to send (outcome Applied).
    pub report: RealizedState,
    /// The document to persist.
    pub document: rampart_config::policy::PolicyDocument,
    /// Its JSON as received, if any.
    pub raw_json: Option<Vec<u8>>,
}

impl Applier {
    /// The generation the workers enforce now.
    pub fn active_generation(&self) -> u64 {
        self.table.current().generation()
    }

    /// A report of what is enforced now (outcome Current).
    pub fn current_report(&self) -> RealizedState {
        let ruleset = self.table.current();
        let mut r = self.report(Outcome::Current);
        r.generation = Some(ruleset.generation());
        r.active_generation = Some(ruleset.generation());
        r.rule_count = ruleset.rule_count();
        r.warnings = policy::warnings(&ruleset);
        r
    }

    fn report(&self, outcome: Outcome) -> RealizedState {
        RealizedState::new(&self.node, self.cluster.as_deref(), outcome)
    }

    /// The report for a document that was not applied.
    pub fn refusal_report(&self, refusal: &Refusal) -> RealizedState {
        let ruleset = self.table.current();
        let (outcome, generation, error) = match refusal {
            Refusal::Stale { generation, active } => (
                Outcome::Stale,
                Some(*generation),
                Some(format!(
                    "generation {generation} is not newer than the enforced generation {active}"
                )),
            ),
            Refusal::Invalid { generation, error } => {
                (Outcome::Rejected, *generation, Some(error.clone()))
            }
        };
        let mut r = self.report(outcome);
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
        policy::compile(doc, Some(bytes), Some(self.active_generation()), started)
    }

    /// Read and compile a policy file if it is newer than what is enforced.
    pub fn compile_file(&self, path: &std::path::Path) -> Result<Compiled, Refusal> {
        let started = Instant::now();
        let doc = policy::parse_path(path)?;
        policy::compile(doc, None, Some(self.active_generation()), started)
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
        } = compiled;
        let started = Instant::now();
        let previous = self.table.publish(Arc::clone(&ruleset));
        let quiescent = self.table.wait_quiescent(self.quiescent_timeout);
        let enforce_time = started.elapsed();

        let mut report = self.report(Outcome::Applied);
        report.generation = Some(ruleset.generation());
        report.active_generation = Some(ruleset.generation());
        report.rule_count = ruleset.rule_count();
        report.compile_ms = ms(compile_time);
        report.enforce_ms = ms(enforce_time);
        report.warnings = policy::warnings(&ruleset);
        if let Err(e) = quiescent {
            report.warnings.push(format!(
                "not every worker confirmed the swap within {:?}: {e}",
                self.quiescent_timeout
            ));
        }
        Enforced {
            previous,
            report,
            document,
            raw_json,
        }
    }

    /// Persist the enforced document as last-good, then let the previous ruleset go.
    pub fn commit(&self, enforced: Enforced) -> Result<(), PersistError> {
        let json = Compiled::into_json(enforced.document, enforced.raw_json);
        let result = persist::write_atomic(&self.last_good_path, &json);
        drop(enforced.previous);
        result
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
