//! The firewall pipeline's CPU cost per packet on one core, without I/O: pre-built 64-byte
//! frames of many flows cycle through `Firewall::decide` + the end-of-poll tick in bursts of
//! 32 (a closed-loop in-process source, so the generator costs nothing). Compare with the raw
//! DPDK forward (`scripts/bench.sh forwarding`), the I/O ceiling.
//!
//! Scenarios (ClassBench acl1 rules as the policy; rules allow, the default allows too, so
//! every flow is admitted and then tracked):
//! - established: N flows already in the table, every packet is a table hit;
//! - new: every packet is a new flow (classify + insert), the table emptied between passes.
//!
//! `cargo bench -p rampart-dataplane --bench pipeline [-- --quick]` prints a table; `--json`
//! prints one JSON object per row.

use rampart_classify::classbench::{load_rules, load_trace, to_policy, CbPacket};
use rampart_classify::{Action, Ruleset, TableHandle};
use rampart_dataplane::firewall::STAGE_BURST;
use rampart_dataplane::{BurstCtx, Firewall, FirewallSettings, PortIndex, Verdict, WorkerId};
use rampart_wire::tcp::flags;
use rampart_wire::{build_frame, EthernetRepr, IpSpec, L4Repr, TcpRepr, UdpRepr};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BURST: usize = 32;
const _: () = assert!(BURST <= STAGE_BURST);
const FRAME: usize = 60; // 64 on the wire with the FCS

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/classbench")
}

/// A 64-byte frame for the header `p` (TCP as a bare ACK so loose pickup opens it).
fn frame(p: &CbPacket) -> [u8; FRAME] {
    let mut buf = [0u8; 128];
    let eth = EthernetRepr {
        src: [2, 0, 0, 0, 0, 1],
        dst: [2, 0, 0, 0, 0, 2],
        outer_vlan: None,
        inner_vlan: None,
        ethertype: 0,
    };
    let ip = IpSpec {
        src: IpAddr::V4(Ipv4Addr::from(p.src)),
        dst: IpAddr::V4(Ipv4Addr::from(p.dst)),
        ttl: 64,
    };
    let pad = [0u8; 26];
    let l4 = match p.proto {
        6 => L4Repr::Tcp(TcpRepr {
            src_port: p.sport,
            dst_port: p.dport,
            seq: 1,
            ack: 1,
            flags: flags::ACK,
            window: 1024,
            window_scale: None,
            payload: &pad[..6],
        }),
        17 => L4Repr::Udp(UdpRepr {
            src_port: p.sport,
            dst_port: p.dport,
            payload: &pad[..18],
        }),
        other => L4Repr::Raw {
            protocol: other,
            payload: &pad[..26],
        },
    };
    let n = build_frame(&eth, &ip, &l4, &mut buf).expect("frame");
    let mut out = [0u8; FRAME];
    out[..n.min(FRAME)].copy_from_slice(&buf[..n.min(FRAME)]);
    out
}

/// `n` distinct flows built from the trace's headers (varying the source port and address
/// once the trace's own headers are used up).
fn flows(trace: &[CbPacket], n: usize) -> Vec<[u8; FRAME]> {
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    let mut round = 0u32;
    while out.len() < n {
        for p in trace {
            let mut q = *p;
            q.sport = q.sport.wrapping_add((round.wrapping_mul(7919)) as u16);
            q.src = q.src.wrapping_add(round >> 3);
            // Everything but TCP goes out as UDP (other protocols have no ports, so their
            // flows would collapse into one); a flow and its reverse are the same flow.
            if q.proto != 6 {
                q.proto = 17;
            }
            let (a, b) = ((q.src, q.sport), (q.dst, q.dport));
            if seen.insert((a.min(b), a.max(b), q.proto)) {
                out.push(frame(&q));
                if out.len() == n {
                    break;
                }
            }
        }
        round += 1;
    }
    out
}

fn firewall(table: &TableHandle, capacity: usize) -> Firewall {
    let mut s = FirewallSettings::paired(1_000_000_000);
    s.flow.capacity = (capacity as u32).next_power_of_two().max(1024);
    s.flow.loose_tcp_pickup = true;
    Firewall::new(s, table.register_reader(), None).expect("firewall")
}

fn ctx(now: u64) -> BurstCtx {
    BurstCtx {
        worker: WorkerId(0),
        ingress: PortIndex(0),
        egress: PortIndex(1),
        now_tsc: now,
    }
}

/// Runs bursts over `frames` (cycling) for about `budget`; returns Mpps.
fn run(
    frames: &[[u8; FRAME]],
    budget: Duration,
    mut burst: impl FnMut(&[&[u8]], &mut [Verdict], u64),
) -> f64 {
    let mut verdicts = [Verdict::Forward; BURST];
    let mut now = 1_000_000u64;
    let mut pkts = 0u64;
    let start = Instant::now();
    let mut i = 0;
    loop {
        for _ in 0..64 {
            let mut refs: [&[u8]; BURST] = [&[]; BURST];
            for r in refs.iter_mut() {
                *r = &frames[i];
                i += 1;
                if i == frames.len() {
                    i = 0;
                }
            }
            verdicts.fill(Verdict::Forward);
            now += 1_000;
            burst(&refs, &mut verdicts, now);
            pkts += BURST as u64;
        }
        if start.elapsed() >= budget {
            break;
        }
    }
    pkts as f64 / start.elapsed().as_secs_f64() / 1e6
}

