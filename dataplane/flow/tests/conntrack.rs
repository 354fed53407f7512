//! Conntrack behaviour: state machines, expiry, full-table policy, burst lookups.

use rampart_flow::*;
use rampart_wire::tcp::flags as tf;
use rampart_wire::{proto, FlowKey};

const SEC: u64 = 1_000_000_000;

fn table(cap: u32) -> FlowTable {
    FlowTable::new(&FlowConfig {
        capacity: cap,
        ..FlowConfig::default()
    })
    .unwrap()
}

fn key(i: u32) -> FlowKey {
    let b = i.to_be_bytes();
    FlowKey::v4(
        [10, b[1], b[2], b[3]],
        [192, 168, 0, 1],
        proto::TCP,
        1024 + (i % 50000) as u16,
        443,
    )
}

fn tcp(flags: u8, seq: u32, ack: u32, len: u16) -> PacketInfo {
    PacketInfo {
        proto: proto::TCP,
        tcp_flags: flags,
        seq,
        ack,
        window: 65535,
        payload_len: len,
        frame_len: 60 + len,
        ..Default::default()
    }
}

/// Every flow of `t` and everything the table records about it, one line each, for comparing
/// two tables that should have been driven to the same state.
fn listing(t: &FlowTable, now: u64) -> Vec<String> {
    t.iter()
        .map(|(h, f)| {
            format!(
                "{h:?} {:?} {:?} {:?} {} {} {} {} {} {} {} {} {}",
                f.key(),
                f.state(),
                f.rule(),
                f.generation(),
                f.packets(Direction::Original),
                f.packets(Direction::Reply),
                f.bytes(Direction::Original),
                f.bytes(Direction::Reply),
                f.is_assured(),
                f.is_picked_up(),
                f.is_strict_tcp(),
                f.last_seen_ns(now),
            )
        })
        .collect()
}

/// Inserts and runs a full three-way handshake; returns the handle.
fn establish(t: &mut FlowTable, k: &FlowKey, now: u64) -> FlowHandle {
    let h = t.insert(k, RuleId(7), 3, now).unwrap();
    assert_eq!(
        t.track(h.handle, h.dir, &tcp(tf::SYN, 100, 0, 0), now),
        TrackVerdict::Accept
    );
    let r = t.lookup(&k.reversed(), now).unwrap();
    assert_eq!(r.dir, Direction::Reply);
    assert_eq!(
        t.track(r.handle, r.dir, &tcp(tf::SYN | tf::ACK, 5000, 101, 0), now),
        TrackVerdict::Accept
    );
    let o = t.lookup(k, now).unwrap();
    assert_eq!(
        t.track(o.handle, o.dir, &tcp(tf::ACK, 101, 5001, 0), now),
        TrackVerdict::Accept
    );
    o.handle
}

#[test]
fn handshake_data_and_counters() {
    let mut t = table(64);
    let k = key(1);
    let h = establish(&mut t, &k, SEC);
    let f = t.flow(h).unwrap();
    assert_eq!(f.state(), FlowState::TcpEstablished);
    assert!(f.is_assured());
    assert_eq!((f.rule(), f.generation(), f.key()), (RuleId(7), 3, k));
    assert!(f.admitted_under(3) && !f.admitted_under(4));
    assert_eq!(
        (f.packets(Direction::Original), f.packets(Direction::Reply)),
        (2, 1)
    );
    assert_eq!(f.bytes(Direction::Original), 120);
    let r = t.lookup(&k.reversed(), 2 * SEC).unwrap();
    assert_eq!(
        t.track(
            r.handle,
            r.dir,
            &tcp(tf::ACK | tf::PSH, 5001, 101, 1000),
            2 * SEC
        ),
        TrackVerdict::Accept
    );
    assert_eq!(t.flow(h).unwrap().bytes(Direction::Reply), 60 + 1060);
    // A SYN on an established flow is refused and changes nothing.
    assert_eq!(
        t.track(h, Direction::Original, &tcp(tf::SYN, 9, 0, 0), 2 * SEC),
        TrackVerdict::Drop(TrackError::UnexpectedFlags)
    );
    assert_eq!(
        t.track(
            h,
            Direction::Original,
            &tcp(tf::SYN | tf::FIN, 9, 0, 0),
            2 * SEC
        ),
        TrackVerdict::Drop(TrackError::BadFlags)
    );
    assert_eq!(t.flow(h).unwrap().state(), FlowState::TcpEstablished);
    t.set_admission(h, RuleId(9), 4);
    assert!(t.flow(h).unwrap().admitted_under(4));
    assert_eq!(t.flow(h).unwrap().rule(), RuleId(9));
    assert_eq!(t.iter().count(), 1);
    assert!(t.remove(h));
    assert!(!t.remove(h));
    assert!(t.lookup(&k, 2 * SEC).is_none());
    assert!(t.is_empty());
}

#[test]
fn non_syn_first_packet_needs_loose_mode() {
    let mut t = table(16);
    let k = key(2);
    let h = t.insert(&k, RuleId(1), 1, 0).unwrap();
    assert_eq!(
        t.track(h.handle, h.dir, &tcp(tf::ACK, 1, 1, 10), 0),
        TrackVerdict::Drop(TrackError::NotOpener)
    );
    assert!(
        t.lookup(&k, 0).is_none(),
        "refused first packet leaves no flow"
    );
    assert!(!t.can_open(&tcp(tf::ACK, 1, 1, 0)));
    assert!(t.can_open(&tcp(tf::SYN, 1, 0, 0)));

    let mut loose = FlowTable::new(&FlowConfig {
        capacity: 16,
        loose_tcp_pickup: true,
        ..FlowConfig::default()
    })
    .unwrap();
    assert!(loose.can_open(&tcp(tf::ACK, 1, 1, 0)));
    let h = loose.insert(&k, RuleId(1), 1, 0).unwrap();
    assert_eq!(
        loose.track(h.handle, h.dir, &tcp(tf::ACK, 1, 1, 10), 0),
        TrackVerdict::Accept
    );
    let f = loose.flow(h.handle).unwrap();
    assert_eq!(f.state(), FlowState::TcpEstablished);
    assert!(f.is_picked_up() && !f.is_assured());
    assert_eq!(
        loose.track(h.handle, Direction::Reply, &tcp(tf::ACK, 1, 11, 0), 0),
        TrackVerdict::Accept
    );
    assert!(loose.flow(h.handle).unwrap().is_assured());
}

