//! The whole pipeline on plain frames: real parser, real flow table, real compiled rulesets
//! published through the real RCU handle.

use super::*;
use crate::worker::{PortIndex, WorkerId};
use rampart_classify::{Ruleset, TableHandle};
use rampart_config::policy::PolicyDocument;
use rampart_flow::TrackError;
use rampart_wire::tcp::flags;
use rampart_wire::{
    build_frame, parse, parse_plain, EthernetRepr, IcmpRepr, IpSpec, L4Repr, ParseError, TcpRepr,
};
use std::net::{IpAddr, Ipv4Addr};

const HZ: u64 = 1_000_000_000; // 1 tick = 1 ns keeps the arithmetic readable
const INSIDE: u16 = 0;
const OUTSIDE: u16 = 1;
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);

fn ruleset(json: &str) -> Arc<Ruleset> {
    let doc = PolicyDocument::from_json_slice(json.as_bytes()).expect("policy parses");
    let v = doc.validate_standalone().expect("policy is valid");
    Arc::new(Ruleset::compile(&v).expect("policy compiles"))
}

/// Generation `g`: clients inside may open TCP/80 and ping out; telnet is rejected, the
/// rest dropped. With `deny_web`, TCP/80 is denied instead.
fn policy(g: u64, deny_web: bool) -> Arc<Ruleset> {
    let web = if deny_web { "drop" } else { "allow" };
    policy_web(g, web, "80")
}

/// [`policy`] with rule 7's action and destination ports (`"80"` as in [`policy`]; another
/// list edits rule 7, so its flows are classified again on their next packet).
fn policy_web(g: u64, web: &str, ports: &str) -> Arc<Ruleset> {
    ruleset(&format!(
        r#"{{ "generation": {g}, "default_action": "drop",
             "rules": [
               {{ "id": 7, "protocol": "tcp", "destination": {{ "ports": [{ports}] }},
                  "direction": "out", "action": "{web}", "log": true }},
               {{ "id": 8, "protocol": "tcp", "destination": {{ "ports": [23] }}, "action": "reject" }},
               {{ "id": 9, "protocol": "tcp", "destination": {{ "ports": [22] }}, "action": "drop",
                  "monitor": true }},
               {{ "id": 10, "protocol": "tcp", "destination": {{ "ports": [22] }}, "action": "allow" }},
               {{ "id": 11, "protocol": "icmp", "action": "allow" }}
             ] }}"#
    ))
}

/// An untagged IPv4 frame carrying `l4`.
fn frame(src: Ipv4Addr, dst: Ipv4Addr, l4: &L4Repr<'_>) -> Vec<u8> {
    frame_ip(IpAddr::V4(src), IpAddr::V4(dst), l4)
}

/// An untagged IPv4 or IPv6 frame carrying `l4`.
fn frame_ip(src: IpAddr, dst: IpAddr, l4: &L4Repr<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let eth = EthernetRepr {
        src: [2, 0, 0, 0, 0, 1],
        dst: [2, 0, 0, 0, 0, 2],
        outer_vlan: None,
        inner_vlan: None,
        ethertype: 0,
    };
    let ip = IpSpec { src, dst, ttl: 64 };
    let n = build_frame(&eth, &ip, l4, &mut buf).expect("frame builds");
    buf.truncate(n);
    buf
}

fn tcp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    fl: u8,
    seq: u32,
    ack: u32,
) -> Vec<u8> {
    let l4 = L4Repr::Tcp(TcpRepr {
        src_port: sport,
        dst_port: dport,
        seq,
        ack,
        flags: fl,
        window: 65535,
        window_scale: None,
        payload: &[],
    });
    frame(src, dst, &l4)
}

fn ping(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    frame(src, dst, &L4Repr::Icmp(IcmpRepr::echo(8, 7, 1, b"ping")))
}

struct Rig {
    handle: TableHandle,
    fw: Firewall,
    log: LogQueue,
    now: u64,
}

impl Rig {
    fn new(revalidate: bool) -> Self {
        let handle = TableHandle::new(policy(1, false));
        let mut settings = FirewallSettings::paired(HZ);
        settings.revalidate_flows = revalidate;
        settings.flow.capacity = 1024;
        let log = log_queue(16);
        let fw = Firewall::new(settings, handle.register_reader(), Some(log.clone())).unwrap();
        Rig {
            handle,
            fw,
            log,
            now: 1_000,
        }
    }

    /// One burst from `port`; returns the verdicts.
    fn burst(&mut self, port: u16, frames: &[Vec<u8>]) -> Vec<Verdict> {
        self.now += 1_000;
        let ctx = BurstCtx {
            worker: WorkerId(0),
            ingress: PortIndex(port),
            egress: PortIndex(port ^ 1),
            now_tsc: self.now,
        };
        let slices: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        let mut verdicts = vec![Verdict::Forward; frames.len()];
        self.fw.decide(&ctx, &slices, &mut verdicts);
        self.fw.tick(self.now);
        verdicts
    }

    fn one(&mut self, port: u16, frame: Vec<u8>) -> Verdict {
        self.burst(port, &[frame])[0]
    }

    fn c(&self) -> FirewallSnapshot {
        self.fw.counters().snapshot()
    }
}

/// A full handshake from inside to SERVER:80; returns the client's next sequence number.
fn open_web(r: &mut Rig, sport: u16) -> (u32, u32) {
    open_tcp(r, sport, 80)
}

/// A full handshake from inside to SERVER:`dport`; returns the client's next sequence number.
fn open_tcp(r: &mut Rig, sport: u16, dport: u16) -> (u32, u32) {
    assert_eq!(
        r.one(
            INSIDE,
            tcp(CLIENT, SERVER, sport, dport, flags::SYN, 100, 0)
        ),
        Verdict::Forward
    );
    assert_eq!(
        r.one(
            OUTSIDE,
            tcp(
                SERVER,
                CLIENT,
                dport,
                sport,
                flags::SYN | flags::ACK,
                500,
                101
            )
        ),
        Verdict::Forward,
        "the reply direction finds the flow the SYN created"
    );
    assert_eq!(
        r.one(
            INSIDE,
            tcp(CLIENT, SERVER, sport, dport, flags::ACK, 101, 501)
        ),
        Verdict::Forward
    );
    (101, 501)
}

