//! The firewall pipeline's cost per packet on one core, next to the raw forwarder, in one run.
//!
//! Two parts, both fed by a closed-loop in-process source of pre-built 64-byte frames of many
//! flows (ClassBench acl1 headers made unique; rules allow and the default allows too, so every
//! flow is admitted and then tracked):
//!
//! 1. **Worker loop over DPDK rings** (the headline, issue 6): the real [`Worker`] poll loop on
//!    two `net_ring` ports. Each ring port's TX feeds its own RX, so the ~900 mbufs injected at
//!    start circulate port 0 → port 1 → port 0 … through rx_burst → stage → tx_burst forever.
//!    The source stage in front of the measured stage overwrites each received frame with the
//!    next of the N flows (a 60-byte copy), so N can exceed the mbufs in flight. Rows:
//!    `ForwardAll` alone (the raw I/O ceiling, frames untouched), `ForwardAll` behind the
//!    source (what the source itself costs), and the `Firewall` stage behind the same source:
//!    established flows (10K, 1M) and 100% new flows. "vs raw" divides by the plain
//!    `ForwardAll` row, so the source's own cost counts against the firewall. Needs EAL
//!    (hugepages when free, else `--no-huge`); `--no-dpdk` skips it.
//! 2. **`Firewall::decide` alone** (no I/O, no mbufs): the stage's CPU cost, plus the
//!    swap scenarios (another thread publishes a new ruleset every 1, 10 and 100 ms with
//!    alternating generations, so every flow is revalidated after each swap that changes a
//!    rule; 1 ms is the worst case).
//!
//! Rates are packets per CPU-second of the measuring thread (the host is shared; wall-clock
//! rates would mostly measure the other tenants), best of `ROUNDS` interleaved rounds.
//!
//! 3. **Continuous publishing** (`decide` alone): a thread edits one rule, compiles and
//!    publishes, back to back, while the worker runs (the realistic busy control plane).
//!
//! `cargo bench -p rampart-dataplane --bench pipeline [-- --quick] [--no-dpdk] [--no-decide]`
//! prints markdown tables; `--json` prints one JSON object per row instead.
//! For profiling: `SETS=acl1_10k` (rule sets), `SCENARIOS=established,swaps,continuous,new`
//! (parts 2, 3, and part 1's new-flow row; `revalidate`: one deterministic pass per swap, see
//! `reval_rows`), `SIZES=10000` (established flow counts), `NEW_FLOWS=65536`,
//! `PAIRS=net_null` (part 1's port pairs), `RAMPART_BENCH_TRACE=1` (each part-1 measurement
//! and its packet count on stderr, for scripts/bench-instructions.sh).

use cpu_time::ThreadTime;
use rampart_classify::classbench::{load_rules, load_trace, to_policy, CbPacket};
use rampart_classify::{Action, Ruleset, TableHandle};
use rampart_config::policy::{PortRange, ResolvedRule, ServiceMatch, ValidatedPolicy};
use rampart_dataplane::firewall::STAGE_BURST;
use rampart_dataplane::{
    BurstCtx, BurstStage, Firewall, FirewallSettings, FirewallSnapshot, ForwardAll, PortIndex,
    Verdict, Worker, WorkerId, WorkerQueues, WorkerSettings,
};
use rampart_dpdk::{Eal, MbufBurst, Mempool, MempoolConfig, Port, PortConfig};
use rampart_wire::tcp::flags;
use rampart_wire::{build_frame, EthernetRepr, IpSpec, L4Repr, TcpRepr, UdpRepr};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
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

fn firewall(table: &TableHandle, capacity: usize, tsc_hz: u64) -> Firewall {
    let mut s = FirewallSettings::paired(tsc_hz);
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

/// Admits every flow of `frames` (one pass of `decide`), so what follows is all table hits.
fn warm_up(fw: &mut Firewall, frames: &[[u8; FRAME]], now: u64) {
    for chunk in frames.chunks(BURST) {
        let mut refs: [&[u8]; BURST] = [&[]; BURST];
        for (r, f) in refs.iter_mut().zip(chunk) {
            *r = &f[..];
        }
        let mut v = [Verdict::Forward; BURST];
        fw.decide(&ctx(now), &refs[..chunk.len()], &mut v[..chunk.len()]);
    }
    assert_eq!(fw.flows().len(), frames.len(), "every flow admitted");
}

/// Runs bursts over `frames` (cycling) through `decide` + tick for about `budget` of thread
/// CPU time; returns Mpps. `now` (ns) moves on by 1 µs per burst and is kept across calls.
fn run_decide(fw: &mut Firewall, frames: &[[u8; FRAME]], budget: Duration, now: &mut u64) -> f64 {
    let mut verdicts = [Verdict::Forward; BURST];
    let mut pkts = 0u64;
    let start = ThreadTime::now();
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
            *now += 1_000;
            fw.decide(&ctx(*now), &refs, &mut verdicts);
            fw.tick(*now);
            pkts += BURST as u64;
        }
        if start.elapsed() >= budget {
            break;
        }
    }
    pkts as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// 100% new flows through `decide`: every frame opens a flow, a fresh table per pass (the