#[test]
fn fin_close_rst_and_reuse() {
    let mut t = table(16);
    let k = key(3);
    let h = establish(&mut t, &k, 0);
    // The close, one segment at a time: (direction, flags, seq, ack) and the state after it.
    let (orig, reply) = (Direction::Original, Direction::Reply);
    let close = [
        (orig, tf::FIN | tf::ACK, 101, 5001, FlowState::TcpFinWait),
        (reply, tf::ACK, 5001, 102, FlowState::TcpCloseWait),
        (reply, tf::FIN | tf::ACK, 5001, 102, FlowState::TcpLastAck),
        (orig, tf::ACK, 102, 5002, FlowState::TcpTimeWait),
    ];
    for (dir, flags, seq, ack, after) in close {
        let v = t.track(h, dir, &tcp(flags, seq, ack, 0), 0);
        assert_eq!(v, TrackVerdict::Accept, "{dir:?} flags {flags:#04x}");
        assert_eq!(
            t.flow(h).unwrap().state(),
            after,
            "{dir:?} flags {flags:#04x}"
        );
    }
    // TIME_WAIT lasts 120 s by default, far less than established.
    assert!(t.lookup(&k, 119 * SEC).is_some());
    assert!(t.lookup(&k, 500 * SEC).is_none());
    // Reuse of the 5-tuple from TIME_WAIT.
    let h = establish(&mut t, &k, 600 * SEC);
    assert_eq!(
        t.track(h, Direction::Reply, &tcp(tf::RST, 5001, 0, 0), 600 * SEC),
        TrackVerdict::Accept
    );
    assert_eq!(t.flow(h).unwrap().state(), FlowState::TcpClose);
    assert_eq!(
        t.track(h, Direction::Original, &tcp(tf::SYN, 7, 0, 0), 601 * SEC),
        TrackVerdict::Accept
    );
    assert_eq!(t.flow(h).unwrap().state(), FlowState::TcpSynSent);
}

#[test]
fn udp_and_icmp_pseudo_connections() {
    let mut t = table(16);
    let u = FlowKey::v6([0x20; 16], [0x30; 16], proto::UDP, 5353, 53);
    let pkt = PacketInfo {
        proto: proto::UDP,
        frame_len: 80,
        ..Default::default()
    };
    let h = t.insert(&u, RuleId(1), 1, 0).unwrap();
    assert_eq!(t.track(h.handle, h.dir, &pkt, 0), TrackVerdict::Accept);
    assert_eq!(t.flow(h.handle).unwrap().state(), FlowState::UdpUnreplied);
    assert!(
        t.lookup(&u, 31 * SEC).is_none(),
        "unreplied UDP expires after 30 s"
    );
    let h = t.insert(&u, RuleId(1), 1, 40 * SEC).unwrap();
    t.track(h.handle, h.dir, &pkt, 40 * SEC);
    let r = t.lookup(&u.reversed(), 41 * SEC).unwrap();
    assert_eq!(
        t.track(r.handle, r.dir, &pkt, 41 * SEC),
        TrackVerdict::Accept
    );
    assert_eq!(t.flow(h.handle).unwrap().state(), FlowState::UdpReplied);
    assert!(
        t.lookup(&u, 41 * SEC + 100 * SEC).is_some(),
        "replied UDP uses the 120 s stream timeout"
    );

    let i = FlowKey::v4([1, 1, 1, 1], [2, 2, 2, 2], proto::ICMP, 77, 77);
    let req = PacketInfo {
        proto: proto::ICMP,
        icmp_request: true,
        frame_len: 98,
        ..Default::default()
    };
    let rep = PacketInfo {
        proto: proto::ICMP,
        icmp_reply: true,
        frame_len: 98,
        ..Default::default()
    };
    assert!(!t.can_open(&rep));
    let h = t.insert(&i.reversed(), RuleId(2), 1, 0).unwrap();
    assert_eq!(
        t.track(h.handle, h.dir, &rep, 0),
        TrackVerdict::Drop(TrackError::NotOpener)
    );
    let h = t.insert(&i, RuleId(2), 1, 0).unwrap();
    assert_eq!(t.track(h.handle, h.dir, &req, 0), TrackVerdict::Accept);
    let r = t.lookup(&i.reversed(), 0).unwrap();
    assert_eq!(t.track(r.handle, r.dir, &rep, 0), TrackVerdict::Accept);
    assert_eq!(t.flow(h.handle).unwrap().state(), FlowState::IcmpReplied);
}

