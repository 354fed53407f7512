//! Profiling aid: compiles a ClassBench set and runs `classify_index_bulk` over the trace in
//! bursts of 64, inside one non-inlined function so `valgrind --tool=callgrind
//! --toggle-collect=*lookup_passes*` counts only lookups (instructions and, with
//! `--branch-sim=yes`, mispredicted branches per packet are then repeatable under load).
//! `cargo run --release -p rampart-classify --example lookup -- RULES TRACE [PASSES]`

use rampart_classify::classbench::{load_rules, load_trace, to_policy};
use rampart_classify::{PacketFields, Ruleset};

#[inline(never)]
fn lookup_passes(rs: &Ruleset, pkts: &[PacketFields], out: &mut [u32], passes: usize) {
    for _ in 0..passes {
        for (c, o) in pkts.chunks(64).zip(out.chunks_mut(64)) {
            rs.classify_index_bulk(c, o);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rules = load_rules(args[1].as_ref()).unwrap();
    let trace = load_trace(args[2].as_ref()).unwrap();
    let passes: usize = args.get(3).map_or(1, |s| s.parse().unwrap());
    let policy = to_policy(&rules);
    let rs = Ruleset::compile(&policy).unwrap();
    // LIMIT=n: the first n packets only (a trace that stays in cache).
    let limit = std::env::var("LIMIT").map_or(usize::MAX, |v| v.parse().unwrap());
    let pkts: Vec<PacketFields> = trace.iter().take(limit).map(|p| p.fields()).collect();
    let mut out = vec![0u32; pkts.len()];
    // On-CPU time of this thread: a shared, busy host time-slices it.
    let cpu_ns = || -> f64 {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        s.split_whitespace().next().unwrap().parse().unwrap()
    };
    let t = cpu_ns();
    lookup_passes(&rs, &pkts, &mut out, passes);
    let s = (cpu_ns() - t) / 1e9;
    let sum: u64 = out.iter().map(|&x| x as u64).sum();
    println!(
        "{} packets x {passes}: {:.2} Mpps (checksum {sum}), build {:.1} ms, {:?}",
        pkts.len(),
        (pkts.len() * passes) as f64 / s / 1e6,
        rs.build_time().as_secs_f64() * 1e3,
        rs.build_stats()
    );
    // Per tree: share of packets that walk it, mean node steps and leaf chunks scanned.
    if std::env::var_os("LOOKUP_COST").is_some() {
        let mut acc: Vec<(usize, usize, usize)> = Vec::new();
        let mut depth: Vec<Vec<usize>> = Vec::new();
        for p in &pkts {
            let c = rs.lookup_cost(p);
            depth.resize(depth.len().max(c.len()), vec![0; 64]);
            for (h, &(n, _)) in depth.iter_mut().zip(&c) {
                h[n.min(63)] += 1;
            }
            acc.resize(acc.len().max(c.len()), (0, 0, 0));
            for (a, &(n, s)) in acc.iter_mut().zip(&c) {
                a.0 += (n + s > 0) as usize;
                a.1 += n;
                a.2 += s;
            }
        }
        let n = pkts.len() as f64;
        for (t, &(w, nodes, scans)) in acc.iter().enumerate() {
            println!(
                "tree {t}: walked by {:.0}%, {:.2} nodes, {:.2} chunks per packet",
                w as f64 / n * 100.0,
                nodes as f64 / n,
                scans as f64 / n
            );
            let last = depth[t].iter().rposition(|&x| x > 0).unwrap_or(0);
            println!("  packets by node steps: {:?}", &depth[t][..=last]);
        }
    }
}
