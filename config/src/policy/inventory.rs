//! The workload inventory (address ↔ tags) that tag-selected groups resolve against.
//! It travels inside a policy document or is published on its own and merged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One workload: its addresses and tags.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Unique name; a later update with the same name replaces the workload.
    pub name: String,
    /// Host addresses or prefixes of the workload.
    pub addresses: Vec<String>,
    /// Tags such as `web`, `prod`.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// An inventory update published on its own (`{"workloads": [...], "removed": [...]}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryDocument {
    /// Optional version of the inventory feed (informational; ordering is the caller's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// When true the update replaces the whole inventory instead of merging into it.
    #[serde(default)]
    pub replace: bool,
    /// Workloads added or replaced (by name).
    #[serde(default)]
    pub workloads: Vec<Workload>,
    /// Names of workloads removed.
    #[serde(default)]
    pub removed: Vec<String>,
}

impl InventoryDocument {
    /// Parses an inventory update from JSON.
    pub fn from_json_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The merged inventory a node holds: workloads by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    workloads: BTreeMap<String, Workload>,
}

impl Inventory {
    /// An empty inventory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies an update: `replace` clears first, then workloads are upserted by name and
    /// `removed` names are deleted.
    pub fn merge(&mut self, update: &InventoryDocument) {
        if update.replace {
            self.workloads.clear();
        }
        for w in &update.workloads {
            self.workloads.insert(w.name.clone(), w.clone());
        }
        for name in &update.removed {
            self.workloads.remove(name);
        }
    }

    /// Upserts workloads by name.
    pub fn extend<'a>(&mut self, workloads: impl IntoIterator<Item = &'a Workload>) {
        for w in workloads {
            self.workloads.insert(w.name.clone(), w.clone());
        }
    }

    /// All workloads, ordered by name.
    pub fn workloads(&self) -> impl Iterator<Item = &Workload> {
        self.workloads.values()
    }

    /// Number of workloads.
    pub fn len(&self) -> usize {
        self.workloads.len()
    }

    /// Whether there are no workloads.
    pub fn is_empty(&self) -> bool {
        self.workloads.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(name: &str, addr: &str, tags: &[&str]) -> Workload {
        Workload {
            name: name.into(),
            addresses: vec![addr.into()],
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn merge_upserts_removes_and_replaces() {
        let mut inv = Inventory::new();
        inv.merge(&InventoryDocument {
            workloads: vec![w("a", "10.0.0.1", &["web"]), w("b", "10.0.0.2", &["db"])],
            ..Default::default()
        });
        assert_eq!(inv.len(), 2);
        inv.merge(&InventoryDocument {
            workloads: vec![w("a", "10.0.0.9", &["web"])],
            removed: vec!["b".into()],
            ..Default::default()
        });
        let all: Vec<_> = inv.workloads().collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].addresses, vec!["10.0.0.9".to_string()]);
        inv.merge(&InventoryDocument {
            replace: true,
            workloads: vec![w("c", "10.0.0.3", &[])],
            ..Default::default()
        });
        assert_eq!(inv.workloads().next().unwrap().name, "c");
    }
}