#[test]
fn icmp_errors_find_their_flow() {
    use rampart_wire::*;
    let mut t = table(16);
    let cfg = ParseConfig::default();
    let eth = EthernetRepr {
        src: [2; 6],
        dst: [4; 6],
        outer_vlan: None,
        inner_vlan: None,
        ethertype: 0,
    };
    let ip = IpSpec {
        src: "10.0.0.1".parse().unwrap(),
        dst: "10.9.9.9".parse().unwrap(),
        ttl: 64,
    };
    let mut f = [0u8; 200];
    let n = build_frame(
        &eth,
        &ip,
        &L4Repr::Udp(UdpRepr {
            src_port: 4000,
            dst_port: 53,
            payload: b"q",
        }),
        &mut f,
    )
    .unwrap();
    let p = parse(&f[..n], &cfg).unwrap();
    let h = t.insert(&p.key, RuleId(5), 1, 0).unwrap();
    t.track(h.handle, h.dir, &PacketInfo::from_parsed(&p), 0);
    // the "router" answers with an unreachable quoting our packet
    let mut e = [0u8; 300];
    let m = build_icmp_unreachable(&f[..n], &p, &mut e).unwrap();
    let ep = parse(&e[..m], &cfg).unwrap();
    assert!(t.lookup(&ep.key, 0).is_none());
    let rel = t.lookup_related(&ep.icmp_inner.unwrap(), 0).unwrap();
    assert_eq!((rel.handle, rel.dir), (h.handle, Direction::Original));
}

#[test]
fn strict_window_checks() {
    let mut t = FlowTable::new(&FlowConfig {
        capacity: 16,
        strict_tcp: true,
        ..FlowConfig::default()
    })
    .unwrap();
    let k = key(4);
    let h = t.insert(&k, RuleId(1), 1, 0).unwrap().handle;
    let mut syn = tcp(tf::SYN, 1000, 0, 0);
    syn.wscale = Some(2);
    assert_eq!(
        t.track(h, Direction::Original, &syn, 0),
        TrackVerdict::Accept
    );
    let mut synack = tcp(tf::SYN | tf::ACK, 9000, 1001, 0);
    synack.wscale = Some(0);
    synack.window = 1000;
    assert_eq!(
        t.track(h, Direction::Reply, &synack, 0),
        TrackVerdict::Accept
    );
    let mut ack = tcp(tf::ACK, 1001, 9001, 0);
    ack.window = 500; // scaled by 2: the reply side may send up to 9001 + 2000
    assert_eq!(
        t.track(h, Direction::Original, &ack, 0),
        TrackVerdict::Accept
    );
    // original may send up to 1001 + 1000 (the reply side's window, scale 0)
    let orig = |seq, len| PacketInfo {
        window: 500,
        ..tcp(tf::ACK, seq, 9001, len)
    };
    assert_eq!(
        t.track(h, Direction::Original, &orig(1001, 1000), 0),
        TrackVerdict::Accept
    );
    assert_eq!(
        t.track(h, Direction::Original, &orig(1500, 1000), 0),
        TrackVerdict::Drop(TrackError::OutOfWindow)
    );
    let mut r = tcp(tf::ACK, 9001, 2001, 2000);
    r.window = 1000;
    assert_eq!(t.track(h, Direction::Reply, &r, 0), TrackVerdict::Accept);
    assert_eq!(
        t.track(h, Direction::Reply, &tcp(tf::ACK, 9001 + 2001, 2001, 0), 0),
        TrackVerdict::Drop(TrackError::OutOfWindow)
    );
    // A blind RST far from the window is refused; one at the edge is taken.
    assert_eq!(
        t.track(h, Direction::Reply, &tcp(tf::RST, 0x8000_0000, 0, 0), 0),
        TrackVerdict::Drop(TrackError::OutOfWindow)
    );
    assert_eq!(t.flow(h).unwrap().state(), FlowState::TcpEstablished);
    assert_eq!(
        t.track(h, Direction::Reply, &tcp(tf::RST, 11001, 0, 0), 0),
        TrackVerdict::Accept
    );
    assert_eq!(t.flow(h).unwrap().state(), FlowState::TcpClose);
}

#[test]
fn sweep_expires_without_lookups() {
    let mut t = table(1000);
    for i in 0..1000 {
        let h = t.insert(&key(i), RuleId(0), 0, 0).unwrap();
        t.track(h.handle, h.dir, &tcp(tf::SYN, 1, 0, 0), 0);
    }
    assert_eq!(t.len(), 1000);
    assert_eq!(
        t.expire_burst(10 * SEC, 1000),
        0,
        "nothing is old enough yet"
    );
    let mut n = 0;
    for _ in 0..20 {
        n += t.expire_burst(200 * SEC, 64);
    }
    assert_eq!(n, 1000);
    assert!(t.is_empty());
    assert_eq!(t.stats().expired, 1000);
}

#[test]
fn syn_flood_of_ten_times_capacity_does_not_evict_established_flows() {
    let cap = 4096;
    let mut t = table(cap);
    let established: Vec<FlowKey> = (0..cap / 2).map(key).collect();
    for k in &established {
        establish(&mut t, k, 0);
    }
    let mut refused = 0;
    for i in 0..10 * cap {
        let b = i.to_be_bytes();
        let k = FlowKey::v4(
            [172, b[1], b[2], b[3]],
            [192, 168, 0, 1],
            proto::TCP,
            40000,
            80,
        );
        match t.insert(&k, RuleId(1), 1, SEC) {
            Ok(h) => assert_eq!(
                t.track(h.handle, h.dir, &tcp(tf::SYN, i, 0, 0), SEC),
                TrackVerdict::Accept
            ),
            Err(InsertError::TableFull) => refused += 1,
        }
        assert!(t.len() <= cap as usize);
    }
    let s = t.stats();
    assert!(s.evictions > 0, "{s:?}");
    assert_eq!(s.insert_failures, refused);
    for k in &established {
        let hit = t.lookup(k, 2 * SEC).expect("established flow survived");
        assert_eq!(
            t.flow(hit.handle).unwrap().state(),
            FlowState::TcpEstablished
        );
        assert_eq!(
            t.track(hit.handle, hit.dir, &tcp(tf::ACK, 101, 5001, 10), 2 * SEC),
            TrackVerdict::Accept
        );
    }
}