/// table's allocation is not timed). Returns Mpps.
fn run_new_decide(
    table: &TableHandle,
    frames: &[[u8; FRAME]],
    budget: Duration,
    tsc_hz: u64,
) -> f64 {
    let mut total = Duration::ZERO;
    let mut pkts = 0usize;
    while total < budget {
        let mut fw = firewall(table, frames.len() * 2, tsc_hz);
        let start = ThreadTime::now();
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
        assert_eq!(fw.counters().snapshot().new_flows as usize, frames.len());
    }
    pkts as f64 / total.as_secs_f64() / 1e6
}

/// The closed-loop source: overwrites every received frame with the next of `frames` before
/// the measured stage sees it. With `stop_at_wrap`, raises it after the last frame (so a
/// new-flows run sees each flow once).
struct Source<'a, S> {
    frames: &'a [[u8; FRAME]],
    next: usize,
    inner: S,
    stop_at_wrap: Option<Arc<AtomicBool>>,
}

impl<S: BurstStage> BurstStage for Source<'_, S> {
    #[inline]
    fn process<const N: usize>(
        &mut self,
        ctx: &BurstCtx,
        pkts: &mut MbufBurst<N>,
        verdicts: &mut [Verdict],
    ) {
        for m in pkts.as_mut_slice() {
            // net_null hands out 64-byte frames, the ring ones are 60: the 4 bytes past the
            // IP packet are Ethernet padding either way.
            m.data_mut()[..FRAME].copy_from_slice(&self.frames[self.next]);
            self.next += 1;
            if self.next == self.frames.len() {
                self.next = 0;
                if let Some(stop) = &self.stop_at_wrap {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
        self.inner.process(ctx, pkts, verdicts);
    }

    #[inline]
    fn end_of_poll(&mut self, now_tsc: u64) {
        self.inner.end_of_poll(now_tsc);
    }
}

/// EAL with two port pairs on one core's worth of vdevs: `net_null0/1` (RX hands out fresh
/// mbufs from the pool, TX frees them: the cost a NIC driver has, and the vdevs of the
/// "Forwarding" section) and `net_ring0/1` (a ring port's TX feeds its own RX, so injected
/// mbufs circulate and I/O is nearly free).
struct Dpdk {
    // Field order is drop order: queues and ports before EAL cleanup.
    pairs: Vec<(&'static str, Option<WorkerQueues>)>,
    _ports: Vec<Port>,
    _eal: Eal,
    tsc_hz: u64,
}

/// Frames in flight per ring port: below the PMD's ring size (1024) with room for a burst.
const IN_FLIGHT_PER_PORT: usize = 448;

impl Dpdk {
    fn start() -> Result<Dpdk, String> {
        let huge = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("HugePages_Free:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .unwrap_or(0)
            >= 128
            && std::env::var_os("RAMPART_NO_HUGE").is_none();
        let prefix = format!("--file-prefix=rampart-pipeline-{}", std::process::id());
        let mut args = vec![
            "pipeline-bench",
            "-l",
            "0",
            "--no-pci",
            "--vdev=net_null0",
            "--vdev=net_null1",
            "--vdev=net_ring0",
            "--vdev=net_ring1",
            "--log-level=error",
        ];
        if huge {
            args.push("--in-memory");
        } else {
            args.extend(["--no-huge", "-m", "512"]);
        }
        args.push(&prefix);
        let eal = Eal::init(&args).map_err(|e| e.to_string())?;
        let pool = Mempool::create(&MempoolConfig {
            name: "bench_pool".into(),
            mbufs: 8191,
            ..MempoolConfig::default()
        })
        .map_err(|e| e.to_string())?;
        let mut ports = Vec::new();
        let mut pairs = Vec::new();
        for (name, devs) in [
            ("net_null", ["net_null0", "net_null1"]),
            ("net_ring", ["net_ring0", "net_ring1"]),
        ] {
            let (mut rx, mut tx) = (Vec::new(), Vec::new());
            for dev in devs {
                let id = Port::attach(dev).map_err(|e| e.to_string())?;
                let (port, r, t) =
                    Port::start(id, &PortConfig::default(), &pool).map_err(|e| e.to_string())?;
                ports.push(port);
                rx.push(r);
                tx.push(t);
            }
            if name == "net_ring" {
                // Each ring port starts with its share of the circulating frames.
                let filler = [0u8; FRAME];
                for port_tx in &mut tx {
                    let mut left = IN_FLIGHT_PER_PORT;
                    while left > 0 {
                        let n = left.min(BURST);
                        let mut b: MbufBurst<BURST> = MbufBurst::new();
                        if !pool.alloc_bulk(&mut b, n) {
                            return Err("mempool exhausted while injecting".into());
                        }
                        for m in b.as_mut_slice() {
                            assert!(m.set_data(&filler));
                        }
                        let (sent, lost) = port_tx[0].tx_burst_or_free(&mut b);
                        if lost != 0 || sent != n {
                            return Err(format!("ring refused {lost} injected frames"));
                        }
                        left -= n;
                    }
                }
            }
            let peer = [PortIndex(1), PortIndex(0)];
            let queues = rampart_dataplane::assign_queues(rx, tx, &peer, 1).pop();
            pairs.push((name, queues));
        }
        Ok(Dpdk {
            pairs,
            _ports: ports,
            _eal: eal,
            tsc_hz: rampart_dpdk::tsc_hz(),
        })
    }

    /// Runs the real worker loop on port pair `pair` with `stage` until `budget` of wall time
    /// passed (or the stage raised `stop`). Never inlined, so callgrind can tell each call's
    /// instructions apart (see [`measured_end`]).
    #[inline(never)]
    fn measure<S: BurstStage>(
        &mut self,
        pair: usize,
        stage: S,
        stop: Arc<AtomicBool>,
        budget: Duration,
    ) -> Run<S> {
        let queues = self.pairs[pair].1.take().expect("queues");
        let mut w = Worker::new(queues, stage, stop.clone(), WorkerSettings::default());
        let timer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let end = Instant::now() + budget;
                while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(5));
                }
                stop.store(true, Ordering::Relaxed);
            })
        };
        let t0 = ThreadTime::now();
        w.poll_until_stopped();
        let secs = t0.elapsed().as_secs_f64();
        measured_end();
        timer.join().expect("timer");
        let c = w.counters().snapshot();
        let (tx, rx): (u64, u64) = c.ports[..2]
            .iter()
            .fold((0, 0), |(t, r), p| (t + p.tx_pkts, r + p.rx_pkts));
        let (queues, stage) = w.into_parts();
        self.pairs[pair].1 = Some(queues);
        Run {
            stage,
            mpps: tx as f64 / secs / 1e6,
            lost: rx - tx,
            packets: tx,
        }
    }
}

