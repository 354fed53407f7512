//! rampart-pktgen: a DPDK traffic generator for benchmarking and testing the Rampart appliance.
//!
//! The binary (`pktgen`, see `main.rs`) wires these modules together; everything but
//! [`engine`] is plain Rust over byte slices and is unit-tested without DPDK.
//! - [`spec`]: streams from TOML (`[[stream]]`) or flags → [`spec::Stream`]s with templates;
//! - [`flows`]: flow spaces walked by an odometer (no division per packet);
//! - [`template`]: frames built once, patched per packet with incremental checksums;
//! - [`stamp`]: the 16-byte stamp (stream, trial, sequence, TSC) at the end of each frame;
//! - [`session`]: stateless TCP sessions with pktgen as client and server;
//! - [`rate`]: token bucket on the TSC, line-rate arithmetic;
//! - [`stats`]: counters, hdrhistogram latency, the table and the JSON report;
//! - [`pcap`]: the classic pcap reader; [`search`]: the RFC 2544 throughput search;
//! - [`engine`]: the DPDK send/receive loop.

pub mod engine;
pub mod flows;
pub mod pcap;
pub mod rate;
pub mod search;
pub mod session;
pub mod spec;
pub mod stamp;
pub mod stats;
pub mod template;