#[test]
fn full_of_assured_flows_refuses_new_ones() {
    let mut t = table(64);
    for i in 0..64 {
        establish(&mut t, &key(i), 0);
    }
    assert_eq!(
        t.insert(&key(1000), RuleId(0), 0, SEC),
        Err(InsertError::TableFull)
    );
    // but an expired one is recycled
    let far = 432_001 * SEC;
    assert!(t.insert(&key(1000), RuleId(0), 0, far).is_ok());
}

#[test]
fn closed_connections_make_room() {
    let mut t = table(64);
    for i in 0..64 {
        let h = establish(&mut t, &key(i), 0);
        t.track(h, Direction::Original, &tcp(tf::RST, 101, 0, 0), 0);
        assert_eq!(t.flow(h).unwrap().state(), FlowState::TcpClose);
    }
    assert!(t.insert(&key(1000), RuleId(0), 0, SEC).is_ok());
    assert_eq!(t.stats().evictions, 1);
}

#[test]
fn memory_per_flow_is_within_budget() {
    let t = table(1_000_000);
    let s = t.stats();
    let per = s.memory_bytes as f64 / f64::from(s.capacity);
    assert!(per <= 96.0, "{per} bytes per flow");
}

#[test]
fn bad_config_is_refused() {
    assert_eq!(
        FlowTable::new(&FlowConfig {
            capacity: 0,
            ..Default::default()
        })
        .err(),
        Some(FlowConfigError::Capacity(0))
    );
    let mut c = FlowConfig::default();
    c.timeouts.udp_secs = 0;
    assert!(matches!(
        FlowTable::new(&c).err(),
        Some(FlowConfigError::Timeout { name: "udp", .. })
    ));
}

#[test]
fn clear_empties_everything() {
    let mut t = table(32);
    for i in 0..32 {
        establish(&mut t, &key(i), 0);
    }
    t.clear();
    assert!(t.is_empty());
    assert_eq!(t.iter().count(), 0);
    for i in 0..32 {
        assert!(t.lookup(&key(i), 0).is_none());
        establish(&mut t, &key(i), 0);
    }
}

/// Strictness is per flow: in one table (default liberal), a flow admitted as strict refuses a
/// segment beyond the peer's window while a liberal one takes the same segment; re-admitting
/// flips it, and the table default still applies to plain `insert`.
#[test]
fn strictness_follows_the_admitting_rule_per_flow() {
    let mut t = table(16);
    let adm = |rule, strict_tcp| Admission {
        rule: RuleId(rule),
        generation: 1,
        strict_tcp,
    };
    // The reply side advertises 1000 bytes from 1001 in its SYN-ACK.
    let open = |t: &mut FlowTable, k: &FlowKey, a: &Admission| {
        let h = t.insert_admitted(k, a, 0).unwrap().handle;
        assert_eq!(
            t.track(h, Direction::Original, &tcp(tf::SYN, 1000, 0, 0), 0),
            TrackVerdict::Accept
        );
        let synack = PacketInfo {
            window: 1000,
            ..tcp(tf::SYN | tf::ACK, 9000, 1001, 0)
        };
        assert_eq!(
            t.track(h, Direction::Reply, &synack, 0),
            TrackVerdict::Accept
        );
        assert_eq!(
            t.track(h, Direction::Original, &tcp(tf::ACK, 1001, 9001, 0), 0),
            TrackVerdict::Accept
        );
        h
    };
    let beyond = tcp(tf::ACK, 1500, 9001, 1000); // ends at 2500 > 2001
    let strict = open(&mut t, &key(1), &adm(1, true));
    let liberal = open(&mut t, &key(2), &adm(2, false));
    assert!(t.flow(strict).unwrap().is_strict_tcp());
    assert!(!t.flow(liberal).unwrap().is_strict_tcp());
    assert_eq!(
        t.track(strict, Direction::Original, &beyond, 0),
        TrackVerdict::Drop(TrackError::OutOfWindow)
    );
    assert_eq!(
        t.track(liberal, Direction::Original, &beyond, 0),
        TrackVerdict::Accept
    );
    // Re-admitted as strict (e.g. the rule changed on a policy update): the liberal flow
    // learned its window edges all along, so it is checked from the next segment on.
    t.readmit(liberal, &adm(3, true));
    let f = t.flow(liberal).unwrap();
    assert!(f.is_strict_tcp() && f.rule() == RuleId(3));
    assert_eq!(
        t.track(
            liberal,
            Direction::Original,
            &tcp(tf::ACK, 9000, 9001, 10),
            0
        ),
        TrackVerdict::Drop(TrackError::OutOfWindow)
    );
    // And back: the strict flow re-admitted as liberal takes the out-of-window segment.
    t.readmit(strict, &adm(4, false));
    assert_eq!(
        t.track(strict, Direction::Original, &beyond, 0),
        TrackVerdict::Accept
    );
    // set_admission keeps strictness; plain insert uses the table default (liberal here).
    t.set_admission(liberal, RuleId(5), 2);
    assert!(t.flow(liberal).unwrap().is_strict_tcp());
    let h = t.insert(&key(3), RuleId(6), 1, 0).unwrap().handle;
    assert!(!t.flow(h).unwrap().is_strict_tcp());
    let mut strict_default = FlowTable::new(&FlowConfig {
        capacity: 16,
        strict_tcp: true,
        ..FlowConfig::default()
    })
    .unwrap();
    let h = strict_default
        .insert(&key(3), RuleId(6), 1, 0)
        .unwrap()
        .handle;
    assert!(strict_default.flow(h).unwrap().is_strict_tcp());
}