#[test]
fn allowed_flow_carries_both_directions_and_records_its_rule() {
    let mut r = Rig::new(true);
    open_web(&mut r, 40000);
    let c = r.c();
    assert_eq!(c.new_flows, 1);
    assert_eq!(c.established, 2);
    assert_eq!(c.flows, 1);
    let (_, flow) = r.fw.flows().iter().next().expect("one flow");
    assert_eq!(flow.rule(), RuleId(7));
    assert!(flow.admitted_under(1));
    // Rule 7 logs: one record for the flow's first packet only.
    let rec = r.log.pop().expect("a log record");
    assert_eq!(
        (rec.rule.0, rec.generation, rec.action),
        (7, 1, Action::Allow)
    );
    // The key as the SYN carried it (the fast path writes it only for the record).
    let syn = tcp(CLIENT, SERVER, 40000, 80, flags::SYN, 100, 0);
    assert_eq!(rec.key, parse(&syn, &ParseConfig::default()).unwrap().key);
    assert!(r.log.pop().is_none());
}

/// The classifier's fields of a fast-path frame, taken from its prepared key, are the ones
/// the full parse gives: either endpoint order (canonical or swapped), TCP and UDP, both
/// directions.
#[test]
fn fast_path_fields_from_the_key_match_the_full_parse() {
    let table = FlowTable::new(&FlowConfig::default()).unwrap();
    let cfg = ParseConfig::default();
    let udp = |src, dst, sport, dport| {
        frame(
            src,
            dst,
            &L4Repr::Udp(rampart_wire::UdpRepr {
                src_port: sport,
                dst_port: dport,
                payload: b"q",
            }),
        )
    };
    let frames = [
        tcp(CLIENT, SERVER, 40000, 80, flags::SYN, 1, 0),
        tcp(SERVER, CLIENT, 80, 40000, flags::SYN | flags::ACK, 1, 2),
        tcp(CLIENT, CLIENT, 9, 9, flags::ACK, 1, 2),
        udp(CLIENT, SERVER, 5353, 53),
        udp(SERVER, CLIENT, 53, 5353),
        udp(SERVER, SERVER, 53, 5353),
    ];
    for f in &frames {
        let pl = parse_plain(f, &cfg).expect("a fast-path frame");
        let pk = table.prepare_v4(pl.src, pl.dst, pl.proto, pl.src_port, pl.dst_port);
        let full = parse(f, &cfg).unwrap();
        for dir in [PacketDirection::In, PacketDirection::Out] {
            assert_eq!(plain_fields(&pk.packet_key(), dir), fields_of(&full, dir));
        }
    }
}

#[test]
fn inbound_syn_is_denied_by_direction_and_default() {
    let mut r = Rig::new(true);
    // The web rule only applies outbound; inbound falls to the default drop.
    let v = r.one(OUTSIDE, tcp(SERVER, CLIENT, 40000, 80, flags::SYN, 1, 0));
    assert_eq!(v, Verdict::Drop(DropReason::Policy));
    assert_eq!(r.c().denied, 1);
    assert_eq!(r.c().flows, 0);
}

#[test]
fn mid_stream_segment_without_a_flow_is_dropped_unclassified() {
    let mut r = Rig::new(true);
    let v = r.one(INSIDE, tcp(CLIENT, SERVER, 40000, 80, flags::ACK, 1, 1));
    assert_eq!(v, Verdict::Drop(DropReason::NoFlow));
    assert_eq!(r.c().no_flow, 1);
    assert_eq!(r.c().new_flows, 0);
}

#[test]
fn reject_answers_with_a_rst_to_the_sender() {
    let mut r = Rig::new(true);
    let syn = tcp(CLIENT, SERVER, 40001, 23, flags::SYN, 1000, 0);
    assert_eq!(r.one(INSIDE, syn), Verdict::Reply);
    let rst = parse(r.fw.reply(0), &ParseConfig::default()).expect("the reply parses");
    assert_eq!(rst.key.src_ip(), IpAddr::V4(SERVER));
    assert_eq!(rst.key.dst_ip(), IpAddr::V4(CLIENT));
    assert_eq!((rst.key.src_port, rst.key.dst_port), (23, 40001));
    assert_eq!(rst.tcp.flags & flags::RST, flags::RST);
    assert_eq!(rst.tcp.ack, 1001, "RST+ACK acknowledges the SYN");
    assert_eq!(r.c().rejected, 1);
}

#[test]
fn monitor_rule_is_counted_but_not_enforced() {
    let mut r = Rig::new(true);
    let v = r.one(INSIDE, tcp(CLIENT, SERVER, 40002, 22, flags::SYN, 1, 0));
    assert_eq!(
        v,
        Verdict::Forward,
        "the monitor drop rule only counts; rule 10 allows"
    );
    assert_eq!(r.c().monitor_hits, 1);
    let (_, flow) = r.fw.flows().iter().next().unwrap();
    assert_eq!(flow.rule(), RuleId(10));
}

#[test]
fn a_new_deny_cuts_an_established_session_on_its_next_packet() {
    let mut r = Rig::new(true);
    let (seq, ack) = open_web(&mut r, 40003);
    let old = r.handle.publish(policy(2, true));
    assert_eq!(old.generation(), 1);
    let v = r.one(
        INSIDE,
        tcp(CLIENT, SERVER, 40003, 80, flags::ACK | flags::PSH, seq, ack),
    );
    assert_eq!(v, Verdict::Drop(DropReason::Policy));
    let c = r.c();
    assert_eq!((c.cut, c.flows, c.generation), (1, 0, 2));
    // And the quiescent point after that burst lets the control side finish the swap.
    r.handle
        .wait_quiescent(std::time::Duration::from_secs(1))
        .unwrap();
}

