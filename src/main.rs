//! `rampart`: the appliance binary. Reads the TOML config, applies command-line overrides,
//! brings up the dataplane and runs until SIGINT/SIGTERM (or `--duration`).

mod appliance;
mod cli;
mod firewall;
mod metrics;
mod stats;

use clap::Parser;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One sentence, the cause chain joined with ": ", no backtrace.
            eprintln!("rampart: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: &cli::Cli) -> anyhow::Result<()> {
    let cfg = cli.resolve()?;
    // Control-plane and rule-log records go to stderr; RUST_LOG filters them (default: info).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if cli.check {
        println!("rampart: configuration is valid");
        println!("{}", toml::to_string_pretty(&cfg)?);
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    appliance::run(&cfg, stop, cli.duration.map(Duration::from_secs_f64))
}
