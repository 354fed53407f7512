//! Frame-building helpers shared by the wire tests.
#![allow(dead_code)]

use core::net::IpAddr;
use rampart_wire::*;

pub const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
pub const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

pub fn eth(vlans: &[u16]) -> EthernetRepr {
    let tag = |tpid, vid| VlanTag { tpid, vid, pcp: 0 };
    let (outer_vlan, inner_vlan) = match vlans {
        [] => (None, None),
        [v] => (Some(tag(ethernet::ethertype::VLAN, *v)), None),
        [o, i, ..] => (
            Some(tag(ethernet::ethertype::QINQ, *o)),
            Some(tag(ethernet::ethertype::VLAN, *i)),
        ),
    };
    EthernetRepr {
        src: MAC_A,
        dst: MAC_B,
        outer_vlan,
        inner_vlan,
        ethertype: 0,
    }
}

pub fn ip(src: &str, dst: &str) -> IpSpec {
    IpSpec {
        src: src.parse::<IpAddr>().unwrap(),
        dst: dst.parse::<IpAddr>().unwrap(),
        ttl: 64,
    }
}

pub fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> L4Repr<'_> {
    L4Repr::Tcp(TcpRepr {
        src_port: sport,
        dst_port: dport,
        seq: 1000,
        ack: 2000,
        flags,
        window: 512,
        window_scale: None,
        payload,
    })
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> L4Repr<'_> {
    L4Repr::Udp(UdpRepr {
        src_port: sport,
        dst_port: dport,
        payload,
    })
}

pub fn frame(vlans: &[u16], ip: &IpSpec, l4: &L4Repr<'_>) -> Vec<u8> {
    let mut b = vec![0u8; 2048];
    let n = build_frame(&eth(vlans), ip, l4, &mut b).unwrap();
    b.truncate(n);
    b
}
