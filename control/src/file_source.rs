//! The embedded default when no broker is configured: the policy file is the source. It is
//! re-read when its mtime or size changes (polled) or at once on SIGHUP; a newer valid document
//! is applied exactly like one from the broker, an invalid one is logged and the current policy
//! stays.

use crate::apply::Applier;
use crate::metrics::ControlCounters;
use crate::policy::Refusal;
use crate::status::RealizedState;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tracing::{info, warn};

/// Polls (and listens for SIGHUP on) one policy file.
pub struct FileSource {
    /// The file (JSON or YAML by extension).
    pub path: PathBuf,
    /// How often to look at its metadata.
    pub poll: Duration,
    /// Also reload on SIGHUP (the appliance binary: yes; tests: no, a stray SIGHUP would kill them).
    pub sighup: bool,
    /// The apply steps and node identity.
    pub applier: Applier,
    /// Latest report, shared with the handle.
    pub reports: watch::Sender<Option<RealizedState>>,
    /// Counters for the metrics endpoint.
    pub counters: Arc<ControlCounters>,
}

type Stamp = Option<(SystemTime, u64)>;

impl FileSource {
    fn stamp(&self) -> Stamp {
        let m = std::fs::metadata(&self.path).ok()?;
        Some((m.modified().ok()?, m.len()))
    }

    /// Run until `shutdown` flips to true. Checks the file once at start.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut hup = if self.sighup {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(s) => Some(s),
                Err(e) => {
                    warn!(error = %e, "cannot listen for SIGHUP; reloading on change only");
                    None
                }
            }
        } else {
            None
        };
        let mut last: Stamp = None;
        let mut force = true;
        loop {
            let stamp = self.stamp();
            if force || stamp != last {
                last = stamp;
                self.reload().await;
            }
            force = false;
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                Some(()) = async { match hup.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                    info!(path = %self.path.display(), "SIGHUP: reloading the policy file");
                    force = true;
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        return;
                    }
                }
            }
        }
    }

    async fn reload(&self) {
        let applier = self.applier.clone();
        let path = self.path.clone();
        let reports = self.reports.clone();
        let counters = self.counters.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let report = match applier.compile_file(&path) {
                Ok(compiled) => {
                    let enforced = applier.enforce(compiled);
                    let report = enforced.report.clone();
                    info!(path = %path.display(), generation = ?report.generation, rules = report.rule_count,
                          compile_ms = report.compile_ms, enforce_ms = report.enforce_ms, "policy file applied");
                    if let Err(e) = applier.commit(enforced) {
                        warn!(error = %e, "persisting the last-good policy failed");
                    }
                    report
                }
                Err(refusal) => {
                    match &refusal {
                        Refusal::Stale { generation, active } => info!(
                            path = %path.display(), generation, active,
                            "policy file not newer than the enforced policy; ignored"
                        ),
                        Refusal::Invalid { error, .. } => warn!(
                            path = %path.display(), %error, "policy file rejected; the current policy stays"
                        ),
                    }
                    applier.refusal_report(crate::status::DocumentKind::Policy, &refusal)
                }
            };
            counters.record(&report);
            let _ = reports.send(Some(report));
        })
        .await;
        if let Err(e) = outcome {
            warn!(error = %e, "policy reload task failed");
        }
    }
}
