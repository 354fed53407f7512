//! Parser unit tests on built and hand-made frames: each header, truncation at every length,
//! lying length fields, fragments, ICMP errors, tunnels and the reject replies.

mod common;
use common::*;
use rampart_wire::tcp::flags;
use rampart_wire::*;

fn cfg() -> ParseConfig {
    ParseConfig::default()
}

#[test]
fn ipv4_tcp_with_qinq() {
    let f = frame(
        &[100, 200],
        &ip("10.0.0.1", "10.0.0.2"),
        &tcp(1234, 80, flags::SYN, b"hello"),
    );
    let p = parse(&f, &cfg()).unwrap();
    assert_eq!(
        p.key,
        FlowKey::v4([10, 0, 0, 1], [10, 0, 0, 2], proto::TCP, 1234, 80)
    );
    assert_eq!((p.vlan_outer, p.vlan_inner), (Some(100), Some(200)));
    assert_eq!((p.l3_offset, p.l4_offset, p.payload_len), (22, 42, 5));
    assert_eq!(
        (p.tcp.flags, p.tcp.seq, p.tcp.ack, p.tcp.window),
        (flags::SYN, 1000, 2000, 512)
    );
    assert_eq!(p.frag, Fragment::None);
    assert_eq!(p.frame_len as usize, f.len());
}

#[test]
fn ipv6_udp_single_vlan() {
    let f = frame(
        &[7],
        &ip("2001:db8::1", "2001:db8::2"),
        &udp(53, 5353, b"q"),
    );
    let p = parse(&f, &cfg()).unwrap();
    assert_eq!(p.key.family(), Family::V6);
    assert_eq!(
        (p.key.proto, p.key.src_port, p.key.dst_port),
        (17, 53, 5353)
    );
    assert_eq!((p.vlan_outer, p.vlan_inner), (Some(7), None));
    assert_eq!(p.payload_len, 1);
}

#[test]
fn three_vlan_tags_are_too_deep() {
    let mut f = frame(&[1, 2], &ip("10.0.0.1", "10.0.0.2"), &udp(1, 2, b""));
    // Insert a third 802.1Q tag after the second.
    f.splice(20..20, [0x81, 0x00, 0x00, 0x03]);
    assert_eq!(parse(&f, &cfg()), Err(ParseError::VlanTooDeep));
}

#[test]
fn arp_pass_or_drop_never_ip() {
    let mut f = vec![0u8; 42];
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let p = parse(&f, &cfg()).unwrap();
    assert_eq!(p.kind, FrameKind::Arp);
    assert_eq!(p.key, FlowKey::default());
    let drop = ParseConfig {
        arp: ArpPolicy::Drop,
        ..cfg()
    };
    assert_eq!(parse(&f, &drop), Err(ParseError::ArpDropped));
    f[12..14].copy_from_slice(&0x88ccu16.to_be_bytes()); // LLDP
    assert_eq!(parse(&f, &cfg()), Err(ParseError::UnsupportedEthertype));
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    let frames = [
        frame(
            &[5],
            &ip("10.0.0.1", "10.0.0.2"),
            &tcp(1, 2, flags::ACK, b"abc"),
        ),
        frame(
            &[],
            &ip("2001:db8::1", "2001:db8::2"),
            &udp(1, 2, b"abcdef"),
        ),
        frame(
            &[1, 2],
            &ip("10.0.0.1", "10.0.0.2"),
            &L4Repr::Icmp(IcmpRepr::echo(8, 9, 1, b"xy")),
        ),
    ];
    for f in &frames {
        assert!(parse(f, &cfg()).is_ok());
        for n in 0..f.len() {
            assert!(
                parse(&f[..n], &cfg()).is_err(),
                "prefix {n} of {} accepted",
                f.len()
            );
        }
    }
}

#[test]
fn ethernet_padding_is_ignored() {
    let mut f = frame(&[], &ip("10.0.0.1", "10.0.0.2"), &udp(1, 2, b""));
    assert_eq!(f.len(), 42);
    f.resize(60, 0xee);
    let p = parse(&f, &cfg()).unwrap();
    assert_eq!((p.payload_len, p.l3_len), (0, 28));
}

