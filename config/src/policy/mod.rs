//! The policy document a manager publishes, and its validation into resolved values.
//!
//! Flow: [`PolicyDocument`] (JSON/YAML file types) → [`PolicyDocument::validate`] →
//! [`ValidatedPolicy`] (rules in evaluation order, groups/services/inventory resolved to
//! numeric ranges that remember where they came from) → `rampart_classify::Ruleset::compile`.
//! The schema is written down in `config/schema/policy.schema.json` and `docs/policy.md`.

mod addr;
mod document;
mod inventory;
mod validate;
mod validated;

use std::path::Path;

pub use addr::{
    complement, ip_to_u128, normalize, parse_addr, u128_to_ip, AddrRange, AddrRanges, Family,
};
pub use document::{
    Action, Category, Direction, EndpointSpec, GroupSpec, PolicyDocument, PortSpec, ProtoSpec,
    RuleSpec, ServiceEntry, ServiceSpec, TcpStrictness,
};
pub use inventory::{Inventory, InventoryDocument, Workload};
pub use validate::{ValidateOptions, ValidationError, ValidationErrors};
pub use validated::{
    AddrMatch, AddrSet, PortRange, ResolvedRule, RuleId, ServiceMatch, ValidatedPolicy,
};

/// Why a policy file or message could not be read as a document.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The JSON did not parse into a document (serde names the line, column and field).
    #[error("invalid policy JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The YAML did not parse into a document.
    #[error("invalid policy YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// The file name ends in neither `.json`, `.yaml` nor `.yml`.
    #[error("cannot tell the format of {0}: use a .json, .yaml or .yml file")]
    UnknownFormat(String),
}

impl PolicyDocument {
    /// Parses a JSON document (the wire format).
    pub fn from_json_slice(bytes: &[u8]) -> Result<Self, PolicyLoadError> {
        // Checking UTF-8 once over the whole message is cheaper than serde_json checking each
        // string as it goes (from a slice it must); invalid UTF-8 takes the slice path, whose
        // error names the line and column.
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(serde_json::from_str(text)?),
            Err(_) => Ok(serde_json::from_slice(bytes)?),
        }
    }

    /// Parses a YAML document.
    pub fn from_yaml_str(s: &str) -> Result<Self, PolicyLoadError> {
        Ok(serde_yaml::from_str(s)?)
    }

    /// Reads a file, JSON or YAML by extension.
    pub fn from_path(path: &Path) -> Result<Self, PolicyLoadError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        let read = || {
            std::fs::read(path).map_err(|source| PolicyLoadError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        match ext.as_deref() {
            Some("json") => Self::from_json_slice(&read()?),
            Some("yaml" | "yml") => Self::from_yaml_str(&String::from_utf8_lossy(&read()?)),
            _ => Err(PolicyLoadError::UnknownFormat(path.display().to_string())),
        }
    }

    /// Serialises to JSON (the wire format).
    pub fn to_json_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a PolicyDocument always serialises")
    }
}

#[cfg(test)]
mod tests;