#[test]
fn an_unchanged_verdict_restamps_the_flow_with_the_new_generation() {
    let mut r = Rig::new(true);
    let (seq, ack) = open_web(&mut r, 40004);
    // Rule 7 edited (one more port): its flows are classified again, and still allowed.
    r.handle.publish(policy_web(2, "allow", "80, 8080"));
    let v = r.one(INSIDE, tcp(CLIENT, SERVER, 40004, 80, flags::ACK, seq, ack));
    assert_eq!(v, Verdict::Forward);
    let (_, flow) = r.fw.flows().iter().next().unwrap();
    assert!(flow.admitted_under(2));
    assert_eq!((r.c().revalidated, r.c().cut), (1, 0));
}

#[test]
fn an_equivalent_publish_needs_no_revalidation() {
    let mut r = Rig::new(true);
    let (seq, ack) = open_web(&mut r, 40009);
    // Generations 2 and 3 compile to the same rules as 1 (3 only turns rule 7's log off,
    // which new flows alone see): flows keep their stamp, nothing is revalidated.
    r.handle.publish(policy(2, false));
    let no_log = ruleset(&POLICY_NO_LOG.replace("GEN", "3"));
    r.handle.publish(no_log);
    assert_eq!(r.handle.current().flow_stamp(), 1);
    let seg = tcp(CLIENT, SERVER, 40009, 80, flags::ACK, seq, ack);
    assert_eq!(r.one(INSIDE, seg.clone()), Verdict::Forward);
    let reply = tcp(SERVER, CLIENT, 80, 40009, flags::ACK, ack, seq);
    assert_eq!(r.one(OUTSIDE, reply), Verdict::Forward);
    let c = r.c();
    assert_eq!((c.revalidated, c.cut, c.generation), (0, 0, 3));
    let (_, flow) = r.fw.flows().iter().next().unwrap();
    assert!(flow.admitted_under(1));
    // A publish that changes a rule gets a stamp of its own, and its deny cuts the flow.
    r.handle.publish(policy(4, true));
    assert_eq!(r.handle.current().flow_stamp(), 4);
    assert_eq!(r.one(INSIDE, seg), Verdict::Drop(DropReason::Policy));
    assert_eq!((r.c().revalidated, r.c().cut), (1, 1));
}

/// [`policy`]'s rules with rule 7 not logging; `GEN` stands for the generation.
const POLICY_NO_LOG: &str = r#"{ "generation": GEN, "default_action": "drop", "rules": [
    { "id": 7, "protocol": "tcp", "destination": { "ports": [80] }, "direction": "out",
      "action": "allow" },
    { "id": 8, "protocol": "tcp", "destination": { "ports": [23] }, "action": "reject" },
    { "id": 9, "protocol": "tcp", "destination": { "ports": [22] }, "action": "drop",
      "monitor": true },
    { "id": 10, "protocol": "tcp", "destination": { "ports": [22] }, "action": "allow" },
    { "id": 11, "protocol": "icmp", "action": "allow" } ] }"#;

#[test]
fn without_revalidation_sessions_survive_a_new_deny() {
    let mut r = Rig::new(false);
    let (seq, ack) = open_web(&mut r, 40005);
    r.handle.publish(policy(2, true));
    let v = r.one(INSIDE, tcp(CLIENT, SERVER, 40005, 80, flags::ACK, seq, ack));
    assert_eq!(v, Verdict::Forward);
    // New sessions do see the deny.
    let v = r.one(INSIDE, tcp(CLIENT, SERVER, 40006, 80, flags::SYN, 1, 0));
    assert_eq!(v, Verdict::Drop(DropReason::Policy));
}

#[test]
fn malformed_frames_are_counted_by_reason_and_never_reach_the_table() {
    let mut r = Rig::new(true);
    let mut short = tcp(CLIENT, SERVER, 1, 80, flags::SYN, 1, 0);
    short.truncate(20); // Ethernet + 6 bytes of IP
    let expect: Vec<ParseError> = [&short[..], &[][..]]
        .iter()
        .map(|f| parse(f, &ParseConfig::default()).unwrap_err())
        .collect();
    let v = r.burst(INSIDE, &[short, vec![], ping(CLIENT, SERVER)]);
    assert!(matches!(v[0], Verdict::Drop(DropReason::Malformed)));
    assert!(matches!(v[1], Verdict::Drop(DropReason::Malformed)));
    assert_eq!(
        v[2],
        Verdict::Forward,
        "a good packet in the same burst is unaffected"
    );
    let c = r.c();
    assert_eq!(c.parse.iter().sum::<u64>(), 2);
    for e in &expect {
        assert!(c.parse[e.index()] >= 1, "counted under {}", e.name());
    }
    assert_eq!(c.new_flows, 1);
}

/// An IPv6 segment whose addresses are the IPv4-mapped forms of an established IPv4
/// flow's (same ports) is not that flow's: the parser refuses it before the flow table, so
/// it is dropped as malformed and counted neither as established nor as a new flow, while
/// the IPv4 flow's next segment still passes.
#[test]
fn ipv4_mapped_ipv6_segment_does_not_ride_an_ipv4_flow() {
    let mut r = Rig::new(true);
    let (seq, ack) = open_web(&mut r, 40000);
    let mapped = |a: Ipv4Addr| IpAddr::V6(a.to_ipv6_mapped());
    let l4 = L4Repr::Tcp(TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq,
        ack,
        flags: flags::ACK,
        window: 65535,
        window_scale: None,
        payload: &[],
    });
    let buf = frame_ip(mapped(CLIENT), mapped(SERVER), &l4);
    assert_eq!(
        parse(&buf, &ParseConfig::default()).unwrap_err(),
        ParseError::Ipv6MappedAddress
    );
    let before = r.c();
    assert_eq!(r.one(INSIDE, buf), Verdict::Drop(DropReason::Malformed));
    let after = r.c();
    assert_eq!(after.established, before.established);
    assert_eq!(
        (after.new_flows, after.flows),
        (before.new_flows, before.flows)
    );
    assert_eq!(
        r.one(INSIDE, tcp(CLIENT, SERVER, 40000, 80, flags::ACK, seq, ack)),
        Verdict::Forward
    );
    assert_eq!(r.c().established, before.established + 1);
}