#[test]
fn lying_lengths() {
    let f = frame(&[], &ip("10.0.0.1", "10.0.0.2"), &udp(1, 2, b"abcd"));
    let mut g = f.clone();
    g[16..18].copy_from_slice(&200u16.to_be_bytes()); // IPv4 total length beyond the frame
    assert_eq!(parse(&g, &cfg()), Err(ParseError::Ipv4BadTotalLength));
    let mut g = f.clone();
    g[38..40].copy_from_slice(&100u16.to_be_bytes()); // UDP length beyond the IP payload
    assert_eq!(parse(&g, &cfg()), Err(ParseError::UdpBadLength));
    let mut g = f.clone();
    g[14] = 0x4f; // IHL 60 bytes
    assert_eq!(parse(&g, &cfg()), Err(ParseError::Ipv4BadIhl));
    let t = frame(
        &[],
        &ip("10.0.0.1", "10.0.0.2"),
        &tcp(1, 2, flags::ACK, b""),
    );
    let mut g = t.clone();
    g[46] = 0xf0; // TCP data offset 60 bytes
    assert_eq!(parse(&g, &cfg()), Err(ParseError::TcpBadDataOffset));
    let v6 = frame(&[], &ip("2001:db8::1", "2001:db8::2"), &udp(1, 2, b""));
    let mut g = v6.clone();
    g[18..20].copy_from_slice(&9u16.to_be_bytes()); // payload length beyond the frame
    assert_eq!(parse(&g, &cfg()), Err(ParseError::Ipv6BadPayloadLength));
}

#[test]
fn ipv4_checksum_is_checked_only_when_asked() {
    let mut f = frame(&[], &ip("10.0.0.1", "10.0.0.2"), &udp(1, 2, b""));
    f[24] ^= 0xff;
    assert!(parse(&f, &cfg()).is_ok());
    let strict = ParseConfig {
        verify_ipv4_checksum: true,
        ..cfg()
    };
    assert_eq!(parse(&f, &strict), Err(ParseError::Ipv4BadChecksum));
}

#[test]
fn ipv6_mapped_addresses_are_rejected() {
    let f = frame(&[], &ip("::ffff:10.0.0.1", "2001:db8::2"), &udp(1, 2, b""));
    assert_eq!(parse(&f, &cfg()), Err(ParseError::Ipv6MappedAddress));
}

/// Sets IPv4 fragment fields in a built frame (no VLAN) and fixes nothing else: the parser
/// does not check the header checksum by default.
fn set_frag(f: &mut [u8], more: bool, offset_bytes: u16) {
    let v = (if more { 0x2000 } else { 0 }) | (offset_bytes / 8);
    f[20..22].copy_from_slice(&v.to_be_bytes());
}

#[test]
fn ipv4_fragments() {
    let base = frame(
        &[],
        &ip("10.0.0.1", "10.0.0.2"),
        &udp(1111, 2222, &[0u8; 64]),
    );
    let mut first = base.clone();
    set_frag(&mut first, true, 0);
    let p = parse(&first, &cfg()).unwrap();
    assert!(matches!(p.frag, Fragment::First { .. }));
    assert_eq!((p.key.src_port, p.key.dst_port), (1111, 2222));

    let mut later = base.clone();
    set_frag(&mut later, false, 64);
    assert_eq!(parse(&later, &cfg()), Err(ParseError::NonFirstFragment));
    let deliver = ParseConfig {
        fragments: FragmentPolicy::Deliver,
        ..cfg()
    };
    let p = parse(&later, &deliver).unwrap();
    assert_eq!(p.frag, Fragment::Later { id: 0, offset: 64 });
    // never classified by port: the ports are not read from the fragment's payload
    assert_eq!((p.key.src_port, p.key.dst_port, p.key.proto), (0, 0, 17));

    // A first fragment holding only 4 bytes of TCP header: tiny-fragment attack.
    let mut tiny = frame(
        &[],
        &ip("10.0.0.1", "10.0.0.2"),
        &tcp(1, 2, flags::SYN, b""),
    );
    tiny.truncate(34 + 4);
    tiny[16..18].copy_from_slice(&24u16.to_be_bytes());
    set_frag(&mut tiny, true, 0);
    assert_eq!(parse(&tiny, &cfg()), Err(ParseError::TinyFragment));

    // ping of death: offset + length beyond 65535
    let mut pod = base;
    set_frag(&mut pod, false, 65528);
    assert_eq!(parse(&pod, &deliver), Err(ParseError::BadFragment));
}

