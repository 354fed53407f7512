//! rampartctl: operate Rampart policies from the command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod explain;
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
    /// Show which rule a packet matches, and through which group and service.
    Explain(explain::Args),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::Command),
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(a) => validate::run(&a),
        Command::Explain(a) => explain::run(&a),
        Command::Bench(c) => bench::run(&c),
    }
}
