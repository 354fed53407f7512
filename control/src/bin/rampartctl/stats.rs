//! `rampartctl stats --endpoint HOST:PORT`: a node's Prometheus metrics (the endpoint the
//! control thread serves, issue 6) as a table.

use std::process::ExitCode;
use std::time::Duration;

use rampart_control::stats;

/// Arguments of `stats`.
#[derive(clap::Args)]
pub struct Args {
    /// The node's metrics endpoint.
    #[arg(long, default_value = "127.0.0.1:9469")]
    pub endpoint: String,
    /// HTTP path of the metrics.
    #[arg(long, default_value = "/metrics")]
    pub path: String,
    /// Only metrics whose name contains this.
    #[arg(long)]
    pub filter: Option<String>,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let body = stats::fetch(&a.endpoint, &a.path, Duration::from_secs(5))?;
    let mut samples = stats::parse(&body);
    if let Some(f) = &a.filter {
        samples.retain(|s| s.name.contains(f.as_str()));
    }
    print!("{}", stats::table(&samples));
    Ok(ExitCode::SUCCESS)
}
