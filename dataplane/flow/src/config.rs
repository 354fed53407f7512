//! Flow-table settings: capacity, per-state timeouts, TCP tracking modes.

/// Idle timeouts in seconds, per protocol state. The defaults follow Linux nf_conntrack's
/// (`/proc/sys/net/netfilter/nf_conntrack_*_timeout_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// SYN seen, waiting for SYN-ACK (120 s).
    pub tcp_syn_sent_secs: u32,
    /// SYN-ACK seen, waiting for the final ACK (60 s).
    pub tcp_syn_recv_secs: u32,
    /// Handshake complete (5 days).
    pub tcp_established_secs: u32,
    /// One side sent FIN (120 s).
    pub tcp_fin_wait_secs: u32,
    /// The other side acknowledged a FIN but has not sent its own (60 s).
    pub tcp_close_wait_secs: u32,
    /// Both sides sent FIN, waiting for the last ACK (30 s).
    pub tcp_last_ack_secs: u32,
    /// Closed by FINs, lingering for late segments (120 s).
    pub tcp_time_wait_secs: u32,
    /// Closed by RST (10 s).
    pub tcp_close_secs: u32,
    /// UDP, only one direction seen (30 s).
    pub udp_secs: u32,
    /// UDP, both directions seen (120 s).
    pub udp_stream_secs: u32,
    /// ICMP echo/timestamp pseudo-connections and other ICMP (30 s).
    pub icmp_secs: u32,
    /// Any other protocol (600 s).
    pub generic_secs: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_syn_sent_secs: 120,
            tcp_syn_recv_secs: 60,
            tcp_established_secs: 432_000,
            tcp_fin_wait_secs: 120,
            tcp_close_wait_secs: 60,
            tcp_last_ack_secs: 30,
            tcp_time_wait_secs: 120,
            tcp_close_secs: 10,
            udp_secs: 30,
            udp_stream_secs: 120,
            icmp_secs: 30,
            generic_secs: 600,
        }
    }
}

/// Settings of one worker's flow table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowConfig {
    /// Maximum number of flows; all memory is allocated by `FlowTable::new`.
    pub capacity: u32,
    /// Idle timeouts.
    pub timeouts: Timeouts,
    /// Loose mode: a TCP segment without SYN may create an (unassured) established flow, so
    /// connections that predate the firewall survive a restart. Off: only a SYN opens.
    pub loose_tcp_pickup: bool,
    /// Check that TCP segments fall inside the window the receiver advertised (see
    /// `state` module docs for what exactly is checked).
    pub strict_tcp: bool,
    /// Seed mixed into the flow hash; give each worker a random one so bucket placement is
    /// not predictable from outside.
    pub hash_seed: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            capacity: 1 << 16,
            timeouts: Timeouts::default(),
            loose_tcp_pickup: false,
            strict_tcp: false,
            hash_seed: 0x243f_6a88_85a3_08d3,
        }
    }
}

/// Largest supported capacity (flow indices and hash signatures share 32-bit slots).
pub const MAX_CAPACITY: u32 = 1 << 28;

/// Why a flow table could not be created.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlowConfigError {
    /// Capacity is 0 or above [`MAX_CAPACITY`].
    #[error("flow table capacity {0} is outside 1..={MAX_CAPACITY}")]
    Capacity(u32),
    /// A timeout is 0 or longer than the table's clock can represent (about 24 days).
    #[error("timeout {name} = {secs} s is outside 1..=2000000 s")]
    Timeout {
        /// Which timeout.
        name: &'static str,
        /// Its value.
        secs: u32,
    },
}
