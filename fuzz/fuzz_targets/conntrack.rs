//! Flow state-machine fuzz target: bytes drive inserts, tracks, lookups, removals and
//! expiry on a tiny table; the table's bookkeeping must stay consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_flow::*;
use rampart_wire::{proto, FlowKey};

fn key(b: u8) -> FlowKey {
    let p = [proto::TCP, proto::UDP, proto::ICMP, 47][usize::from(b >> 6)];
    FlowKey::v4([10, 0, 0, b & 3], [10, 0, 0, (b >> 2) & 3], p, u16::from(b & 1), u16::from((b >> 1) & 1))
}

fuzz_target!(|data: &[u8]| {
    let cfg = FlowConfig {
        capacity: 8,
        loose_tcp_pickup: data.first().is_some_and(|b| b & 1 != 0),
        strict_tcp: data.first().is_some_and(|b| b & 2 != 0),
        ..FlowConfig::default()
    };
    let mut t = FlowTable::new(&cfg).unwrap();
    let mut now = 0u64;
    for c in data.chunks_exact(8).skip(1) {
        now += u64::from(c[1]) << 26; // up to ~17 s per step
        let k = key(c[2]);
        let k = if c[0] & 0x80 != 0 { k.reversed() } else { k };
        let pkt = PacketInfo {
            proto: k.proto,
            tcp_flags: c[3],
            seq: u32::from_le_bytes([c[4], c[5], 0, 0]) << 8,
            ack: u32::from_le_bytes([c[6], c[7], 0, 0]) << 8,
            window: u16::from_le_bytes([c[5], c[6]]),
            wscale: (c[3] & 0x40 != 0).then_some(c[7] & 15),
            payload_len: u16::from(c[4]),
            frame_len: 64,
            icmp_request: c[3] & 1 != 0,
            icmp_reply: c[3] & 2 != 0,
        };
        match c[0] & 7 {
            0 | 1 => {
                if let Ok(h) = t.insert(&k, RuleId(1), 1, now) {
                    let _ = t.track(h.handle, h.dir, &pkt, now);
                }
            }
            2 | 3 | 4 => {
                if let Some(h) = t.lookup(&k, now) {
                    let before = t.flow(h.handle).map(|f| f.state());
                    if let TrackVerdict::Drop(_) = t.track(h.handle, h.dir, &pkt, now) {
                        assert_eq!(t.flow(h.handle).map(|f| f.state()), before);
                    }
                }
            }
            5 => {
                if let Some(h) = t.lookup(&k, now) {
                    assert!(t.remove(h.handle));
                    assert!(t.lookup(&k, now).is_none());
                }
            }
            6 => {
                t.expire_burst(now, u32::from(c[4] & 15));
            }
            _ => {
                let keys = [k, k.reversed(), key(c[4]), key(c[5])];
                let mut out = [None; 4];
                t.lookup_burst(&keys, now, &mut out);
                assert_eq!(out[0].map(|h| h.handle), out[1].map(|h| h.handle));
            }
        }
        assert!(t.len() <= 8);
        assert_eq!(t.iter().count(), t.len());
    }
});
