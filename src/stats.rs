//! The stats thread's view: per-port rates between two samples, and the final summary.

use rampart_dataplane::{CounterSnapshot, DropReason, WorkerCounters};
use rampart_dpdk::{Port, PortStats};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

/// One sample of every counter the appliance reports.
#[derive(Clone)]
pub struct Sample {
    pub at: Instant,
    pub workers: CounterSnapshot,
    pub ports: Vec<PortStats>,
}

impl Sample {
    pub fn take(workers: &[Arc<WorkerCounters>], ports: &[Port]) -> Sample {
        let mut total = CounterSnapshot::default();
        for w in workers {
            total.accumulate(&w.snapshot());
        }
        Sample {
            at: Instant::now(),
            workers: total,
            ports: ports.iter().map(Port::stats).collect(),
        }
    }

    /// Packets dropped on port `i`: ours (TX full, stage verdicts) plus the device's
    /// (RX ring overrun, no mbuf).
    fn dropped(&self, i: usize) -> u64 {
        let d = &self.ports[i];
        self.workers.ports[i].dropped() + d.imissed + d.rx_nombuf
    }
}

/// Port labels: "in0"/"out0" for pair 0, etc.
pub fn port_label(i: usize) -> String {
    format!(
        "{}{}",
        if i.is_multiple_of(2) { "in" } else { "out" },
        i / 2
    )
}

fn rate(delta: u64, secs: f64) -> String {
    let pps = if secs > 0.0 { delta as f64 / secs } else { 0.0 };
    if pps >= 1e6 {
        format!("{:.2}Mpps", pps / 1e6)
    } else if pps >= 1e3 {
        format!("{:.1}Kpps", pps / 1e3)
    } else {
        format!("{:.0}pps", pps)
    }
}

/// The periodic line: `[  3.0s] in0 rx 12.31Mpps tx 12.30Mpps drop 0pps | out0 ...`.
pub fn line(start: Instant, prev: &Sample, cur: &Sample) -> String {
    let secs = cur.at.duration_since(prev.at).as_secs_f64();
    let mut s = format!("[{:6.1}s]", cur.at.duration_since(start).as_secs_f64());
    for i in 0..cur.ports.len() {
        let (p, c) = (&prev.workers.ports[i], &cur.workers.ports[i]);
        let _ = write!(
            s,
            "{} {} rx {} tx {} drop {}",
            if i == 0 { " " } else { " | " },
            port_label(i),
            rate(c.rx_pkts - p.rx_pkts, secs),
            rate(c.tx_pkts - p.tx_pkts, secs),
            rate(cur.dropped(i) - prev.dropped(i), secs),
        );
    }
    s
}

/// The summary printed at shutdown: totals and average rates per port.
pub fn summary(first: &Sample, last: &Sample, names: &[String]) -> String {
    let secs = last.at.duration_since(first.at).as_secs_f64();
    let mut s = format!("rampart: summary after {secs:.1}s\n");
    for (i, name) in names.iter().enumerate() {
        let w = &last.workers.ports[i];
        let d = &last.ports[i];
        let _ = write!(
            s,
            "  {:<5} {:<24} rx {:>12} pkts {:>14} bytes  tx {:>12} pkts  dropped {:>10} (tx-full {}, rx-missed {}, rx-nombuf {}",
            port_label(i),
            name,
            w.rx_pkts,
            w.rx_bytes,
            w.tx_pkts,
            last.dropped(i),
            w.tx_full,
            d.imissed,
            d.rx_nombuf,
        );
        for r in DropReason::ALL {
            let _ = write!(s, ", {} {}", r.name(), w.drops[r as usize]);
        }
        let _ = writeln!(
            s,
            ")  avg rx {}",
            rate(w.rx_pkts - first.workers.ports[i].rx_pkts, secs)
        );
    }
    let polls = last.workers.busy_polls + last.workers.idle_polls;
    let busy = if polls > 0 {
        100.0 * last.workers.busy_polls as f64 / polls as f64
    } else {
        0.0
    };
    let _ = write!(s, "  polls {polls} ({busy:.1}% with packets)");
    s
}