#[test]
fn invalid_tcp_on_a_flow_is_dropped_with_the_state_machine_reason() {
    let mut r = Rig::new(true);
    open_web(&mut r, 40007);
    // A second SYN with a different ISN on an established flow is refused by the tracker.
    let v = r.one(
        INSIDE,
        tcp(CLIENT, SERVER, 40007, 80, flags::SYN | flags::FIN, 9, 0),
    );
    assert_eq!(v, Verdict::Drop(DropReason::Conntrack));
    let total: u64 = r.c().track.iter().sum();
    assert_eq!(total, 1);
    let _ = TrackError::ALL;
}

#[test]
fn log_records_are_rate_limited() {
    let mut r = Rig::new(true);
    let syns: Vec<Vec<u8>> = (0..40u16)
        .map(|i| tcp(CLIENT, SERVER, 41000 + i, 80, flags::SYN, 1, 0))
        .collect();
    r.burst(INSIDE, &syns);
    let c = r.c();
    assert_eq!(c.new_flows, 40);
    assert_eq!(c.logs_emitted + c.logs_suppressed, 40);
    assert!(
        c.logs_emitted <= 16,
        "queue capacity bounds what is handed over"
    );
    assert!(c.logs_suppressed >= 24);
}

#[test]
fn a_reply_after_a_generation_change_is_judged_as_its_flow_not_as_a_new_connection() {
    // Only the client's direction is allowed (rule 7 is outbound). A reply arriving first
    // after a publish must keep the session: it is re-checked as the SYN that opened it.
    let mut r = Rig::new(true);
    let (seq, ack) = open_web(&mut r, 40008);
    // Rule 7 edited: the flow is classified again (as its opening SYN, which it still allows).
    r.handle.publish(policy_web(2, "allow", "80, 8080"));
    let v = r.one(
        OUTSIDE,
        tcp(SERVER, CLIENT, 80, 40008, flags::ACK, ack, seq),
    );
    assert_eq!(v, Verdict::Forward);
    assert_eq!((r.c().revalidated, r.c().cut), (1, 0));
    let (_, flow) = r.fw.flows().iter().next().unwrap();
    assert!(flow.admitted_under(2));
    assert_eq!(flow.rule(), RuleId(7));
}

fn hits(r: &Rig, id: Option<u32>) -> u64 {
    r.handle
        .rule_hits()
        .iter()
        .find(|h| h.id.map(|i| i.0) == id)
        .map_or(0, |h| h.hits)
}

#[test]
fn rule_hits_count_flows_opened_and_packets_stopped() {
    let mut r = Rig::new(true);
    // Two web flows of several packets each: two hits on rule 7, not one per packet.
    open_web(&mut r, 41000);
    open_web(&mut r, 41001);
    // Three rejected telnet SYNs (rule 8) and two defaulted (dropped) UDP packets.
    for sport in 0..3 {
        r.one(
            INSIDE,
            tcp(CLIENT, SERVER, 42000 + sport, 23, flags::SYN, 1, 0),
        );
    }
    let udp = frame(
        CLIENT,
        SERVER,
        &L4Repr::Udp(rampart_wire::UdpRepr {
            src_port: 5000,
            dst_port: 53,
            payload: b"q",
        }),
    );
    r.burst(INSIDE, &[udp.clone(), udp]);
    // SSH: monitor rule 9 counts, rule 10 admits.
    r.one(INSIDE, tcp(CLIENT, SERVER, 43000, 22, flags::SYN, 1, 0));
    assert_eq!(hits(&r, Some(7)), 2);
    assert_eq!(hits(&r, Some(8)), 3);
    assert_eq!(hits(&r, Some(9)), 1);
    assert_eq!(hits(&r, Some(10)), 1);
    assert_eq!(hits(&r, Some(11)), 0);
    assert_eq!(hits(&r, None), 2);

    // A new generation (rule 7 edited): revalidating the open web flows is not a new hit,
    // and the counts carried by id survive the swap.
    r.handle.publish(policy_web(2, "allow", "80, 8080"));
    r.one(INSIDE, tcp(CLIENT, SERVER, 41000, 80, flags::ACK, 101, 501));
    r.handle
        .wait_quiescent(std::time::Duration::from_secs(1))
        .unwrap();
    assert_eq!(r.c().revalidated, 1);
    assert_eq!(hits(&r, Some(7)), 2);
    assert_eq!(hits(&r, Some(8)), 3);
}

#[test]
fn operator_questions_are_answered_between_bursts() {
    let mut r = Rig::new(true);
    open_web(&mut r, 44000);
    let (seq, ack) = open_web(&mut r, 44001);
    open_web(&mut r, 44002);
    // 44001 carries more: it is the top flow by bytes.
    for _ in 0..3 {
        r.one(INSIDE, tcp(CLIENT, SERVER, 44001, 80, flags::ACK, seq, ack));
    }
    let inspector = r.fw.inspector();
    let reply_key = rampart_wire::FlowKey::from_ips(
        IpAddr::V4(SERVER),
        IpAddr::V4(CLIENT),
        proto::TCP,
        80,
        44002,
    );
    let asker = std::thread::spawn(move || {
        let t = std::time::Duration::from_secs(10);
        (
            inspector.ask(Question::Top(1), t),
            inspector.ask(Question::Top(10), t),
            inspector.ask(Question::Flow(reply_key), t),
            inspector.ask(
                Question::Flow(rampart_wire::FlowKey::from_ips(
                    IpAddr::V4(CLIENT),
                    IpAddr::V4(SERVER),
                    proto::TCP,
                    1,
                    80,
                )),
                t,
            ),
        )
    });
    // The worker answers only at its end of poll: keep polling (empty bursts) until done.
    while !asker.is_finished() {
        r.burst(INSIDE, &[]);
        std::thread::yield_now();
    }
    let (top1, all, found, missing) = asker.join().unwrap();
    let top1 = top1.unwrap();
    assert_eq!(top1.len(), 1);
    assert_eq!(top1[0].key.src_port, 44001);
    assert_eq!(top1[0].packets, [5, 1]);
    let all = all.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all
        .windows(2)
        .all(|w| w[0].total_bytes() >= w[1].total_bytes()));
    // Asked by its reply direction, the flow is reported as it was opened.
    let found = found.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].key.src_port, found[0].rule, found[0].state),
        (44002, RuleId(7), rampart_flow::FlowState::TcpEstablished)
    );
    assert!(missing.unwrap().is_empty());
}