struct Row {
    scenario: String,
    rules: usize,
    flows: usize,
    mpps: f64,
    /// The same scenario without the disturbance (for the swap row).
    reference: Option<f64>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick =
        args.iter().any(|a| a == "--quick") || std::env::var_os("RAMPART_BENCH_QUICK").is_some();
    let json = args.iter().any(|a| a == "--json");
    // `cargo test --benches` runs this with --bench absent: keep it to a smoke run.
    let smoke = !args.iter().any(|a| a == "--bench");
    let budget = if smoke {
        Duration::from_millis(20)
    } else if quick {
        Duration::from_millis(500)
    } else {
        Duration::from_millis(2000)
    };
    let sizes: &[usize] = if smoke {
        &[1_000]
    } else {
        &[10_000, 1_000_000]
    };
    let dir = data_dir();
    let mut rows = Vec::new();
    for (set, trace) in [("acl1_1k", "acl1_1k"), ("acl1_10k", "acl1_10k")] {
        let rules = load_rules(&dir.join(format!("{set}.rules"))).expect("rules");
        let trace = load_trace(&dir.join(format!("{trace}.trace.gz"))).expect("trace");
        let mut policy = to_policy(&rules);
        policy.default_action = Action::Allow;
        let table = TableHandle::new(Arc::new(Ruleset::compile(&policy).expect("compile")));
        for &n in sizes {
            let frames = flows(&trace, n);
            // Established: a warm-up pass admits every flow, then every packet is a hit.
            let mut fw = firewall(&table, n * 2);
            for chunk in frames.chunks(BURST) {
                let refs: Vec<&[u8]> = chunk.iter().map(|f| &f[..]).collect();
                let mut v = vec![Verdict::Forward; refs.len()];
                fw.decide(&ctx(1), &refs, &mut v);
            }
            assert_eq!(fw.flows().len(), n, "every flow admitted in the warm-up");
            // Each burst is followed by the worker's end-of-poll work (quiescent point, expiry).
            let est = run(&frames, budget, |refs, v, now| {
                fw.decide(&ctx(now), refs, v);
                fw.tick(now);
            });
            let c = fw.counters().snapshot();
            assert!(c.established > 0 && c.new_flows as usize == n, "{c:?}");
            if n == sizes[0] {
                // The same, while another thread publishes a new ruleset every millisecond
                // (alternating generations, so every flow is revalidated after each swap) and
                // waits for the worker's quiescent point, as the control plane does.
                let mut other = policy.clone();
                other.generation = 2;
                let next = Arc::new(Ruleset::compile(&other).expect("compile"));
                let first = table.current();
                let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let swaps = {
                    let (table, stop) = (table.clone(), stop.clone());
                    std::thread::spawn(move || {
                        let mut n = 0u64;
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let rs = if n % 2 == 0 {
                                next.clone()
                            } else {
                                first.clone()
                            };
                            drop(table.publish(rs));
                            let _ = table.wait_quiescent(Duration::from_secs(1));
                            n += 1;
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        n
                    })
                };
                let during = run(&frames, budget, |refs, v, now| {
                    fw.decide(&ctx(now), refs, v);
                    fw.tick(now);
                });
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let published = swaps.join().unwrap();
                assert!(published > 0);
                let c = fw.counters().snapshot();
                assert!(c.revalidated > 0 && c.cut == 0, "{c:?}");
                rows.push(Row {
                    scenario: format!("established, {published} swaps (1/ms)"),
                    rules: rules.len(),
                    flows: n,
                    mpps: during,
                    reference: Some(est),
                });
            }
            rows.push(Row {
                scenario: "established".into(),
                rules: rules.len(),
                flows: n,
                mpps: est,
                reference: None,
            });
        }
        // New flows: every packet opens a flow; a fresh table per pass (untimed).
        let n = if smoke { 4_096 } else { 1 << 20 };
        let frames = flows(&trace, n);
        let mut total = Duration::ZERO;
        let mut pkts = 0usize;
        while total < budget {
            let mut fw = firewall(&table, n * 2);
            let start = Instant::now();
            let mut now = 1u64;
            for chunk in frames.chunks(BURST) {
                let mut refs: [&[u8]; BURST] = [&[]; BURST];
                for (r, f) in refs.iter_mut().zip(chunk) {
                    *r = &f[..];
                }
                let mut v = [Verdict::Forward; BURST];
                now += 1_000;
                fw.decide(&ctx(now), &refs[..chunk.len()], &mut v[..chunk.len()]);
            }
            total += start.elapsed();
            pkts += frames.len();
            assert_eq!(fw.counters().snapshot().new_flows as usize, n);
        }
        rows.push(Row {
            scenario: "new flows".into(),
            rules: rules.len(),
            flows: n,
            mpps: pkts as f64 / total.as_secs_f64() / 1e6,
            reference: None,
        });
    }
    if json {
        for r in &rows {
            println!(
                "{{\"scenario\":\"{}\",\"rules\":{},\"flows\":{},\"mpps\":{:.3},\"reference_mpps\":{}}}",
                r.scenario,
                r.rules,
                r.flows,
                r.mpps,
                r.reference.map_or("null".into(), |v| format!("{v:.3}"))
            );
        }
        return;
    }
    println!(
        "| scenario | rules | flows | Mpps (one core) | ns/packet | vs the same without swaps |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {} |",
            r.scenario,
            r.rules,
            r.flows,
            r.mpps,
            1e3 / r.mpps,
            r.reference
                .map_or("".into(), |v| format!("{:.0}%", 100.0 * r.mpps / v))
        );
    }
}
