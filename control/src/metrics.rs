//! The Prometheus text-format endpoint served by the control thread (issue 6). The control plane
//! renders its own series (policy generation, rules, age, documents by outcome, broker
//! connection); the appliance plugs the dataplane's series in through [`MetricsSource`] (it
//! aggregates per-core counters itself, off the workers). `rampartctl stats` reads this.

use crate::live::{self, FlowEntry, FlowQuery, LiveExplanation, PacketQuery};
use crate::status::{Outcome, RealizedState};
use rampart_classify::table::TableHandle;
use rampart_classify::Action;
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

    /// Answer a question about the node's flows (asks the workers; may take milliseconds, and
    /// is called off the async thread). `None`: this source has no flow tables.
    fn flows(&self, query: &FlowQuery) -> Option<Result<Vec<FlowEntry>, String>> {
        let _ = query;
        None
    }
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
        render_rule_hits(table, out);
        let _ = writeln!(
            out,
            "# TYPE rampart_control_broker_connected gauge\nrampart_control_broker_connected {}\n\
             # TYPE rampart_control_broker_connects_total counter\nrampart_control_broker_connects_total {}",
            self.connected.load(Ordering::Relaxed),
            self.connects.load(Ordering::Relaxed),
        );
    }
}

/// `rampart_rule_hits_total`: per rule of the current policy (by stable id, summed over every
/// generation that had the id), then the default action as `rule="default"`.
fn render_rule_hits(table: &TableHandle, out: &mut String) {
    out.push_str("# TYPE rampart_rule_hits_total counter\n");
    for h in table.rule_hits() {
        let rule = h.id.map_or("default".to_string(), |id| id.0.to_string());
        let _ = write!(
            out,
            "rampart_rule_hits_total{{rule=\"{rule}\",action=\"{}\"",
            action_name(h.action)
        );
        if let Some(name) = &h.name {
            let _ = write!(out, ",name=\"{}\"", escape_label(name));
        }
        if h.monitor {
            out.push_str(",monitor=\"true\"");
        }
        let _ = writeln!(out, "}} {}", h.hits);
    }
}

/// A label value as Prometheus' text format wants it: backslash, quote and newline escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serve the management endpoint on `listener` until `shutdown`: `GET /flows` and
/// `GET /explain` (see [`crate::live`]); any other path gets the metrics.
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
        let (table, counters, extra) = (table.clone(), counters.clone(), extra.clone());
        // One task per request: a flow listing waits on the workers and must not hold up a
        // scrape.
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n = read_head(&mut stream, &mut buf).await;
            let head = String::from_utf8_lossy(&buf[..n]);
            let target = head.split_whitespace().nth(1).unwrap_or("/metrics");
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let (status, content_type, body) = match path {
                "/flows" => {
                    let answer = match live::top_of(query) {
                        Ok(n) => ask_flows(extra, FlowQuery::Top(n)).await,
                        Err(e) => Err((400, e)),
                    };
                    json_answer(answer)
                }
                "/explain" => {
                    let answer = match PacketQuery::from_query(query) {
                        Ok(q) => explain(&table, extra, q).await,
                        Err(e) => Err((400, e)),
                    };
                    json_answer(answer)
                }
                _ => {
                    let mut body = String::with_capacity(4096);
                    counters.render(&table, &mut body);
                    if let Some(extra) = &extra {
                        extra.render(&mut body);
                    }
                    (200, "text/plain; version=0.0.4", body)
                }
            };
            let reason = match status {
                200 => "OK",
                400 => "Bad Request",
                404 => "Not Found",
                _ => "Service Unavailable",
            };
            let head = format!(
                "HTTP/1.0 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Reads the request head (it may arrive in several segments) up to its blank line, a full
/// buffer, or 2 s; returns the bytes read.
async fn read_head(stream: &mut tokio::net::TcpStream, buf: &mut [u8]) -> usize {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut n = 0;
    while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf[n..])).await {
            Ok(Ok(k)) if k > 0 => n += k,
            _ => break,
        }
    }
    n
}

type Answer<T> = Result<T, (u16, String)>;

fn json_answer<T: serde::Serialize>(a: Answer<T>) -> (u16, &'static str, String) {
    match a {
        Ok(v) => (
            200,
            "application/json",
            serde_json::to_string_pretty(&v).unwrap_or_default(),
        ),
        Err((status, msg)) => (status, "text/plain", format!("{msg}\n")),
    }
}

async fn ask_flows(
    extra: Option<Arc<dyn MetricsSource>>,
    query: FlowQuery,
) -> Answer<Vec<FlowEntry>> {
    let Some(source) = extra else {
        return Err((404, "this node has no dataplane flow tables".into()));
    };
    tokio::task::spawn_blocking(move || source.flows(&query))
        .await
        .map_err(|e| (503, format!("flow query failed: {e}")))?
        .ok_or_else(|| (404, "this node has no dataplane flow tables".to_string()))?
        .map_err(|e| (503, e))
}

async fn explain(
    table: &TableHandle,
    extra: Option<Arc<dyn MetricsSource>>,
    q: PacketQuery,
) -> Answer<LiveExplanation> {
    let fields = q.fields().map_err(|e| (400, e))?;
    let ruleset = table.current();
    let x = ruleset.explain(&fields);
    let (flows, flows_error) = match ask_flows(extra, FlowQuery::Packet(q)).await {
        Ok(f) => (f, None),
        Err((_, e)) => (Vec::new(), Some(e)),
    };
    Ok(LiveExplanation {
        generation: x.generation,
        action: action_name(x.verdict.action).to_string(),
        rule: x.verdict.rule_id.map(|r| r.0),
        text: x.to_string(),
        flows,
        flows_error,
    })
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Allow => "allow",
        Action::Drop => "drop",
        Action::Reject => "reject",
    }
}
