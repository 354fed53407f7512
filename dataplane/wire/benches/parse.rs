//! Parser throughput: ns/packet for rampart-wire's `parse` next to etherparse's
//! `SlicedPacket::from_ethernet` on the same frames, in the same run.
//! Run: `cargo bench -p rampart-wire --bench parse` (prints a markdown table).
//! Times are CPU time of the benchmark thread (CLOCK_THREAD_CPUTIME_ID), best of interleaved
//! rounds: the machine is shared.

use cpu_time::ThreadTime as Instant;
use std::hint::black_box;

use rampart_wire::tcp::flags;
use rampart_wire::*;

fn eth(vlans: &[u16]) -> EthernetRepr {
    let tag = |tpid, vid| VlanTag { tpid, vid, pcp: 0 };
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

fn tcp(payload: &[u8]) -> L4Repr<'_> {
    L4Repr::Tcp(TcpRepr {
        src_port: 40000,
        dst_port: 443,
        seq: 1,
        ack: 2,
        flags: flags::ACK,
        window: 500,
        window_scale: None,
        payload,
    })
}

fn udp(payload: &[u8]) -> L4Repr<'_> {
    L4Repr::Udp(UdpRepr {
        src_port: 5000,
        dst_port: 53,
        payload,
    })
}

fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let pl = [0u8; 18];
    let mk = |vlans: &[u16], ip: IpSpec, l4: L4Repr<'_>| {
        let mut b = vec![0u8; 256];
        let n = build_frame(&eth(vlans), &ip, &l4, &mut b).unwrap();
        b.truncate(n);
        b
    };
    let v4 = || ip("10.0.0.1", "10.0.0.2");
    let v6 = || ip("2001:db8::1", "2001:db8::2");
    let inner = mk(&[], v4(), tcp(&pl));
    let mut vx = vec![0u8; 256];
    let n = encapsulate(
        &eth(&[]),
        &ip("192.0.2.1", "192.0.2.2"),
        999,
        &TunnelRepr {
            kind: TunnelKind::Vxlan,
            vni: 5,
            options: &[],
        },
        &inner,
        &mut vx,
    )
    .unwrap();
    vx.truncate(n);
    vec![
        ("ipv4/tcp", mk(&[], v4(), tcp(&pl))),
        ("ipv4/udp", mk(&[], v4(), udp(&pl))),
        ("ipv6/tcp", mk(&[], v6(), tcp(&pl))),
        ("ipv6/udp", mk(&[], v6(), udp(&pl))),
        ("vlan/ipv4/tcp", mk(&[10], v4(), tcp(&pl))),
        ("qinq/ipv6/udp", mk(&[10, 20], v6(), udp(&pl))),
        ("vxlan/ipv4/tcp", vx),
    ]
}

/// etherparse does not decapsulate: for VXLAN frames it parses the outer packet and then
/// the inner frame, so both columns do the same work.
fn etherparse_once(f: &[u8]) -> usize {
    match etherparse::SlicedPacket::from_ethernet(f) {
        Ok(sp) => match &sp.transport {
            Some(etherparse::TransportSlice::Udp(u)) if u.destination_port() == 4789 => {
                let inner = &u.payload()[8..];
                etherparse::SlicedPacket::from_ethernet(inner)
                    .map(|s| s.transport.is_some() as usize)
                    .unwrap_or(0)
            }
            t => t.is_some() as usize,
        },
        Err(_) => 0,
    }
}

fn time_ns(iters: u32, batch: &[&[u8]], mut f: impl FnMut(&[u8]) -> usize) -> f64 {
    // warm-up
    for fr in batch {
        black_box(f(black_box(fr)));
    }
    let t = Instant::now();
    let mut acc = 0usize;
    for _ in 0..iters {
        for fr in batch {
            acc = acc.wrapping_add(f(black_box(fr)));
        }
    }
    black_box(acc);
    t.elapsed().as_nanos() as f64 / (f64::from(iters) * batch.len() as f64)
}

/// Best of `ROUNDS` interleaved runs of each contender: the machine is shared and noisy,
/// and the minimum is the least disturbed measurement.
const ROUNDS: u32 = 7;

fn main() {
    let cfg = ParseConfig::default();
    let frames = frames();
    // `cargo bench` passes --bench; `cargo test --all-targets` does not: then only a smoke run.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let iters = std::env::var("ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 700 } else { 300_000u32 })
        / ROUNDS;
    let mut scratch = Parsed::EMPTY;
    let mut ours_into = |f: &[u8]| match parse_into(f, &cfg, &mut scratch) {
        Ok(()) => scratch.key.dst_port as usize,
        Err(_) => 0,
    };
    let ours = |f: &[u8]| parse(f, &cfg).map(|p| p.key.dst_port as usize).unwrap_or(0);
    let mut run = |batch: &[&[u8]], iters: u32| {
        let mut best = [f64::MAX; 3];
        for _ in 0..ROUNDS {
            best[0] = best[0].min(time_ns(iters, batch, &mut ours_into));
            best[1] = best[1].min(time_ns(iters, batch, ours));
            best[2] = best[2].min(time_ns(iters, batch, etherparse_once));
        }
        best
    };
    println!("| frames | rampart `parse_into` ns/pkt | rampart `parse` ns/pkt | etherparse ns/pkt | etherparse / parse_into |");
    println!("|---|---|---|---|---|");
    for (name, f) in &frames {
        assert!(parse(f, &cfg).is_ok() && etherparse_once(f) == 1, "{name}");
        let [a, b, c] = run(&[&f[..]], iters);
        println!(
            "| {name} ({} B) | {a:.1} | {b:.1} | {c:.1} | {:.2}x |",
            f.len(),
            c / a
        );
    }
    let mix: Vec<&[u8]> = frames.iter().map(|(_, f)| &f[..]).collect();
    let [a, b, c] = run(&mix, iters / mix.len() as u32);
    println!(
        "| mix of the {} above, round robin | {a:.1} | {b:.1} | {c:.1} | {:.2}x |",
        mix.len(),
        c / a
    );
}
