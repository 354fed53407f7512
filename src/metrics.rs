//! The Prometheus text-format metrics endpoint (`GET /metrics`), served by a plain thread of
//! the control side — never a worker core. A scrape reads the workers' single-writer counters
//! (relaxed loads, no locks on the hot path) and renders them.

use rampart_classify::TableHandle;
use rampart_dataplane::{DropReason, FirewallCounters, WorkerCounters};
use rampart_flow::TrackError;
use rampart_wire::ParseError;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Everything a scrape reads.
pub struct MetricsSource {
    /// Port labels (`in0`, `out0`, …) and their DPDK device names, by port index.
    pub ports: Vec<(String, String)>,
    /// Each worker's loop counters.
    pub workers: Vec<Arc<WorkerCounters>>,
    /// Each worker's firewall counters (empty in raw-forward mode).
    pub firewalls: Vec<Arc<FirewallCounters>>,
    /// The ruleset table (None in raw-forward mode).
    pub table: Option<TableHandle>,
    /// When the current generation was first seen, to report its age.
    pub generation_seen: Mutex<(u64, Instant)>,
}

impl MetricsSource {
    /// Renders every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let o = &mut out;
        header(
            o,
            "rampart_port_rx_packets_total",
            "counter",
            "Packets received, by port and worker.",
        );
        self.per_port(o, "rampart_port_rx_packets_total", |s| s.rx_pkts.get());
        header(
            o,
            "rampart_port_rx_bytes_total",
            "counter",
            "Bytes received, by port and worker.",
        );
        self.per_port(o, "rampart_port_rx_bytes_total", |s| s.rx_bytes.get());
        header(
            o,
            "rampart_port_tx_packets_total",
            "counter",
            "Packets transmitted, by port and worker.",
        );
        self.per_port(o, "rampart_port_tx_packets_total", |s| s.tx_pkts.get());
        header(
            o,
            "rampart_port_drops_total",
            "counter",
            "Packets dropped, by port, worker and reason.",
        );
        for (w, wc) in self.workers.iter().enumerate() {
            for (p, (label, dev)) in self.ports.iter().enumerate() {
                let pc = &wc.ports[p];
                let _ = writeln!(
                    o,
                    "rampart_port_drops_total{{port=\"{label}\",device=\"{dev}\",worker=\"{w}\",reason=\"tx_full\"}} {}",
                    pc.tx_full.get()
                );
                for r in DropReason::ALL {
                    let _ = writeln!(
                        o,
                        "rampart_port_drops_total{{port=\"{label}\",device=\"{dev}\",worker=\"{w}\",reason=\"{}\"}} {}",
                        r.name(),
                        pc.drops[r as usize].get()
                    );
                }
            }
        }
        header(
            o,
            "rampart_worker_polls_total",
            "counter",
            "Poll iterations, busy (received packets) or idle.",
        );
        for (w, wc) in self.workers.iter().enumerate() {
            let _ = writeln!(
                o,
                "rampart_worker_polls_total{{worker=\"{w}\",kind=\"busy\"}} {}",
                wc.busy_polls.get()
            );
            let _ = writeln!(
                o,
                "rampart_worker_polls_total{{worker=\"{w}\",kind=\"idle\"}} {}",
                wc.idle_polls.get()
            );
        }
        self.burst_histogram(o);
        if !self.firewalls.is_empty() {
            self.firewall(o);
        }
        if let Some(table) = &self.table {
            let rs = table.current();
            let g = rs.generation();
            let age = {
                let mut seen = self.generation_seen.lock().expect("metrics state");
                if seen.0 != g {
                    *seen = (g, Instant::now());
                }
                seen.1.elapsed().as_secs_f64()
            };
            header(
                o,
                "rampart_policy_generation",
                "gauge",
                "Generation of the ruleset in force.",
            );
            let _ = writeln!(o, "rampart_policy_generation {g}");
            header(
                o,
                "rampart_policy_age_seconds",
                "gauge",
                "Seconds since this generation came into force (as seen by this process).",
            );
            let _ = writeln!(o, "rampart_policy_age_seconds {age:.3}");
            header(
                o,
                "rampart_policy_rules",
                "gauge",
                "Rules in the ruleset in force.",
            );
            let _ = writeln!(o, "rampart_policy_rules {}", rs.rule_count());
            header(
                o,
                "rampart_policy_warnings",
                "gauge",
                "Compile warnings (shadowed or redundant rules) of the ruleset in force.",
            );
            let _ = writeln!(o, "rampart_policy_warnings {}", rs.warnings().len());
            header(
                o,
                "rampart_policy_memory_bytes",
                "gauge",
                "Classifier memory of the ruleset in force.",
            );
            let _ = writeln!(o, "rampart_policy_memory_bytes {}", rs.memory_bytes());
        }
        out
    }

    fn per_port(
        &self,
        o: &mut String,
        name: &str,
        get: impl Fn(&rampart_dataplane::PortCounters) -> u64,
    ) {
        for (w, wc) in self.workers.iter().enumerate() {
            for (p, (label, dev)) in self.ports.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "{name}{{port=\"{label}\",device=\"{dev}\",worker=\"{w}\"}} {}",
                    get(&wc.ports[p])
                );
            }
        }
    }

    fn burst_histogram(&self, o: &mut String) {
        header(
            o,
            "rampart_burst_cycles",
            "histogram",
            "TSC cycles to process one received burst (stages + transmit), per worker.",
        );
        for (w, wc) in self.workers.iter().enumerate() {
            let h = wc.burst_cycles.snapshot();
            let mut cum = 0;
            for (i, n) in h.buckets.iter().enumerate() {
                cum += n;
                let _ = writeln!(
                    o,
                    "rampart_burst_cycles_bucket{{worker=\"{w}\",le=\"{}\"}} {cum}",
                    rampart_dataplane::BurstHistogram::upper_bound(i)
                );
            }
            let _ = writeln!(
                o,
                "rampart_burst_cycles_bucket{{worker=\"{w}\",le=\"+Inf\"}} {cum}"
            );
            let _ = writeln!(o, "rampart_burst_cycles_sum{{worker=\"{w}\"}} {}", h.sum);
            let _ = writeln!(o, "rampart_burst_cycles_count{{worker=\"{w}\"}} {cum}");
        }
    }

    fn firewall(&self, o: &mut String) {
        let snaps: Vec<_> = self.firewalls.iter().map(|f| f.snapshot()).collect();
        header(
            o,
            "rampart_parse_errors_total",
            "counter",
            "Malformed frames, by worker and reason.",
        );
        for (w, s) in snaps.iter().enumerate() {
            for e in ParseError::ALL {
                let _ = writeln!(
                    o,
                    "rampart_parse_errors_total{{worker=\"{w}\",reason=\"{}\"}} {}",
                    e.name(),
                    s.parse[e.index()]
                );
            }
        }
        header(
            o,
            "rampart_conntrack_invalid_total",
            "counter",
            "Packets a flow's state machine refused, by worker and reason.",
        );
        for (w, s) in snaps.iter().enumerate() {
            for e in TrackError::ALL {
                let _ = writeln!(
                    o,
                    "rampart_conntrack_invalid_total{{worker=\"{w}\",reason=\"{}\"}} {}",
                    e.name(),
                    s.track[e.index()]
                );
            }
        }
        header(
            o,
            "rampart_packets_total",
            "counter",
            "Firewall decisions, by worker and outcome.",
        );
        for (w, s) in snaps.iter().enumerate() {
            for (what, v) in [
                ("established", s.established),
                ("new_flow", s.new_flows),
                ("related", s.related),
                ("non_ip_passed", s.passed_non_ip),
                ("no_flow", s.no_flow),
                ("denied", s.denied),
                ("rejected", s.rejected),
                ("table_full", s.table_full),
            ] {
                let _ = writeln!(
                    o,
                    "rampart_packets_total{{worker=\"{w}\",outcome=\"{what}\"}} {v}"
                );
            }
        }
        header(
            o,
            "rampart_flow_revalidations_total",
            "counter",
            "Flows re-checked after a ruleset change, and those cut by it.",
        );
        for (w, s) in snaps.iter().enumerate() {
            let _ = writeln!(
                o,
                "rampart_flow_revalidations_total{{worker=\"{w}\",result=\"checked\"}} {}",
                s.revalidated
            );
            let _ = writeln!(
                o,
                "rampart_flow_revalidations_total{{worker=\"{w}\",result=\"cut\"}} {}",
                s.cut
            );
        }
        header(
            o,
            "rampart_monitor_hits_total",
            "counter",
            "Monitor (dry-run) rule matches: what would have been enforced.",
        );
        for (w, s) in snaps.iter().enumerate() {
            let _ = writeln!(
                o,
                "rampart_monitor_hits_total{{worker=\"{w}\"}} {}",
                s.monitor_hits
            );
        }
        header(
            o,
            "rampart_rule_logs_total",
            "counter",
            "Rule-log records emitted or suppressed by the rate limit.",
        );
        for (w, s) in snaps.iter().enumerate() {
            let _ = writeln!(
                o,
                "rampart_rule_logs_total{{worker=\"{w}\",result=\"emitted\"}} {}",
                s.logs_emitted
            );
            let _ = writeln!(
                o,
                "rampart_rule_logs_total{{worker=\"{w}\",result=\"suppressed\"}} {}",
                s.logs_suppressed
            );
        }
        header(
            o,
            "rampart_conntrack_flows",
            "gauge",
            "Flows in each worker's table.",
        );
        for (w, s) in snaps.iter().enumerate() {
            let _ = writeln!(o, "rampart_conntrack_flows{{worker=\"{w}\"}} {}", s.flows);
        }
        header(
            o,
            "rampart_conntrack_evictions_total",
            "counter",
            "Flows evicted to make room for new ones.",
        );
        for (w, s) in snaps.iter().enumerate() {
            let _ = writeln!(
                o,
                "rampart_conntrack_evictions_total{{worker=\"{w}\"}} {}",
                s.flow_evictions
            );
        }
        header(
            o,
            "rampart_conntrack_expired_total",
            "counter",
            "Flows expired by timeout.",
        );
        for (w, s) in snaps.iter().enumerate() {
            let _ = writeln!(
                o,
                "rampart_conntrack_expired_total{{worker=\"{w}\"}} {}",
                s.flow_expired
            );
        }
        header(
            o,
            "rampart_worker_generation",
            "gauge",
            "Ruleset generation each worker last used.",
        );
        for (w, s) in snaps.iter().enumerate() {
            let _ = writeln!(
                o,
                "rampart_worker_generation{{worker=\"{w}\"}} {}",
                s.generation
            );
        }
    }
}

fn header(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Serves `GET /metrics` on `listener` until `stop` is set.
pub fn serve(
    listener: TcpListener,
    source: Arc<MetricsSource>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("rampart-metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = answer(conn, &source);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })
}

fn answer(conn: TcpStream, source: &MetricsSource) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(&conn);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Drain the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if request.starts_with("GET ") && (path == "/metrics" || path == "/") {
        ("200 OK", source.render())
    } else {
        (
            "404 Not Found",
            "only GET /metrics is served here\n".to_owned(),
        )
    };
    let mut w = &conn;
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()
}
