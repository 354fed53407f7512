//! What the appliance enforces before it forwards its first packet: the persisted last-good
//! policy or the configured policy file (whichever valid one has the higher generation), else
//! what `no_policy` says — by default nothing is forwarded at all (fail closed). This never
//! touches the broker, so an unreachable broker cannot delay or weaken boot.

use crate::config::{ControlConfig, NoPolicy};
use crate::persist;
use crate::policy::{self, Refusal};
use rampart_classify::Ruleset;
use rampart_config::policy::Action;
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

/// Load the policy to enforce at boot (see the module doc for the order).
pub fn initial_ruleset(cfg: &ControlConfig) -> Result<BootPolicy, BootError> {
    let mut skipped = Vec::new();
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
            match policy::parse_json(&bytes)
                .and_then(|doc| policy::compile(doc, None, None, Instant::now()))
            {
                Ok(c) => consider(c.ruleset, BootSource::Persisted(persisted)),
                Err(r) => skipped.push(format!("{}: {}", persisted.display(), describe(r))),
            }
        }
        Ok(None) => {}
        Err(e) => skipped.push(e.to_string()),
    }
    if let Some(file) = &cfg.policy_file {
        match policy::parse_path(file)
            .and_then(|doc| policy::compile(doc, None, None, Instant::now()))
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
