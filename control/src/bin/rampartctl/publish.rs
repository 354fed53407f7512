//! `rampartctl publish FILE [--node N | --cluster C] [--wait SECS]`: send a policy document to
//! the nodes through `rampart.policy`, with publisher confirms; optionally wait for their
//! RealizedState reports.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use rampart_config::policy::PolicyDocument;
use rampart_control::client::{PolicyPublisher, StatusWatcher, Target};
use rampart_control::Outcome;

use crate::bus::{self, BrokerArgs};

/// Arguments of `publish`.
#[derive(clap::Args)]
pub struct Args {
    /// Policy document (.json, .yaml or .yml); sent as JSON.
    pub file: PathBuf,
    /// Only this node.
    #[arg(long, conflicts_with = "cluster")]
    pub node: Option<String>,
    /// Every node of this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Wait up to SECS for the nodes' RealizedState of this generation (0 = don't wait;
    /// with --node, returns as soon as that node reported).
    #[arg(long, default_value_t = 0.0)]
    pub wait: f64,
    /// Send it even if it does not validate here (to exercise the nodes' rejection path).
    #[arg(long)]
    pub no_validate: bool,
    #[command(flatten)]
    pub broker: BrokerArgs,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let doc = PolicyDocument::from_path(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    if !a.no_validate {
        if let Err(errors) = doc.validate_standalone() {
            eprintln!(
                "{}: not published, the document is invalid:\n{errors}",
                a.file.display()
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    let target = match (&a.node, &a.cluster) {
        (Some(n), _) => Target::Node(n.clone()),
        (None, Some(c)) => Target::Cluster(c.clone()),
        (None, None) => Target::All,
    };
    let cfg = a.broker.config();
    let body = doc.to_json_vec();
    let generation = doc.generation;
    bus::runtime()?.block_on(async {
        // Subscribe before publishing so no report is missed.
        let mut watcher = if a.wait > 0.0 {
            Some(StatusWatcher::connect(&cfg, a.node.as_deref()).await?)
        } else {
            None
        };
        let publisher = PolicyPublisher::connect(&cfg).await?;
        let started = Instant::now();
        publisher.publish(&body, &target).await?;
        println!(
            "published generation {generation} ({} rules, {} bytes) to {target}: confirmed by the broker in {:.1} ms",
            doc.rules.len(),
            body.len(),
            started.elapsed().as_secs_f64() * 1e3
        );
        publisher.close().await;
        let Some(watcher) = watcher.as_mut() else {
            return Ok(ExitCode::SUCCESS);
        };
        let deadline = started + Duration::from_secs_f64(a.wait);
        let mut reports = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(r) = watcher.wait_for(left, |r| r.generation == Some(generation)).await? else {
                break;
            };
            let done = a.node.is_some();
            reports.retain(|x: &rampart_control::RealizedState| x.node != r.node);
            reports.push(r);
            if done {
                break;
            }
        }
        println!(
            "{} node(s) reported within {:.1} s:",
            reports.len(),
            started.elapsed().as_secs_f64()
        );
        bus::print_reports(&reports);
        let ok = !reports.is_empty() && reports.iter().all(|r| r.outcome == Outcome::Applied);
        Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    })
}
