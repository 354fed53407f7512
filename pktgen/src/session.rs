//! TCP sessions with pktgen as both ends: the client side on the TX port opens (SYN), sends
//! data and closes (FIN); the server side on the RX port answers (SYN-ACK, FIN-ACK). Every
//! answer is computed from the segment it answers (sequence numbers included), so no
//! per-session table is kept and any number of sessions can be in flight.
//!
//! ```text
//!   client (tx port)              appliance              server (rx port)
//!   SYN seq=C            ─────────────────────────────▶
//!                        ◀───────────────────────────── SYN|ACK seq=S ack=C+1
//!   ACK|PSH data × k     ─────────────────────────────▶ (stamped: latency)
//!   FIN|ACK seq=C+1+k·n  ─────────────────────────────▶
//!                        ◀───────────────────────────── FIN|ACK seq=S+1 ack=FIN+1
//!   ACK                  ─────────────────────────────▶
//! ```

use std::net::IpAddr;

use rampart_wire::{build_frame, tcp::flags, EthernetRepr, IpSpec, L4Repr, Parsed, TcpRepr};

use crate::flows::Tuple;
use crate::stamp::{Stamp, STAMP_LEN};

/// Receive window both ends advertise.
const WINDOW: u16 = 65535;

/// The client's initial sequence number for flow `flow` (spread over the sequence space).
pub fn client_isn(flow: u64) -> u32 {
    (flow as u32).wrapping_mul(0x9e37_79b1).wrapping_add(0x1000)
}

/// The server's initial sequence number, derived from the client's.
pub fn server_isn(client_isn: u32) -> u32 {
    client_isn.wrapping_mul(0x85eb_ca6b) ^ 0x5bd1_e995
}

/// One segment to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags.
    pub flags: u8,
    /// Payload length (a stamp at its end when ≥ 16).
    pub payload: u16,
}

/// Writes the frame of `seg` into `out`, with `stamp` at the end of the payload; returns its
/// length (0 if `out` is too small).
pub fn write(eth: &EthernetRepr, ttl: u8, seg: &Segment, stamp: &Stamp, out: &mut [u8]) -> usize {
    let mut payload = [0u8; 1500];
    let n = usize::from(seg.payload).min(payload.len());
    if n >= STAMP_LEN {
        payload[n - STAMP_LEN..n].copy_from_slice(&stamp.to_bytes());
    }
    let l4 = L4Repr::Tcp(TcpRepr {
        src_port: seg.sport,
        dst_port: seg.dport,
        seq: seg.seq,
        ack: seg.ack,
        flags: seg.flags,
        window: WINDOW,
        window_scale: None,
        payload: &payload[..n],
    });
    build_frame(
        eth,
        &IpSpec {
            src: seg.src,
            dst: seg.dst,
            ttl,
        },
        &l4,
        out,
    )
    .unwrap_or(0)
}

fn addr(t: &[u8; 16], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::from(*t)
    } else {
        IpAddr::from([t[0], t[1], t[2], t[3]])
    }
}

/// The SYN that opens flow `flow` with tuple `t`.
pub fn syn(t: &Tuple, v6: bool, flow: u64) -> Segment {
    Segment {
        src: addr(&t.src, v6),
        dst: addr(&t.dst, v6),
        sport: t.sport,
        dport: t.dport,
        seq: client_isn(flow),
        ack: 0,
        flags: flags::SYN,
        payload: 0,
    }
}

/// The server's answer to a segment it received, if it needs one: SYN → SYN-ACK, FIN → FIN-ACK.
pub fn server_answer(p: &Parsed) -> Option<Segment> {
    let f = p.tcp.flags;
    if f & flags::RST != 0 {
        return None;
    }
    let back = |seq: u32, ack: u32, flags: u8| Segment {
        src: p.key.dst_ip(),
        dst: p.key.src_ip(),
        sport: p.key.dst_port,
        dport: p.key.src_port,
        seq,
        ack,
        flags,
        payload: 0,
    };
    if f & flags::SYN != 0 && f & flags::ACK == 0 {
        return Some(back(
            server_isn(p.tcp.seq),
            p.tcp.seq.wrapping_add(1),
            flags::SYN | flags::ACK,
        ));
    }
    if f & flags::FIN != 0 {
        let ack = p
            .tcp
            .seq
            .wrapping_add(u32::from(p.payload_len))
            .wrapping_add(1);
        return Some(back(p.tcp.ack, ack, flags::FIN | flags::ACK));
    }
    None
}

/// What the client does with a segment from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStep {
    /// SYN-ACK: send `segments` data segments starting at `first`, then FIN at `fin`.
    Established {
        /// The first data segment (its header; the i-th one has `seq + i·segment_size`).
        first: Segment,
        /// Data segments to send.
        segments: u32,
    },
    /// The server's FIN-ACK: send the final ACK; the session is closed.
    Close(Segment),
    /// A reset.
    Reset,
    /// Nothing to do.
    None,
}

