//! Broker options shared by `publish` and `status`, and the report table they print.

use std::path::PathBuf;

use rampart_control::{BrokerConfig, RealizedState, TopologyNames};

/// How to reach the broker (same meaning as the appliance's `[control.broker]`).
#[derive(clap::Args, Debug, Clone)]
pub struct BrokerArgs {
    /// Broker URI, amqp:// or amqps:// (default: $RAMPART_AMQP_URI or the local broker).
    #[arg(long)]
    pub uri: Option<String>,
    /// CA that signed the broker's certificate (amqps).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), for brokers that verify peers.
    #[arg(long, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Key of --client-cert (PEM).
    #[arg(long, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Prefix of the exchange/queue names (`<prefix>.policy`, `<prefix>.status`, …).
    #[arg(long, default_value = "rampart")]
    pub topology_prefix: String,
}

impl BrokerArgs {
    pub fn config(&self) -> BrokerConfig {
        let uri = self.uri.clone().unwrap_or_else(|| {
            std::env::var("RAMPART_AMQP_URI")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
        });
        let mut cfg = BrokerConfig::new(uri);
        cfg.ca_file = self.ca_file.clone();
        cfg.client_cert = self.client_cert.clone();
        cfg.client_key = self.client_key.clone();
        cfg.names = TopologyNames::with_prefix(&self.topology_prefix);
        cfg
    }
}

/// A runtime for one command (the CLI is otherwise synchronous).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Reports as an aligned table (one line per report, errors and warnings below it).
pub fn print_reports(reports: &[RealizedState]) {
    let rows: Vec<[String; 9]> = reports
        .iter()
        .map(|r| {
            [
                r.node.clone(),
                opt(r.cluster.as_deref()),
                match r.kind {
                    rampart_control::DocumentKind::Policy => format!("{:?}", r.outcome),
                    rampart_control::DocumentKind::Inventory => {
                        format!("inventory {:?}", r.outcome)
                    }
                }
                .to_lowercase(),
                opt(r.generation),
                opt(r.active_generation),
                opt(r.inventory_revision),
                r.rule_count.to_string(),
                format!("{:.1}/{:.2}", r.compile_ms, r.enforce_ms),
                r.timestamp.clone(),
            ]
        })
        .collect();
    let header = [
        "NODE",
        "CLUSTER",
        "OUTCOME",
        "GEN",
        "ACTIVE",
        "INVENTORY",
        "RULES",
        "COMPILE/ENFORCE MS",
        "AT",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (cell, w) in cells.iter().zip(widths) {
            s.push_str(&format!("{cell:<w$}  "));
        }
        println!("{}", s.trim_end());
    };
    line(&header);
    for (row, r) in rows.iter().zip(reports) {
        line(&row.each_ref().map(String::as_str));
        if let Some(e) = &r.error {
            for l in e.lines() {
                println!("    error: {l}");
            }
        }
        for w in &r.warnings {
            println!("    warning: {w}");
        }
    }
}
