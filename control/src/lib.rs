//! rampart-control: the appliance's control plane. It takes policy documents from RabbitMQ (or
//! from a file when no broker is configured), validates and compiles them off the dataplane,
//! swaps them into the workers through the RCU [`TableHandle`](rampart_classify::table::TableHandle),
//! acknowledges only once every worker has moved on, reports a [`RealizedState`], and keeps the
//! last good policy on disk for the next boot.
//!
//! How the appliance binary uses it:
//! ```text
//! let boot = rampart_control::boot::initial_ruleset(&cfg.control)?;   // before forwarding anything
//! let table = TableHandle::new(boot.ruleset);                        // workers: table.register_reader()
//! let control = ControlPlane::spawn(cfg.control, table.clone())?;    // own thread, never a worker core
//! ... run the workers ...
//! control.shutdown();
//! ```

pub mod apply;
pub mod backoff;
pub mod boot;
pub mod broker;
pub mod client;
pub mod config;
pub mod connect;
pub mod file_source;
pub mod live;
pub mod metrics;
pub mod persist;
pub mod plane;
pub mod policy;
pub mod stats;
pub mod status;
pub mod synth;
pub mod topology;

pub use boot::{initial_ruleset, BootError, BootPolicy, BootSource};
pub use config::{BackoffConfig, BrokerConfig, ControlConfig, NoPolicy, TopologyNames};
pub use plane::{ControlPlane, SpawnError, SpawnOptions};
pub use status::{DocumentKind, Outcome, RealizedState};
