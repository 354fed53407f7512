//! rampart-config: serde types for the appliance config (TOML) and the policy document,
//! validated with errors that name the field and the reason.

pub mod appliance;
pub mod firewall;
pub mod policy;
