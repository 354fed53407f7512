//! `rampartctl flows --endpoint HOST:PORT [--top N] [--json]`: a node's top flows by bytes,
//! collected from every worker's conntrack table.

use std::process::ExitCode;
use std::time::Duration;

use rampart_control::live::FlowEntry;
use rampart_control::stats;

/// Arguments of `flows`.
#[derive(clap::Args)]
pub struct Args {
    /// The node's management endpoint (its `control.metrics_listen`).
    #[arg(long, default_value = "127.0.0.1:9469")]
    pub endpoint: String,
    /// How many flows (most bytes first).
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Print the node's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let body = stats::fetch(
        &a.endpoint,
        &format!("/flows?top={}", a.top),
        Duration::from_secs(30),
    )?;
    if a.json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let flows: Vec<FlowEntry> = serde_json::from_str(&body)
        .map_err(|e| anyhow::anyhow!("unexpected answer from {}: {e}: {body}", a.endpoint))?;
    print!("{}", table(&flows));
    Ok(ExitCode::SUCCESS)
}

/// Flows as an aligned table.
pub fn table(flows: &[FlowEntry]) -> String {
    let mut out = format!(
        "{:<6} {:<5} {:<40} {:<40} {:<16} {:>7} {:>5} {:>12} {:>14} {:>10}\n",
        "WORKER",
        "PROTO",
        "SOURCE",
        "DESTINATION",
        "STATE",
        "RULE",
        "RS#",
        "PACKETS o/r",
        "BYTES o/r",
        "IDLE ms"
    );
    for f in flows {
        let endpoint = |ip: &std::net::IpAddr, port: u16| match ip {
            std::net::IpAddr::V6(_) => format!("[{ip}]:{port}"),
            std::net::IpAddr::V4(_) => format!("{ip}:{port}"),
        };
        out.push_str(&format!(
            "{:<6} {:<5} {:<40} {:<40} {:<16} {:>7} {:>5} {:>12} {:>14} {:>10.0}\n",
            f.worker,
            f.proto,
            endpoint(&f.src, f.sport),
            endpoint(&f.dst, f.dport),
            f.state,
            f.rule.map_or("default".into(), |r| r.to_string()),
            f.ruleset_seq,
            format!("{}/{}", f.packets_orig, f.packets_reply),
            format!("{}/{}", f.bytes_orig, f.bytes_reply),
            f.idle_ms,
        ));
    }
    out
}
