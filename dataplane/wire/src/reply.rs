//! Replies the pipeline sends for a `reject` verdict: a TCP RST or an ICMP/ICMPv6
//! "administratively prohibited" unreachable, addressed back to the sender and sent out of the
//! ingress port. The Ethernet addresses are swapped and the VLAN tags kept; a tunnelled
//! packet gets its reply re-encapsulated in the same tunnel (same VNI, outer addresses swapped).

use core::net::IpAddr;

use crate::build::{build_ip, write_ip_udp, BuildError, IpSpec, L4Repr};
use crate::icmp::{self, IcmpRepr};
use crate::key::proto;
use crate::parse::{Fragment, FrameKind, Parsed};
use crate::tcp::{flags, TcpRepr};
use crate::udp;

/// Largest IPv4 ICMP error: RFC 1812 §4.3.2.3 says at most 576 bytes of IP datagram.
const ICMPV4_MAX: usize = 576;
/// Largest ICMPv6 error: RFC 4443 §2.4 says not beyond the minimum MTU of 1280.
const ICMPV6_MAX: usize = 1280;

/// Builds a TCP RST answering the TCP segment in `orig` (RFC 9293 §3.10.7.1): if the segment
/// had ACK, the RST takes its sequence number from that ACK; otherwise it is RST+ACK
/// acknowledging everything the segment occupied. Refuses to answer a RST.
pub fn build_tcp_rst(orig: &[u8], p: &Parsed, out: &mut [u8]) -> Result<usize, BuildError> {
    if p.kind != FrameKind::Ip
        || p.key.proto != proto::TCP
        || matches!(p.frag, Fragment::Later { .. })
    {
        return Err(BuildError::Unsupported);
    }
    let t = p.tcp;
    if t.flags & flags::RST != 0 {
        return Err(BuildError::ReplyForbidden);
    }
    let (seq, ack, fl) = if t.flags & flags::ACK != 0 {
        (t.ack, 0, flags::RST)
    } else {
        let occupied = u32::from(p.payload_len)
            + u32::from(t.flags & flags::SYN != 0)
            + u32::from(t.flags & flags::FIN != 0);
        (0, t.seq.wrapping_add(occupied), flags::RST | flags::ACK)
    };
    let l4 = L4Repr::Tcp(TcpRepr {
        src_port: p.key.dst_port,
        dst_port: p.key.src_port,
        seq,
        ack,
        flags: fl,
        window: 0,
        window_scale: None,
        payload: &[],
    });
    emit_reply(orig, p, &l4, out)
}

/// Builds an ICMP destination-unreachable (code 13, administratively prohibited) or an
/// ICMPv6 destination-unreachable (code 1) quoting as much of the offending IP packet as the
/// RFC size limit allows. Refuses, as RFC 1122 §3.2.2 and RFC 4443 §2.4 require, to answer
/// an ICMP error, a later fragment, or a packet sent to or from a multicast/broadcast address.
pub fn build_icmp_unreachable(
    orig: &[u8],
    p: &Parsed,
    out: &mut [u8],
) -> Result<usize, BuildError> {
    if p.kind != FrameKind::Ip {
        return Err(BuildError::Unsupported);
    }
    let v6 = p.is_ipv6();
    if p.icmp_inner.is_some()
        || matches!(p.frag, Fragment::Later { .. })
        || ((p.key.proto == proto::ICMP || p.key.proto == proto::ICMPV6)
            && icmp::is_error(v6, p.icmp.msg_type))
        || !unicast(p.key.src_ip())
        || !unicast(p.key.dst_ip())
    {
        return Err(BuildError::ReplyForbidden);
    }
    let (ty, code, max) = if v6 {
        (
            icmp::v6::DEST_UNREACHABLE,
            icmp::v6::CODE_ADMIN_PROHIBITED,
            ICMPV6_MAX - 48,
        )
    } else {
        (
            icmp::v4::DEST_UNREACHABLE,
            icmp::v4::CODE_ADMIN_PROHIBITED,
            ICMPV4_MAX - 28,
        )
    };
    let l3 = usize::from(p.l3_offset);
    let end = (l3 + usize::from(p.l3_len)).min(orig.len());
    let quote = orig.get(l3..end).ok_or(BuildError::Unsupported)?;
    let quote = &quote[..quote.len().min(max)];
    // The receiver relates the error to its flow through the quoted transport header: do
    // not send one that a long extension chain pushed out of the quote.
    if usize::from(p.l4_offset) + 8 > l3 + max && !matches!(p.frag, Fragment::Later { .. }) {
        return Err(BuildError::Unsupported);
    }
    let l4 = L4Repr::Icmp(IcmpRepr {
        msg_type: ty,
        code,
        rest: [0; 4],
        payload: quote,
    });
    emit_reply(orig, p, &l4, out)
}

