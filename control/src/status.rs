//! RealizedState: what a node reports to `rampart.status` after each policy message (and
//! periodically), so a manager knows which generation every appliance enforces and why one was
//! refused.

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// What happened to the document a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The document is enforced on every worker.
    Applied,
    /// The document was invalid (or failed to compile); the previous policy stays.
    Rejected,
    /// The document's generation is not newer than the enforced one; acked and ignored.
    Stale,
    /// No document: the periodic / on-connect report of what is enforced.
    Current,
}

/// What a message on the policy exchange carries (and so what a report is about).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocumentKind {
    /// A complete policy document (the default).
    #[default]
    Policy,
    /// An inventory update on its own (AMQP message type `rampart.inventory`).
    Inventory,
}

/// One report. Field names are the wire format (JSON) read by managers and `rampartctl status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealizedState {
    /// The reporting node.
    pub node: String,
    /// Its cluster, if configured.
    #[serde(default)]
    pub cluster: Option<String>,
    /// What happened.
    pub outcome: Outcome,
    /// Whether the report is about a policy document or an inventory update.
    #[serde(default)]
    pub kind: DocumentKind,
    /// Generation of the document this report is about (`None` when it could not even be parsed).
    pub generation: Option<u64>,
    /// Generation enforced after handling the document.
    pub active_generation: Option<u64>,
    /// Revision of the standalone inventory the enforced ruleset was resolved against
    /// (`None`: none received yet). For an inventory report that was refused, `generation`
    /// holds the refused update's revision and this one the revision still live.
    #[serde(default)]
    pub inventory_revision: Option<u64>,
    /// Rules in the enforced ruleset.
    pub rule_count: usize,
    /// Validation + compilation time of the document, in milliseconds.
    pub compile_ms: f64,
    /// Time from the RCU publish until every worker passed a quiescent point, in milliseconds.
    pub enforce_ms: f64,
    /// Compiler warnings (shadowed / redundant rules, …) and enforcement caveats.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Why the document was rejected.
    #[serde(default)]
    pub error: Option<String>,
    /// When the report was made (RFC 3339, UTC).
    pub timestamp: String,
}

impl RealizedState {
    /// A report with no timings, warnings or error, stamped now.
    pub fn new(node: &str, cluster: Option<&str>, outcome: Outcome) -> Self {
        Self {
            node: node.to_owned(),
            cluster: cluster.map(str::to_owned),
            outcome,
            kind: DocumentKind::Policy,
            generation: None,
            active_generation: None,
            inventory_revision: None,
            rule_count: 0,
            compile_ms: 0.0,
            enforce_ms: 0.0,
            warnings: Vec::new(),
            error: None,
            timestamp: rfc3339_now(),
        }
    }

    /// The JSON body published to the status exchange.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings and numbers always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Now as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs(), now.subsec_millis())
}

/// Unix seconds (+ milliseconds) as RFC 3339 UTC.
pub fn rfc3339(unix_secs: u64, millis: u32) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs_of_day = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_798_761_599, 999), "2026-12-31T23:59:59.999Z");
    }

    #[test]
    fn json_round_trip_uses_kebab_outcome() {
        let mut s = RealizedState::new("fw1", Some("dc1"), Outcome::Rejected);
        s.generation = Some(7);
        s.error = Some("rules[0].action: unknown variant".into());
        let json = String::from_utf8(s.to_json()).unwrap();
        assert!(json.contains(r#""outcome":"rejected""#), "{json}");
        let back: RealizedState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
