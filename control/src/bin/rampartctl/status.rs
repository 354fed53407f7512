//! `rampartctl status [--node N] [--wait SECS]`: the RealizedState of each node. Nodes report
//! after every document and every `status_interval_ms` (5 s by default), so listening a little
//! longer than that interval shows every live node.

use std::process::ExitCode;
use std::time::Duration;

use rampart_control::client::StatusWatcher;

use crate::bus::{self, BrokerArgs};

/// Arguments of `status`.
#[derive(clap::Args)]
pub struct Args {
    /// Only this node.
    #[arg(long)]
    pub node: Option<String>,
    /// How long to listen, in seconds.
    #[arg(long, default_value_t = 6.0)]
    pub wait: f64,
    /// One JSON array of the reports instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub broker: BrokerArgs,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let cfg = a.broker.config();
    let reports = bus::runtime()?.block_on(async {
        let mut watcher = StatusWatcher::connect(&cfg, a.node.as_deref()).await?;
        let reports = watcher.collect(Duration::from_secs_f64(a.wait)).await?;
        watcher.close().await;
        anyhow::Ok(reports)
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else if reports.is_empty() {
        println!("no node reported within {} s", a.wait);
    } else {
        bus::print_reports(&reports);
    }
    Ok(if reports.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