#[test]
fn an_unanswered_question_times_out_and_a_late_answer_is_not_mistaken() {
    let mut r = Rig::new(true);
    open_web(&mut r, 45000);
    let inspector = r.fw.inspector();
    let short = std::time::Duration::from_millis(20);
    // Nobody polls: the question times out (and is withdrawn).
    assert_eq!(
        inspector.ask(Question::Top(5), short),
        Err(AskError::Timeout(short))
    );
    let asker = {
        let i = inspector.clone();
        std::thread::spawn(move || i.ask(Question::Top(5), std::time::Duration::from_secs(10)))
    };
    while !asker.is_finished() {
        r.burst(INSIDE, &[]);
        std::thread::yield_now();
    }
    assert_eq!(asker.join().unwrap().unwrap().len(), 1);
}

/// Rig with rule 20 (TCP/8080, strict), rule 21 (TCP/8081, liberal) and rule 22 (TCP/8082,
/// not saying: inherit); the global setting is `strict_tcp` for rule 22 and the default action.
fn strictness_rig(global_strict: bool) -> Rig {
    let handle = TableHandle::new(ruleset(
        r#"{ "generation": 1, "default_action": "allow",
             "rules": [
               { "id": 20, "protocol": "tcp", "destination": { "ports": [8080] },
                 "action": "allow", "tcp": "strict" },
               { "id": 21, "protocol": "tcp", "destination": { "ports": [8081] },
                 "action": "allow", "tcp": "liberal" },
               { "id": 22, "protocol": "tcp", "destination": { "ports": [8082] },
                 "action": "allow" }
             ] }"#,
    ));
    let mut settings = FirewallSettings::paired(HZ);
    settings.flow.capacity = 1024;
    settings.flow.strict_tcp = global_strict;
    let fw = Firewall::new(settings, handle.register_reader(), None).unwrap();
    Rig {
        handle,
        fw,
        log: log_queue(1),
        now: 1_000,
    }
}

/// A TCP segment with `len` bytes of payload and the given window.
#[allow(clippy::too_many_arguments)]
fn segment(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    fl: u8,
    seq: u32,
    ack: u32,
    window: u16,
    len: usize,
) -> Vec<u8> {
    let payload = vec![0u8; len];
    frame(
        src,
        dst,
        &L4Repr::Tcp(TcpRepr {
            src_port: sport,
            dst_port: dport,
            seq,
            ack,
            flags: fl,
            window,
            window_scale: None,
            payload: &payload,
        }),
    )
}

/// Handshake to SERVER:`dport` in which the server advertises a 1000-byte window; a client
/// segment filling that window is forwarded; returns the verdict for the next 200 bytes,
/// which lie past the server's right window edge (101 + 1000).
fn past_the_window(r: &mut Rig, sport: u16, dport: u16) -> Verdict {
    let c2s = |fl, seq, ack, len| segment(CLIENT, SERVER, sport, dport, fl, seq, ack, 65535, len);
    assert_eq!(r.one(INSIDE, c2s(flags::SYN, 100, 0, 0)), Verdict::Forward);
    let synack = segment(
        SERVER,
        CLIENT,
        dport,
        sport,
        flags::SYN | flags::ACK,
        500,
        101,
        1000,
        0,
    );
    assert_eq!(r.one(OUTSIDE, synack), Verdict::Forward);
    assert_eq!(
        r.one(INSIDE, c2s(flags::ACK, 101, 501, 0)),
        Verdict::Forward
    );
    assert_eq!(
        r.one(INSIDE, c2s(flags::ACK, 101, 501, 1000)),
        Verdict::Forward,
        "exactly the advertised window fits"
    );
    r.one(INSIDE, c2s(flags::ACK, 1101, 501, 200))
}

#[test]
fn tcp_strictness_follows_the_rule_that_admitted_the_flow() {
    let mut r = strictness_rig(false);
    // Rule 20 says strict: the segment past the window is dropped by the tracker.
    assert_eq!(
        past_the_window(&mut r, 42000, 8080),
        Verdict::Drop(DropReason::Conntrack)
    );
    assert_eq!(r.c().track[TrackError::OutOfWindow.index()], 1);
    // Rule 21 says liberal: the same segment on its flow passes.
    assert_eq!(past_the_window(&mut r, 42001, 8081), Verdict::Forward);
    // The default action (no rule) follows the global setting: liberal here...
    assert_eq!(past_the_window(&mut r, 42002, 9000), Verdict::Forward);
    // ...as does a rule that does not choose.
    assert_eq!(past_the_window(&mut r, 42005, 8082), Verdict::Forward);
    assert_eq!(r.c().track[TrackError::OutOfWindow.index()], 1);
    let strict_of = |r: &Rig, port: u16| {
        r.fw.flows()
            .iter()
            .find(|(_, f)| f.key().dst_port == port)
            .map(|(_, f)| (f.rule(), f.is_strict_tcp()))
    };
    assert_eq!(strict_of(&r, 8080), Some((RuleId(20), true)));
    assert_eq!(strict_of(&r, 8081), Some((RuleId(21), false)));
    assert_eq!(strict_of(&r, 9000), Some((DEFAULT_RULE, false)));
    // ...and strict when `firewall.strict_tcp` is on; a liberal rule still overrides it.
    let mut r = strictness_rig(true);
    assert_eq!(
        past_the_window(&mut r, 42003, 9000),
        Verdict::Drop(DropReason::Conntrack)
    );
    assert_eq!(past_the_window(&mut r, 42004, 8081), Verdict::Forward);
    assert_eq!(
        past_the_window(&mut r, 42006, 8082),
        Verdict::Drop(DropReason::Conntrack)
    );
}

