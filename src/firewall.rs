//! Firewall mode of the appliance: the boot policy, the RCU table, the control plane thread,
//! per-worker firewall stages and the rule-log writer. Without a `[control]` section the
//! appliance is a plain forwarder and none of this runs.

use anyhow::Context;
use rampart_classify::TableHandle;
use rampart_config::appliance::ApplianceConfig;
use rampart_config::firewall::{ArpSection, FirewallSection};
use rampart_control::metrics::MetricsSource;
use rampart_control::{ControlConfig, ControlPlane, SpawnOptions};
use rampart_dataplane::{
    firewall::log_queue, Firewall, FirewallCounters, FirewallSettings, Inspector, LogQueue,
};
use rampart_flow::{FlowConfig, Timeouts};
use rampart_wire::{ArpPolicy, ParseConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Rule-log records buffered between the workers and the log thread.
const LOG_QUEUE: usize = 4096;

/// The running firewall side: what the workers read and what feeds them.
pub struct FirewallPlane {
    /// The RCU table every worker reads.
    pub table: TableHandle,
    settings: FirewallSettings,
    logs: LogQueue,
    control: Option<ControlPlane>,
    log_thread: Option<JoinHandle<()>>,
    log_stop: Arc<AtomicBool>,
    /// Each worker's counters, in worker order.
    pub counters: Vec<Arc<FirewallCounters>>,
    /// Each worker's mailbox for flow questions, in worker order.
    pub inspectors: Vec<Arc<Inspector>>,
}

/// The `[control]` table of the config as the control plane's own type.
pub fn control_config(cfg: &ApplianceConfig) -> anyhow::Result<Option<ControlConfig>> {
    let Some(table) = &cfg.control else {
        return Ok(None);
    };
    let c: ControlConfig =
        toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| {
                anyhow::anyhow!("config section [control] is invalid: {}", e.message())
            })?;
    Ok(Some(c))
}

/// The worker-side settings from `[firewall]`.
pub fn settings(f: &FirewallSection, tsc_hz: u64) -> anyhow::Result<FirewallSettings> {
    if f.flow_capacity == 0 || f.flow_capacity > rampart_flow::MAX_CAPACITY {
        anyhow::bail!(
            "config field `firewall.flow_capacity` is {}; use 1..={}",
            f.flow_capacity,
            rampart_flow::MAX_CAPACITY
        );
    }
    if f.log_rate_per_sec == 0 {
        anyhow::bail!("config field `firewall.log_rate_per_sec` is 0; use at least 1");
    }
    let d = Timeouts::default();
    let t = &f.timeouts;
    let timeouts = Timeouts {
        tcp_syn_sent_secs: t.tcp_syn_sent_secs.unwrap_or(d.tcp_syn_sent_secs),
        tcp_syn_recv_secs: t.tcp_syn_recv_secs.unwrap_or(d.tcp_syn_recv_secs),
        tcp_established_secs: t.tcp_established_secs.unwrap_or(d.tcp_established_secs),
        tcp_fin_wait_secs: t.tcp_fin_wait_secs.unwrap_or(d.tcp_fin_wait_secs),
        tcp_close_wait_secs: t.tcp_close_wait_secs.unwrap_or(d.tcp_close_wait_secs),
        tcp_last_ack_secs: t.tcp_last_ack_secs.unwrap_or(d.tcp_last_ack_secs),
        tcp_time_wait_secs: t.tcp_time_wait_secs.unwrap_or(d.tcp_time_wait_secs),
        tcp_close_secs: t.tcp_close_secs.unwrap_or(d.tcp_close_secs),
        udp_secs: t.udp_secs.unwrap_or(d.udp_secs),
        udp_stream_secs: t.udp_stream_secs.unwrap_or(d.udp_stream_secs),
        icmp_secs: t.icmp_secs.unwrap_or(d.icmp_secs),
        generic_secs: t.generic_secs.unwrap_or(d.generic_secs),
    };
    let mut s = FirewallSettings::paired(tsc_hz);
    s.parse = ParseConfig {
        arp: match f.arp {
            ArpSection::Pass => ArpPolicy::Pass,
            ArpSection::Drop => ArpPolicy::Drop,
        },
        vxlan_port: (f.vxlan_port != 0).then_some(f.vxlan_port),
        geneve_port: (f.geneve_port != 0).then_some(f.geneve_port),
        ..ParseConfig::default()
    };
    s.flow = FlowConfig {
        capacity: f.flow_capacity,
        timeouts,
        loose_tcp_pickup: f.loose_tcp_pickup,
        strict_tcp: f.strict_tcp,
        ..FlowConfig::default()
    };
    // Validate timeouts etc. now, with the field named, rather than on a worker.
    rampart_flow::FlowTable::new(&FlowConfig {
        capacity: 1,
        ..s.flow
    })
    .map_err(|e| anyhow::anyhow!("config section [firewall.timeouts] is invalid: {e}"))?;
    s.revalidate_flows = f.revalidate_flows;
    s.log_rate_per_sec = f.log_rate_per_sec;
    s.log_burst = f.log_burst.max(1);
    Ok(s)
}

