//! Building whole frames from `Repr`s into caller buffers (pktgen, tests, reject replies).

use core::net::IpAddr;

use crate::ethernet::{ethertype, EthernetRepr};
use crate::icmp::IcmpRepr;
use crate::ipv4::{self, Ipv4Repr};
use crate::ipv6::{self, Ipv6Repr};
use crate::key::proto;
use crate::tcp::TcpRepr;
use crate::tunnel::TunnelRepr;
use crate::udp::{self, UdpRepr};

/// Why a frame could not be built. `Copy`: the pipeline counts these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuildError {
    /// The output buffer is too small.
    BufferTooSmall,
    /// A length does not fit its header field.
    TooLong,
    /// Source and destination addresses are of different families.
    FamilyMismatch,
    /// The request cannot be represented (e.g. Geneve options not a multiple of 4).
    Unsupported,
    /// The RFCs forbid this reply (RST to a RST, ICMP error about an ICMP error, a later
    /// fragment or a multicast/broadcast packet).
    ReplyForbidden,
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BuildError::BufferTooSmall => "buffer too small",
            BuildError::TooLong => "length does not fit",
            BuildError::FamilyMismatch => "address families differ",
            BuildError::Unsupported => "unsupported",
            BuildError::ReplyForbidden => "reply forbidden",
        })
    }
}

/// The IP layer of a frame to build: the header type follows the address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpSpec {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// TTL / hop limit.
    pub ttl: u8,
}

/// The transport layer of a frame to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Repr<'a> {
    /// TCP.
    Tcp(TcpRepr<'a>),
    /// UDP.
    Udp(UdpRepr<'a>),
    /// ICMP (IPv4) or ICMPv6 (IPv6), chosen by the address family.
    Icmp(IcmpRepr<'a>),
    /// Any other protocol with an opaque payload.
    Raw {
        /// IP protocol number.
        protocol: u8,
        /// Payload bytes.
        payload: &'a [u8],
    },
}

impl L4Repr<'_> {
    fn len(&self) -> usize {
        match self {
            L4Repr::Tcp(t) => t.len(),
            L4Repr::Udp(u) => u.len(),
            L4Repr::Icmp(i) => i.len(),
            L4Repr::Raw { payload, .. } => payload.len(),
        }
    }

    fn protocol(&self, v6: bool) -> u8 {
        match self {
            L4Repr::Tcp(_) => proto::TCP,
            L4Repr::Udp(_) => proto::UDP,
            L4Repr::Icmp(_) if v6 => proto::ICMPV6,
            L4Repr::Icmp(_) => proto::ICMP,
            L4Repr::Raw { protocol, .. } => *protocol,
        }
    }

    fn emit(&self, src: &[u8], dst: &[u8], buf: &mut [u8]) -> Result<usize, BuildError> {
        match self {
            L4Repr::Tcp(t) => t.emit(src, dst, buf),
            L4Repr::Udp(u) => u.emit(src, dst, buf),
            L4Repr::Icmp(i) => i.emit(src, dst, buf),
            L4Repr::Raw { payload, .. } => {
                let d = buf
                    .get_mut(..payload.len())
                    .ok_or(BuildError::BufferTooSmall)?;
                d.copy_from_slice(payload);
                Ok(payload.len())
            }
        }
    }
}

/// Writes an IP packet (header + transport) at the start of `out`; returns its length.
pub fn build_ip(ip: &IpSpec, l4: &L4Repr<'_>, out: &mut [u8]) -> Result<usize, BuildError> {
    let l4_len = l4.len();
    match (ip.src, ip.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let (s, d) = (s.octets(), d.octets());
            let mut r = Ipv4Repr::new(s, d, l4.protocol(false), l4_len);
            r.ttl = ip.ttl;
            let h = r.emit(out)?;
            Ok(h + l4.emit(&s, &d, &mut out[h..])?)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let (s, d) = (s.octets(), d.octets());
            let mut r = Ipv6Repr::new(s, d, l4.protocol(true), l4_len);
            r.hop_limit = ip.ttl;
            let h = r.emit(out)?;
            Ok(h + l4.emit(&s, &d, &mut out[h..])?)
        }
        _ => Err(BuildError::FamilyMismatch),
    }
}

/// Writes a whole Ethernet frame; `eth.ethertype` is set from the IP family. Returns its length.
pub fn build_frame(
    eth: &EthernetRepr,
    ip: &IpSpec,
    l4: &L4Repr<'_>,
    out: &mut [u8],
) -> Result<usize, BuildError> {
    let mut e = *eth;
    e.ethertype = if ip.src.is_ipv4() {
        ethertype::IPV4
    } else {
        ethertype::IPV6
    };
    let h = e.emit(out)?;
    Ok(h + build_ip(ip, l4, &mut out[h..])?)
}

