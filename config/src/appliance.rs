//! The appliance configuration file (TOML): EAL arguments, port pairs, workers, mempool,
//! queues and stats. `rampart --config FILE` reads it; command-line flags override fields.
//!
//! ```toml
//! [eal]
//! args = ["-l", "0,1", "--no-pci", "--in-memory"]
//!
//! [[pairs]]
//! inside = "net_af_packet0,iface=veth-in"
//! outside = "net_af_packet1,iface=veth-out"
//!
//! [workers]
//! count = 1
//! ```

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Errors reading or validating an appliance config. Each names the file or field and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ApplianceConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown field, wrong type, ...).
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The path given.
        path: String,
        /// The TOML parser's message (names line and field).
        message: String,
    },
    /// A field has a value the appliance cannot run with.
    #[error("config field `{field}` {reason}")]
    Invalid {
        /// Dotted field path, e.g. `workers.count`.
        field: String,
        /// Why it is rejected, phrased to follow the field name.
        reason: String,
    },
}

/// The whole appliance config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplianceConfig {
    /// EAL settings.
    #[serde(default)]
    pub eal: EalSection,
    /// Port pairs: traffic received on `inside` leaves on `outside` and vice versa.
    #[serde(default)]
    pub pairs: Vec<PortPairConfig>,
    /// Worker lcores.
    #[serde(default)]
    pub workers: WorkersSection,
    /// The packet buffer pool.
    #[serde(default)]
    pub mempool: MempoolSection,
    /// Descriptor ring sizes.
    #[serde(default)]
    pub queues: QueuesSection,
    /// Periodic statistics.
    #[serde(default)]
    pub stats: StatsSection,
    /// The control plane's table, passed through untouched to `rampart-control`
    /// (which owns its schema and validation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<toml::Table>,
    /// `[firewall]`: pipeline settings (used when a `[control]` section enables the firewall).
    #[serde(default)]
    pub firewall: crate::firewall::FirewallSection,
}

/// `[eal]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EalSection {
    /// Arguments passed to `rte_eal_init` as on a DPDK command line.
    #[serde(default = "default_eal_args")]
    pub args: Vec<String>,
}

/// One `[[pairs]]` entry. Each side is any DPDK device string: a PCI address
/// (`0000:01:00.0`) or a vdev (`net_af_packet0,iface=eth1`, `net_memif0,role=server`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortPairConfig {
    /// The protected side.
    pub inside: String,
    /// The untrusted side.
    pub outside: String,
}

/// `[workers]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersSection {
    /// Worker lcores (each polls one RX queue of every port). At most the EAL worker lcores.
    #[serde(default = "default_workers")]
    pub count: u16,
    /// Sleep this long after a run of empty polls (0 = pure polling, the default on dedicated
    /// cores; a few tens of µs saves a shared CPU in tests and demos).
    #[serde(default)]
    pub idle_sleep_us: u32,
}

/// `[mempool]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MempoolSection {
    /// Mbufs in the pool (0 = sized from ports, queues and workers).
    #[serde(default)]
    pub mbufs: u32,
    /// Per-lcore mbuf cache.
    #[serde(default = "default_cache")]
    pub cache: u32,
}

/// `[queues]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuesSection {
    /// RX descriptors per queue.
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    /// TX descriptors per queue.
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
}

/// `[stats]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsSection {
    /// Print a one-line stats summary this often (0 = never; the final summary is always printed).
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
}

fn default_eal_args() -> Vec<String> {
    ["-l", "0,1", "--in-memory"].map(String::from).to_vec()
}
fn default_workers() -> u16 {
    1
}
fn default_cache() -> u32 {
    256
}
fn default_desc() -> u16 {
    1024
}
fn default_interval_ms() -> u64 {
    1000
}

