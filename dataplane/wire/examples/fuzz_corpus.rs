//! Writes the seed corpus for the `parse` fuzz target: one file per interesting frame shape.
//! `cargo run -p rampart-wire --example fuzz_corpus -- fuzz/corpus/parse`

use rampart_wire::tcp::flags;
use rampart_wire::*;

fn eth(vlans: &[u16]) -> EthernetRepr {
    let tag = |tpid, vid| VlanTag { tpid, vid, pcp: 1 };
    EthernetRepr {
        src: [2, 0, 0, 0, 0, 1],
        dst: [2, 0, 0, 0, 0, 2],
        outer_vlan: vlans
            .first()
            .map(|&v| tag(if vlans.len() == 2 { 0x88a8 } else { 0x8100 }, v)),
        inner_vlan: vlans.get(1).map(|&v| tag(0x8100, v)),
        ethertype: 0,
    }
}

fn ip(s: &str, d: &str) -> IpSpec {
    IpSpec {
        src: s.parse().unwrap(),
        dst: d.parse().unwrap(),
        ttl: 64,
    }
}

fn tcp(fl: u8, ws: Option<u8>) -> L4Repr<'static> {
    L4Repr::Tcp(TcpRepr {
        src_port: 40000,
        dst_port: 443,
        seq: 7,
        ack: 9,
        flags: fl,
        window: 100,
        window_scale: ws,
        payload: b"abc",
    })
}

fn udp(dport: u16, payload: &[u8]) -> L4Repr<'_> {
    L4Repr::Udp(UdpRepr {
        src_port: 5000,
        dst_port: dport,
        payload,
    })
}

fn frame(vlans: &[u16], ip: &IpSpec, l4: &L4Repr<'_>) -> Vec<u8> {
    let mut b = vec![0u8; 2048];
    let n = build_frame(&eth(vlans), ip, l4, &mut b).unwrap();
    b.truncate(n);
    b
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: fuzz_corpus DIR");
    std::fs::create_dir_all(&dir).unwrap();
    let v4 = || ip("10.0.0.1", "10.0.0.2");
    let v6 = || ip("2001:db8::1", "2001:db8::2");
    let cfg = ParseConfig::default();
    let mut out: Vec<(&str, Vec<u8>)> = vec![
        (
            "ipv4_tcp_syn_ws",
            frame(&[], &v4(), &tcp(flags::SYN, Some(7))),
        ),
        (
            "ipv4_tcp_ack_vlan",
            frame(&[12], &v4(), &tcp(flags::ACK | flags::PSH, None)),
        ),
        (
            "ipv6_tcp_qinq",
            frame(&[1, 2], &v6(), &tcp(flags::SYN | flags::ACK, Some(2))),
        ),
        ("ipv4_udp", frame(&[], &v4(), &udp(53, b"query"))),
        ("ipv6_udp", frame(&[], &v6(), &udp(53, b"query"))),
        (
            "ipv4_icmp_echo",
            frame(&[], &v4(), &L4Repr::Icmp(IcmpRepr::echo(8, 1, 1, b"ping"))),
        ),
        (
            "ipv6_icmp_echo",
            frame(
                &[],
                &v6(),
                &L4Repr::Icmp(IcmpRepr::echo(128, 1, 1, b"ping")),
            ),
        ),
        (
            "ipv4_gre",
            frame(
                &[],
                &v4(),
                &L4Repr::Raw {
                    protocol: 47,
                    payload: &[0, 0, 8, 0],
                },
            ),
        ),
        (
            "ipv4_sctp",
            frame(
                &[],
                &v4(),
                &L4Repr::Raw {
                    protocol: 132,
                    payload: &[0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0],
                },
            ),
        ),
    ];
    // Errors quoting the packets above (exercise the inner-header parse).
    for i in [0usize, 2, 3, 4, 5] {
        let f = out[i].1.clone();
        let p = parse(&f, &cfg).unwrap();
        let mut b = vec![0u8; 2048];
        let n = build_icmp_unreachable(&f, &p, &mut b).unwrap();
        b.truncate(n);
        out.push(("icmp_error", b));
    }
    // Tunnels.
    let inner = frame(&[], &v4(), &tcp(flags::SYN, None));
    for (name, kind, opts) in [
        ("vxlan", TunnelKind::Vxlan, &[][..]),
        (
            "geneve_opts",
            TunnelKind::Geneve,
            &[0, 1, 2, 1, 9, 9, 9, 9][..],
        ),
    ] {
        let mut b = vec![0u8; 2048];
        let n = encapsulate(
            &eth(&[5]),
            &v6(),
            777,
            &TunnelRepr {
                kind,
                vni: 42,
                options: opts,
            },
            &inner,
            &mut b,
        )
        .unwrap();
        b.truncate(n);
        out.push((name, b));
    }
    // IPv4 with options and as a first fragment; IPv6 with an extension chain and a fragment.
    let mut o = frame(&[], &v4(), &udp(9, b"x"));
    o.splice(34..34, [1, 1, 7, 3, 0, 0, 0, 0]);
    o[14] = 0x47;
    let tl = (o.len() - 14) as u16;
    o[16..18].copy_from_slice(&tl.to_be_bytes());
    out.push(("ipv4_options", o.clone()));
    o[20] = 0x20;
    out.push(("ipv4_first_fragment", o.clone()));
    o[21] = 0x08;
    out.push(("ipv4_later_fragment", o));
    let mut e = frame(&[], &v6(), &udp(9, b"x"));
    let ext = [17u8, 0, 0, 1, 0, 0, 0, 9]; // fragment header, first, M=1
    e.splice(
        54..54,
        [44u8, 0, 1, 4, 0, 0, 0, 0].iter().copied().chain(ext),
    ); // HBH -> FRAG
    e[20] = 0;
    e[54] = 44;
    let pl = (e.len() - 54) as u16;
    e[18..20].copy_from_slice(&pl.to_be_bytes());
    out.push(("ipv6_ext_chain", e));
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&[0u8; 20]);
    out.push(("arp", arp));
    for (i, (name, f)) in out.iter().enumerate() {
        std::fs::write(format!("{dir}/{i:02}_{name}"), f).unwrap();
    }
    println!("wrote {} seeds to {dir}", out.len());
}
