//! Settings of the control plane: where policy comes from, where the last good one is kept, and
//! how to reach the broker. Plain serde structs so the appliance config (TOML) can embed them as
//! a `[control]` table; every field has a default except the node name.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The control plane of one appliance node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// This appliance's name: its queue, its routing key `node.<name>` and its status reports.
    pub node: String,
    /// The cluster this node belongs to (routing key `cluster.<name>`), if any.
    #[serde(default)]
    pub cluster: Option<String>,
    /// The broker; `None` means policy comes from `policy_file` alone (the embedded default).
    #[serde(default)]
    pub broker: Option<BrokerConfig>,
    /// A policy file: the source when there is no broker, and a boot fallback when there is one.
    #[serde(default)]
    pub policy_file: Option<PathBuf>,
    /// Directory holding the persisted last-good policy (created if missing).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// What to enforce at boot when neither a persisted nor a configured policy can be loaded.
    #[serde(default)]
    pub no_policy: NoPolicy,
    /// How long to wait for every worker to pass a quiescent point after a swap.
    #[serde(default = "default_quiescent_timeout_ms")]
    pub quiescent_timeout_ms: u64,
    /// How often the file source looks at the policy file's mtime (SIGHUP reloads at once).
    #[serde(default = "default_file_poll_ms")]
    pub file_poll_ms: u64,
    /// `host:port` of the Prometheus metrics endpoint served by the control thread (off if unset).
    #[serde(default)]
    pub metrics_listen: Option<String>,
}

/// What the appliance does at boot when it has no policy at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoPolicy {
    /// Refuse to start forwarding (boot fails with an error). The default: fail closed.
    #[default]
    Refuse,
    /// Start with an empty policy whose default action is drop (generation 0) and wait for one.
    DenyAll,
    /// Start with an empty policy whose default action is allow (generation 0). Fail open: only
    /// when the configuration explicitly says so.
    AllowAll,
}

/// How to reach RabbitMQ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// `amqp://user:pass@host:port/vhost` or `amqps://…` (TLS).
    pub uri: String,
    /// PEM file of the CA(s) that signed the broker's certificate (required for `amqps://`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for brokers that verify peers.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM (PKCS#8 / PKCS#1 / SEC1) key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Reconnect backoff after the broker is lost.
    #[serde(default)]
    pub reconnect: BackoffConfig,
    /// Exchange and queue names; the defaults are the deployed topology, tests use their own.
    #[serde(default)]
    pub names: TopologyNames,
    /// Interval of the periodic "current" RealizedState each node publishes (what `rampartctl
    /// status` collects); 0 disables it.
    #[serde(default = "default_heartbeat_ms")]
    pub status_interval_ms: u64,
}

impl BrokerConfig {
    /// A broker at `uri` with every other setting at its default.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            ca_file: None,
            client_cert: None,
            client_key: None,
            reconnect: BackoffConfig::default(),
            names: TopologyNames::default(),
            status_interval_ms: default_heartbeat_ms(),
        }
    }
}

/// Exponential backoff with full jitter between reconnect attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    /// First delay.
    pub initial_ms: u64,
    /// Ceiling of the delay.
    pub max_ms: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial_ms: 200,
            max_ms: 30_000,
        }
    }
}

/// Names of the exchanges and queues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopologyNames {
    /// Topic exchange carrying policy documents (routing keys `node.<n>`, `cluster.<c>`, `all`).
    pub policy_exchange: String,
    /// Topic exchange carrying RealizedState reports (routing key `status.<node>`).
    pub status_exchange: String,
    /// Fanout exchange receiving rejected documents.
    pub dead_letter_exchange: String,
    /// Durable queue bound to the dead-letter exchange.
    pub dead_letter_queue: String,
}

impl Default for TopologyNames {
    fn default() -> Self {
        Self::with_prefix("rampart")
    }
}

impl TopologyNames {
    /// All names under `prefix` (`<prefix>.policy`, `<prefix>.status`, …).
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            policy_exchange: format!("{prefix}.policy"),
            status_exchange: format!("{prefix}.status"),
            dead_letter_exchange: format!("{prefix}.policy.dlx"),
            dead_letter_queue: format!("{prefix}.policy.dead"),
        }
    }

    /// The durable policy queue of `node`.
    pub fn node_queue(&self, node: &str) -> String {
        format!("{}.node.{node}", self.policy_exchange)
    }
}

impl ControlConfig {
    /// A config for `node` with every other setting at its default (no broker, no file).
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            cluster: None,
            broker: None,
            policy_file: None,
            state_dir: default_state_dir(),
            no_policy: NoPolicy::default(),
            quiescent_timeout_ms: default_quiescent_timeout_ms(),
            file_poll_ms: default_file_poll_ms(),
            metrics_listen: None,
        }
    }

    /// `quiescent_timeout_ms` as a Duration.
    pub fn quiescent_timeout(&self) -> Duration {
        Duration::from_millis(self.quiescent_timeout_ms)
    }

    /// The persisted last-good policy file.
    pub fn last_good_path(&self) -> PathBuf {
        self.state_dir.join("last-good-policy.json")
    }

    /// The persisted standalone inventory (the merged workloads and their revision).
    pub fn inventory_path(&self) -> PathBuf {
        self.state_dir.join("inventory.json")
    }
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/rampart")
}

fn default_quiescent_timeout_ms() -> u64 {
    2_000
}

fn default_file_poll_ms() -> u64 {
    1_000
}

fn default_heartbeat_ms() -> u64 {
    5_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_json_fills_defaults() {
        let cfg: ControlConfig =
            serde_json::from_str(r#"{"node":"fw1","broker":{"uri":"amqp://127.0.0.1"}}"#).unwrap();
        assert_eq!(cfg.node, "fw1");
        assert_eq!(cfg.no_policy, NoPolicy::Refuse);
        let broker = cfg.broker.unwrap();
        assert_eq!(broker.names.policy_exchange, "rampart.policy");
        assert_eq!(broker.names.node_queue("fw1"), "rampart.policy.node.fw1");
        assert_eq!(broker.reconnect, BackoffConfig::default());
    }

    #[test]
    fn unknown_field_is_an_error() {
        let err = serde_json::from_str::<ControlConfig>(r#"{"node":"a","brokr":{}}"#).unwrap_err();
        assert!(err.to_string().contains("brokr"), "{err}");
    }

    #[test]
    fn no_policy_is_kebab_case() {
        let cfg: ControlConfig =
            serde_json::from_str(r#"{"node":"a","no_policy":"deny-all"}"#).unwrap();
        assert_eq!(cfg.no_policy, NoPolicy::DenyAll);
    }
}