fn unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified()),
        IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
    }
}

/// Copies the L2 header (tags included) of `orig` from `from..to` into `out` with the MAC
/// addresses swapped.
fn swapped_l2(orig: &[u8], from: usize, to: usize, out: &mut [u8]) -> Result<usize, BuildError> {
    let len = to - from;
    let hdr = orig.get(from..to).ok_or(BuildError::Unsupported)?;
    let o = out.get_mut(..len).ok_or(BuildError::BufferTooSmall)?;
    o.copy_from_slice(hdr);
    if len >= 12 {
        o[0..6].copy_from_slice(&hdr[6..12]);
        o[6..12].copy_from_slice(&hdr[0..6]);
    }
    Ok(len)
}

/// Writes [L2 swapped] + IP(reply addresses) + `l4`, inside the original tunnel if any.
fn emit_reply(
    orig: &[u8],
    p: &Parsed,
    l4: &L4Repr<'_>,
    out: &mut [u8],
) -> Result<usize, BuildError> {
    let ip = IpSpec {
        src: p.key.dst_ip(),
        dst: p.key.src_ip(),
        ttl: 64,
    };
    let Some(t) = p.tunnel else {
        let h = swapped_l2(orig, 0, usize::from(p.l3_offset), out)?;
        return Ok(h + build_ip(&ip, l4, &mut out[h..])?);
    };
    // Tunnelled: lay out outer L2 | outer IP | UDP | tunnel header | inner L2 | inner IP+L4.
    let (ol3, ol4, inner) = (
        usize::from(t.outer_l3_offset),
        usize::from(t.outer_l4_offset),
        usize::from(t.inner_offset),
    );
    let outer_v6 = orig.get(ol3).ok_or(BuildError::Unsupported)? >> 4 == 6;
    let oip_len = if outer_v6 {
        crate::ipv6::HEADER_LEN
    } else {
        crate::ipv4::HEADER_LEN
    };
    let th_len = inner - ol4 - udp::HEADER_LEN;
    let t_off = ol3 + oip_len + udp::HEADER_LEN;
    let inner_off = t_off + th_len;
    // outer L2
    swapped_l2(orig, 0, ol3, out)?;
    // tunnel header verbatim (same VNI and options)
    let th = &orig[ol4 + udp::HEADER_LEN..inner];
    out.get_mut(t_off..inner_off)
        .ok_or(BuildError::BufferTooSmall)?
        .copy_from_slice(th);
    // inner L2 (absent for Geneve carrying IP directly) + inner IP + L4
    let mut n = inner_off;
    n += swapped_l2(
        orig,
        usize::from(p.l2_offset),
        usize::from(p.l3_offset),
        out.get_mut(n..).ok_or(BuildError::BufferTooSmall)?,
    )?;
    n += build_ip(&ip, l4, out.get_mut(n..).ok_or(BuildError::BufferTooSmall)?)?;
    // outer IP + UDP around it, addresses and ports swapped back toward the sender
    let o = &orig[ol3..];
    let (osrc, odst): (IpAddr, IpAddr) = if outer_v6 {
        let r = crate::ipv6::Ipv6Packet::new_unchecked(o);
        (r.src().into(), r.dst().into())
    } else {
        let r = crate::ipv4::Ipv4Packet::new_unchecked(o);
        (r.src().into(), r.dst().into())
    };
    let u = crate::udp::UdpDatagram::new_unchecked(&orig[ol4..]);
    let (sport, dport) = (u.src_port(), u.dst_port());
    let outer_ip = IpSpec {
        src: odst,
        dst: osrc,
        ttl: 64,
    };
    // Keep the sender's entropy port as our source and the tunnel port as destination.
    write_ip_udp(&outer_ip, sport, dport, n - ol3 - oip_len, &mut out[ol3..n])?;
    Ok(n)
}