impl FirewallPlane {
    /// Load the boot policy (before any packet is forwarded) and build the table.
    pub fn boot(control: &ControlConfig, f: &FirewallSection, tsc_hz: u64) -> anyhow::Result<Self> {
        let settings = settings(f, tsc_hz)?;
        let boot =
            rampart_control::initial_ruleset(control).context("cannot start the firewall")?;
        for s in &boot.skipped {
            println!("rampart: boot: skipped {s}");
        }
        println!(
            "rampart: enforcing generation {} ({} rules) from the {}",
            boot.ruleset.generation(),
            boot.ruleset.rule_count(),
            boot.source
        );
        Ok(FirewallPlane {
            table: TableHandle::new(boot.ruleset),
            settings,
            logs: log_queue(LOG_QUEUE),
            control: None,
            log_thread: None,
            log_stop: Arc::new(AtomicBool::new(false)),
            counters: Vec::new(),
            inspectors: Vec::new(),
        })
    }

    /// A firewall stage for the next worker (call once per worker, in worker order).
    pub fn stage(&mut self) -> anyhow::Result<Firewall> {
        let fw = Firewall::new(
            self.settings.clone(),
            self.table.register_reader(),
            Some(self.logs.clone()),
        )
        .map_err(|e| anyhow::anyhow!("config field `firewall.flow_capacity`: {e}"))?;
        self.counters.push(fw.counters());
        self.inspectors.push(fw.inspector());
        Ok(fw)
    }

    /// Start the control plane and the rule-log writer (after the workers hold their readers,
    /// so the first swap waits for them).
    pub fn start(
        &mut self,
        control: ControlConfig,
        metrics: Arc<dyn MetricsSource>,
    ) -> anyhow::Result<()> {
        let opts = SpawnOptions {
            sighup: true,
            metrics: Some(metrics),
        };
        self.control = Some(
            ControlPlane::spawn_with(control, self.table.clone(), opts)
                .context("cannot start the control plane")?,
        );
        let logs = self.logs.clone();
        let stop = self.log_stop.clone();
        self.log_thread = Some(
            std::thread::Builder::new()
                .name("rampart-rulelog".into())
                .spawn(move || loop {
                    let mut n = 0;
                    while let Some(r) = logs.pop() {
                        tracing::info!(
                            target: "rampart::rule",
                            worker = r.worker,
                            generation = r.generation,
                            rule = r.rule.0,
                            action = ?r.action,
                            src = %r.key.src_ip(),
                            dst = %r.key.dst_ip(),
                            proto = r.key.proto,
                            sport = r.key.src_port,
                            dport = r.key.dst_port,
                            "rule hit"
                        );
                        n += 1;
                    }
                    // Workers may still be logging at shutdown: stop once asked, after a
                    // last drain, not when the queue happens to be empty.
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if n == 0 {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                })
                .context("cannot start the rule-log thread")?,
        );
        Ok(())
    }

    /// One line of firewall totals over every worker, for the shutdown summary.
    pub fn summary(&self) -> String {
        let mut t = match self.counters.first() {
            Some(c) => c.snapshot(),
            None => return "firewall: no workers".into(),
        };
        for c in &self.counters[1..] {
            t.accumulate(&c.snapshot());
        }
        format!(
            "firewall: generation {} | flows {} new, {} now, {} evicted, {} expired | packets {} established, {} related, {} denied, {} rejected, {} no-flow, {} malformed, {} invalid | {} flows cut on policy change, {} monitor hits, {} rule logs ({} suppressed)",
            self.table.current().generation(),
            t.new_flows,
            t.flows,
            t.flow_evictions,
            t.flow_expired,
            t.established,
            t.related,
            t.denied,
            t.rejected,
            t.no_flow,
            t.parse.iter().sum::<u64>(),
            t.track.iter().sum::<u64>(),
            t.cut,
            t.monitor_hits,
            t.logs_emitted,
            t.logs_suppressed
        )
    }

    /// Stop the control plane and the log writer.
    pub fn shutdown(&mut self) {
        if let Some(c) = self.control.take() {
            c.shutdown();
        }
        self.log_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.log_thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FirewallPlane {
    fn drop(&mut self) {
        self.shutdown();
    }
}
