//! Counters, latency histograms and the reports made of them (table and JSON).

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency recorded (10 s, in ns); larger values are clamped to it.
const MAX_LATENCY_NS: u64 = 10_000_000_000;

/// Latency samples in nanoseconds. Made once per stream; recording never allocates.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
    /// ns per TSC tick as a 32.32 fixed-point factor.
    ns_per_tick_q32: u64,
}

impl Latency {
    /// An empty histogram for a TSC of `tsc_hz`.
    pub fn new(tsc_hz: u64) -> Latency {
        Latency {
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .expect("static bounds are valid"),
            ns_per_tick_q32: ((1_000_000_000u128 << 32) / u128::from(tsc_hz.max(1))) as u64,
        }
    }

    /// Records a latency of `ticks` TSC ticks.
    #[inline]
    pub fn record_ticks(&mut self, ticks: u64) {
        let ns = ((u128::from(ticks) * u128::from(self.ns_per_tick_q32)) >> 32) as u64;
        self.hist.saturating_record(ns.clamp(1, MAX_LATENCY_NS));
    }

    /// Records a latency in nanoseconds.
    pub fn record_ns(&mut self, ns: u64) {
        self.hist.saturating_record(ns.clamp(1, MAX_LATENCY_NS));
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    /// Forgets every sample.
    pub fn reset(&mut self) {
        self.hist.reset();
    }

    /// The value at quantile `q` in ns (0 when empty).
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(q)
        }
    }

    /// The summary that goes into reports.
    pub fn report(&self) -> LatencyReport {
        let e = self.hist.is_empty();
        LatencyReport {
            samples: self.hist.len(),
            min_ns: if e { 0 } else { self.hist.min() },
            mean_ns: if e { 0.0 } else { self.hist.mean() },
            p50_ns: self.quantile_ns(0.5),
            p99_ns: self.quantile_ns(0.99),
            p999_ns: self.quantile_ns(0.999),
            max_ns: if e { 0 } else { self.hist.max() },
        }
    }
}

/// Latency percentiles of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyReport {
    /// Samples (stamped frames received).
    pub samples: u64,
    /// Minimum.
    pub min_ns: u64,
    /// Mean.
    pub mean_ns: f64,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Maximum.
    pub max_ns: u64,
}

/// Per-stream counters of one run (or trial).
#[derive(Debug, Clone)]
pub struct StreamCounters {
    /// Frames the device accepted for sending.
    pub tx: u64,
    /// Bytes of those frames (FCS excluded).
    pub tx_bytes: u64,
    /// Frames built but still refused by the device queue when the run ended (retried until
    /// then; not counted as sent or lost).
    pub tx_full: u64,
    /// Frames of this stream received on the far port.
    pub rx: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Latency of stamped frames received.
    pub latency: Latency,
    /// TCP sessions: counters of the session machine.
    pub sessions: SessionCounters,
}

/// TCP session counters (zero for other streams).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SessionCounters {
    /// SYNs sent (sessions started).
    pub started: u64,
    /// SYN-ACKs the client side received (handshakes the firewall let through both ways).
    pub established: u64,
    /// Final ACKs sent after the server's FIN (sessions closed cleanly).
    pub closed: u64,
    /// Frames the server side sent (SYN-ACK, FIN-ACK).
    pub server_tx: u64,
    /// Frames of this stream the client side received.
    pub client_rx: u64,
    /// Resets received for this stream's flows.
    pub resets: u64,
}

impl StreamCounters {
    /// Zeroed counters.
    pub fn new(tsc_hz: u64) -> StreamCounters {
        StreamCounters {
            tx: 0,
            tx_bytes: 0,
            tx_full: 0,
            rx: 0,
            rx_bytes: 0,
            latency: Latency::new(tsc_hz),
            sessions: SessionCounters::default(),
        }
    }

    /// Back to zero (between search trials).
    pub fn reset(&mut self) {
        self.tx = 0;
        self.tx_bytes = 0;
        self.tx_full = 0;
        self.rx = 0;
        self.rx_bytes = 0;
        self.latency.reset();
        self.sessions = SessionCounters::default();
    }

    /// Frames sent this way and received the other way: for session streams both directions
    /// (client and server side) count.
    pub fn sent_and_received(&self) -> (u64, u64) {
        (
            self.tx + self.sessions.server_tx,
            self.rx + self.sessions.client_rx,
        )
    }

