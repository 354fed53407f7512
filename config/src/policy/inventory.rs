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

    /// Serialises to JSON (the wire and persisted format).
    pub fn to_json_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an InventoryDocument always serialises")
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

    /// Whether a workload of this name is in the inventory.
    pub fn contains(&self, name: &str) -> bool {
        self.workloads.contains_key(name)
    }

    /// Number of workloads.
    pub fn len(&self) -> usize {
        self.workloads.len()
    }

    /// Whether there are no workloads.
    pub fn is_empty(&self) -> bool {
        self.workloads.is_empty()
    }

    /// The whole inventory as one update that replaces whatever a reader holds: what a node
    /// persists, so a restart resolves tag-selected groups against the same workloads.
    pub fn to_document(&self, generation: Option<u64>) -> InventoryDocument {
        InventoryDocument {
            generation,
            replace: true,
            workloads: self.workloads.values().cloned().collect(),
            removed: Vec::new(),
        }
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

    #[test]
    fn to_document_round_trips_through_a_replacing_merge() {
        let mut inv = Inventory::new();
        inv.extend(&[w("a", "10.0.0.1", &["web"]), w("b", "10.0.0.2", &["db"])]);
        let doc = inv.to_document(Some(4));
        assert_eq!((doc.generation, doc.replace), (Some(4), true));
        let back = InventoryDocument::from_json_slice(&doc.to_json_vec()).unwrap();
        let mut other = Inventory::new();
        other.extend(&[w("stale", "10.9.9.9", &[])]);
        other.merge(&back);
        assert_eq!(other, inv);
    }

    #[test]
    fn validation_names_the_path() {
        let doc = InventoryDocument::from_json_slice(
            br#"{"generation": 2, "workloads": [
                {"name": "a", "addresses": ["10.0.0.1"], "tags": ["web"]},
                {"name": "a", "addresses": ["10.0.0.300"]},
                {"name": "", "addresses": ["10.0.0.0/8"], "tags": [""]}],
              "removed": ["a", ""]}"#,
        )
        .unwrap();
        let errs = doc.validate().unwrap_err();
        for path in [
            "workloads[1].name",
            "workloads[1].addresses[0]",
            "workloads[2].name",
            "workloads[2].tags[0]",
            "removed[0]",
            "removed[1]",
        ] {
            assert!(errs.has_path(path), "{path} missing in {errs}");
        }
        assert_eq!(errs.0.len(), 6, "{errs}");
        let ok = InventoryDocument {
            workloads: vec![w("a", "10.0.0.1", &["web"])],
            removed: vec!["b".into()],
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
    }
}
