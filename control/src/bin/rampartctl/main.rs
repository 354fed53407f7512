//! rampartctl: operate Rampart policies from the command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod bus;
mod explain;
mod flows;
mod publish;
mod stats;
mod status;
mod validate;

/// Rampart control CLI.
#[derive(Parser)]
#[command(name = "rampartctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a policy document (JSON or YAML); print every error with its path and exit 1 if invalid.
    Validate(validate::Args),
    /// Show which rule a packet matches (in a file or on a live node), and through which group
    /// and service; on a live node also the flow's conntrack entry.
    Explain(explain::Args),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::Command),
    /// Publish a policy document to the nodes (RabbitMQ, publisher confirms).
    Publish(publish::Args),
    /// Show each node's RealizedState (enforced generation, last outcome).
    Status(status::Args),
    /// Show a node's metrics as a table.
    Stats(stats::Args),
    /// Show a node's top flows (conntrack entries of every worker).
    Flows(flows::Args),
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(a) => validate::run(&a),
        Command::Explain(a) => explain::run(&a),
        Command::Bench(c) => bench::run(&c),
        Command::Publish(a) => publish::run(&a),
        Command::Status(a) => status::run(&a),
        Command::Stats(a) => stats::run(&a),
        Command::Flows(a) => flows::run(&a),
    }
}
