//! The `[firewall]` section of the appliance config: how the pipeline treats
//! traffic that policy does not decide (ARP, tunnels, flows across a policy change), the flow
//! table's size and timeouts, and rule-log rates. Policy itself comes from the control plane.

use serde::{Deserialize, Serialize};

/// `[firewall]`: pipeline settings. Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallSection {
    /// Flows per worker (the table is allocated once at start; ~100 B per flow).
    pub flow_capacity: u32,
    /// Re-check existing flows against a new policy generation on their next packet, cutting
    /// those it no longer allows. Off: established sessions keep the verdict they were given.
    pub revalidate_flows: bool,
    /// Let a TCP segment that is not a SYN open a flow (mid-stream pickup, e.g. after a
    /// restart). Off by default: such segments are dropped as `no_flow`.
    pub loose_tcp_pickup: bool,
    /// TCP sequence/window checks on every tracked segment.
    pub strict_tcp: bool,
    /// `pass` (forward ARP untracked, the default: a bump in the wire must carry it) or `drop`.
    pub arp: ArpSection,
    /// UDP port whose datagrams are VXLAN and get the inner frame classified (0: never).
    pub vxlan_port: u16,
    /// UDP port whose datagrams are Geneve and get the inner frame classified (0: never).
    pub geneve_port: u16,
    /// Rule-log records per second per worker (the rest are counted as suppressed).
    pub log_rate_per_sec: u32,
    /// Rule-log burst allowance per worker.
    pub log_burst: u32,
    /// Idle timeouts; unset ones keep nf_conntrack-like defaults.
    pub timeouts: TimeoutsSection,
}

impl Default for FirewallSection {
    fn default() -> Self {
        FirewallSection {
            flow_capacity: 1 << 18,
            revalidate_flows: true,
            loose_tcp_pickup: false,
            strict_tcp: false,
            arp: ArpSection::Pass,
            vxlan_port: 4789,
            geneve_port: 6081,
            log_rate_per_sec: 100,
            log_burst: 100,
            timeouts: TimeoutsSection::default(),
        }
    }
}

/// What happens to ARP frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArpSection {
    /// Forward untracked.
    Pass,
    /// Drop (counted as a parse error `arp_dropped`).
    Drop,
}

/// `[firewall.timeouts]`: idle timeouts in seconds; `None` keeps the default.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsSection {
    pub tcp_syn_sent_secs: Option<u32>,
    pub tcp_syn_recv_secs: Option<u32>,
    pub tcp_established_secs: Option<u32>,
    pub tcp_fin_wait_secs: Option<u32>,
    pub tcp_close_wait_secs: Option<u32>,
    pub tcp_last_ack_secs: Option<u32>,
    pub tcp_time_wait_secs: Option<u32>,
    pub tcp_close_secs: Option<u32>,
    pub udp_secs: Option<u32>,
    pub udp_stream_secs: Option<u32>,
    pub icmp_secs: Option<u32>,
    pub generic_secs: Option<u32>,
}
