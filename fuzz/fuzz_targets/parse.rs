//! Parser fuzz target: any bytes, several configs. Beyond "never panics", whatever parses
//! must have offsets inside the frame, and any reject reply built for it must itself parse
//! back to the reversed key (the pipeline sends these onto the wire).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_wire::*;

fuzz_target!(|data: &[u8]| {
    let configs = [
        ParseConfig::default(),
        ParseConfig {
            arp: ArpPolicy::Drop,
            fragments: FragmentPolicy::Deliver,
            verify_ipv4_checksum: true,
            max_ipv6_ext_headers: 2,
            ..ParseConfig::default()
        },
    ];
    for cfg in &configs {
        let Ok(p) = parse(data, cfg) else { continue };
        let n = data.len();
        assert!(usize::from(p.frame_len) == n);
        assert!(usize::from(p.l3_offset) <= n && usize::from(p.l4_offset) <= n);
        if p.kind != FrameKind::Ip {
            continue;
        }
        assert!(usize::from(p.l4_offset) + usize::from(p.payload_len) <= n);
        let mut out = [0u8; 2048];
        if let Ok(m) = build_tcp_rst(data, &p, &mut out) {
            let r = parse(&out[..m], &ParseConfig::default()).expect("our RST parses");
            assert_eq!(r.key, p.key.reversed());
            assert_ne!(r.tcp.flags & tcp::flags::RST, 0);
        }
        if let Ok(m) = build_icmp_unreachable(data, &p, &mut out) {
            let r = parse(&out[..m], &ParseConfig::default()).expect("our unreachable parses");
            assert_eq!((r.key.src_ip(), r.key.dst_ip()), (p.key.dst_ip(), p.key.src_ip()));
        }
    }
});