/// Prepared keys (hashed once, as the worker does right after parsing) find the same flows as
/// plain burst and single lookups, and `insert_prepared` files a flow where all of them look.
#[test]
fn prepared_lookups_and_inserts_agree_with_the_plain_ones() {
    let mut t = table(4096);
    let adm = Admission {
        rule: RuleId(3),
        generation: 1,
        strict_tcp: false,
    };
    // Half inserted through prepared keys, half plainly; lookups in both directions.
    for i in 0..1000u32 {
        let k = key(i);
        if i % 2 == 0 {
            let pk = t.prepare(&k);
            t.insert_prepared(&pk, &adm, 0).unwrap();
        } else {
            t.insert_admitted(&k, &adm, 0).unwrap();
        }
    }
    let keys: Vec<FlowKey> = (0..1200u32)
        .map(|i| {
            if i % 3 == 0 {
                key(i).reversed()
            } else {
                key(i)
            }
        })
        .collect();
    let prepared: Vec<PreparedKey> = keys.iter().map(|k| t.prepare(k)).collect();
    let mut a = vec![None; keys.len()];
    let mut b = vec![None; keys.len()];
    t.lookup_prepared_burst(&prepared, 0, &mut a);
    t.lookup_burst(&keys, 0, &mut b);
    assert_eq!(a, b);
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(a[i], t.lookup(k, 0), "key {i}");
        assert_eq!(a[i].is_some(), i < 1000);
        if let Some(h) = a[i] {
            let want = if i % 3 == 0 {
                Direction::Reply
            } else {
                Direction::Original
            };
            assert_eq!(h.dir, want);
        }
    }
    // Inserting an existing key through a prepared key returns the flow that is there.
    let pk = t.prepare(&key(10).reversed());
    let h = t.insert_prepared(&pk, &adm, 0).unwrap();
    assert_eq!(Some(h), t.lookup(&key(10).reversed(), 0));
    assert_eq!(t.len(), 1000);
}

/// `prepare_v4` (the parser's plain-IPv4 fast path) gives exactly the prepared key of the
/// general `prepare` of the same `FlowKey::v4` (compact key, hash, home bucket, order),
/// over random endpoints including equal addresses and equal endpoints, and a prepared key
/// of either family gives back the packet's key.
#[test]
fn prepare_v4_agrees_with_the_general_path() {
    let t = table(4096);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..20_000u32 {
        let r = next();
        let src = (r as u32).to_be_bytes();
        // Equal addresses (ordered by port), then equal endpoints, now and then.
        let dst = match round % 7 {
            0 => src,
            _ => ((r >> 32) as u32).to_be_bytes(),
        };
        let (sp, dp) = (next() as u16, next() as u16);
        let dp = if round % 11 == 0 { sp } else { dp };
        let pr = [proto::TCP, proto::UDP][round as usize % 2];
        let k = FlowKey::v4(src, dst, pr, sp, dp);
        let fast = t.prepare_v4(src, dst, pr, sp, dp);
        assert_eq!(fast, t.prepare(&k), "{k}");
        assert_eq!(fast.packet_key(), k);
        let mut a6 = [[0u8; 16]; 2];
        for a in &mut a6 {
            a[..8].copy_from_slice(&next().to_le_bytes());
            a[8..].copy_from_slice(&next().to_le_bytes());
        }
        let k6 = FlowKey::v6(a6[0], a6[1], pr, sp, dp).with_segment(round);
        assert_eq!(t.prepare(&k6).packet_key(), k6);
        assert_eq!(
            t.prepare(&k.with_segment(round)).packet_key(),
            k.with_segment(round)
        );
    }
}

/// IPv6 keys that share an IPv4 flow's last address bytes, ports and protocol (its compact
/// key) are not that flow: one address IPv4-mapped and the other not, IPv4-compatible
/// (`::a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`) forms. Each is its own flow next to the
/// IPv4 one, found, tracked and removed on its own. (An IPv6 packet with IPv4-mapped
/// addresses on both sides never gets here: the parser refuses it.)
#[test]
fn ipv6_keys_never_match_an_ipv4_flow() {
    use rampart_wire::map_v4;
    let mut t = table(64);
    let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let k4 = FlowKey::v4(a, b, proto::TCP, 40000, 80);
    let h4 = establish(&mut t, &k4, 0);
    let compat = |v: [u8; 4]| {
        let mut x = [0u8; 16];
        x[12..].copy_from_slice(&v);
        x
    };
    let nat64 = |v: [u8; 4]| {
        let mut x = compat(v);
        x[..4].copy_from_slice(&[0, 0x64, 0xff, 0x9b]);
        x
    };
    let mut near_mapped = map_v4(b);
    near_mapped[9] = 1;
    let v6_keys = [
        FlowKey::v6(map_v4(a), compat(b), proto::TCP, 40000, 80),
        FlowKey::v6(compat(a), map_v4(b), proto::TCP, 40000, 80),
        FlowKey::v6(map_v4(a), near_mapped, proto::TCP, 40000, 80),
        FlowKey::v6(compat(a), compat(b), proto::TCP, 40000, 80),
        FlowKey::v6(nat64(a), nat64(b), proto::TCP, 40000, 80),
    ];
    for k in &v6_keys {
        assert_eq!(t.lookup(k, 0), None, "{k}");
        assert_eq!(t.lookup(&k.reversed(), 0), None, "{k}");
    }
    let handles: Vec<FlowHandle> = v6_keys.iter().map(|k| establish(&mut t, k, 0)).collect();
    assert_eq!(t.len(), 1 + v6_keys.len());
    for (k, &h) in v6_keys.iter().zip(&handles) {
        assert_ne!(h, h4);
        assert_eq!(t.flow(h).unwrap().key(), *k);
        assert_eq!(t.lookup(k, 0).map(|x| x.handle), Some(h));
        let pk = [t.prepare(&k.reversed())];
        let mut left = [Left::EMPTY];
        let done = t.lookup_track_burst(
            &pk,
            &[tcp(tf::ACK, 1, 1, 0)],
            None,
            |_, _| false,
            0,
            &mut left,
        );
        assert_eq!((done.accepted, done.left), (1, 0), "{k}");
        assert_eq!(t.flow(h).unwrap().packets(Direction::Reply), 2);
    }
    assert_eq!(t.flow(h4).unwrap().key(), k4);
    assert_eq!(t.flow(h4).unwrap().packets(Direction::Reply), 1);
    for &h in &handles {
        assert!(t.remove(h));
    }
    assert_eq!(t.lookup(&k4, 0).map(|x| x.handle), Some(h4));
    assert!(v6_keys.iter().all(|k| t.lookup(k, 0).is_none()));
    assert!(t.remove(h4));
    assert!(t.is_empty());
}