/// The client's reaction to a segment `p` received from the server.
pub fn client_step(p: &Parsed, segments: u32, segment_size: u32) -> ClientStep {
    let f = p.tcp.flags;
    if f & flags::RST != 0 {
        return ClientStep::Reset;
    }
    let back = |seq: u32, ack: u32, flags: u8, payload: u16| Segment {
        src: p.key.dst_ip(),
        dst: p.key.src_ip(),
        sport: p.key.dst_port,
        dport: p.key.src_port,
        seq,
        ack,
        flags,
        payload,
    };
    if f & (flags::SYN | flags::ACK) == flags::SYN | flags::ACK {
        let ack = p.tcp.seq.wrapping_add(1);
        return ClientStep::Established {
            first: back(p.tcp.ack, ack, flags::ACK | flags::PSH, segment_size as u16),
            segments,
        };
    }
    if f & flags::FIN != 0 {
        return ClientStep::Close(back(p.tcp.ack, p.tcp.seq.wrapping_add(1), flags::ACK, 0));
    }
    ClientStep::None
}

/// Data segment `i` (0-based) after the handshake, or the FIN when `i == segments`.
pub fn data_segment(first: &Segment, i: u32, segments: u32, segment_size: u32) -> Segment {
    let seq = first.seq.wrapping_add(i.wrapping_mul(segment_size));
    if i == segments {
        Segment {
            seq,
            flags: flags::FIN | flags::ACK,
            payload: 0,
            ..*first
        }
    } else {
        Segment { seq, ..*first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_wire::{parse, ParseConfig};

    const ETH: EthernetRepr = EthernetRepr {
        src: [2, 0, 0, 0, 0, 1],
        dst: [2, 0, 0, 0, 0, 2],
        outer_vlan: None,
        inner_vlan: None,
        ethertype: 0,
    };

    fn on_wire(seg: &Segment, stamp: &Stamp) -> (Vec<u8>, Parsed) {
        let mut buf = vec![0u8; 2048];
        let n = write(&ETH, 64, seg, stamp, &mut buf);
        assert!(n > 0);
        buf.truncate(n);
        let p = parse(&buf, &ParseConfig::default()).unwrap();
        (buf, p)
    }

    /// Plays a whole session through both ends and checks every sequence number.
    #[test]
    fn a_session_from_syn_to_final_ack() {
        let mut t = Tuple {
            sport: 40000,
            dport: 443,
            ..Tuple::default()
        };
        t.src[..4].copy_from_slice(&[10, 0, 0, 1]);
        t.dst[..4].copy_from_slice(&[10, 1, 0, 1]);
        let st = Stamp {
            stream: 0,
            trial: 0,
            seq: 0,
            tsc: 5,
        };
        let syn = syn(&t, false, 7);
        let (_, p) = on_wire(&syn, &st);
        assert_eq!(p.tcp.flags, flags::SYN);
        let synack = server_answer(&p).unwrap();
        let (_, p2) = on_wire(&synack, &st);
        assert_eq!((p2.key.src_port, p2.key.dst_port), (443, 40000));
        assert_eq!(p2.tcp.ack, client_isn(7).wrapping_add(1));
        assert_eq!(p2.tcp.seq, server_isn(client_isn(7)));
        let ClientStep::Established { first, segments } = client_step(&p2, 3, 100) else {
            panic!()
        };
        assert_eq!(segments, 3);
        let mut seqs = Vec::new();
        for i in 0..=3 {
            let s = data_segment(&first, i, 3, 100);
            let (f, p) = on_wire(&s, &st);
            seqs.push((p.tcp.seq, p.tcp.flags, p.payload_len));
            assert_eq!(p.tcp.ack, p2.tcp.seq.wrapping_add(1));
            if i < 3 {
                assert_eq!(Stamp::read(&f), Some(st));
                assert!(server_answer(&p).is_none(), "data needs no answer");
            } else {
                let finack = server_answer(&p).unwrap();
                assert_eq!(finack.flags, flags::FIN | flags::ACK);
                assert_eq!(finack.ack, p.tcp.seq.wrapping_add(1));
                let (_, p3) = on_wire(&finack, &st);
                let ClientStep::Close(last) = client_step(&p3, 3, 100) else {
                    panic!()
                };
                assert_eq!(last.flags, flags::ACK);
                assert_eq!(last.seq, p.tcp.seq.wrapping_add(1));
                assert_eq!(last.ack, finack.seq.wrapping_add(1));
            }
        }
        let c = client_isn(7).wrapping_add(1);
        assert_eq!(seqs[0], (c, flags::ACK | flags::PSH, 100));
        assert_eq!(seqs[2].0, c.wrapping_add(200));
        assert_eq!(seqs[3], (c.wrapping_add(300), flags::FIN | flags::ACK, 0));
    }

    #[test]
    fn resets_and_ipv6() {
        let mut t = Tuple {
            sport: 1,
            dport: 2,
            ..Tuple::default()
        };
        t.src = "2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        t.dst = "2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let st = Stamp {
            stream: 0,
            trial: 0,
            seq: 0,
            tsc: 0,
        };
        let (_, p) = on_wire(&syn(&t, true, 0), &st);
        assert_eq!(p.key.src_ip(), "2001:db8::1".parse::<IpAddr>().unwrap());
        let rst = Segment {
            flags: flags::RST | flags::ACK,
            ..server_answer(&p).unwrap()
        };
        let (_, pr) = on_wire(&rst, &st);
        assert_eq!(client_step(&pr, 1, 16), ClientStep::Reset);
        assert!(server_answer(&pr).is_none());
    }
}