    /// The report row for this stream over `secs` seconds.
    pub fn report(&self, name: &str, secs: f64) -> StreamReport {
        let (tx, rx) = self.sent_and_received();
        let lost = tx as i64 - rx as i64;
        let secs = secs.max(1e-9);
        StreamReport {
            name: name.to_owned(),
            tx,
            rx,
            lost,
            loss_pct: if tx == 0 {
                0.0
            } else {
                100.0 * lost as f64 / tx as f64
            },
            tx_full: self.tx_full,
            tx_pps: tx as f64 / secs,
            rx_pps: rx as f64 / secs,
            tx_bps: self.tx_bytes as f64 * 8.0 / secs,
            rx_bps: self.rx_bytes as f64 * 8.0 / secs,
            latency: self.latency.report(),
            sessions: (self.sessions != SessionCounters::default()).then_some(self.sessions),
        }
    }
}

/// One line of the final table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamReport {
    /// Stream name ("total" for the sum).
    pub name: String,
    /// Frames sent (both directions for TCP sessions).
    pub tx: u64,
    /// Frames received.
    pub rx: u64,
    /// tx - rx (negative if a device duplicated frames).
    pub lost: i64,
    /// Loss in percent of tx.
    pub loss_pct: f64,
    /// Frames refused by a full TX queue (never sent, not part of the loss).
    pub tx_full: u64,
    /// Average TX rate.
    pub tx_pps: f64,
    /// Average RX rate.
    pub rx_pps: f64,
    /// TX bits per second (frame bytes, FCS excluded).
    pub tx_bps: f64,
    /// RX bits per second.
    pub rx_bps: f64,
    /// Latency of stamped frames.
    pub latency: LatencyReport,
    /// TCP session counters, for session streams.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionCounters>,
}

/// What came back on the TX port (the appliance's rejects, or anything else).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Returned {
    /// All frames received on the TX port (TCP session replies excluded).
    pub total: u64,
    /// TCP RSTs among them.
    pub tcp_rst: u64,
    /// ICMP/ICMPv6 destination-unreachable messages among them.
    pub icmp_unreachable: u64,
    /// Our own stamped frames coming back (a loop, not a reject).
    pub stamped: u64,
}

/// Frames received on the RX port that belong to no stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Unmatched {
    /// Stamped frames of an earlier trial (arrived after that trial ended).
    pub late: u64,
    /// Frames without a stamp that no TCP session stream claims.
    pub foreign: u64,
}

/// Driver counters of a port over the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PortReport {
    /// Frames received.
    pub ipackets: u64,
    /// Frames sent.
    pub opackets: u64,
    /// Frames the device dropped for lack of RX descriptors (pktgen too slow).
    pub imissed: u64,
    /// RX errors.
    pub ierrors: u64,
    /// TX errors.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// The whole run (or the best search trial).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// Seconds the generator was sending.
    pub duration_s: f64,
    /// Offered rate (0 = as fast as possible).
    pub offered_pps: u64,
    /// One row per stream.
    pub streams: Vec<StreamReport>,
    /// The sum of the streams (latency merged).
    pub total: StreamReport,
    /// What came back on the TX port.
    pub returned: Returned,
    /// Unattributed frames on the RX port.
    pub unmatched: Unmatched,
    /// Driver counters: the TX port.
    pub tx_port: PortReport,
    /// Driver counters: the RX port.
    pub rx_port: PortReport,
}

fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.3}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.3}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.3}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Nanoseconds as microseconds with two decimals.
fn us(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1000.0)
}

impl RunReport {
    /// The human-readable final table.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let w = self
            .streams
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(0)
            .max(16);
        let _ = writeln!(
            s,
            "{:<w$} {:>12} {:>12} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "stream",
            "tx",
            "rx",
            "lost",
            "loss%",
            "tx pps",
            "rx pps",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "max us"
        );
        for r in self.streams.iter().chain(std::iter::once(&self.total)) {
            let _ = writeln!(
                s,
                "{:<w$} {:>12} {:>12} {:>10} {:>8.4} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                r.name,
                r.tx,
                r.rx,
                r.lost,
                r.loss_pct,
                human(r.tx_pps),
                human(r.rx_pps),
                us(r.latency.p50_ns),
                us(r.latency.p99_ns),
                us(r.latency.p999_ns),
                us(r.latency.max_ns),
            );
        }
        for r in &self.streams {
            if let Some(c) = r.sessions {
                let _ = writeln!(
                    s,
                    "tcp sessions [{}]: started {} established {} closed {} resets {}",
                    r.name, c.started, c.established, c.closed, c.resets
                );
            }
        }
        let _ = writeln!(
            s,
            "duration {:.2}s, offered {} pps, tx {}bit/s; returned on tx port: {} (tcp rst {}, icmp unreachable {}, own frames {}); rx port: late {}, foreign {}, imissed {}; tx port imissed {}",
            self.duration_s,
            if self.offered_pps == 0 { "max".to_string() } else { human(self.offered_pps as f64) },
            human(self.total.tx_bps),
            self.returned.total,
            self.returned.tcp_rst,
            self.returned.icmp_unreachable,
            self.returned.stamped,
            self.unmatched.late,
            self.unmatched.foreign,
            self.rx_port.imissed,
            self.tx_port.imissed,
        );
        s
    }
}