/// New flows after a burst lookup missed them: `insert_after_miss` creates each once, also when
/// one burst holds two first packets of the same flow (either direction), among more first
/// packets than its filter of inserted hashes tells apart.
#[test]
fn insert_after_miss_creates_each_flow_once() {
    let mut t = table(4096);
    let adm = Admission {
        rule: RuleId(1),
        generation: 1,
        strict_tcp: false,
    };
    // A burst of 100 first packets: 60 distinct flows, some seen twice, some from both ends.
    let keys: Vec<FlowKey> = (0..100u32)
        .map(|i| match i % 5 {
            3 => key(i - 1),
            4 => key(i - 2).reversed(),
            _ => key(i),
        })
        .collect();
    let prepared: Vec<PreparedKey> = keys.iter().map(|k| t.prepare(k)).collect();
    let mut out = vec![None; keys.len()];
    t.lookup_prepared_burst(&prepared, 0, &mut out);
    assert!(out.iter().all(Option::is_none));
    let mut handles = Vec::new();
    for pk in &prepared {
        handles.push(t.insert_after_miss(pk, &adm, 0).unwrap().handle);
    }
    assert_eq!(t.len(), 60);
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            t.lookup(k, 0).map(|h| h.handle),
            Some(handles[i]),
            "packet {i}"
        );
    }
    // The next burst starts a fresh list: its misses insert, its hits were never inserted.
    let more: Vec<PreparedKey> = (100..110u32).map(|i| t.prepare(&key(i))).collect();
    let mut out = vec![None; more.len()];
    t.lookup_prepared_burst(&more, 0, &mut out);
    for pk in &more {
        t.insert_after_miss(pk, &adm, 0).unwrap();
    }
    assert_eq!(t.len(), 70);
}

/// `open_after_miss` is `insert_after_miss` followed by `track` of the same packet: on twin
/// tables fed the same bursts (first packets of every kind, refused ones included, repeated
/// and reversed keys within a burst, a table small enough to evict, time moving on so flows
/// expire), every result, every counter and every flow agree.
#[test]
fn open_after_miss_is_insert_then_track() {
    for (loose, strict) in [(false, false), (true, false), (false, true), (true, true)] {
        let cfg = FlowConfig {
            capacity: 64,
            loose_tcp_pickup: loose,
            strict_tcp: strict,
            ..FlowConfig::default()
        };
        let (mut a, mut b) = (FlowTable::new(&cfg).unwrap(), FlowTable::new(&cfg).unwrap());
        let mut x = 0x2545_f491u32;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let protos = [proto::TCP, proto::TCP, proto::UDP, proto::ICMP, 47];
        let tcp_flags = [
            tf::SYN,
            tf::SYN,
            tf::ACK,
            tf::ACK | tf::PSH,
            tf::SYN | tf::ACK,
            tf::RST,
            tf::FIN | tf::ACK,
            0,
            tf::SYN | tf::FIN,
        ];
        let mut now = SEC;
        for burst in 0..200u32 {
            now += SEC * u64::from(next() % 20);
            let n = 1 + next() as usize % 40;
            let mut keys = Vec::with_capacity(n);
            let mut pkts = Vec::with_capacity(n);
            for j in 0..n {
                let pr = protos[next() as usize % protos.len()];
                let i = next() % 300;
                let k = FlowKey::v4(
                    [10, 0, (i >> 8) as u8, i as u8],
                    [192, 168, 0, 1],
                    pr,
                    1000 + (i % 7) as u16,
                    80,
                );
                // Now and then a packet repeats an earlier key of the burst, or its reverse.
                let k = match (j, next() % 6) {
                    (1.., 0) => keys[next() as usize % j],
                    (1.., 1) => FlowKey::reversed(&keys[next() as usize % j]),
                    _ => k,
                };
                let is_request = next() % 2 == 0;
                pkts.push(PacketInfo {
                    proto: k.proto,
                    tcp_flags: tcp_flags[next() as usize % tcp_flags.len()],
                    seq: next(),
                    ack: next(),
                    window: next() as u16,
                    wscale: [None, Some(3)][next() as usize % 2],
                    payload_len: (next() % 100) as u16,
                    frame_len: 64 + (next() % 100) as u16,
                    icmp_request: k.proto == proto::ICMP && is_request,
                    icmp_reply: k.proto == proto::ICMP && !is_request,
                });
                keys.push(k);
            }
            let (pa, pb): (Vec<PreparedKey>, Vec<PreparedKey>) =
                keys.iter().map(|k| (a.prepare(k), b.prepare(k))).unzip();
            let (mut ha, mut hb) = (vec![None; n], vec![None; n]);
            a.lookup_prepared_burst(&pa, now, &mut ha);
            b.lookup_prepared_burst(&pb, now, &mut hb);
            assert_eq!(ha, hb);
            for j in 0..n {
                let adm = Admission {
                    rule: RuleId(burst),
                    generation: u64::from(burst),
                    strict_tcp: next() % 2 == 0,
                };
                let (ra, rb) = match ha[j] {
                    Some(h) => (
                        Ok((h, a.track(h.handle, h.dir, &pkts[j], now))),
                        Ok((h, b.track(h.handle, h.dir, &pkts[j], now))),
                    ),
                    None => (
                        a.insert_after_miss(&pa[j], &adm, now)
                            .map(|h| (h, a.track(h.handle, h.dir, &pkts[j], now))),
                        b.open_after_miss(&pb[j], &adm, &pkts[j], now),
                    ),
                };
                assert_eq!(ra, rb, "burst {burst} packet {j}: {:?}", pkts[j]);
            }
            assert_eq!(a.stats(), b.stats(), "burst {burst}");
            assert_eq!(listing(&a, now), listing(&b, now), "burst {burst}");
            a.expire_burst(now, 8);
            b.expire_burst(now, 8);
        }
        let s = b.stats();
        assert!(s.evictions > 0 && s.removed > 0 && s.expired > 0, "{s:?}");
    }
}

