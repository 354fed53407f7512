//! Frame templates: a frame built once, plus where to patch it per packet.
//!
//! Checksums are updated incrementally: when the template is made, every field that changes
//! per packet (addresses, ports, the stamp, the checksums themselves) is zeroed and the
//! one's-complement sums of the rest are kept. Per packet, writing the frame is one copy, a few
//! field stores and adding the sums of the new field values — no pass over the payload, so a
//! 1518-byte frame costs about what a 64-byte one does.

use rampart_wire::{checksum, parse, proto, FrameKind, ParseConfig};

use crate::flows::Tuple;
use crate::stamp::{Stamp, STAMP_LEN};

/// Why a frame cannot be used as a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The frame does not parse as an IPv4/IPv6 packet.
    #[error("frame does not parse as IPv4/IPv6: {0}")]
    Unparsable(&'static str),
    /// The frame is an IP fragment (ports and payload are not all there).
    #[error("frame is an IP fragment")]
    Fragment,
    /// Per-flow fields were asked for, but the protocol has no ports or identifier.
    #[error("protocol {0} has no ports to vary per flow")]
    NoPorts(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OuterV6Udp {
    /// Offset of the outer IPv6 header.
    l3: usize,
    /// Offset of the outer UDP header.
    l4: usize,
}

/// A pre-built frame and its patch points.
#[derive(Debug, Clone)]
pub struct Template {
    /// The bytes, with the per-packet fields zeroed.
    frame: Vec<u8>,
    v6: bool,
    /// Patch addresses and ports from a [`Tuple`] (else the frame's own are kept).
    patch_tuple: bool,
    src_off: usize,
    dst_off: usize,
    /// Offsets of the source port (ICMP: echo id) and destination port.
    sport_off: Option<usize>,
    dport_off: Option<usize>,
    /// IPv4 header checksum offset and the sum of the rest of the header.
    ip_csum: Option<(usize, u32)>,
    /// Transport checksum offset and the sum of everything it covers but the patched fields.
    l4_csum: Option<(usize, u32)>,
    /// The transport checksum covers the addresses (pseudo-header).
    pseudo: bool,
    /// UDP: a computed 0 is sent as 0xffff.
    udp: bool,
    /// Offset of the stamp (frame end - 16), if the frame carries one.
    stamp_off: Option<usize>,
    /// The stamp starts at an odd offset from the transport header (sum is byte-swapped).
    stamp_odd: bool,
    /// An IPv6 outer header around a tunnel: its UDP checksum covers the inner frame and is
    /// recomputed per packet (IPv4 outer UDP checksums are sent as 0, as RFC 7348 advises).
    outer_v6: Option<OuterV6Udp>,
}

/// Sum of 16-bit words folded into 17 bits at most (so a handful can be added in a u32).
#[inline(always)]
fn fold(x: u32) -> u32 {
    let x = (x & 0xffff) + (x >> 16);
    (x & 0xffff) + (x >> 16)
}

impl Template {
    /// Makes a template from a whole frame (as `rampart_wire::build_frame` writes it).
    /// `patch_tuple`: addresses and ports come from a [`Tuple`] per packet. `stamped`: the last
    /// [`STAMP_LEN`] bytes of the transport payload carry a [`Stamp`] (needs that much payload
    /// and no trailing padding; otherwise the frame is sent unstamped).
    pub fn new(
        mut frame: Vec<u8>,
        patch_tuple: bool,
        stamped: bool,
    ) -> Result<Template, TemplateError> {
        let p = parse(&frame, &ParseConfig::default())
            .map_err(|e| TemplateError::Unparsable(e.name()))?;
        if p.kind != FrameKind::Ip {
            return Err(TemplateError::Unparsable("not IP"));
        }
        if !matches!(p.frag, rampart_wire::Fragment::None) {
            return Err(TemplateError::Fragment);
        }
        let l3 = usize::from(p.l3_offset);
        let l4 = usize::from(p.l4_offset);
        let end = l3 + usize::from(p.l3_len);
        let v6 = frame[l3] >> 4 == 6;
        let prot = p.key.proto;
        let (src_off, dst_off, alen) = if v6 {
            (l3 + 8, l3 + 24, 16)
        } else {
            (l3 + 12, l3 + 16, 4)
        };

        let (mut sport_off, mut dport_off, mut csum_off, mut pseudo) = (None, None, None, true);
        match prot {
            proto::TCP => {
                (sport_off, dport_off, csum_off) = (Some(l4), Some(l4 + 2), Some(l4 + 16));
            }
            proto::UDP => {
                sport_off = Some(l4);
                dport_off = Some(l4 + 2);
                // An IPv4 UDP datagram sent without a checksum stays without one.
                let has = v6 || frame[l4 + 6..l4 + 8] != [0, 0];
                csum_off = has.then_some(l4 + 6);
            }
            proto::ICMP | proto::ICMPV6 => {
                sport_off = Some(l4 + 4);
                csum_off = Some(l4 + 2);
                pseudo = prot == proto::ICMPV6;
            }
            _ => {}
        }
        if patch_tuple && sport_off.is_none() {
            return Err(TemplateError::NoPorts(prot));
        }
        let payload_start = end - usize::from(p.payload_len);
        let stamp_off = (stamped && end == frame.len() && end - payload_start >= STAMP_LEN)
            .then_some(end - STAMP_LEN);

        // Zero what is patched per packet, then take the sums of the rest.
        let zero = |f: &mut Vec<u8>, off: usize, n: usize| f[off..off + n].fill(0);
        if patch_tuple {
            zero(&mut frame, src_off, alen);
            zero(&mut frame, dst_off, alen);
            for off in [sport_off, dport_off].into_iter().flatten() {
                zero(&mut frame, off, 2);
            }
        }
        if let Some(off) = stamp_off {
            zero(&mut frame, off, STAMP_LEN);
        }
        let ip_csum = (!v6).then(|| {
            zero(&mut frame, l3 + 10, 2);
            let ihl = usize::from(frame[l3] & 0x0f) * 4;
            (l3 + 10, fold(checksum::sum(0, &frame[l3..l3 + ihl])))
        });
        let l4_csum = csum_off.map(|off| {
            zero(&mut frame, off, 2);
            let mut acc = checksum::sum(0, &frame[l4..end]);
            if pseudo {
                let (s, d) = (
                    &frame[src_off..src_off + alen],
                    &frame[dst_off..dst_off + alen],
                );
                acc = fold(acc) + fold(checksum::pseudo_header(s, d, prot, (end - l4) as u32));
            }
            (off, fold(acc))
        });
        let outer_v6 = p.tunnel.and_then(|t| {
            let (ol3, ol4) = (
                usize::from(t.outer_l3_offset),
                usize::from(t.outer_l4_offset),
            );
            if frame[ol3] >> 4 == 6 {
                Some(OuterV6Udp { l3: ol3, l4: ol4 })
            } else {
                frame[ol4 + 6..ol4 + 8].fill(0);
                None
            }
        });
        Ok(Template {
            frame,
            v6,
            patch_tuple,
            src_off,
            dst_off,
            sport_off,
            dport_off,
            ip_csum,
            l4_csum,
            pseudo,
            udp: prot == proto::UDP,
            stamp_odd: stamp_off.is_some_and(|s| (s - l4) % 2 == 1),
            stamp_off,
            outer_v6,
        })
    }

    /// A frame sent byte for byte (not IP, or not patchable): no stamp, no patching.
    pub fn raw(frame: Vec<u8>) -> Template {
        Template {
            frame,
            v6: false,
            patch_tuple: false,
            src_off: 0,
            dst_off: 0,
            sport_off: None,
            dport_off: None,
            ip_csum: None,
            l4_csum: None,
            pseudo: false,
            udp: false,
            stamp_off: None,
            stamp_odd: false,
            outer_v6: None,
        }
    }

    /// Sets the (outermost) Ethernet destination and source addresses; no checksum covers them.
    pub fn set_macs(&mut self, dst: [u8; 6], src: [u8; 6]) {
        if self.frame.len() >= 12 {
            self.frame[..6].copy_from_slice(&dst);
            self.frame[6..12].copy_from_slice(&src);
        }
    }

    /// Frame length in bytes (without the FCS).
    #[inline]
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Never empty (a template is at least a parsed IP frame).
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }

    /// True when the frame carries a stamp.
    pub fn stamped(&self) -> bool {
        self.stamp_off.is_some()
    }

    /// The template bytes (per-packet fields zeroed).
    pub fn bytes(&self) -> &[u8] {
        &self.frame
    }

    /// Writes the frame for `tuple` (ignored unless the template patches tuples) and `stamp`
    /// into `out`, which must be exactly [`Template::len`] bytes.
    #[inline]
    pub fn write(&self, out: &mut [u8], tuple: &Tuple, stamp: &Stamp) {
        out.copy_from_slice(&self.frame);
        let mut addr_sum = 0u32;
        let mut l4_sum = 0u32;
        if self.patch_tuple {
            let n = if self.v6 { 16 } else { 4 };
            out[self.src_off..self.src_off + n].copy_from_slice(&tuple.src[..n]);
            out[self.dst_off..self.dst_off + n].copy_from_slice(&tuple.dst[..n]);
            addr_sum = fold(checksum::sum(
                checksum::sum(0, &tuple.src[..n]),
                &tuple.dst[..n],
            ));
            if let Some(off) = self.sport_off {
                out[off..off + 2].copy_from_slice(&tuple.sport.to_be_bytes());
                l4_sum += u32::from(tuple.sport);
            }
            if let Some(off) = self.dport_off {
                out[off..off + 2].copy_from_slice(&tuple.dport.to_be_bytes());
                l4_sum += u32::from(tuple.dport);
            }
        }
        if let Some(off) = self.stamp_off {
            let b = stamp.to_bytes();
            out[off..off + STAMP_LEN].copy_from_slice(&b);
            let s = checksum::finish(checksum::sum(0, &b));
            // finish() complements; undo it to get the folded sum.
            let s = u32::from(if self.stamp_odd {
                (!s).swap_bytes()
            } else {
                !s
            });
            l4_sum += s;
        }
        if let Some((off, base)) = self.ip_csum {
            let c = checksum::finish(base + addr_sum);
            out[off..off + 2].copy_from_slice(&c.to_be_bytes());
        }
        if let Some((off, base)) = self.l4_csum {
            let extra = if self.pseudo { addr_sum } else { 0 };
            let mut c = checksum::finish(base + extra + fold(l4_sum));
            if self.udp && c == 0 {
                c = 0xffff;
            }
            out[off..off + 2].copy_from_slice(&c.to_be_bytes());
        }
        if let Some(o) = self.outer_v6 {
            let mut a = [0u8; 32];
            a.copy_from_slice(&out[o.l3 + 8..o.l3 + 40]);
            rampart_wire::udp::finish_checksum(&a[..16], &a[16..], &mut out[o.l4..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_wire::{
        build_frame, encapsulate, EthernetRepr, IcmpRepr, IpSpec, L4Repr, TcpRepr, TcpSegment,
        TunnelKind, TunnelRepr, UdpDatagram, UdpRepr, VlanTag,
    };
    use std::net::IpAddr;

    fn eth(vlan: bool) -> EthernetRepr {
        EthernetRepr {
            src: [2, 0, 0, 0, 0, 1],
            dst: [2, 0, 0, 0, 0, 2],
            outer_vlan: vlan.then_some(VlanTag {
                tpid: 0x8100,
                vid: 7,
                pcp: 0,
            }),
            inner_vlan: None,
            ethertype: 0,
        }
    }

    fn ip(src: &str, dst: &str) -> IpSpec {
        IpSpec {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ttl: 64,
        }
    }

    /// Builds the reference frame for `t` the slow way, with `stamp` as the payload's tail.
    fn reference(
        l4: &dyn Fn(u16, u16, &[u8]) -> L4Repr<'_>,
        v6: bool,
        vlan: bool,
        t: &Tuple,
        stamp: &Stamp,
        payload: usize,
    ) -> Vec<u8> {
        let mut pl = vec![0u8; payload];
        pl[payload - STAMP_LEN..].copy_from_slice(&stamp.to_bytes());
        let (s, d): (IpAddr, IpAddr) = if v6 {
            (t.src.into(), t.dst.into())
        } else {
            (
                [t.src[0], t.src[1], t.src[2], t.src[3]].into(),
                [t.dst[0], t.dst[1], t.dst[2], t.dst[3]].into(),
            )
        };
        let mut out = vec![0u8; 2048];
        let n = build_frame(
            &eth(vlan),
            &IpSpec {
                src: s,
                dst: d,
                ttl: 64,
            },
            &l4(t.sport, t.dport, &pl),
            &mut out,
        )
        .unwrap();
        out.truncate(n);
        out
    }

    /// Pins a closure to the higher-ranked signature `reference` wants.
    fn hr<F: Fn(u16, u16, &[u8]) -> L4Repr<'_>>(f: F) -> F {
        f
    }

    fn tuple(v6: bool, sport: u16, dport: u16) -> Tuple {
        let mut t = Tuple {
            sport,
            dport,
            ..Tuple::default()
        };
        if v6 {
            t.src = "2001:db8::99"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets();
            t.dst = "2001:db8:ffff::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets();
        } else {
            t.src[..4].copy_from_slice(&[10, 9, 8, 7]);
            t.dst[..4].copy_from_slice(&[192, 168, 255, 254]);
        }
        t
    }

    #[test]
    fn patched_frames_equal_frames_built_from_scratch() {
        let stamp = Stamp {
            stream: 1,
            trial: 2,
            seq: 77,
            tsc: 0xfedc_ba98_7654_3210,
        };
        type Mk = fn(u16, u16, &[u8]) -> L4Repr<'_>;
        let udp: Mk = |s, d, p| {
            L4Repr::Udp(UdpRepr {
                src_port: s,
                dst_port: d,
                payload: p,
            })
        };
        let tcp: Mk = |s, d, p| {
            L4Repr::Tcp(TcpRepr {
                src_port: s,
                dst_port: d,
                seq: 5,
                ack: 0,
                flags: rampart_wire::tcp::flags::SYN,
                window: 1000,
                window_scale: None,
                payload: p,
            })
        };
        for v6 in [false, true] {
            for vlan in [false, true] {
                for (mk, payload) in [(udp, 18usize), (tcp, 16), (udp, 1472), (tcp, 333)] {
                    let base = tuple(v6, 0, 0);
                    let zero_t = Tuple {
                        sport: 0,
                        dport: 0,
                        ..base
                    };
                    let frame = reference(
                        &mk,
                        v6,
                        vlan,
                        &zero_t,
                        &Stamp {
                            stream: 0,
                            trial: 0,
                            seq: 0,
                            tsc: 0,
                        },
                        payload,
                    );
                    let tpl = Template::new(frame, true, true).unwrap();
                    assert!(tpl.stamped());
                    for (sp, dp) in [(1, 2), (65535, 65535), (40000, 443), (0, 0)] {
                        let t = tuple(v6, sp, dp);
                        let mut out = vec![0u8; tpl.len()];
                        tpl.write(&mut out, &t, &stamp);
                        let want = reference(&mk, v6, vlan, &t, &stamp, payload);
                        assert_eq!(
                            out, want,
                            "v6={v6} vlan={vlan} payload={payload} ports={sp},{dp}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn icmp_echo_ids_are_patched_with_valid_checksums() {
        let stamp = Stamp {
            stream: 0,
            trial: 0,
            seq: 1,
            tsc: 99,
        };
        for v6 in [false, true] {
            let t = tuple(v6, 4321, 0);
            let mk = hr(move |id, _, p| {
                L4Repr::Icmp(IcmpRepr::echo(if v6 { 128 } else { 8 }, id, 0, p))
            });
            let frame = reference(
                &mk,
                v6,
                false,
                &Tuple { sport: 0, ..t },
                &Stamp {
                    stream: 0,
                    trial: 0,
                    seq: 0,
                    tsc: 0,
                },
                24,
            );
            let tpl = Template::new(frame, true, true).unwrap();
            let mut out = vec![0u8; tpl.len()];
            tpl.write(&mut out, &t, &stamp);
            assert_eq!(out, reference(&mk, v6, false, &t, &stamp, 24));
        }
    }

    #[test]
    fn fixed_frames_keep_their_tuple_and_odd_stamp_offsets_work() {
        // An odd-length payload puts the stamp at an odd offset from the UDP header.
        let l4 = hr(|s, d, p| {
            L4Repr::Udp(UdpRepr {
                src_port: s,
                dst_port: d,
                payload: p,
            })
        });
        let t = tuple(false, 53, 5353);
        let stamp = Stamp {
            stream: 4,
            trial: 1,
            seq: 0xffff_ffff,
            tsc: 0x8000_0000_0000_0001,
        };
        let frame = reference(
            &l4,
            false,
            false,
            &t,
            &Stamp {
                stream: 0,
                trial: 0,
                seq: 0,
                tsc: 0,
            },
            37,
        );
        let tpl = Template::new(frame, false, true).unwrap();
        let mut out = vec![0u8; tpl.len()];
        tpl.write(&mut out, &Tuple::default(), &stamp);
        assert_eq!(out, reference(&l4, false, false, &t, &stamp, 37));
        let u = UdpDatagram::new_checked(&out[34..]).unwrap();
        assert!(u.verify_checksum(&t.src[..4], &t.dst[..4]));
        assert_eq!(Stamp::read(&out), Some(stamp));
    }

    #[test]
    fn tunnelled_frames_patch_the_inner_packet() {
        let stamp = Stamp {
            stream: 2,
            trial: 0,
            seq: 3,
            tsc: 12345,
        };
        let inner_t = tuple(false, 1111, 2222);
        let inner = reference(
            &|s, d, p| {
                L4Repr::Tcp(TcpRepr {
                    src_port: s,
                    dst_port: d,
                    seq: 1,
                    ack: 0,
                    flags: 2,
                    window: 9,
                    window_scale: None,
                    payload: p,
                })
            },
            false,
            false,
            &Tuple {
                sport: 0,
                dport: 0,
                ..inner_t
            },
            &Stamp {
                stream: 0,
                trial: 0,
                seq: 0,
                tsc: 0,
            },
            20,
        );
        let want_inner = reference(
            &|s, d, p| {
                L4Repr::Tcp(TcpRepr {
                    src_port: s,
                    dst_port: d,
                    seq: 1,
                    ack: 0,
                    flags: 2,
                    window: 9,
                    window_scale: None,
                    payload: p,
                })
            },
            false,
            false,
            &Tuple {
                sport: 0,
                dport: 0,
                ..inner_t
            },
            &stamp,
            20,
        );
        for (outer, kind) in [
            (ip("192.0.2.1", "192.0.2.2"), TunnelKind::Vxlan),
            (ip("2001:db8::a", "2001:db8::b"), TunnelKind::Geneve),
        ] {
            let tun = TunnelRepr {
                kind,
                vni: 42,
                options: &[],
            };
            let mut buf = vec![0u8; 512];
            let n = encapsulate(&eth(false), &outer, 4000, &tun, &inner, &mut buf).unwrap();
            buf.truncate(n);
            let tpl = Template::new(buf, true, true).unwrap();
            let mut out = vec![0u8; tpl.len()];
            tpl.write(&mut out, &inner_t, &stamp);
            let p = parse(&out, &ParseConfig::default()).unwrap();
            assert_eq!(
                (p.key.src_port, p.key.dst_port, p.vni),
                (1111, 2222, Some(42))
            );
            let l4 = usize::from(p.l4_offset);
            let seg = TcpSegment::new_checked(&out[l4..]).unwrap();
            assert!(seg.verify_checksum(&inner_t.src[..4], &inner_t.dst[..4]));
            assert_eq!(Stamp::read(&out), Some(stamp));
            // The inner frame as a whole is the one built from scratch (ports patched).
            let inner_start = usize::from(p.l2_offset);
            let mut want = want_inner.clone();
            want[34..36].copy_from_slice(&1111u16.to_be_bytes());
            want[36..38].copy_from_slice(&2222u16.to_be_bytes());
            let c = {
                let mut w = want.clone();
                w[50..52].fill(0);
                let s = checksum::pseudo_header(&w[26..30], &w[30..34], 6, (w.len() - 34) as u32);
                checksum::finish(checksum::sum(s, &w[34..]))
            };
            want[50..52].copy_from_slice(&c.to_be_bytes());
            assert_eq!(&out[inner_start..], &want[..]);
            let ol4 = usize::from(p.tunnel.unwrap().outer_l4_offset);
            if kind == TunnelKind::Geneve {
                let u = UdpDatagram::new_checked(&out[ol4..]).unwrap();
                let (s, d): ([u8; 16], [u8; 16]) = (
                    "2001:db8::a"
                        .parse::<std::net::Ipv6Addr>()
                        .unwrap()
                        .octets(),
                    "2001:db8::b"
                        .parse::<std::net::Ipv6Addr>()
                        .unwrap()
                        .octets(),
                );
                assert!(u.verify_checksum(&s, &d));
            } else {
                assert_eq!(&out[ol4 + 6..ol4 + 8], &[0, 0]);
            }
        }
    }
}