#[test]
fn a_revalidated_flow_takes_the_strictness_of_its_new_rule() {
    let mut r = strictness_rig(false);
    let c2s = |fl, seq, ack, len| segment(CLIENT, SERVER, 42010, 8081, fl, seq, ack, 65535, len);
    assert_eq!(past_the_window(&mut r, 42010, 8081), Verdict::Forward);
    // Generation 2 makes TCP/8081 strict: the next segment past the window is refused.
    r.handle.publish(ruleset(
        r#"{ "generation": 2, "default_action": "allow",
             "rules": [ { "id": 21, "protocol": "tcp", "destination": { "ports": [8081] },
                          "action": "allow", "tcp": "strict" } ] }"#,
    ));
    assert_eq!(
        r.one(INSIDE, c2s(flags::ACK, 1301, 501, 600)),
        Verdict::Drop(DropReason::Conntrack)
    );
    assert_eq!(r.c().revalidated, 1);
    let (_, f) = r.fw.flows().iter().next().unwrap();
    assert!(f.is_strict_tcp() && f.admitted_under(2));
}

#[test]
fn a_republished_generation_still_revalidates_flows() {
    // An inventory update re-resolves the enforced policy under the same generation: a
    // workload that left a group must lose its sessions like under a new deny.
    let mut r = Rig::new(true);
    let (seq, ack) = open_web(&mut r, 46000);
    r.handle.publish(policy(1, true));
    let v = r.one(
        INSIDE,
        tcp(CLIENT, SERVER, 46000, 80, flags::ACK | flags::PSH, seq, ack),
    );
    assert_eq!(v, Verdict::Drop(DropReason::Policy));
    assert_eq!((r.c().cut, r.c().flows, r.c().generation), (1, 0, 1));
}

#[test]
fn revalidation_classifies_only_flows_whose_rule_prefix_changed() {
    let mut r = Rig::new(true);
    // A web flow (rule 7, the first rule) and an SSH flow (rule 10, after it).
    let (seq, ack) = open_web(&mut r, 47000);
    open_tcp(&mut r, 47001, 22);
    // The test policy with rule 10 (SSH) and rule 11 (ICMP) set to the given actions.
    let edited = |generation: u64, ssh: &str, icmp: &str| {
        ruleset(&format!(
            r#"{{ "generation": {generation}, "default_action": "drop", "rules": [
               {{ "id": 7, "protocol": "tcp", "destination": {{ "ports": [80] }},
                  "direction": "out", "action": "allow", "log": true }},
               {{ "id": 8, "protocol": "tcp", "destination": {{ "ports": [23] }}, "action": "reject" }},
               {{ "id": 9, "protocol": "tcp", "destination": {{ "ports": [22] }}, "action": "drop",
                  "monitor": true }},
               {{ "id": 10, "protocol": "tcp", "destination": {{ "ports": [22] }}, "action": "{ssh}" }},
               {{ "id": 11, "protocol": "icmp", "action": "{icmp}" }} ] }}"#
        ))
    };
    // Generation 2 edits only rule 11 (after both): both flows keep their verdict without
    // being classified again, decided from their rule and stamp in the record check, and
    // are counted as kept for unchanged rules (nothing changed up to theirs).
    r.handle.publish(edited(2, "allow", "drop"));
    let web = tcp(CLIENT, SERVER, 47000, 80, flags::ACK, seq, ack);
    let ssh = tcp(CLIENT, SERVER, 47001, 22, flags::ACK, 101, 501);
    let v = r.burst(INSIDE, &[web.clone(), ssh.clone()]);
    assert_eq!(v, vec![Verdict::Forward, Verdict::Forward]);
    let c = r.c();
    assert_eq!(
        (c.revalidated, c.revalidated_unchanged, c.revalidated_delta),
        (2, 2, 0)
    );
    assert!(r.fw.flows().iter().all(|(_, f)| f.admitted_under(2)));
    // Generation 3 denies SSH in rule 10 (after web's rule 7): the web flow is re-stamped,
    // the SSH flow is classified and cut.
    r.handle.publish(edited(3, "drop", "drop"));
    let v = r.burst(INSIDE, &[web, ssh]);
    assert_eq!(v, vec![Verdict::Forward, Verdict::Drop(DropReason::Policy)]);
    let c = r.c();
    assert_eq!(
        (
            c.revalidated,
            c.revalidated_delta,
            c.revalidated_unchanged,
            c.cut
        ),
        (4, 0, 3, 1)
    );
}

/// A policy of generation `g` (default `default`) from rule objects in JSON.
fn rules_policy(g: u64, default: &str, rules: &[String]) -> Arc<Ruleset> {
    ruleset(&format!(
        r#"{{ "generation": {g}, "default_action": "{default}", "rules": [{}] }}"#,
        rules.join(",")
    ))
}

/// Rule `id`: TCP to `dport` (a port or "lo-hi"), outbound, with `action`.
fn port_rule(id: u32, dport: &str, action: &str) -> String {
    format!(
        r#"{{ "id": {id}, "protocol": "tcp", "destination": {{ "ports": ["{dport}"] }},
              "direction": "out", "action": "{action}" }}"#
    )
}

/// The rig with rules 1 (TCP/1000), 2 (TCP/2000) and 3 (TCP/80) allowed, default drop,
/// and one established web flow (rule 3, opened from port 48000); returns the web segment.
fn delta_rig() -> (Rig, Vec<u8>) {
    let mut r = Rig::new(true);
    r.handle.publish(rules_policy(2, "drop", &delta_base()));
    let (seq, ack) = open_web(&mut r, 48000);
    let web = tcp(CLIENT, SERVER, 48000, 80, flags::ACK, seq, ack);
    (r, web)
}

fn delta_base() -> Vec<String> {
    vec![
        port_rule(1, "1000", "allow"),
        port_rule(2, "2000", "allow"),
        port_rule(3, "80", "allow"),
    ]
}

