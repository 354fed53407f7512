//! The per-packet facts the state machine needs, taken from a parsed frame.

use rampart_wire::{icmp, proto, Parsed, PlainIpv4};

/// What `FlowTable::track` reads from a packet. Built from [`Parsed`] with
/// [`PacketInfo::from_parsed`]; `Copy` and small.
///
/// Laid out in this order (`repr(C)`) for the worker's fast path, which stores one per packet:
/// `ack` then `seq` is the little-endian order of the 8 bytes `seq, ack` of a TCP header read
/// as one big-endian u64 ([`rampart_wire::parse_plain`] reads them so), and so takes one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct PacketInfo {
    /// TCP acknowledgement number.
    pub ack: u32,
    /// TCP sequence number.
    pub seq: u32,
    /// TCP window (unscaled).
    pub window: u16,
    /// Transport payload length.
    pub payload_len: u16,
    /// Bytes counted against the flow (the frame length).
    pub frame_len: u16,
    /// IP protocol.
    pub proto: u8,
    /// TCP flag byte.
    pub tcp_flags: u8,
    /// TCP window-scale option (SYNs).
    pub wscale: Option<u8>,
    /// True for an ICMP/ICMPv6 echo or timestamp request (the message that may open an ICMP
    /// pseudo-connection).
    pub icmp_request: bool,
    /// True for an ICMP echo/timestamp reply.
    pub icmp_reply: bool,
}

impl PacketInfo {
    /// Extracts the tracking facts from a parsed frame.
    #[inline]
    pub fn from_parsed(p: &Parsed) -> Self {
        let v6 = p.key.proto == proto::ICMPV6;
        let (req, has_id) = if p.key.proto == proto::ICMP || v6 {
            let has_id = p.icmp.echo_id.is_some();
            (has_id && icmp::is_request(v6, p.icmp.msg_type), has_id)
        } else {
            (false, false)
        };
        PacketInfo {
            proto: p.key.proto,
            tcp_flags: p.tcp.flags,
            seq: p.tcp.seq,
            ack: p.tcp.ack,
            window: p.tcp.window,
            wscale: p.tcp.wscale,
            payload_len: p.payload_len,
            frame_len: p.frame_len,
            icmp_request: req,
            icmp_reply: has_id && !req,
        }
    }

    /// The tracking facts of a frame [`rampart_wire::parse_plain`] took (`frame_len` is the
    /// frame's length): what [`Self::from_parsed`] gives for the `Parsed` it writes.
    #[inline]
    pub fn from_plain(p: &PlainIpv4, frame_len: u16) -> Self {
        PacketInfo {
            proto: p.proto,
            tcp_flags: p.tcp.flags,
            seq: p.tcp.seq,
            ack: p.tcp.ack,
            window: p.tcp.window,
            wscale: p.tcp.wscale,
            payload_len: p.payload_len,
            frame_len,
            icmp_request: false,
            icmp_reply: false,
        }
    }
}
