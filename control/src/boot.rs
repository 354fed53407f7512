//! What the appliance enforces before it forwards its first packet: the persisted last-good
//! policy or the configured policy file (whichever valid one has the higher generation), else
//! what `no_policy` says — by default nothing is forwarded at all (fail closed). This never
//! touches the broker, so an unreachable broker cannot delay or weaken boot.

use crate::apply::NodeState;
use crate::config::{ControlConfig, NoPolicy};
use crate::persist;
use crate::policy::{self, Refusal};
use rampart_classify::Ruleset;
use rampart_config::policy::{Action, Inventory, InventoryDocument, PolicyDocument};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Where the boot policy came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootSource {
    /// The last-good document persisted by the control plane.
    Persisted(PathBuf),
    /// The configured policy file.
    File(PathBuf),
    /// No policy could be loaded; an empty one per `no_policy` (deny-all or allow-all).
    Empty(NoPolicy),
}

impl fmt::Display for BootSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootSource::Persisted(p) => write!(f, "persisted last-good policy {}", p.display()),
            BootSource::File(p) => write!(f, "policy file {}", p.display()),
            BootSource::Empty(NoPolicy::AllowAll) => f.write_str("empty policy, allow all"),
            BootSource::Empty(_) => f.write_str("empty policy, deny all"),
        }
    }
}

/// The policy to enforce from the first packet on.
#[derive(Debug)]
pub struct BootPolicy {
    /// The compiled ruleset: hand it to `TableHandle::new`.
    pub ruleset: Arc<Ruleset>,
    /// Where it came from.
    pub source: BootSource,
    /// Candidates that could not be loaded (path: reason), for the log.
    pub skipped: Vec<String>,
}

/// Boot cannot proceed.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// No persisted or configured policy could be loaded and `no_policy = "refuse"`.
    #[error("no policy to enforce (fail-closed; set no_policy = \"deny-all\" to start dropping everything and wait for one){}", tried_list(.tried))]
    NoPolicy {
        /// What was tried and why it failed.
        tried: Vec<String>,
    },
    /// The empty fallback policy failed to compile (a bug in the compiler).
    #[error("compiling the empty fallback policy: {0}")]
    Fallback(String),
}

fn tried_list(tried: &[String]) -> String {
    if tried.is_empty() {
        String::from(": no persisted policy and no policy_file configured")
    } else {
        format!(": {}", tried.join("; "))
    }
}

fn describe(refusal: Refusal) -> String {
    match refusal {
        Refusal::Invalid { error, .. } => error,
        Refusal::Stale { generation, active } => {
            format!("stale generation {generation} <= {active}")
        }
    }
}

/// The standalone inventory the control plane persisted (merged workloads, revision), if any.
pub fn persisted_inventory(
    cfg: &ControlConfig,
) -> Result<Option<(Inventory, Option<u64>)>, String> {
    let path = cfg.inventory_path();
    let Some(bytes) = persist::read_if_exists(&path).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let doc = InventoryDocument::from_json_slice(&bytes)
        .map_err(|e| format!("{}: invalid inventory JSON: {e}", path.display()))?;
    doc.validate()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut inventory = Inventory::new();
    inventory.merge(&doc);
    Ok(Some((inventory, doc.generation)))
}

/// What the control plane resolves later documents against, rebuilt from disk for a node that
/// booted enforcing generation `active`: the persisted inventory, and the document of that
/// generation (the persisted last-good one or the policy file). Read once when the control
/// plane starts, on its own thread.
pub fn node_state(cfg: &ControlConfig, active: u64) -> NodeState {
    let mut state = NodeState::default();
    match persisted_inventory(cfg) {
        Ok(Some((inventory, revision))) => {
            state.inventory = Arc::new(inventory);
            state.inventory_revision = revision;
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "persisted inventory ignored"),
    }
    let persisted = || {
        persist::read_if_exists(&cfg.last_good_path())
            .ok()
            .flatten()
            .and_then(|b| PolicyDocument::from_json_slice(&b).ok())
    };
    let file = || {
        cfg.policy_file
            .as_deref()
            .and_then(|p| PolicyDocument::from_path(p).ok())
    };
    state.document = persisted()
        .filter(|d| d.generation == active)
        .or_else(|| file().filter(|d| d.generation == active))
        .map(Arc::new);
    state
}

/// Load the policy to enforce at boot (see the module doc for the order). Tag-selected groups
/// resolve against the persisted standalone inventory too.
pub fn initial_ruleset(cfg: &ControlConfig) -> Result<BootPolicy, BootError> {
    let mut skipped = Vec::new();
    let inventory = match persisted_inventory(cfg) {
        Ok(i) => i.map(|(inventory, _)| inventory),
        Err(e) => {
            skipped.push(e);
            None
        }
    };
    let mut best: Option<(Arc<Ruleset>, BootSource)> = None;
    let mut consider = |ruleset: Arc<Ruleset>, source: BootSource| {
        let newer = match &best {
            Some((b, _)) => ruleset.generation() > b.generation(),
            None => true,
        };
        if newer {
            best = Some((ruleset, source));
        }
    };

    let persisted = cfg.last_good_path();
    match persist::read_if_exists(&persisted) {
        Ok(Some(bytes)) => {
            match policy::parse_json(&bytes).and_then(|doc| {
                policy::compile(doc, None, None, inventory.as_ref(), Instant::now())
            }) {
                Ok(c) => consider(c.ruleset, BootSource::Persisted(persisted)),
                Err(r) => skipped.push(format!("{}: {}", persisted.display(), describe(r))),
            }
        }
        Ok(None) => {}
        Err(e) => skipped.push(e.to_string()),
    }
    if let Some(file) = &cfg.policy_file {
        match policy::parse_path(file)
            .and_then(|doc| policy::compile(doc, None, None, inventory.as_ref(), Instant::now()))
        {
            Ok(c) => consider(c.ruleset, BootSource::File(file.clone())),
            Err(r) => skipped.push(describe(r)),
        }
    }

    if let Some((ruleset, source)) = best {
        return Ok(BootPolicy {
            ruleset,
            source,
            skipped,
        });
    }
    let action = match cfg.no_policy {
        NoPolicy::Refuse => return Err(BootError::NoPolicy { tried: skipped }),
        NoPolicy::DenyAll => Action::Drop,
        NoPolicy::AllowAll => Action::Allow,
    };
    let ruleset = policy::empty_ruleset(action).map_err(|r| BootError::Fallback(describe(r)))?;
    Ok(BootPolicy {
        ruleset,
        source: BootSource::Empty(cfg.no_policy),
        skipped,
    })
}