#[test]
fn changes_before_a_flows_rule_that_do_not_match_it_keep_it_without_classifying() {
    let (mut r, web) = delta_rig();
    // Rule 1 edited, a drop of telnet inserted first, rule 2 removed: all before rule 3,
    // none matching the web flow.
    r.handle.publish(rules_policy(
        3,
        "drop",
        &[
            port_rule(9, "23", "drop"),
            port_rule(1, "1000-1001", "allow"),
            port_rule(3, "80", "allow"),
        ],
    ));
    assert_eq!(r.one(INSIDE, web.clone()), Verdict::Forward);
    let c = r.c();
    assert_eq!(
        (c.revalidated, c.revalidated_unchanged, c.revalidated_delta),
        (1, 0, 1)
    );
    let (_, f) = r.fw.flows().iter().next().unwrap();
    assert_eq!(f.rule(), RuleId(3));
    assert!(f.admitted_under(3));
    // Two more publishes while the flow is idle: the deltas chain.
    r.handle.publish(rules_policy(
        4,
        "drop",
        &[port_rule(9, "24", "drop"), port_rule(3, "80", "allow")],
    ));
    r.handle.publish(rules_policy(
        5,
        "drop",
        &[
            port_rule(9, "24", "drop"),
            port_rule(10, "8080", "reject"),
            port_rule(3, "80", "allow"),
        ],
    ));
    let reply = tcp(SERVER, CLIENT, 80, 48000, flags::ACK, 501, 101);
    assert_eq!(r.one(OUTSIDE, reply), Verdict::Forward);
    assert_eq!((r.c().revalidated_delta, r.c().cut), (2, 0));
}

#[test]
fn a_new_deny_before_a_flows_rule_that_matches_it_cuts_the_flow() {
    let (mut r, web) = delta_rig();
    let mut rules = delta_base();
    rules.insert(1, port_rule(9, "80", "drop"));
    r.handle.publish(rules_policy(3, "drop", &rules));
    assert_eq!(r.one(INSIDE, web), Verdict::Drop(DropReason::Policy));
    let c = r.c();
    assert_eq!((c.cut, c.flows, c.revalidated_delta), (1, 0, 0));
}

#[test]
fn a_new_reject_before_a_flows_rule_that_matches_it_answers_and_cuts() {
    let (mut r, web) = delta_rig();
    let mut rules = delta_base();
    rules.insert(0, port_rule(9, "79-81", "reject"));
    r.handle.publish(rules_policy(3, "drop", &rules));
    assert_eq!(r.one(INSIDE, web), Verdict::Reply);
    let rst = parse(r.fw.reply(0), &ParseConfig::default()).unwrap();
    assert_eq!(rst.key.dst_port, 48000);
    let c = r.c();
    assert_eq!(
        (c.cut, c.rejected, c.flows, c.revalidated_delta),
        (1, 1, 0, 0)
    );
}

#[test]
fn a_flows_own_rule_turned_to_drop_cuts_it() {
    let (mut r, web) = delta_rig();
    let mut rules = delta_base();
    rules[2] = port_rule(3, "80", "drop");
    // Another change before it, so the prefix shortcut does not apply either way.
    rules[0] = port_rule(1, "1001", "allow");
    r.handle.publish(rules_policy(3, "drop", &rules));
    assert_eq!(r.one(INSIDE, web), Verdict::Drop(DropReason::Policy));
    assert_eq!((r.c().cut, r.c().revalidated_delta), (1, 0));
}

#[test]
fn a_flows_removed_rule_hands_it_to_the_next_match() {
    let (mut r, web) = delta_rig();
    // Rule 3 removed, a wider allow after where it was: the flow is classified and moves
    // to rule 4.
    let mut rules = delta_base();
    rules[2] = port_rule(4, "1-1023", "allow");
    r.handle.publish(rules_policy(3, "drop", &rules));
    assert_eq!(r.one(INSIDE, web.clone()), Verdict::Forward);
    let (_, f) = r.fw.flows().iter().next().unwrap();
    assert_eq!(f.rule(), RuleId(4));
    assert_eq!((r.c().revalidated_delta, r.c().cut), (0, 0));
    // Rule 4 removed too: the default (drop) cuts it.
    r.handle
        .publish(rules_policy(4, "drop", &delta_base()[..2]));
    assert_eq!(r.one(INSIDE, web), Verdict::Drop(DropReason::Policy));
    assert_eq!(r.c().cut, 1);
}

#[test]
fn a_flow_of_the_default_action_is_kept_by_the_delta_until_the_default_changes() {
    let mut r = Rig::new(true);
    r.handle.publish(rules_policy(2, "allow", &delta_base()));
    let (seq, ack) = open_tcp(&mut r, 48100, 5000);
    let seg = tcp(CLIENT, SERVER, 48100, 5000, flags::ACK, seq, ack);
    let mut rules = delta_base();
    rules.push(port_rule(9, "6000", "drop"));
    r.handle.publish(rules_policy(3, "allow", &rules));
    assert_eq!(r.one(INSIDE, seg.clone()), Verdict::Forward);
    assert_eq!(r.c().revalidated_delta, 1);
    r.handle.publish(rules_policy(4, "drop", &rules));
    assert_eq!(r.one(INSIDE, seg), Verdict::Drop(DropReason::Policy));
    assert_eq!((r.c().revalidated_delta, r.c().cut), (1, 1));
}

/// Differential: random edits published one after another (several at a time, flows
/// sometimes idle across publishes); every flow must end up exactly as the linear oracle
/// classifying its opening packet under the current policy says — kept with that rule,
/// cut, or answered — whether revalidation used the delta or classified.
#[test]
fn delta_revalidation_agrees_with_the_oracle_on_random_edits() {
    let used_delta = delta_differential(0x2545_f491_4f6c_dd1d, 12, 1..4);
    assert!(
        used_delta > 20,
        "the delta decided only {used_delta} revalidations"
    );
}

