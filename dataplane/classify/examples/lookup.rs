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
    let pkts: Vec<PacketFields> = trace.iter().map(|p| p.fields()).collect();
    let mut out = vec![0u32; pkts.len()];
    let t = std::time::Instant::now();
    lookup_passes(&rs, &pkts, &mut out, passes);
    let s = t.elapsed().as_secs_f64();
    let sum: u64 = out.iter().map(|&x| x as u64).sum();
    println!(
        "{} packets x {passes}: {:.2} Mpps (checksum {sum}), build {:.1} ms, {:?}",
        pkts.len(),
        (pkts.len() * passes) as f64 / s / 1e6,
        rs.build_time().as_secs_f64() * 1e3,
        rs.build_stats()
    );
}