/// An IPv6 frame with a hand-made extension chain before a UDP header.
fn v6_with_exts(exts: &[(u8, Vec<u8>)], last: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = frame(&[], &ip("2001:db8::1", "2001:db8::2"), &udp(1, 2, b""));
    f.truncate(54);
    let first = exts.first().map_or(last, |e| e.0);
    f[20] = first;
    for (i, (_, body)) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(last, |e| e.0);
        let mut b = body.clone();
        b[0] = next;
        f.extend_from_slice(&b);
    }
    f.extend_from_slice(l4);
    let pl = (f.len() - 54) as u16;
    f[18..20].copy_from_slice(&pl.to_be_bytes());
    f
}

#[test]
fn ipv6_extension_chain_to_transport() {
    let udp_hdr = [0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0, 0];
    let hbh = (0u8, vec![0, 0, 1, 4, 0, 0, 0, 0]);
    let rt = (43u8, vec![0, 0, 0, 0, 0, 0, 0, 0]);
    let dst = (60u8, vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let ah = (51u8, vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let f = v6_with_exts(
        &[hbh.clone(), rt.clone(), dst.clone(), ah.clone()],
        17,
        &udp_hdr,
    );
    let p = parse(&f, &cfg()).unwrap();
    assert_eq!(
        (p.key.proto, p.key.src_port, p.key.dst_port),
        (17, 1234, 53)
    );
    assert_eq!(p.l4_offset as usize, 54 + 8 + 8 + 16 + 12);

    let many: Vec<_> = std::iter::repeat_n(dst.clone(), 9).collect();
    let f = v6_with_exts(&many, 17, &udp_hdr);
    assert_eq!(parse(&f, &cfg()), Err(ParseError::Ipv6TooManyExtHeaders));

    let f = v6_with_exts(&[rt, hbh], 17, &udp_hdr);
    assert_eq!(parse(&f, &cfg()), Err(ParseError::Ipv6MisplacedHopByHop));

    // Fragment header: first fragment parses ports, later fragment is dropped by default.
    let frag_first = (44u8, vec![0, 0, 0, 1, 0, 0, 0, 9]);
    let p = parse(&v6_with_exts(&[frag_first], 17, &udp_hdr), &cfg()).unwrap();
    assert_eq!(p.frag, Fragment::First { id: 9 });
    assert_eq!(p.key.dst_port, 53);
    let frag_later = (44u8, vec![0, 0, 0, 8, 0, 0, 0, 9]);
    let f = v6_with_exts(&[frag_later], 17, &udp_hdr);
    assert_eq!(parse(&f, &cfg()), Err(ParseError::NonFirstFragment));
    let deliver = ParseConfig {
        fragments: FragmentPolicy::Deliver,
        ..cfg()
    };
    assert_eq!(parse(&f, &deliver).unwrap().key.dst_port, 0);
    // An atomic fragment (offset 0, M=0) is a whole packet.
    let atomic = (44u8, vec![0, 0, 0, 0, 0, 0, 0, 9]);
    assert_eq!(
        parse(&v6_with_exts(&[atomic], 17, &udp_hdr), &cfg())
            .unwrap()
            .frag,
        Fragment::None
    );
}

#[test]
fn icmp_echo_keys_reverse_into_each_other() {
    let req = frame(
        &[],
        &ip("10.0.0.1", "10.0.0.2"),
        &L4Repr::Icmp(IcmpRepr::echo(8, 77, 1, b"x")),
    );
    let rep = frame(
        &[],
        &ip("10.0.0.2", "10.0.0.1"),
        &L4Repr::Icmp(IcmpRepr::echo(0, 77, 1, b"x")),
    );
    let (a, b) = (parse(&req, &cfg()).unwrap(), parse(&rep, &cfg()).unwrap());
    assert_eq!(a.key.reversed(), b.key);
    assert_eq!(
        a.icmp,
        IcmpMeta {
            msg_type: 8,
            code: 0,
            echo_id: Some(77)
        }
    );
    let req6 = frame(
        &[],
        &ip("2001:db8::1", "2001:db8::2"),
        &L4Repr::Icmp(IcmpRepr::echo(128, 5, 1, b"")),
    );
    let p = parse(&req6, &cfg()).unwrap();
    assert_eq!(
        (p.key.proto, p.key.src_port, p.icmp.echo_id),
        (58, 5, Some(5))
    );
}

#[test]
fn icmp_errors_expose_the_inner_key() {
    for (a, b) in [("10.0.0.1", "10.0.0.2"), ("2001:db8::1", "2001:db8::2")] {
        let orig = frame(&[], &ip(a, b), &udp(5000, 53, b"query"));
        let op = parse(&orig, &cfg()).unwrap();
        let mut out = [0u8; 1500];
        // A router's unreachable is built the same way our reject is: use it.
        let n = build_icmp_unreachable(&orig, &op, &mut out).unwrap();
        let p = parse(&out[..n], &cfg()).unwrap();
        assert_eq!(p.icmp_inner, Some(op.key));
        assert_eq!(p.key.src_ip(), op.key.dst_ip());
        // Truncating the quote below the inner ports makes the inner header bad.
        let cut = usize::from(p.l4_offset) + 8 + if op.is_ipv6() { 40 } else { 20 } + 2;
        let mut t = out[..cut].to_vec();
        let ipl = (cut - 14) as u16;
        if op.is_ipv6() {
            t[18..20].copy_from_slice(&(ipl - 40).to_be_bytes());
        } else {
            t[16..18].copy_from_slice(&ipl.to_be_bytes());
        }
        assert_eq!(parse(&t, &cfg()), Err(ParseError::IcmpBadInner));
    }
}

#[test]
fn geneve_with_ip_payload_and_bad_options() {
    let inner = frame(
        &[],
        &ip("10.1.0.1", "10.1.0.2"),
        &tcp(10, 20, flags::SYN, b""),
    );
    let inner_ip = &inner[14..];
    // Geneve header: ver 0, optlen 1 (4 bytes), protocol IPv4, VNI 9, one option w/o data.
    let mut g = vec![0x01, 0, 0x08, 0x00, 0, 0, 9, 0, 0x01, 0x02, 0x03, 0x00];
    g.extend_from_slice(inner_ip);
    let f = frame(&[3], &ip("192.0.2.1", "192.0.2.2"), &udp(4444, 6081, &g));
    let p = parse(&f, &cfg()).unwrap();
    assert_eq!((p.vni, p.key.segment(), p.key.dst_port), (Some(9), 9, 20));
    assert_eq!(p.vlan_outer, Some(3));
    assert_eq!(p.l2_offset, p.l3_offset);
    let mut bad = f.clone();
    let goff = 18 + 20 + 8;
    bad[goff + 11] = 0x05; // option data length 20 bytes: past the option area
    assert_eq!(parse(&bad, &cfg()), Err(ParseError::GeneveBadOptions));
    bad[goff + 11] = 0;
    bad[goff + 2..goff + 4].copy_from_slice(&0x88ccu16.to_be_bytes());
    assert_eq!(
        parse(&bad, &cfg()),
        Err(ParseError::TunnelUnsupportedPayload)
    );
    // With decapsulation off, it is just UDP to 6081.
    let off = ParseConfig {
        geneve_port: None,
        ..cfg()
    };
    let p = parse(&f, &off).unwrap();
    assert_eq!((p.vni, p.key.dst_port), (None, 6081));
}

#[test]
fn tcp_rst_replies() {
    // To a SYN: RST+ACK acknowledging the SYN.
    let f = frame(
        &[42],
        &ip("10.0.0.1", "10.0.0.2"),
        &tcp(1234, 80, flags::SYN, b""),
    );
    let p = parse(&f, &cfg()).unwrap();
    let mut out = [0u8; 128];
    let n = build_tcp_rst(&f, &p, &mut out).unwrap();
    let r = parse(&out[..n], &cfg()).unwrap();
    assert_eq!(r.key, p.key.reversed());
    assert_eq!(r.vlan_outer, Some(42));
    assert_eq!(
        (r.tcp.flags, r.tcp.seq, r.tcp.ack),
        (flags::RST | flags::ACK, 0, 1001)
    );
    assert_eq!(&out[0..6], &f[6..12]);
    let ipv4 = Ipv4Packet::new_checked(&out[18..n]).unwrap();
    assert!(ipv4.verify_checksum());
    assert!(TcpSegment::new_checked(ipv4.payload())
        .unwrap()
        .verify_checksum(&ipv4.src(), &ipv4.dst()));
    // To an ACK with data: RST with seq = their ack.
    let f = frame(
        &[],
        &ip("2001:db8::1", "2001:db8::2"),
        &tcp(1234, 80, flags::ACK | flags::PSH, b"data"),
    );
    let p = parse(&f, &cfg()).unwrap();
    let n = build_tcp_rst(&f, &p, &mut out).unwrap();
    let r = parse(&out[..n], &cfg()).unwrap();
    assert_eq!((r.tcp.flags, r.tcp.seq), (flags::RST, 2000));
    let v6 = Ipv6Packet::new_checked(&out[14..n]).unwrap();
    assert!(TcpSegment::new_checked(v6.payload())
        .unwrap()
        .verify_checksum(&v6.src(), &v6.dst()));
    // Never a RST to a RST.
    let f = frame(
        &[],
        &ip("10.0.0.1", "10.0.0.2"),
        &tcp(1, 2, flags::RST, b""),
    );
    let p = parse(&f, &cfg()).unwrap();
    assert_eq!(
        build_tcp_rst(&f, &p, &mut out),
        Err(BuildError::ReplyForbidden)
    );
    assert_eq!(
        build_tcp_rst(&f, &p, &mut [0u8; 10]),
        Err(BuildError::ReplyForbidden)
    );
}

#[test]
fn icmp_unreachable_rules() {
    let mut out = [0u8; 1500];
    let big = vec![7u8; 1400];
    let f = frame(&[], &ip("10.0.0.1", "10.0.0.2"), &udp(1, 2, &big));
    let p = parse(&f, &cfg()).unwrap();
    let n = build_icmp_unreachable(&f, &p, &mut out).unwrap();
    assert_eq!(n, 14 + 576, "IPv4 error capped at 576 bytes");
    let r = parse(&out[..n], &cfg()).unwrap();
    assert_eq!((r.icmp.msg_type, r.icmp.code), (3, 13));
    let m = IcmpPacket::new_checked(&out[34..n]).unwrap();
    assert!(m.verify_checksum_v4());
    let f6 = frame(&[], &ip("2001:db8::1", "2001:db8::2"), &udp(1, 2, &big));
    let p6 = parse(&f6, &cfg()).unwrap();
    let n = build_icmp_unreachable(&f6, &p6, &mut out).unwrap();
    assert_eq!(n, 14 + 1280, "ICMPv6 error capped at the minimum MTU");
    let m = IcmpPacket::new_checked(&out[54..n]).unwrap();
    assert!(m.verify_checksum_v6(&p6.key.dst, &p6.key.src));
    // never about an ICMP error, never to multicast
    let r = parse(&out[..n], &cfg()).unwrap();
    assert_eq!(
        build_icmp_unreachable(&out[..n], &r, &mut [0u8; 2000]),
        Err(BuildError::ReplyForbidden)
    );
    let mc = frame(&[], &ip("10.0.0.1", "224.0.0.5"), &udp(1, 2, b""));
    let pm = parse(&mc, &cfg()).unwrap();
    assert_eq!(
        build_icmp_unreachable(&mc, &pm, &mut out),
        Err(BuildError::ReplyForbidden)
    );
    assert_eq!(
        build_icmp_unreachable(&f, &p, &mut [0u8; 100]),
        Err(BuildError::BufferTooSmall)
    );
}

#[test]
fn replies_to_tunnelled_packets_go_back_through_the_tunnel() {
    let mut inner = [0u8; 256];
    let n = build_frame(
        &eth(&[]),
        &ip("10.1.0.1", "10.1.0.2"),
        &tcp(10, 20, flags::SYN, b""),
        &mut inner,
    )
    .unwrap();
    let mut f = [0u8; 512];
    let t = TunnelRepr {
        kind: TunnelKind::Vxlan,
        vni: 500,
        options: &[],
    };
    let m = encapsulate(
        &eth(&[9]),
        &ip("2001:db8::a", "2001:db8::b"),
        3333,
        &t,
        &inner[..n],
        &mut f,
    )
    .unwrap();
    let p = parse(&f[..m], &cfg()).unwrap();
    let mut out = [0u8; 512];
    let k = build_tcp_rst(&f[..m], &p, &mut out).unwrap();
    let r = parse(&out[..k], &cfg()).unwrap();
    assert_eq!(r.vni, Some(500));
    assert_eq!(r.key, p.key.reversed());
    assert_eq!(r.vlan_outer, Some(9));
    let tun = r.tunnel.unwrap();
    let o = Ipv6Packet::new_checked(&out[usize::from(tun.outer_l3_offset)..k]).unwrap();
    assert_eq!(
        o.src(),
        "2001:db8::b"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );
    let u = UdpDatagram::new_checked(o.payload()).unwrap();
    assert_eq!((u.src_port(), u.dst_port()), (3333, 4789));
    assert!(u.verify_checksum(&o.src(), &o.dst()));
    let k = build_icmp_unreachable(&f[..m], &p, &mut out).unwrap();
    let r = parse(&out[..k], &cfg()).unwrap();
    assert_eq!(
        (r.vni, r.icmp_inner.map(|k| k.segment())),
        (Some(500), Some(500))
    );
    assert_eq!(r.icmp_inner.unwrap(), p.key);
}

#[test]
fn parse_error_table() {
    assert_eq!(ParseError::ALL.len(), ParseError::COUNT);
    assert_eq!(
        ParseError::ALL[ParseError::TinyFragment.index()],
        ParseError::TinyFragment
    );
    assert_eq!(ParseError::VlanTooDeep.name(), "vlan_too_deep");
}

/// `parse_into` reuses the caller's `Parsed` (the worker's scratch) and resets it field by
/// field: whatever an earlier frame left there (tunnel, VNI, ICMP inner key, VLANs, TCP
/// options) must not leak into the next result. Every pair of very different frames, in both
/// orders, must give exactly what a fresh `parse` gives.
#[test]
fn parse_into_leaves_nothing_from_the_previous_frame() {
    let mut inner = [0u8; 256];
    let n = build_frame(
        &eth(&[]),
        &ip("10.1.0.1", "10.1.0.2"),
        &tcp(10, 20, flags::SYN, b""),
        &mut inner,
    )
    .unwrap();
    let mut vx = [0u8; 512];
    let t = TunnelRepr {
        kind: TunnelKind::Vxlan,
        vni: 500,
        options: &[],
    };
    let m = encapsulate(
        &eth(&[9, 10]),
        &ip("2001:db8::a", "2001:db8::b"),
        3333,
        &t,
        &inner[..n],
        &mut vx,
    )
    .unwrap();
    let orig = frame(&[], &ip("10.0.0.1", "10.0.0.2"), &udp(5000, 53, b"query"));
    let mut unreach = [0u8; 1500];
    let u = build_icmp_unreachable(&orig, &parse(&orig, &cfg()).unwrap(), &mut unreach).unwrap();
    let frames: Vec<Vec<u8>> = vec![
        vx[..m].to_vec(),
        unreach[..u].to_vec(),
        frame(
            &[7],
            &ip("10.0.0.1", "10.0.0.2"),
            &tcp(1, 2, flags::ACK, b"x"),
        ),
        frame(&[], &ip("2001:db8::1", "2001:db8::2"), &udp(53, 5353, b"q")),
        orig.clone(),
    ];
    for a in &frames {
        for b in &frames {
            let mut p = parse(a, &cfg()).unwrap();
            parse_into(b, &cfg(), &mut p).unwrap();
            assert_eq!(p, parse(b, &cfg()).unwrap());
        }
    }
}