/// The same with more rules changed per publish than are tested one by one, so the changed
/// rules' classifier decides (and packets of both directions revalidate).
#[test]
fn many_changed_rules_revalidation_agrees_with_the_oracle() {
    let used_delta = delta_differential(0x9e37_79b9_7f4a_7c15, 40, 17..30);
    assert!(
        used_delta > 20,
        "the delta decided only {used_delta} revalidations"
    );
}

/// One run of the differential above: `rules` random rules, `edits` edits per publish; half
/// the revalidating packets are replies. Returns the revalidations the delta decided.
fn delta_differential(seed: u64, rules_n: u32, edits: std::ops::Range<u64>) -> u64 {
    use rampart_classify::linear::Linear;
    let rng = std::cell::Cell::new(seed);
    let next = |n: u64| {
        let mut x = rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        rng.set(x);
        x % n
    };
    let mut used_delta = 0;
    for round in 0..12 {
        // A random rule over ports 1000..1015 and two client subnets.
        let random_rule = |id: u32| {
            let lo = 1000 + next(16);
            let hi = (lo + next(4)).min(1015);
            let src = ["10.0.0.0/24", "10.0.1.0/24", "10.0.0.0/16"][next(3) as usize];
            let dir = ["out", "in", "both", "both"][next(4) as usize];
            let action = ["allow", "allow", "allow", "drop", "reject"][next(5) as usize];
            let log = next(2) == 0;
            format!(
                r#"{{ "id": {id}, "protocol": "tcp", "source": {{ "addresses": ["{src}"] }},
                      "destination": {{ "ports": ["{lo}-{hi}"] }}, "direction": "{dir}",
                      "action": "{action}", "log": {log} }}"#
            )
        };
        let mut rules: Vec<(u32, String)> = (0..rules_n).map(|i| (i, random_rule(i))).collect();
        let mut default = if round % 2 == 0 { "allow" } else { "drop" };
        let mut next_id = 100;
        let compile = |g: u64, default: &str, rules: &[(u32, String)]| {
            let json: Vec<String> = rules.iter().map(|(_, j)| j.clone()).collect();
            let doc = PolicyDocument::from_json_slice(
                format!(
                    r#"{{ "generation": {g}, "default_action": "{default}", "rules": [{}] }}"#,
                    json.join(",")
                )
                .as_bytes(),
            )
            .unwrap();
            let v = doc.validate_standalone().unwrap();
            (Arc::new(Ruleset::compile(&v).unwrap()), Linear::new(&v))
        };
        let mut r = Rig::new(true);
        let (rs, _) = compile(2, default, &rules);
        r.handle.publish(rs);
        // Flows from 10.0.0.2 to ports 1000..1015, two per port; those the policy refuses
        // are not opened.
        let mut alive: Vec<(u16, u16)> = Vec::new();
        for k in 0..32u16 {
            let (sport, dport) = (50000 + k, 1000 + k % 16);
            if r.one(
                INSIDE,
                tcp(CLIENT, SERVER, sport, dport, flags::SYN, 100, 0),
            ) != Verdict::Forward
            {
                continue;
            }
            let synack = tcp(
                SERVER,
                CLIENT,
                dport,
                sport,
                flags::SYN | flags::ACK,
                500,
                101,
            );
            assert_eq!(r.one(OUTSIDE, synack), Verdict::Forward);
            let ack = tcp(CLIENT, SERVER, sport, dport, flags::ACK, 101, 501);
            assert_eq!(r.one(INSIDE, ack), Verdict::Forward);
            alive.push((sport, dport));
        }
        for g in 3..10u64 {
            for _ in 0..edits.start + next(edits.end - edits.start) {
                let n = rules.len() as u64;
                match next(6) {
                    0 if n > 0 => {
                        let i = next(n) as usize;
                        rules[i].1 = random_rule(rules[i].0);
                    }
                    1 => {
                        let id = next_id;
                        next_id += 1;
                        rules.insert(next(n + 1) as usize, (id, random_rule(id)));
                    }
                    2 if n > 1 => {
                        rules.remove(next(n) as usize);
                    }
                    3 if n > 1 => {
                        let x = rules.remove(next(n) as usize);
                        rules.insert(next(n) as usize, x);
                    }
                    4 => default = if default == "allow" { "drop" } else { "allow" },
                    _ => {}
                }
            }
            let (rs, oracle) = compile(g, default, &rules);
            r.handle.publish(rs);
            let before = r.c().revalidated_delta;
            let mut still = Vec::new();
            for &(sport, dport) in &alive {
                // Some flows stay idle across a publish, so deltas chain.
                if next(4) == 0 {
                    still.push((sport, dport));
                    continue;
                }
                let mut opening =
                    PacketFields::v4(u32::from(CLIENT), u32::from(SERVER), sport, dport, 6);
                opening.direction = PacketDirection::Out;
                let want = oracle.classify(&opening);
                let v = if next(2) == 0 {
                    r.one(
                        INSIDE,
                        tcp(CLIENT, SERVER, sport, dport, flags::ACK, 101, 501),
                    )
                } else {
                    r.one(
                        OUTSIDE,
                        tcp(SERVER, CLIENT, dport, sport, flags::ACK, 501, 101),
                    )
                };
                match want.action {
                    Action::Allow => {
                        assert_eq!(v, Verdict::Forward, "round {round} g {g} {dport}");
                        let f = r
                            .fw
                            .flows()
                            .iter()
                            .find(|(_, f)| f.key().src_port == sport || f.key().dst_port == sport)
                            .map(|(_, f)| f.rule());
                        let id = want.rule_id.map_or(DEFAULT_RULE, |i| RuleId(i.0));
                        assert_eq!(f, Some(id), "round {round} g {g} {dport}");
                        still.push((sport, dport));
                    }
                    Action::Drop => assert_eq!(v, Verdict::Drop(DropReason::Policy)),
                    Action::Reject => assert_eq!(v, Verdict::Reply),
                }
            }
            used_delta += r.c().revalidated_delta - before;
            alive = still;
            assert_eq!(r.fw.flows().len(), alive.len(), "cut flows are gone");
        }
    }
    used_delta
}