/// Where a measured poll loop ends: scripts/bench-instructions.sh has callgrind zero its
/// counts on entering [`Dpdk::measure`] and dump them here, one dump per measurement.
#[inline(never)]
fn measured_end() {
    // Something the compiler cannot prove does nothing, so the call stays.
    std::hint::black_box(());
}

/// One [`Dpdk::measure`]: the stage back, Mpps forwarded per thread-CPU-second, the packets
/// received but not forwarded (drops, TX refusals), and the packets forwarded.
struct Run<S> {
    stage: S,
    mpps: f64,
    lost: u64,
    packets: u64,
}

/// An edit that changes a rule's match fields (so revalidation must look at it) without
/// changing any verdict of the benchmark's flows: an alternative for an unused protocol
/// (253, "experimentation") is added to or removed from its services.
fn toggle_inert_service(r: &mut ResolvedRule) {
    if r.services.last().is_some_and(|s| s.proto == Some(253)) {
        r.services.pop();
    } else {
        r.services.push(ServiceMatch {
            proto: Some(253),
            sport: PortRange::ANY,
            dport: PortRange::ANY,
            via: None,
        });
    }
}

/// "x% unchanged, y% delta": how the revalidations between two snapshots were decided.
fn revalidation_mix(before: &FirewallSnapshot, after: &FirewallSnapshot) -> String {
    if after.revalidated == before.revalidated {
        return "no revalidations".into();
    }
    let all = (after.revalidated - before.revalidated) as f64;
    let unchanged = (after.revalidated_unchanged - before.revalidated_unchanged) as f64;
    let delta = (after.revalidated_delta - before.revalidated_delta) as f64;
    format!(
        "revalidations {:.0}% unchanged rules, {:.0}% delta rules, {:.0}% classified",
        100.0 * unchanged / all,
        100.0 * delta / all,
        100.0 * (all - unchanged - delta) / all
    )
}

