//! `rampartctl publish FILE [--inventory] [--node N | --cluster C] [--wait SECS]`: send a policy
//! document (or, with `--inventory`, an inventory update on its own) to the nodes through
//! `rampart.policy`, with publisher confirms; optionally wait for their RealizedState reports.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use rampart_config::policy::{InventoryDocument, PolicyDocument};
use rampart_control::client::{PolicyPublisher, StatusWatcher, Target};
use rampart_control::{DocumentKind, Outcome, RealizedState};

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
    /// FILE is an inventory update (JSON `{"generation": REV, "workloads": [...], "removed":
    /// [...]}`): the nodes merge it and re-resolve their enforced policy against it.
    #[arg(long)]
    pub inventory: bool,
    #[command(flatten)]
    pub broker: BrokerArgs,
}

/// An inventory update from FILE: its JSON and its revision (required on the bus).
fn inventory(a: &Args) -> anyhow::Result<Result<(Vec<u8>, u64), ExitCode>> {
    let bytes = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let update = InventoryDocument::from_json_slice(&bytes)
        .with_context(|| format!("parsing inventory {}", a.file.display()))?;
    let checked = update.validate().map_err(|e| e.to_string()).and_then(|()| {
        update
            .generation
            .ok_or_else(|| "generation: an inventory update needs a revision".to_owned())
    });
    match checked {
        Ok(rev) => Ok(Ok((bytes, rev))),
        Err(e) if !a.no_validate => {
            eprintln!(
                "{}: not published, the update is invalid:\n{e}",
                a.file.display()
            );
            Ok(Err(ExitCode::FAILURE))
        }
        Err(_) => Ok(Ok((bytes, update.generation.unwrap_or(0)))),
    }
}

/// Whether `r` is a node's answer to what was published.
fn answers(r: &RealizedState, kind: DocumentKind, id: u64) -> bool {
    match kind {
        DocumentKind::Policy => r.kind == kind && r.generation == Some(id),
        DocumentKind::Inventory => {
            r.kind == kind
                && match r.outcome {
                    Outcome::Applied => r.inventory_revision == Some(id),
                    _ => r.generation == Some(id),
                }
        }
    }
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let target = match (&a.node, &a.cluster) {
        (Some(n), _) => Target::Node(n.clone()),
        (None, Some(c)) => Target::Cluster(c.clone()),
        (None, None) => Target::All,
    };
    if a.inventory {
        let (body, revision) = match inventory(a)? {
            Ok(v) => v,
            Err(code) => return Ok(code),
        };
        let what = format!("inventory revision {revision} ({} bytes)", body.len());
        return send(a, &target, &body, DocumentKind::Inventory, revision, &what);
    }
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
    let body = doc.to_json_vec();
    let what = format!(
        "generation {} ({} rules, {} bytes)",
        doc.generation,
        doc.rules.len(),
        body.len()
    );
    send(
        a,
        &target,
        &body,
        DocumentKind::Policy,
        doc.generation,
        &what,
    )
}

/// Publish `body` and, with `--wait`, collect the nodes' answers to it.
fn send(
    a: &Args,
    target: &Target,
    body: &[u8],
    kind: DocumentKind,
    id: u64,
    what: &str,
) -> anyhow::Result<ExitCode> {
    let cfg = a.broker.config();
    bus::runtime()?.block_on(async {
        // Subscribe before publishing so no report is missed.
        let mut watcher = if a.wait > 0.0 {
            Some(StatusWatcher::connect(&cfg, a.node.as_deref()).await?)
        } else {
            None
        };
        let publisher = PolicyPublisher::connect(&cfg).await?;
        let started = Instant::now();
        match kind {
            DocumentKind::Policy => publisher.publish(body, target).await?,
            DocumentKind::Inventory => publisher.publish_inventory(body, target).await?,
        }
        println!(
            "published {what} to {target}: confirmed by the broker in {:.1} ms",
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
            let Some(r) = watcher.wait_for(left, |r| answers(r, kind, id)).await? else {
                break;
            };
            let done = a.node.is_some();
            reports.retain(|x: &RealizedState| x.node != r.node);
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
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}
