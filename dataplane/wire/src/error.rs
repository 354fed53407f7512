//! Why a frame was not parsed: one variant per reason, each turned into a counter by the worker.

macro_rules! parse_errors {
    ($( $(#[doc = $doc:literal])* $name:ident => $text:literal, )*) => {
        /// A parse failure reason. `Copy`, one byte; the worker keeps `[u64; ParseError::COUNT]`
        /// counters indexed by [`ParseError::index`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum ParseError {
            $( $(#[doc = $doc])* $name, )*
        }

        impl ParseError {
            /// Every variant, in index order.
            pub const ALL: &'static [ParseError] = &[$(ParseError::$name,)*];
            /// Number of variants (size of a counter array).
            pub const COUNT: usize = Self::ALL.len();

            /// Dense index in `0..COUNT`.
            #[inline]
            pub fn index(self) -> usize {
                self as usize
            }

            /// Stable snake_case name for counters and metrics.
            pub fn name(self) -> &'static str {
                match self {
                    $( ParseError::$name => $text, )*
                }
            }
        }
    };
}

parse_errors! {
    /// Frame shorter than an Ethernet header.
    EthernetTruncated => "ethernet_truncated",
    /// Frame longer than 65535 bytes (offsets are 16-bit).
    FrameTooLong => "frame_too_long",
    /// A VLAN tag was cut short.
    VlanTruncated => "vlan_truncated",
    /// More than two VLAN tags (outer + inner).
    VlanTooDeep => "vlan_too_deep",
    /// Ethertype is neither IPv4, IPv6 nor ARP.
    UnsupportedEthertype => "unsupported_ethertype",
    /// ARP frame and the config says drop ARP.
    ArpDropped => "arp_dropped",
    /// IPv4 header cut short.
    Ipv4Truncated => "ipv4_truncated",
    /// IPv4 version field is not 4.
    Ipv4BadVersion => "ipv4_bad_version",
    /// IPv4 IHL below 5 or beyond the frame.
    Ipv4BadIhl => "ipv4_bad_ihl",
    /// IPv4 total length smaller than the header or larger than the frame.
    Ipv4BadTotalLength => "ipv4_bad_total_length",
    /// IPv4 option with a length that is 0/1 or runs past the header.
    Ipv4BadOption => "ipv4_bad_option",
    /// IPv4 header checksum wrong (only when checking is enabled).
    Ipv4BadChecksum => "ipv4_bad_checksum",
    /// IPv6 header cut short.
    Ipv6Truncated => "ipv6_truncated",
    /// IPv6 version field is not 6.
    Ipv6BadVersion => "ipv6_bad_version",
    /// IPv6 payload length larger than the frame (or a jumbogram).
    Ipv6BadPayloadLength => "ipv6_bad_payload_length",
    /// An IPv6 extension header is cut short or its length runs past the packet.
    Ipv6ExtTruncated => "ipv6_ext_truncated",
    /// More IPv6 extension headers than the configured limit.
    Ipv6TooManyExtHeaders => "ipv6_too_many_ext_headers",
    /// Hop-by-hop options header that is not the first extension header.
    Ipv6MisplacedHopByHop => "ipv6_misplaced_hop_by_hop",
    /// IPv6 source or destination is IPv4-mapped (never valid on the wire).
    Ipv6MappedAddress => "ipv6_mapped_address",
    /// A first fragment too short to hold the transport header (tiny-fragment attack).
    TinyFragment => "tiny_fragment",
    /// A fragment whose offset plus length runs past 65535 bytes (ping of death).
    BadFragment => "bad_fragment",
    /// A non-first fragment and the config says drop them.
    NonFirstFragment => "non_first_fragment",
    /// TCP header cut short.
    TcpTruncated => "tcp_truncated",
    /// TCP data offset below 5 or beyond the segment.
    TcpBadDataOffset => "tcp_bad_data_offset",
    /// TCP option with a bad length.
    TcpBadOption => "tcp_bad_option",
    /// UDP header cut short.
    UdpTruncated => "udp_truncated",
    /// UDP length field lies (smaller than 8 or larger than the IP payload).
    UdpBadLength => "udp_bad_length",
    /// SCTP common header cut short.
    SctpTruncated => "sctp_truncated",
    /// ICMP/ICMPv6 header cut short.
    IcmpTruncated => "icmp_truncated",
    /// ICMP error message whose embedded header is cut short or malformed.
    IcmpBadInner => "icmp_bad_inner",
    /// VXLAN or Geneve header cut short, or its flags/version are invalid.
    TunnelBadHeader => "tunnel_bad_header",
    /// Geneve options length runs past the packet.
    GeneveBadOptions => "geneve_bad_options",
    /// Geneve payload protocol that is neither Ethernet nor IP.
    TunnelUnsupportedPayload => "tunnel_unsupported_payload",
}

impl core::fmt::Display for ParseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_dense_and_names_unique() {
        for (i, e) in ParseError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
        let mut names: Vec<_> = ParseError::ALL.iter().map(|e| e.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ParseError::COUNT);
        assert_eq!(core::mem::size_of::<ParseError>(), 1);
    }
}