/// The kinds of swap the swap scenarios publish, each with the rules edited between the two
/// rulesets they alternate: "no swap" (no publish at all, only for [`reval_rows`]), the same
/// rules (none edited), rule 0, the middle rule, the first 32.
fn swap_kinds(rules: usize) -> [(&'static str, std::ops::Range<usize>); 5] {
    let mid = rules / 2;
    [
        ("no swap", 0..0),
        ("same rules", 0..0),
        ("rule 0 edited", 0..1),
        ("middle rule edited", mid..mid + 1),
        ("32 rules edited", 0..32.min(rules)),
    ]
}

/// Timed swaps: another thread publishes a precompiled ruleset every 1, 10 and 100 ms,
/// alternating between two that differ by the kind of change.
#[allow(clippy::too_many_arguments)]
fn swap_rows(
    rows: &mut Vec<Row>,
    fw: &mut Firewall,
    fr: &[[u8; FRAME]],
    policy: &ValidatedPolicy,
    table: &TableHandle,
    nrules: usize,
    est: f64,
    budget: Duration,
    rounds: usize,
    now: &mut u64,
) {
    // Four kinds of swap: the same rules under a new generation (since session 6 nothing
    // is revalidated: both rulesets share their flow stamp); rule 0 edited (its match
    // fields: the flows of rule 0 itself are classified, the rest keep their rule in the
    // record check or by testing that one rule — delta revalidation); the middle rule
    // edited (flows of earlier rules keep theirs untested — unchanged rules — later ones as
    // for rule 0); 32 rules edited (the worst case: before session 4 every flow was
    // classified again).
    for (kind, edited) in swap_kinds(policy.rules.len()).into_iter().skip(1) {
        let mut other = policy.clone();
        other.generation = 2;
        let mut first_policy = policy.clone();
        for r in &mut other.rules[edited.clone()] {
            toggle_inert_service(r);
        }
        let middle = edited.start > 0;
        let edited = edited.len();
        if edited > 0 {
            first_policy.generation = 3;
        }
        let next = Arc::new(Ruleset::compile(&other).expect("compile"));
        let first = Arc::new(Ruleset::compile(&first_policy).expect("compile"));
        // Start from this scenario's own ruleset, so the first round's no-swap run re-stamps
        // every flow under it: flows still stamped under the previous scenario's ruleset may
        // legitimately keep their rule across this scenario's first swap (the "rule 0 edited"
        // ruleset and the "32 rules edited" one share an edited rule 0), which would blur what
        // each kind of swap costs.
        drop(table.publish(first.clone()));
        // A swap every 1, 10 and 100 ms.
        for interval_ms in [1u64, 10, 100] {
            // Best of `rounds`, like the row it is compared with.
            let (mut during, mut published, mut quiet) = (0f64, 0u64, 0f64);
            let mut mix = String::new();
            for _ in 0..rounds {
                // The same without swaps, just before (the host's load drifts).
                quiet = quiet.max(run_decide(fw, fr, budget, now));
                let stop = Arc::new(AtomicBool::new(false));
                // The first swap happens before the run starts (even a short smoke run sees
                // one); the thread goes on from there. Always a publish that differs from the
                // current one (by identity).
                let other_of = |cur: &Arc<Ruleset>| {
                    if Arc::ptr_eq(cur, &next) {
                        first.clone()
                    } else {
                        next.clone()
                    }
                };
                drop(table.publish(other_of(&table.current())));
                let before = fw.counters().snapshot();
                let swaps = {
                    let (table, stop) = (table.clone(), stop.clone());
                    let (next, first) = (next.clone(), first.clone());
                    std::thread::spawn(move || {
                        let mut k = 1u64;
                        while !stop.load(Ordering::Relaxed) {
                            let _ = table.wait_quiescent(Duration::from_secs(1));
                            std::thread::sleep(Duration::from_millis(interval_ms));
                            let rs = if Arc::ptr_eq(&table.current(), &next) {
                                first.clone()
                            } else {
                                next.clone()
                            };
                            drop(table.publish(rs));
                            k += 1;
                        }
                        k
                    })
                };
                let mpps = run_decide(fw, fr, budget, now);
                stop.store(true, Ordering::Relaxed);
                let k = swaps.join().unwrap();
                assert!(k > 0);
                published += k;
                let c = fw.counters().snapshot();
                // Same rules: nothing to revalidate (the flow stamp is shared).
                assert_eq!(
                    c.revalidated > before.revalidated,
                    edited > 0,
                    "{kind}: {c:?}"
                );
                assert_eq!(c.cut, 0, "{c:?}");
                let used = |a: u64, b: u64| a > b;
                let (shortcut, delta) = (
                    used(c.revalidated_unchanged, before.revalidated_unchanged),
                    used(c.revalidated_delta, before.revalidated_delta),
                );
                // Unchanged rules: only flows whose rule comes before every edited one
                // (the benchmark's flows are spread over the whole rule list).
                assert_eq!(shortcut, middle, "{kind}: {c:?}");
                // 32 edited rules: classified by builds before session 4's changed-rules
                // lookup, decided by the delta since.
                if edited <= 1 {
                    assert_eq!(delta, edited == 1, "{kind}: {c:?}");
                }
                if mpps > during {
                    during = mpps;
                    mix = revalidation_mix(&before, &c);
                }
            }
            let published = published / rounds as u64;
            rows.push(Row {
                part: "decide",
                scenario: format!(
                    "established, {published} swaps per round (1 per {interval_ms} ms), {kind}; {mix}"
                ),
                rules: nrules,
                flows: fr.len(),
                mpps: during,
                reference: Some(("without swaps (interleaved)", quiet)),
                reference2: Some(("without swaps (first)", est)),
            });
        }
    }
}

/// Continuous publishing, as a busy control plane does it: a thread edits one rule (a
/// random one), compiles the whole policy and publishes it, back to back for the whole run
/// (on the other core; a 10K-rule compile takes tens of ms). Measured twice, interleaved:
/// with the thread only compiling (what its load on the shared core, caches and memory
/// costs the worker) and compiling and publishing.
#[allow(clippy::too_many_arguments)]
fn continuous_rows(
    rows: &mut Vec<Row>,
    fw: &mut Firewall,
    fr: &[[u8; FRAME]],
    policy: &ValidatedPolicy,
    table: &TableHandle,
    nrules: usize,
    budget: Duration,
    rounds: usize,
    now: &mut u64,
) {
    let (mut idle, mut busy, mut quiet) = (Vec::new(), Vec::new(), 0f64);
    for _ in 0..rounds {
        quiet = quiet.max(run_decide(fw, fr, budget, now));
        idle.push(continuous_round(fw, fr, policy, table, budget, now, false));
        busy.push(continuous_round(fw, fr, policy, table, budget, now, true));
    }
    let best = |v: &[(f64, u64, String)]| {
        v.iter()
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .cloned()
            .expect("rounds")
    };
    let (compiling, _, _) = best(&idle);
    let (during, _, mix) = best(&busy);
    let published = busy.iter().map(|b| b.1).sum::<u64>() / rounds as u64;
    rows.push(Row {
        part: "decide",
        scenario: "established, another thread compiling back to back (not publishing)".into(),
        rules: nrules,
        flows: fr.len(),
        mpps: compiling,
        reference: Some(("without swaps (interleaved)", quiet)),
        reference2: None,
    });
    rows.push(Row {
        part: "decide",
        scenario: format!(
            "established, continuous publishing (compile + publish back to back, one random rule edited each; {published} publishes per round); {mix}"
        ),
        rules: nrules,
        flows: fr.len(),
        mpps: during,
        reference: Some(("without swaps (interleaved)", quiet)),
        reference2: Some(("compiling, not publishing", compiling)),
    });
}

/// One round of [`continuous_rows`]: (Mpps, publishes, revalidation mix).
fn continuous_round(
    fw: &mut Firewall,
    fr: &[[u8; FRAME]],
    policy: &ValidatedPolicy,
    table: &TableHandle,
    budget: Duration,
    now: &mut u64,
    publish: bool,
) -> (f64, u64, String) {
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (table, stop, ready) = (table.clone(), stop.clone(), ready.clone());
        let mut p = policy.clone();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ *now;
        std::thread::spawn(move || {
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = ((rng >> 33) % p.rules.len() as u64) as usize;
                toggle_inert_service(&mut p.rules[i]);
                p.generation += 1;
                let rs = Arc::new(Ruleset::compile(&p).expect("compile"));
                if publish {
                    drop(table.publish(rs));
                    let _ = table.wait_quiescent(Duration::from_secs(1));
                    k += 1;
                }
                ready.store(true, Ordering::Relaxed);
            }
            k
        })
    };
    // Start measuring once the thread is under way (the first compile takes a while).
    while !ready.load(Ordering::Relaxed) {
        run_decide(fw, fr, Duration::from_millis(1), now);
    }
    let before = fw.counters().snapshot();
    let mpps = run_decide(fw, fr, budget, now);
    let after = fw.counters().snapshot();
    // The publishing thread must have made flows revalidate. A short budget (the smoke run
    // without `--bench`) can end before its second publish lands: run on, unmeasured, until
    // one does (a 10K-rule compile takes tens of ms).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = fw.counters().snapshot();
    while publish && seen.revalidated == before.revalidated && Instant::now() < deadline {
        run_decide(fw, fr, Duration::from_millis(1), now);
        seen = fw.counters().snapshot();
    }
    stop.store(true, Ordering::Relaxed);
    let published = publisher.join().unwrap();
    assert!(
        !publish || seen.revalidated > before.revalidated,
        "{seen:?}"
    );
    assert_eq!(seen.cut, 0, "{seen:?}");
    (mpps, published, revalidation_mix(&before, &after))
}