/// Wraps an already-built Ethernet frame `inner` in outer Ethernet/IP/UDP and a VXLAN or
/// Geneve header, with a correct UDP checksum. Returns the total length.
pub fn encapsulate(
    eth: &EthernetRepr,
    ip: &IpSpec,
    udp_src_port: u16,
    tunnel: &TunnelRepr<'_>,
    inner: &[u8],
    out: &mut [u8],
) -> Result<usize, BuildError> {
    let mut e = *eth;
    let v6 = ip.src.is_ipv6();
    e.ethertype = if v6 { ethertype::IPV6 } else { ethertype::IPV4 };
    let l2 = e.emit(out)?;
    let ip_len = if v6 {
        ipv6::HEADER_LEN
    } else {
        ipv4::HEADER_LEN
    };
    let udp_off = l2 + ip_len;
    let th = tunnel.header_len();
    let total = udp_off + udp::HEADER_LEN + th + inner.len();
    if out.len() < total {
        return Err(BuildError::BufferTooSmall);
    }
    let t_off = udp_off + udp::HEADER_LEN;
    tunnel.emit(&mut out[t_off..])?;
    out[t_off + th..total].copy_from_slice(inner);
    let payload = &out[t_off..total];
    // Emit the outer IP + UDP around the payload already in place.
    let udp_len = udp::HEADER_LEN + payload.len();
    write_ip_udp(
        ip,
        udp_src_port,
        tunnel.udp_port(),
        udp_len,
        &mut out[l2..total],
    )?;
    Ok(total)
}

/// Writes an IP header plus a UDP header at the start of `buf` for a datagram of `udp_len`
/// bytes whose payload is already in place, then checksums the datagram.
pub(crate) fn write_ip_udp(
    ip: &IpSpec,
    sport: u16,
    dport: u16,
    udp_len: usize,
    buf: &mut [u8],
) -> Result<(), BuildError> {
    let u = UdpRepr {
        src_port: sport,
        dst_port: dport,
        payload: &[],
    };
    match (ip.src, ip.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let (s, d) = (s.octets(), d.octets());
            let mut r = Ipv4Repr::new(s, d, proto::UDP, udp_len);
            r.ttl = ip.ttl;
            let h = r.emit(buf)?;
            u.emit_header(&s, &d, udp_len, &mut buf[h..])?;
            udp::finish_checksum(&s, &d, &mut buf[h..h + udp_len]);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let (s, d) = (s.octets(), d.octets());
            let mut r = Ipv6Repr::new(s, d, proto::UDP, udp_len);
            r.hop_limit = ip.ttl;
            let h = r.emit(buf)?;
            u.emit_header(&s, &d, udp_len, &mut buf[h..])?;
            udp::finish_checksum(&s, &d, &mut buf[h..h + udp_len]);
        }
        _ => return Err(BuildError::FamilyMismatch),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::TunnelKind;
    use crate::{parse, ParseConfig};
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn eth() -> EthernetRepr {
        EthernetRepr {
            src: [2, 0, 0, 0, 0, 1],
            dst: [2, 0, 0, 0, 0, 2],
            outer_vlan: None,
            inner_vlan: None,
            ethertype: 0,
        }
    }

    #[test]
    fn family_mismatch_and_small_buffers() {
        let ip = IpSpec {
            src: Ipv4Addr::LOCALHOST.into(),
            dst: Ipv6Addr::LOCALHOST.into(),
            ttl: 1,
        };
        let l4 = L4Repr::Udp(UdpRepr {
            src_port: 1,
            dst_port: 2,
            payload: &[],
        });
        assert_eq!(
            build_frame(&eth(), &ip, &l4, &mut [0; 100]),
            Err(BuildError::FamilyMismatch)
        );
        let ip = IpSpec {
            src: Ipv4Addr::LOCALHOST.into(),
            dst: Ipv4Addr::LOCALHOST.into(),
            ttl: 1,
        };
        assert_eq!(
            build_frame(&eth(), &ip, &l4, &mut [0; 41]),
            Err(BuildError::BufferTooSmall)
        );
        assert_eq!(build_frame(&eth(), &ip, &l4, &mut [0; 42]), Ok(42));
    }

    #[test]
    fn encapsulated_frame_parses_to_inner_key() {
        let mut inner = [0u8; 128];
        let ip6 = IpSpec {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            ttl: 9,
        };
        let l4 = L4Repr::Tcp(TcpRepr {
            src_port: 40000,
            dst_port: 443,
            seq: 1,
            ack: 0,
            flags: crate::tcp::flags::SYN,
            window: 100,
            window_scale: None,
            payload: &[],
        });
        let n = build_frame(&eth(), &ip6, &l4, &mut inner).unwrap();
        for kind in [TunnelKind::Vxlan, TunnelKind::Geneve] {
            let mut out = [0u8; 256];
            let outer = IpSpec {
                src: "192.0.2.1".parse().unwrap(),
                dst: "192.0.2.2".parse().unwrap(),
                ttl: 64,
            };
            let t = TunnelRepr {
                kind,
                vni: 77,
                options: &[],
            };
            let m = encapsulate(&eth(), &outer, 5555, &t, &inner[..n], &mut out).unwrap();
            let p = parse(&out[..m], &ParseConfig::default()).unwrap();
            assert_eq!(p.vni, Some(77));
            assert_eq!(p.key.segment(), 77);
            assert_eq!(
                (p.key.src_port, p.key.dst_port, p.key.proto),
                (40000, 443, 6)
            );
            assert_eq!(p.key.src_ip(), ip6.src);
            assert_eq!(p.tunnel.unwrap().kind, kind);
            // the outer UDP checksum is right
            let udp = crate::udp::UdpDatagram::new_checked(&out[34..m]).unwrap();
            assert!(udp.verify_checksum(&[192, 0, 2, 1], &[192, 0, 2, 2]));
        }
    }
}
