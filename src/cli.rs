//! Command line: every flag overrides one field of the TOML config.

use clap::Parser;
use rampart_config::appliance::{ApplianceConfig, PortPairConfig};
use std::path::PathBuf;

/// Rampart: a DPDK stateful firewall appliance (bump in the wire between port pairs).
#[derive(Debug, Parser)]
#[command(name = "rampart", version, about)]
pub struct Cli {
    /// Appliance config file (TOML). Without it, built-in defaults plus these flags are used.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Inside device of a port pair (PCI address or vdev string); repeat together with --outside.
    /// Given pairs replace the config's [[pairs]].
    #[arg(long, value_name = "DEV")]
    pub inside: Vec<String>,

    /// Outside device of a port pair, matched in order with --inside.
    #[arg(long, value_name = "DEV")]
    pub outside: Vec<String>,

    /// Worker lcores (workers.count).
    #[arg(short, long)]
    pub workers: Option<u16>,

    /// Sleep this many µs after a run of empty polls (workers.idle_sleep_us; 0 = pure polling).
    #[arg(long, value_name = "US")]
    pub idle_sleep_us: Option<u32>,

    /// Stats line interval in ms (stats.interval_ms; 0 = only the final summary).
    #[arg(long, value_name = "MS")]
    pub stats_interval_ms: Option<u64>,

    /// Mbufs in the pool (mempool.mbufs; 0 = automatic).
    #[arg(long)]
    pub mbufs: Option<u32>,

    /// RX descriptors per queue (queues.rx_desc).
    #[arg(long)]
    pub rx_desc: Option<u16>,

    /// TX descriptors per queue (queues.tx_desc).
    #[arg(long)]
    pub tx_desc: Option<u16>,

    /// Append one argument to the EAL arguments (repeatable), e.g. --eal-arg=--file-prefix=x.
    #[arg(long = "eal-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub eal_arg: Vec<String>,

    /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Validate the configuration, print it, and exit.
    #[arg(long)]
    pub check: bool,

    /// EAL arguments after `--` replace eal.args, e.g. `rampart -- -l 0,1 --no-pci --in-memory`.
    #[arg(last = true, value_name = "EAL_ARGS")]
    pub eal: Vec<String>,
}

impl Cli {
    /// Load the config file (or defaults), apply every override, and validate the result.
    pub fn resolve(&self) -> anyhow::Result<ApplianceConfig> {
        let mut cfg = match &self.config {
            Some(path) => ApplianceConfig::load(path)?,
            None => ApplianceConfig::default(),
        };
        if self.inside.len() != self.outside.len() {
            anyhow::bail!(
                "--inside was given {} times but --outside {} times; give them in pairs",
                self.inside.len(),
                self.outside.len()
            );
        }
        if !self.inside.is_empty() {
            cfg.pairs = self
                .inside
                .iter()
                .zip(&self.outside)
                .map(|(i, o)| PortPairConfig {
                    inside: i.clone(),
                    outside: o.clone(),
                })
                .collect();
        }
        if let Some(v) = self.workers {
            cfg.workers.count = v;
        }
        if let Some(v) = self.idle_sleep_us {
            cfg.workers.idle_sleep_us = v;
        }
        if let Some(v) = self.stats_interval_ms {
            cfg.stats.interval_ms = v;
        }
        if let Some(v) = self.mbufs {
            cfg.mempool.mbufs = v;
        }
        if let Some(v) = self.rx_desc {
            cfg.queues.rx_desc = v;
        }
        if let Some(v) = self.tx_desc {
            cfg.queues.tx_desc = v;
        }
        if !self.eal.is_empty() {
            cfg.eal.args = self.eal.clone();
        }
        cfg.eal.args.extend(self.eal_arg.iter().cloned());
        if let Some(d) = self.duration {
            if !(d.is_finite() && d > 0.0) {
                anyhow::bail!("--duration must be a positive number of seconds, not {d}");
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}