/// One pass of `decide` over every flow of `frames` (each seen once), bursts of [`BURST`].
/// Out of line so callgrind can count it alone (`--toggle-collect='*reval_pass*'`).
#[inline(never)]
fn reval_pass(fw: &mut Firewall, frames: &[[u8; FRAME]], now: &mut u64) {
    one_pass(fw, frames, now);
}

/// The body of [`reval_pass`] (inlined where a pass must not be counted).
#[inline(always)]
fn one_pass(fw: &mut Firewall, frames: &[[u8; FRAME]], now: &mut u64) {
    let mut verdicts = [Verdict::Forward; BURST];
    for chunk in frames.chunks(BURST) {
        let mut refs: [&[u8]; BURST] = [&[]; BURST];
        for (r, f) in refs.iter_mut().zip(chunk) {
            *r = &f[..];
        }
        verdicts.fill(Verdict::Forward);
        *now += 1_000;
        fw.decide(
            &ctx(*now),
            &refs[..chunk.len()],
            &mut verdicts[..chunk.len()],
        );
        fw.tick(*now);
    }
}

/// The cost of revalidating one packet, deterministically (no second thread): per kind of
/// swap, publish the other ruleset and then run one pass over all flows, so every packet of
/// the pass is its flow's first under the new ruleset. "no swap" is the same pass with no
/// publish in between (every packet established). For callgrind, count `reval_pass` and pick
/// one kind with `KINDS=none|same|rule0|middle|edit32` (comma-separated; default all) and the
/// number of passes with `PASSES` (default 20).
#[allow(clippy::too_many_arguments)]
fn reval_rows(
    rows: &mut Vec<Row>,
    fw: &mut Firewall,
    fr: &[[u8; FRAME]],
    policy: &ValidatedPolicy,
    table: &TableHandle,
    nrules: usize,
    rounds: usize,
    now: &mut u64,
) {
    let kinds = std::env::var("KINDS").ok();
    let passes: usize = std::env::var("PASSES").map_or(20, |v| v.parse().expect("PASSES"));
    let mut none_mpps = None;
    let keys = ["none", "same", "rule0", "middle", "edit32"];
    for (key, (kind, edited)) in keys.into_iter().zip(swap_kinds(policy.rules.len())) {
        if kinds
            .as_deref()
            .is_some_and(|k| !k.split(',').any(|x| x == key))
        {
            continue;
        }
        let mut first_policy = policy.clone();
        first_policy.generation = 10;
        let mut other = policy.clone();
        other.generation = 11;
        for r in &mut other.rules[edited.clone()] {
            toggle_inert_service(r);
        }
        // No swap at all: a pass of established packets.
        let edited = if key == "none" {
            usize::MAX
        } else {
            edited.len()
        };
        let first = Arc::new(Ruleset::compile(&first_policy).expect("compile"));
        let next = Arc::new(Ruleset::compile(&other).expect("compile"));
        drop(table.publish(first.clone()));
        // Re-stamp every flow under `first` (not counted).
        one_pass(fw, fr, now);
        let mut best = 0f64;
        let mut mix = String::new();
        // Wall time of `publish` itself (what revalidation adds to it: the delta's work).
        let (mut publish_time, mut publishes) = (Duration::ZERO, 0u32);
        for _ in 0..rounds {
            let before = fw.counters().snapshot();
            let mut spent = Duration::ZERO;
            for _ in 0..passes {
                if edited != usize::MAX {
                    let cur = table.current();
                    let rs = if Arc::ptr_eq(&cur, &next) {
                        first.clone()
                    } else {
                        next.clone()
                    };
                    let t = Instant::now();
                    drop(table.publish(rs));
                    publish_time += t.elapsed();
                    publishes += 1;
                }
                let start = ThreadTime::now();
                reval_pass(fw, fr, now);
                spent += start.elapsed();
            }
            let c = fw.counters().snapshot();
            assert_eq!(c.cut, before.cut, "{c:?}");
            let mpps = (passes * fr.len()) as f64 / spent.as_secs_f64() / 1e6;
            if mpps > best {
                best = mpps;
                mix = if edited == usize::MAX {
                    "no revalidation".into()
                } else {
                    revalidation_mix(&before, &c)
                };
            }
        }
        if edited == usize::MAX {
            none_mpps = Some(best);
        }
        rows.push(Row {
            part: "decide",
            scenario: format!(
                "one pass over all flows after each swap, {kind}; {mix}; publish {:.3} ms",
                publish_time.as_secs_f64() * 1e3 / f64::from(publishes.max(1))
            ),
            rules: nrules,
            flows: fr.len(),
            mpps: best,
            reference: none_mpps
                .filter(|_| edited != usize::MAX)
                .map(|v| ("no swap", v)),
            reference2: None,
        });
    }
}