impl Default for EalSection {
    fn default() -> Self {
        EalSection {
            args: default_eal_args(),
        }
    }
}
impl Default for WorkersSection {
    fn default() -> Self {
        WorkersSection {
            count: default_workers(),
            idle_sleep_us: 0,
        }
    }
}
impl Default for MempoolSection {
    fn default() -> Self {
        MempoolSection {
            mbufs: 0,
            cache: default_cache(),
        }
    }
}
impl Default for QueuesSection {
    fn default() -> Self {
        QueuesSection {
            rx_desc: default_desc(),
            tx_desc: default_desc(),
        }
    }
}
impl Default for StatsSection {
    fn default() -> Self {
        StatsSection {
            interval_ms: default_interval_ms(),
        }
    }
}

/// Most ports (two per pair) the dataplane handles.
pub const MAX_PORTS: usize = 16;

impl ApplianceConfig {
    /// Parse TOML text (`path` only names the source in errors). Does not validate.
    pub fn from_toml(text: &str, path: &str) -> Result<Self, ApplianceConfigError> {
        toml::from_str(text).map_err(|e| ApplianceConfigError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned() + &span_hint(text, e.span()),
        })
    }

    /// Read and parse a TOML file. Does not validate.
    pub fn load(path: &Path) -> Result<Self, ApplianceConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ApplianceConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_toml(&text, &shown)
    }

    /// Check every value the appliance depends on; the first problem is returned.
    pub fn validate(&self) -> Result<(), ApplianceConfigError> {
        let bad = |field: &str, reason: &str| {
            Err(ApplianceConfigError::Invalid {
                field: field.into(),
                reason: reason.into(),
            })
        };
        if self.pairs.is_empty() {
            return bad(
                "pairs",
                "is empty: configure at least one inside/outside port pair",
            );
        }
        if self.pairs.len() * 2 > MAX_PORTS {
            return bad(
                "pairs",
                &format!(
                    "has {} pairs; at most {} are supported",
                    self.pairs.len(),
                    MAX_PORTS / 2
                ),
            );
        }
        let mut names: Vec<&str> = Vec::new();
        for (i, p) in self.pairs.iter().enumerate() {
            for (side, dev) in [("inside", &p.inside), ("outside", &p.outside)] {
                let field = format!("pairs[{i}].{side}");
                let name = device_name(dev);
                if name.is_empty() {
                    return bad(&field, "is empty: give a PCI address or a vdev string");
                }
                if dev.contains(char::is_whitespace) {
                    return bad(&field, &format!("{dev:?} contains whitespace"));
                }
                if names.contains(&name) {
                    return bad(
                        &field,
                        &format!("uses device {name:?} twice; each port belongs to one pair"),
                    );
                }
                names.push(name);
            }
        }
        if self.workers.count == 0 {
            return bad("workers.count", "is 0: at least one worker is needed");
        }
        if self.workers.count > 64 {
            return bad("workers.count", "is above 64");
        }
        if self.mempool.cache > 512 {
            return bad("mempool.cache", "is above DPDK's maximum of 512");
        }
        if self.mempool.mbufs != 0 && self.mempool.mbufs < 1024 {
            return bad(
                "mempool.mbufs",
                "is below 1024 (0 means: size it automatically)",
            );
        }
        for (field, v) in [
            ("queues.rx_desc", self.queues.rx_desc),
            ("queues.tx_desc", self.queues.tx_desc),
        ] {
            if !(64..=16384).contains(&v) || !v.is_power_of_two() {
                return bad(
                    field,
                    &format!("is {v}; use a power of two between 64 and 16384"),
                );
            }
        }
        if self.eal.args.iter().any(|a| a == "--no-huge")
            && self.eal.args.iter().any(|a| a == "--in-memory")
        {
            return bad("eal.args", "combines --no-huge with --in-memory, which DPDK rejects; use --no-huge with --file-prefix=<unique>");
        }
        Ok(())
    }

    /// Every device string, in port order: pair 0 inside, pair 0 outside, pair 1 inside, ...
    pub fn devices(&self) -> Vec<&str> {
        self.pairs
            .iter()
            .flat_map(|p| [p.inside.as_str(), p.outside.as_str()])
            .collect()
    }

    /// Mbufs to allocate: the configured number, or enough for every descriptor ring plus
    /// per-worker caches and bursts, rounded up to 2^k - 1 (the optimum for DPDK's ring).
    pub fn mempool_size(&self) -> u32 {
        if self.mempool.mbufs != 0 {
            return self.mempool.mbufs;
        }
        let ports = self.pairs.len() as u32 * 2;
        let workers = self.workers.count as u32;
        let rings = ports * workers * (self.queues.rx_desc as u32 + self.queues.tx_desc as u32);
        let caches = (workers + 1) * self.mempool.cache;
        let bursts = workers * 4 * 64;
        let need = (rings + caches + bursts + 1024).max(8191);
        (need + 1).next_power_of_two() - 1
    }
}