/// The one-line progress report printed each second.
#[allow(clippy::too_many_arguments)]
pub fn progress_line(
    elapsed_s: f64,
    d_tx: u64,
    d_rx: u64,
    dt_s: f64,
    tx: u64,
    rx: u64,
    lat: &Latency,
    returned: u64,
) -> String {
    let dt = dt_s.max(1e-9);
    let loss = if tx == 0 {
        0.0
    } else {
        100.0 * (tx as f64 - rx as f64) / tx as f64
    };
    format!(
        "[{elapsed_s:6.1}s] tx {:>9}pps rx {:>9}pps  total tx {tx} rx {rx} loss {loss:.3}%  p50 {}us p99 {}us  returned {returned}",
        human(d_tx as f64 / dt),
        human(d_rx as f64 / dt),
        us(lat.quantile_ns(0.5)),
        us(lat.quantile_ns(0.99)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_from_ticks() {
        // A 2 GHz TSC: 2 ticks per ns.
        let mut l = Latency::new(2_000_000_000);
        for i in 1..=1000u64 {
            l.record_ticks(i * 2000); // 1..1000 us
        }
        let r = l.report();
        assert_eq!(r.samples, 1000);
        let near = |v: u64, want: u64| (v as f64 - want as f64).abs() / want as f64 <= 0.001;
        assert!(near(r.p50_ns, 500_000), "{}", r.p50_ns);
        assert!(near(r.p99_ns, 990_000), "{}", r.p99_ns);
        assert!(near(r.p999_ns, 999_000), "{}", r.p999_ns);
        assert!(near(r.max_ns, 1_000_000), "{}", r.max_ns);
        assert!(near(r.min_ns, 1_000), "{}", r.min_ns);
        l.record_ticks(u64::MAX / 2);
        assert_eq!(l.report().max_ns, l.quantile_ns(1.0));
        assert!(l.report().max_ns >= MAX_LATENCY_NS);
        l.reset();
        assert_eq!(l.report().samples, 0);
        assert_eq!(l.report().p99_ns, 0);
    }

    #[test]
    fn report_rows_loss_and_json() {
        let mut c = StreamCounters::new(1_000_000_000);
        c.tx = 1000;
        c.rx = 990;
        c.tx_bytes = 60_000;
        c.rx_bytes = 59_400;
        for _ in 0..990 {
            c.latency.record_ticks(5_000);
        }
        let r = c.report("udp", 2.0);
        assert_eq!((r.lost, r.tx_pps, r.rx_pps), (10, 500.0, 495.0));
        assert!((r.loss_pct - 1.0).abs() < 1e-12);
        assert_eq!(r.tx_bps, 240_000.0);
        assert_eq!(r.latency.samples, 990);
        assert!(r.sessions.is_none());
        let report = RunReport {
            duration_s: 2.0,
            offered_pps: 500,
            streams: vec![r.clone()],
            total: StreamReport {
                name: "total".into(),
                ..r
            },
            returned: Returned::default(),
            unmatched: Unmatched::default(),
            tx_port: PortReport::default(),
            rx_port: PortReport::default(),
        };
        let t = report.table();
        assert!(t.lines().nth(1).unwrap().starts_with("udp"), "{t}");
        assert!(t.contains("total"));
        let j: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(j["streams"][0]["lost"], 10);
        assert_eq!(j["total"]["latency"]["samples"], 990);
        assert!(j["streams"][0].get("sessions").is_none());
        c.sessions.started = 5;
        c.sessions.server_tx = 5;
        assert_eq!(c.report("s", 1.0).tx, 1005);
        c.reset();
        assert_eq!(c.report("s", 1.0).tx, 0);
    }
}
