//! The dataplane's series for the Prometheus endpoint the control thread serves
//! (`control.metrics_listen`; the control plane adds its own policy and broker series). A
//! scrape reads the workers' single-writer counters with relaxed loads — no locks, nothing on
//! the hot path — on the control thread, never a worker core.

use rampart_control::live::{FlowEntry, FlowQuery};
use rampart_dataplane::{
    DropReason, FirewallCounters, FlowRow, Inspector, Question, WorkerCounters,
};
use rampart_dpdk::{PortId, PortStats};
use rampart_flow::TrackError;
use rampart_wire::FlowKey;
use rampart_wire::ParseError;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// Everything a scrape reads.
pub struct DataplaneMetrics {
    /// Port labels (`in0`, `out0`, …) and their DPDK device names, by port index.
    pub ports: Vec<(String, String)>,
    /// The DPDK port ids, by port index, for the driver's own counters.
    pub port_ids: Vec<PortId>,
    /// Each worker's loop counters.
    pub workers: Vec<Arc<WorkerCounters>>,
    /// Each worker's firewall counters (empty in raw-forward mode).
    pub firewalls: Vec<Arc<FirewallCounters>>,
    /// Each worker's mailbox for flow questions (empty in raw-forward mode).
    pub inspectors: Vec<Arc<Inspector>>,
}

/// How long a worker may take to answer (a listing walks its table a step per poll).
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

impl rampart_control::metrics::MetricsSource for DataplaneMetrics {
    fn flows(&self, query: &FlowQuery) -> Option<Result<Vec<FlowEntry>, String>> {
        if self.inspectors.is_empty() {
            return None;
        }
        let question = match query {
            FlowQuery::Top(n) => Question::Top(*n),
            FlowQuery::Packet(p) => {
                let (sport, dport) = match (p.icmp_type, p.icmp_code) {
                    (None, None) => (p.sport, p.dport),
                    _ => (0, 0),
                };
                Question::Flow(FlowKey::from_ips(p.src, p.dst, p.proto, sport, dport))
            }
        };
        // Workers are asked one after another; each answers at its next end of poll.
        let mut all = Vec::new();
        for (w, inspector) in self.inspectors.iter().enumerate() {
            match inspector.ask(question, ASK_TIMEOUT) {
                Ok(rows) => all.extend(rows.iter().map(|r| entry(w as u16, r))),
                Err(e) => return Some(Err(format!("worker {w}: {e}"))),
            }
        }
        if let FlowQuery::Top(n) = query {
            all.sort_by_key(|e| std::cmp::Reverse(e.bytes_orig + e.bytes_reply));
            all.truncate(*n);
        }
        Some(Ok(all))
    }

    fn render(&self, o: &mut String) {
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
        self.render_devices(o);
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
    }
}

impl DataplaneMetrics {
    /// The drivers' counters: what reached and left each port, and what the device itself
    /// dropped before a worker saw it (RX ring overrun when the worker falls behind, no mbuf,
    /// bad frames) or could not send — drops no worker counter can show.
    fn render_devices(&self, o: &mut String) {
        let stats: Vec<PortStats> = self
            .port_ids
            .iter()
            .map(|&id| PortStats::read(id))
            .collect();
        type Values = fn(&PortStats) -> Vec<(&'static str, u64)>;
        let families: [(&str, &str, &str, Values); 3] = [
            (
                "rampart_device_packets_total",
                "direction",
                "Packets the port's driver received and sent.",
                |s| vec![("rx", s.ipackets), ("tx", s.opackets)],
            ),
            (
                "rampart_device_bytes_total",
                "direction",
                "Bytes the port's driver received and sent.",
                |s| vec![("rx", s.ibytes), ("tx", s.obytes)],
            ),
            (
                "rampart_device_drops_total",
                "reason",
                "Packets the port's driver dropped or failed to send, by reason.",
                |s| {
                    vec![
                        ("rx_missed", s.imissed),
                        ("rx_nombuf", s.rx_nombuf),
                        ("rx_errors", s.ierrors),
                        ("tx_errors", s.oerrors),
                    ]
                },
            ),
        ];
        for (name, key, help, values) in families {
            header(o, name, "counter", help);
            for ((label, dev), s) in self.ports.iter().zip(&stats) {
                for (k, v) in values(s) {
                    let _ = writeln!(
                        o,
                        "{name}{{port=\"{label}\",device=\"{dev}\",{key}=\"{k}\"}} {v}"
                    );
                }
            }
        }
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
                "rampart_flow_revalidations_total{{worker=\"{w}\",result=\"unchanged_rules\"}} {}",
                s.revalidated_unchanged
            );
            let _ = writeln!(
                o,
                "rampart_flow_revalidations_total{{worker=\"{w}\",result=\"delta_rules\"}} {}",
                s.revalidated_delta
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

fn entry(worker: u16, r: &FlowRow) -> FlowEntry {
    FlowEntry {
        worker,
        proto: r.key.proto,
        src: r.key.src_ip(),
        sport: r.key.src_port,
        dst: r.key.dst_ip(),
        dport: r.key.dst_port,
        state: format!("{:?}", r.state),
        rule: (r.rule != rampart_dataplane::firewall::DEFAULT_RULE).then_some(r.rule.0),
        ruleset_seq: r.ruleset_seq,
        packets_orig: u64::from(r.packets[0]),
        packets_reply: u64::from(r.packets[1]),
        bytes_orig: r.bytes[0],
        bytes_reply: r.bytes[1],
        idle_ms: r.idle_ns as f64 / 1e6,
    }
}