/// The port name in a device string: everything before the first comma.
pub fn device_name(dev: &str) -> &str {
    dev.split(',').next().unwrap_or("").trim()
}

fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => {
            let line = text[..r.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[eal]
args = ["-l", "0,1", "--no-pci", "--in-memory"]

[[pairs]]
inside = "net_null0"
outside = "net_null1"

[workers]
count = 1
idle_sleep_us = 20

[stats]
interval_ms = 500
"#;

    #[test]
    fn parses_and_validates_example() {
        let c = ApplianceConfig::from_toml(EXAMPLE, "t").unwrap();
        c.validate().unwrap();
        assert_eq!(c.devices(), vec!["net_null0", "net_null1"]);
        assert_eq!(c.workers.idle_sleep_us, 20);
        assert_eq!(c.stats.interval_ms, 500);
        assert_eq!(c.queues.rx_desc, 1024);
        assert_eq!(c.mempool_size(), 8191);
    }

    #[test]
    fn shipped_example_file_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/rampart.toml");
        let c = ApplianceConfig::load(Path::new(path)).unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn unknown_field_is_named() {
        let e = ApplianceConfig::from_toml("[workers]\ncont = 2\n", "f.toml").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("cont") && msg.contains("f.toml") && msg.contains("line 2"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_bad_values_naming_the_field() {
        let mut c = ApplianceConfig::from_toml(EXAMPLE, "t").unwrap();
        c.workers.count = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("workers.count"));

        let mut c = ApplianceConfig::from_toml(EXAMPLE, "t").unwrap();
        c.pairs[0].outside = "net_null0,size=64".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("pairs[0].outside"));

        let mut c = ApplianceConfig::from_toml(EXAMPLE, "t").unwrap();
        c.queues.tx_desc = 1000;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("queues.tx_desc"));

        let mut c = ApplianceConfig::from_toml(EXAMPLE, "t").unwrap();
        c.pairs.clear();
        assert!(c.validate().unwrap_err().to_string().contains("`pairs`"));

        let mut c = ApplianceConfig::from_toml(EXAMPLE, "t").unwrap();
        c.eal.args = vec!["--no-huge".into(), "--in-memory".into()];
        assert!(c.validate().unwrap_err().to_string().contains("eal.args"));
    }

    #[test]
    fn control_table_passes_through() {
        let c = ApplianceConfig::from_toml(
            "[control]\nnode = \"a\"\n[control.broker]\nuri = \"amqp://x\"\n",
            "t",
        )
        .unwrap();
        let t = c.control.unwrap();
        assert_eq!(t["node"].as_str(), Some("a"));
    }

    #[test]
    fn mempool_grows_with_workers_and_ports() {
        let mut c = ApplianceConfig::from_toml(EXAMPLE, "t").unwrap();
        c.workers.count = 4;
        c.pairs.push(PortPairConfig {
            inside: "a".into(),
            outside: "b".into(),
        });
        let n = c.mempool_size();
        assert!(n >= 4 * 4 * 2048 && (n + 1).is_power_of_two(), "{n}");
    }
}
