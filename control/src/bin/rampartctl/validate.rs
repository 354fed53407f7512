//! `rampartctl validate FILE`: parse, validate and compile; errors name the JSON path.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rampart_classify::Ruleset;
use rampart_config::policy::{Inventory, InventoryDocument, PolicyDocument, ValidateOptions};

/// Arguments of `validate`.
#[derive(clap::Args)]
pub struct Args {
    /// Policy document (.json, .yaml or .yml).
    pub file: PathBuf,
    /// Reject the document unless its generation is newer than this one.
    #[arg(long)]
    pub current_generation: Option<u64>,
    /// A separately published inventory (JSON) merged over the document's own.
    #[arg(long)]
    pub inventory: Option<PathBuf>,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let doc = match PolicyDocument::from_path(&a.file) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{}: {e}", a.file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let inventory = match &a.inventory {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            let upd = InventoryDocument::from_json_slice(&bytes)
                .with_context(|| format!("parsing inventory {}", p.display()))?;
            let mut inv = Inventory::new();
            inv.merge(&upd);
            Some(inv)
        }
        None => None,
    };
    let opts = ValidateOptions {
        current_generation: a.current_generation,
        inventory: inventory.as_ref(),
    };
    let policy = match doc.validate(&opts) {
        Ok(p) => p,
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("{}: {e}", a.file.display());
            }
            eprintln!("{}: invalid ({} error(s))", a.file.display(), errs.0.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    let rs = Ruleset::compile(&policy).context("compiling the policy")?;
    println!(
        "{}: valid: generation {}, {} rules ({} disabled), default {:?}, compiled in {:.3} ms, {} bytes",
        a.file.display(),
        policy.generation,
        rs.rule_count(),
        policy.disabled.len(),
        rs.default_action(),
        rs.build_time().as_secs_f64() * 1e3,
        rs.memory_bytes()
    );
    for w in rs.warnings() {
        println!("warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}