struct Row {
    part: &'static str,
    scenario: String,
    rules: usize,
    flows: usize,
    mpps: f64,
    /// What the row is compared with (raw forward, or the same without swaps), and its Mpps.
    reference: Option<(&'static str, f64)>,
    /// A second comparison (firewall rows: raw forward behind the same source).
    reference2: Option<(&'static str, f64)>,
}

const ROUNDS: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |a: &str| args.iter().any(|x| x == a);
    let quick = has("--quick") || std::env::var_os("RAMPART_BENCH_QUICK").is_some();
    let json = has("--json");
    // `cargo test --benches` runs this with --bench absent: keep it to a smoke run.
    let smoke = !has("--bench");
    let budget = if smoke {
        Duration::from_millis(20)
    } else if quick {
        Duration::from_millis(300)
    } else {
        Duration::from_millis(1000)
    };
    let rounds = if smoke { 1 } else { ROUNDS };
    let sizes: Vec<usize> = match std::env::var("SIZES") {
        Ok(v) => v.split(',').map(|x| x.parse().expect("SIZES")).collect(),
        Err(_) if smoke => vec![1_000],
        Err(_) => vec![10_000, 1_000_000],
    };
    let new_n = match std::env::var("NEW_FLOWS") {
        Ok(v) => v.parse().expect("NEW_FLOWS"),
        Err(_) if smoke => 4_096,
        Err(_) => 1 << 20,
    };
    let env_list = |k: &str| std::env::var(k).ok().map(|v| v.to_string());
    let sets: Vec<&str> = ["acl1_1k", "acl1_10k"]
        .into_iter()
        .filter(|s| env_list("SETS").is_none_or(|v| v.split(',').any(|x| x == *s)))
        .collect();
    let want = |sc: &str| env_list("SCENARIOS").is_none_or(|v| v.split(',').any(|x| x == sc));
    let want_pair = |p: &str| env_list("PAIRS").is_none_or(|v| v.split(',').any(|x| x == p));
    // Part 1 always measures established flows; its new-flow row only when SCENARIOS (if
    // given) names `new`.
    let want_new_in_loop = want("new");
    let dir = data_dir();
    let mut loaded = Vec::new();
    for set in &sets {
        let rules = load_rules(&dir.join(format!("{set}.rules"))).expect("rules");
        let trace = load_trace(&dir.join(format!("{set}.trace.gz"))).expect("trace");
        let mut policy = to_policy(&rules);
        policy.default_action = Action::Allow;
        let table = TableHandle::new(Arc::new(Ruleset::compile(&policy).expect("compile")));
        let mut frames: Vec<(usize, Vec<[u8; FRAME]>)> =
            sizes.iter().map(|&n| (n, flows(&trace, n))).collect();
        frames.push((new_n, flows(&trace, new_n)));
        loaded.push((rules.len(), policy, table, frames));
    }
    let mut rows = Vec::new();
    // Part 1: the real worker loop on each port pair, raw vs firewall, rounds interleaved.
    if !smoke && !has("--no-dpdk") {
        let mut dpdk = Dpdk::start().unwrap_or_else(|e| panic!("EAL/vdev setup: {e}"));
        let tsc_hz = dpdk.tsc_hz;
        let raw_frames = &loaded[0].3[0].1;
        // Best Mpps per row, in first-seen order: (pair, scenario, rules, flows, mpps).
        let mut best: Vec<(usize, String, usize, usize, f64)> = Vec::new();
        // With RAMPART_BENCH_TRACE set, every measurement is also written to stderr, in order,
        // with its packet count: scripts/bench-instructions.sh pairs them with callgrind's dumps.
        let trace = std::env::var_os("RAMPART_BENCH_TRACE").is_some();
        let pair_names: Vec<&str> = dpdk.pairs.iter().map(|p| p.0).collect();
        let mut keep = |pair: usize, name: &str, rules: usize, flows: usize, mpps: f64, packets| {
            if trace {
                eprintln!(
                    "measured\t{}\t{name}\t{rules}\t{flows}\t{packets}",
                    pair_names[pair]
                );
            }
            match best
                .iter_mut()
                .find(|(p, n, r, f, _)| *p == pair && n == name && *r == rules && *f == flows)
            {
                Some(b) => b.4 = b.4.max(mpps),
                None => best.push((pair, name.into(), rules, flows, mpps)),
            }
        };
        let fresh = || Arc::new(AtomicBool::new(false));
        for _ in 0..rounds {
            for pair in 0..dpdk.pairs.len() {
                if !want_pair(dpdk.pairs[pair].0) {
                    continue;
                }
                let run = dpdk.measure(pair, ForwardAll, fresh(), budget);
                assert_eq!(run.lost, 0);
                keep(
                    pair,
                    "raw forward (ForwardAll)",
                    0,
                    0,
                    run.mpps,
                    run.packets,
                );
                let src = Source {
                    frames: raw_frames,
                    next: 0,
                    inner: ForwardAll,
                    stop_at_wrap: None,
                };
                let run = dpdk.measure(pair, src, fresh(), budget);
                assert_eq!(run.lost, 0);
                keep(
                    pair,
                    "raw forward behind the source",
                    0,
                    raw_frames.len(),
                    run.mpps,
                    run.packets,
                );
                for (nrules, _, table, frames) in &loaded {
                    for (n, fr) in &frames[..frames.len() - 1] {
                        let mut fw = firewall(table, n * 2, tsc_hz);
                        warm_up(&mut fw, fr, rampart_dpdk::rdtsc());
                        let src = Source {
                            frames: fr,
                            next: 0,
                            inner: fw,
                            stop_at_wrap: None,
                        };
                        let run = dpdk.measure(pair, src, fresh(), budget);
                        let (c, lost) = (run.stage.inner.counters().snapshot(), run.lost);
                        assert!(lost == 0 && c.new_flows as usize == *n, "{lost} {c:?}");
                        let name = "firewall, established";
                        keep(pair, name, *nrules, *n, run.mpps, run.packets);
                    }
                    if !want_new_in_loop {
                        continue;
                    }
                    let (n, fr) = frames.last().expect("new-flow frames");
                    let fw = firewall(table, n * 2, tsc_hz);
                    let stop = fresh();
                    let src = Source {
                        frames: fr,
                        next: 0,
                        inner: fw,
                        stop_at_wrap: Some(stop.clone()),
                    };
                    // One pass over the new-flow frames (or the budget, if that ends first).
                    let run = dpdk.measure(pair, src, stop, budget * 4);
                    let (c, lost) = (run.stage.inner.counters().snapshot(), run.lost);
                    assert!(lost == 0 && c.new_flows > 0, "{lost} {c:?}");
                    let name = "firewall, 100% new flows";
                    keep(pair, name, *nrules, *n, run.mpps, run.packets);
                }
            }
        }
        for (pair, name, rules, flows, mpps) in &best {
            let find = |with_source: bool| {
                best.iter()
                    .find(|b| b.0 == *pair && b.2 == 0 && (b.3 > 0) == with_source)
                    .map_or(f64::NAN, |b| b.4)
            };
            rows.push(Row {
                part: dpdk.pairs[*pair].0,
                scenario: name.clone(),
                rules: *rules,
                flows: *flows,
                mpps: *mpps,
                reference: (*flows > 0).then_some(("raw", find(false))),
                reference2: (*rules > 0).then_some(("raw behind the source", find(true))),
            });
        }
    }

    // Part 2: `decide` alone, and the swap scenario.
    if !has("--no-decide") {
        let tsc_hz = 1_000_000_000;
        for (nrules, policy, table, frames) in &loaded {
            for (n, fr) in &frames[..frames.len() - 1] {
                if !want("established")
                    && !want("swaps")
                    && !want("continuous")
                    && !want("revalidate")
                {
                    continue;
                }
                let mut fw = firewall(table, n * 2, tsc_hz);
                warm_up(&mut fw, fr, 1);
                let mut now = 1_000;
                let mut est = 0f64;
                for _ in 0..rounds {
                    est = est.max(run_decide(&mut fw, fr, budget, &mut now));
                }
                let c = fw.counters().snapshot();
                assert!(c.established > 0 && c.new_flows as usize == *n, "{c:?}");
                if *n == sizes[0] && want("swaps") {
                    swap_rows(
                        &mut rows, &mut fw, fr, policy, table, *nrules, est, budget, rounds,
                        &mut now,
                    );
                }
                if *n == sizes[0] && want("revalidate") {
                    reval_rows(
                        &mut rows, &mut fw, fr, policy, table, *nrules, rounds, &mut now,
                    );
                }
                if *n == sizes[0] && want("continuous") {
                    continuous_rows(
                        &mut rows, &mut fw, fr, policy, table, *nrules, budget, rounds, &mut now,
                    );
                }
                if want("established") {
                    rows.push(Row {
                        part: "decide",
                        scenario: "established".into(),
                        rules: *nrules,
                        flows: *n,
                        mpps: est,
                        reference: None,
                        reference2: None,
                    });
                }
            }
            if want("new") {
                let (n, fr) = frames.last().expect("new-flow frames");
                let mut mpps = 0f64;
                for _ in 0..rounds {
                    mpps = mpps.max(run_new_decide(table, fr, budget, tsc_hz));
                }
                rows.push(Row {
                    part: "decide",
                    scenario: "100% new flows".into(),
                    rules: *nrules,
                    flows: *n,
                    mpps,
                    reference: None,
                    reference2: None,
                });
            }
        }
    }

    if json {
        for r in &rows {
            println!(
                "{{\"part\":\"{}\",\"scenario\":\"{}\",\"rules\":{},\"flows\":{},\"mpps\":{:.3},\"reference\":{},\"reference_mpps\":{},\"reference2\":{},\"reference2_mpps\":{}}}",
                r.part,
                r.scenario,
                r.rules,
                r.flows,
                r.mpps,
                r.reference.map_or("null".into(), |(n, _)| format!("\"{n}\"")),
                r.reference.map_or("null".into(), |(_, v)| format!("{v:.3}")),
                r.reference2.map_or("null".into(), |(n, _)| format!("\"{n}\"")),
                r.reference2.map_or("null".into(), |(_, v)| format!("{v:.3}"))
            );
        }
        return;
    }
    println!("| part | scenario | rules | flows | Mpps (one core) | ns/packet | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.0} | {} |",
            r.part,
            r.scenario,
            if r.rules == 0 {
                "-".into()
            } else {
                r.rules.to_string()
            },
            if r.flows == 0 {
                "-".into()
            } else {
                r.flows.to_string()
            },
            r.mpps,
            1e3 / r.mpps,
            [r.reference, r.reference2]
                .iter()
                .flatten()
                .map(|(name, v)| format!("{:.0}% of {name}", 100.0 * r.mpps / v))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