/// Before any burst lookup the table knows nothing of what was inserted: `insert_after_miss`
/// and `open_after_miss` still search, and find the flow that is there.
#[test]
fn after_miss_inserts_search_before_the_first_burst_lookup() {
    let mut t = table(64);
    let adm = Admission {
        rule: RuleId(1),
        generation: 1,
        strict_tcp: false,
    };
    let h = t.insert(&key(1), RuleId(1), 1, 0).unwrap();
    let syn = tcp(tf::SYN, 0, 0, 0);
    assert_eq!(t.track(h.handle, h.dir, &syn, 0), TrackVerdict::Accept);
    let pk = t.prepare(&key(1).reversed());
    let again = t.insert_after_miss(&pk, &adm, 0).unwrap();
    assert_eq!((again.handle, again.dir), (h.handle, Direction::Reply));
    let syn_ack = tcp(tf::SYN | tf::ACK, 1, 1, 0);
    let (opened, v) = t.open_after_miss(&pk, &adm, &syn_ack, 0).unwrap();
    assert_eq!((opened.handle, v), (h.handle, TrackVerdict::Accept));
    assert_eq!(t.flow(h.handle).unwrap().state(), FlowState::TcpSynRecv);
    assert_eq!(t.len(), 1);
}

/// `lookup_track_burst` is `lookup_prepared_burst` followed by `track_admitted_under` (or
/// `track`, without a generation) of each hit in key order, with the untracked rest handed
/// back: on twin tables fed the same bursts (every kind of segment, flows of older
/// generations, records left `New` by a bare insert, repeated and reversed keys in a burst,
/// flows expiring), the reference does what the caller of `lookup_track_burst` does with
/// what it leaves (track the later hits in order, re-stamp the older flows), and every
/// verdict, counter and flow agree. With a `keep` that keeps some older flows in the record
/// check, the reference is `track_admitted_under_or` with the same `keep`.
#[test]
fn lookup_track_burst_is_lookup_then_track() {
    let mut left_total = [0usize; 3];
    let mut kept_total = 0usize;
    for (loose, strict, check, keeps) in [
        (false, false, true, false),
        (true, false, true, false),
        (true, true, true, false),
        (true, true, false, false),
        (false, true, false, false),
        (false, false, true, true),
        (true, true, true, true),
        (true, true, false, true),
    ] {
        // Keeps some flows of older generations by their rule and stamp, none without
        // `keeps`; counts its answers.
        let kept = std::cell::Cell::new(0usize);
        let keep = |r: RuleId, g: u32| {
            let k = keeps && !(r.0.wrapping_mul(0x9e37_79b9) ^ g).is_multiple_of(3);
            kept.set(kept.get() + usize::from(k));
            k
        };
        let cfg = FlowConfig {
            capacity: 128,
            loose_tcp_pickup: loose,
            strict_tcp: strict,
            ..FlowConfig::default()
        };
        let (mut a, mut b) = (FlowTable::new(&cfg).unwrap(), FlowTable::new(&cfg).unwrap());
        let mut x = 0x1234_5679u32;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let protos = [
            proto::TCP,
            proto::TCP,
            proto::TCP,
            proto::UDP,
            proto::ICMP,
            47,
        ];
        let tcp_flags = [
            tf::SYN,
            tf::ACK,
            tf::ACK,
            tf::ACK | tf::PSH,
            tf::SYN | tf::ACK,
            tf::RST,
            tf::FIN | tf::ACK,
            0,
            tf::SYN | tf::FIN,
        ];
        let mut now = SEC;
        let mut generation = 1u64;
        for burst in 0..300u32 {
            now += SEC * u64::from(next() % 8);
            if next() % 4 == 0 {
                generation += 1;
            }
            let n = 1 + next() as usize % BURST_MAX;
            let mut keys = Vec::with_capacity(n);
            let mut pkts = Vec::with_capacity(n);
            for j in 0..n {
                let pr = protos[next() as usize % protos.len()];
                let i = next() % 120;
                let k = FlowKey::v4(
                    [10, 0, 0, i as u8],
                    [192, 168, 0, 1],
                    pr,
                    1000 + (i % 5) as u16,
                    80,
                );
                // A quarter IPv6, with the same last address bytes, ports and protocol as
                // an IPv4 key (the same compact key in the record).
                let k = if i % 4 == 3 {
                    let six = |a: [u8; 16]| {
                        let mut x = a;
                        x[..12].copy_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0]);
                        x
                    };
                    FlowKey::v6(six(k.src), six(k.dst), k.proto, k.src_port, k.dst_port)
                } else {
                    k
                };
                let k = match (j, next() % 4) {
                    (1.., 0) => keys[next() as usize % j],
                    (1.., 1) => FlowKey::reversed(&keys[next() as usize % j]),
                    _ => k,
                };
                let is_request = next() % 2 == 0;
                // Sequence numbers near a few fixed points, so strict flows see segments
                // both inside and outside their windows.
                let near = [0u32, 1 << 30, 3 << 30][next() as usize % 3];
                pkts.push(PacketInfo {
                    proto: k.proto,
                    tcp_flags: tcp_flags[next() as usize % tcp_flags.len()],
                    seq: near.wrapping_add(next() % 200_000),
                    ack: near.wrapping_add(next() % 200_000),
                    window: next() as u16,
                    wscale: [None, Some(2)][next() as usize % 2],
                    payload_len: (next() % 100) as u16,
                    frame_len: 64 + (next() % 100) as u16,
                    icmp_request: k.proto == proto::ICMP && is_request,
                    icmp_reply: k.proto == proto::ICMP && !is_request,
                });
                keys.push(k);
            }
            let gen_arg = check.then_some(generation);
            let (pa, pb): (Vec<PreparedKey>, Vec<PreparedKey>) =
                keys.iter().map(|k| (a.prepare(k), b.prepare(k))).unzip();
            // Reference: lookup, then track in order (what the worker did before).
            let mut ha = vec![None; n];
            a.lookup_prepared_burst(&pa, now, &mut ha);
            let mut want: Vec<(usize, Option<TrackVerdict>)> = Vec::new();
            for j in 0..n {
                if let Some(h) = ha[j] {
                    let t = match gen_arg {
                        Some(g) => {
                            a.track_admitted_under_or(h.handle, h.dir, g, keep, &pkts[j], now)
                        }
                        None => Some(a.track(h.handle, h.dir, &pkts[j], now)),
                    };
                    let t = t.or_else(|| {
                        // An older flow: re-stamped (as a kept revalidation), then tracked.
                        a.set_admission(h.handle, RuleId(burst), generation);
                        if a.flow(h.handle).is_some() {
                            Some(a.track(h.handle, h.dir, &pkts[j], now))
                        } else {
                            None
                        }
                    });
                    want.push((j, t));
                } else {
                    want.push((j, None));
                }
            }
            // Fused, and what its caller does with the keys it leaves.
            let mut left = vec![Left::EMPTY; n];
            let kept_before = kept.get();
            let done = b.lookup_track_burst(&pb, &pkts, gen_arg, keep, now, &mut left);
            kept_total += kept.get() - kept_before;
            let mut got: Vec<(usize, Option<TrackVerdict>)> = Vec::new();
            let mut accepted = 0;
            let mut at = 0;
            for (j, pkt) in pkts.iter().enumerate() {
                if at < done.left && usize::from(left[at].key) == j {
                    let t = match left[at].outcome {
                        Outcome::Refused(e) => {
                            left_total[0] += 1;
                            Some(TrackVerdict::Drop(e))
                        }
                        Outcome::Miss => None,
                        Outcome::Hit(h) => {
                            left_total[1] += 1;
                            let t = match gen_arg {
                                Some(g) => {
                                    b.track_admitted_under_or(h.handle, h.dir, g, keep, pkt, now)
                                }
                                None => Some(b.track(h.handle, h.dir, pkt, now)),
                            };
                            t.or_else(|| {
                                b.set_admission(h.handle, RuleId(burst), generation);
                                if b.flow(h.handle).is_some() {
                                    Some(b.track(h.handle, h.dir, pkt, now))
                                } else {
                                    None
                                }
                            })
                        }
                    };
                    got.push((j, t));
                    at += 1;
                } else {
                    accepted += 1;
                    left_total[2] += 1;
                    got.push((j, Some(TrackVerdict::Accept)));
                }
            }
            assert_eq!(at, done.left, "left in key order");
            assert_eq!(accepted, done.accepted);
            // A miss is reported where the reference missed, and vice versa.
            for j in 0..n {
                let missed_b = got[j].1.is_none()
                    && left[..done.left]
                        .iter()
                        .any(|l| usize::from(l.key) == j && l.outcome == Outcome::Miss);
                assert_eq!(ha[j].is_none(), missed_b, "burst {burst} key {j}");
            }
            assert_eq!(want, got, "burst {burst} (loose {loose} strict {strict})");
            // New flows for the misses (one in four inserted without tracking: left `New`).
            for j in 0..n {
                if ha[j].is_none() {
                    let adm = Admission {
                        rule: RuleId(burst),
                        generation,
                        strict_tcp: next() % 2 == 0,
                    };
                    if next() % 4 == 0 {
                        let ra = a.insert_after_miss(&pa[j], &adm, now);
                        let rb = b.insert_after_miss(&pb[j], &adm, now);
                        assert_eq!(ra, rb);
                    } else {
                        let ra = a.open_after_miss(&pa[j], &adm, &pkts[j], now);
                        let rb = b.open_after_miss(&pb[j], &adm, &pkts[j], now);
                        assert_eq!(ra, rb);
                    }
                }
            }
            assert_eq!(a.stats(), b.stats(), "burst {burst}");
            assert_eq!(listing(&a, now), listing(&b, now), "burst {burst}");
            a.expire_burst(now, 8);
            b.expire_burst(now, 8);
        }
    }
    // Every kind of outcome was exercised.
    assert!(left_total.iter().all(|&c| c > 50), "{left_total:?}");
    assert!(
        kept_total > 50,
        "only {kept_total} flows kept in the record check"
    );
}
