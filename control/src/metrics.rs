//! The Prometheus text-format endpoint served by the control thread (issue 6). The control plane
//! renders its own series (policy generation, rules, age, documents by outcome, broker
//! connection); the appliance plugs the dataplane's series in through [`MetricsSource`] (it
//! aggregates per-core counters itself, off the workers). `rampartctl stats` reads this.

use crate::status::{Outcome, RealizedState};
use rampart_classify::table::TableHandle;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

/// More series for the endpoint (the dataplane's counters). Called on the control thread for
/// every scrape; must not block for long.
pub trait MetricsSource: Send + Sync + 'static {
    /// Append samples in Prometheus text format (with their `# TYPE` lines).
    fn render(&self, out: &mut String);
}

/// Counters kept by the policy sources.
#[derive(Debug, Default)]
pub struct ControlCounters {
    applied: AtomicU64,
    rejected: AtomicU64,
    stale: AtomicU64,
    connects: AtomicU64,
    connected: AtomicU64,
    last_applied_unix_ms: AtomicU64,
    started_unix_ms: AtomicU64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl ControlCounters {
    /// Fresh counters; the policy age counts from now until the first apply.
    pub fn new() -> Self {
        let c = Self::default();
        c.started_unix_ms.store(unix_ms(), Ordering::Relaxed);
        c
    }

    /// Count a report.
    pub fn record(&self, report: &RealizedState) {
        let counter = match report.outcome {
            Outcome::Applied => {
                self.last_applied_unix_ms
                    .store(unix_ms(), Ordering::Relaxed);
                &self.applied
            }
            Outcome::Rejected => &self.rejected,
            Outcome::Stale => &self.stale,
            Outcome::Current => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The broker connection came up (`true`) or went down.
    pub fn set_connected(&self, up: bool) {
        if up {
            self.connects.fetch_add(1, Ordering::Relaxed);
        }
        self.connected.store(u64::from(up), Ordering::Relaxed);
    }

    /// The control plane's own series.
    pub fn render(&self, table: &TableHandle, out: &mut String) {
        let ruleset = table.current();
        let since = match self.last_applied_unix_ms.load(Ordering::Relaxed) {
            0 => self.started_unix_ms.load(Ordering::Relaxed),
            t => t,
        };
        let age_s = unix_ms().saturating_sub(since) as f64 / 1e3;
        let _ = writeln!(
            out,
            "# TYPE rampart_policy_generation gauge\nrampart_policy_generation {}\n\
             # TYPE rampart_policy_rules gauge\nrampart_policy_rules {}\n\
             # TYPE rampart_policy_age_seconds gauge\nrampart_policy_age_seconds {age_s:.3}\n\
             # TYPE rampart_policy_memory_bytes gauge\nrampart_policy_memory_bytes {}\n\
             # TYPE rampart_control_documents_total counter",
            ruleset.generation(),
            ruleset.rule_count(),
            ruleset.memory_bytes(),
        );
        for (outcome, c) in [
            ("applied", &self.applied),
            ("rejected", &self.rejected),
            ("stale", &self.stale),
        ] {
            let _ = writeln!(
                out,
                "rampart_control_documents_total{{outcome=\"{outcome}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# TYPE rampart_control_broker_connected gauge\nrampart_control_broker_connected {}\n\
             # TYPE rampart_control_broker_connects_total counter\nrampart_control_broker_connects_total {}",
            self.connected.load(Ordering::Relaxed),
            self.connects.load(Ordering::Relaxed),
        );
    }
}

/// Serve `GET <anything>` on `listener` with the rendered metrics until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    table: TableHandle,
    counters: Arc<ControlCounters>,
    extra: Option<Arc<dyn MetricsSource>>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "metrics endpoint listening");
    }
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let mut stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(error = %e, "metrics endpoint accept failed");
                continue;
            }
        };
        // Read (and ignore) the request head; answer every path with the metrics.
        let mut buf = [0u8; 1024];
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut buf)).await;
        let mut body = String::with_capacity(4096);
        counters.render(&table, &mut body);
        if let Some(extra) = &extra {
            extra.render(&mut body);
        }
        let head = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}
