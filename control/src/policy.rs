//! The one place that calls the policy model (rampart-config) and the compiler (rampart-classify):
//! bytes or a file → document → validated policy → compiled `Ruleset`. Everything here is blocking
//! CPU work; the async side runs it with `spawn_blocking`.

use rampart_classify::Ruleset;
use rampart_config::policy::{Action, Inventory, PolicyDocument, ValidateOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A document that validated and compiled, ready to publish.
#[derive(Debug)]
pub struct Compiled {
    /// The compiled, immutable ruleset.
    pub ruleset: Arc<Ruleset>,
    /// The document (persisted as last-good after it is enforced, and kept to re-resolve
    /// tag-selected groups when the inventory changes); `None` for the empty boot policy.
    pub document: Option<Arc<PolicyDocument>>,
    /// The JSON it arrived as, if it arrived as JSON: persisted as is, no re-serialization.
    pub raw_json: Option<Vec<u8>>,
    /// Parse + validation + compilation time.
    pub compile_time: Duration,
    /// Set when this is the enforced document re-resolved against a new inventory: the merged
    /// inventory and its revision, live once the ruleset is.
    pub inventory_update: Option<InventoryUpdate>,
}

/// A standalone inventory update merged into the node's inventory.
#[derive(Debug, Clone)]
pub struct InventoryUpdate {
    /// The node's whole inventory after the merge.
    pub inventory: Arc<Inventory>,
    /// The update's revision.
    pub revision: u64,
}

impl Compiled {
    /// What to persist: the JSON as received, else the document serialized.
    pub fn into_json(document: &PolicyDocument, raw_json: Option<Vec<u8>>) -> Vec<u8> {
        raw_json.unwrap_or_else(|| document.to_json_vec())
    }
}

/// Why a document was not compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not newer than what is enforced: ignore it (not an error).
    Stale {
        /// The document's generation.
        generation: u64,
        /// The enforced generation.
        active: u64,
    },
    /// Unparsable, invalid or uncompilable; `generation` is known if it parsed.
    Invalid {
        /// The document's generation, if it parsed that far.
        generation: Option<u64>,
        /// Errors naming the JSON path and the reason.
        error: String,
    },
}

/// Parse a JSON document (the wire format).
pub fn parse_json(bytes: &[u8]) -> Result<PolicyDocument, Refusal> {
    PolicyDocument::from_json_slice(bytes).map_err(|e| Refusal::Invalid {
        generation: generation_hint(bytes),
        error: e.to_string(),
    })
}

/// Parse a policy file (JSON or YAML by extension).
pub fn parse_path(path: &Path) -> Result<PolicyDocument, Refusal> {
    PolicyDocument::from_path(path).map_err(|e| Refusal::Invalid {
        generation: None,
        error: format!("{}: {e}", path.display()),
    })
}

/// The generation of an otherwise unparsable JSON document, if it has a readable one (so the
/// rejection report can still name it).
fn generation_hint(bytes: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Gen {
        generation: u64,
    }
    serde_json::from_slice::<Gen>(bytes)
        .ok()
        .map(|g| g.generation)
}

/// Validate and compile `doc` unless it is not newer than `active` (the enforced generation).
/// Tag-selected groups resolve against the document's own workloads with `inventory` (the
/// separately published one) laid over them. `started` is when handling the document began
/// (parse included in `compile_time`).
pub fn compile(
    doc: PolicyDocument,
    raw_json: Option<Vec<u8>>,
    active: Option<u64>,
    inventory: Option<&Inventory>,
    started: Instant,
) -> Result<Compiled, Refusal> {
    if let Some(active) = active {
        if doc.generation <= active {
            return Err(Refusal::Stale {
                generation: doc.generation,
                active,
            });
        }
    }
    let ruleset = resolve(&doc, inventory)?;
    Ok(Compiled {
        ruleset,
        document: Some(Arc::new(doc)),
        raw_json,
        compile_time: started.elapsed(),
        inventory_update: None,
    })
}

/// Validate and compile `doc` against `inventory` (no generation check): the step a policy
/// and an inventory update share.
pub fn resolve(
    doc: &PolicyDocument,
    inventory: Option<&Inventory>,
) -> Result<Arc<Ruleset>, Refusal> {
    let invalid = |error: String| Refusal::Invalid {
        generation: Some(doc.generation),
        error,
    };
    let opts = ValidateOptions {
        current_generation: None,
        inventory: inventory.filter(|i| !i.is_empty()),
    };
    let validated = doc.validate(&opts).map_err(|e| invalid(e.to_string()))?;
    let ruleset = Ruleset::compile(&validated).map_err(|e| invalid(e.to_string()))?;
    Ok(Arc::new(ruleset))
}

/// A policy with no rules, generation 0, and `default_action`: what boot enforces when it has
/// nothing else and the config allows it (deny-all or, explicitly, allow-all).
pub fn empty_ruleset(default_action: Action) -> Result<Arc<Ruleset>, Refusal> {
    let doc = PolicyDocument {
        generation: 0,
        default_action,
        ..PolicyDocument::default()
    };
    resolve(&doc, None)
}

/// Compiler warnings as display strings (shadowed / redundant rules).
pub fn warnings(ruleset: &Ruleset) -> Vec<String> {
    ruleset.warnings().iter().map(|w| w.to_string()).collect()
}
