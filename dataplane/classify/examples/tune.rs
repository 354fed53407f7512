//! Tuning aid: min-of-N thread-CPU-time timings of tree parameters on a ClassBench set,
//! interleaved so machine noise hits all variants alike.
//! `cargo run --release -p rampart-classify --example tune -- RULES TRACE`

use rampart_classify::classbench::{load_rules, load_trace, to_policy};
use rampart_classify::{PacketFields, Ruleset};

/// On-CPU time of this thread (ns): immune to time-slicing on a shared machine.
fn cpu_ns() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse::<f64>().unwrap()
}

struct Clock(f64);
impl Clock {
    fn now() -> Self {
        Clock(cpu_ns())
    }
    fn secs(&self) -> f64 {
        (cpu_ns() - self.0) / 1e9
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rules = load_rules(args[1].as_ref()).unwrap();
    let trace = load_trace(args[2].as_ref()).unwrap();
    let policy = to_policy(&rules);
    let pkts: Vec<PacketFields> = trace.iter().map(|p| p.fields()).collect();
    let configs: Vec<(usize, usize, usize)> = args
        .get(3)
        .map(|s| {
            s.split(',')
                .map(|c| {
                    let v: Vec<usize> = c.split('x').map(|x| x.parse().unwrap()).collect();
                    (v[0], v[1], v[2])
                })
                .collect()
        })
        .unwrap_or(vec![(8, 4, 0)]);
    let sets: Vec<(String, Ruleset)> = configs
        .iter()
        .map(|&(b, s, r)| {
            let c = Clock::now();
            let rs = Ruleset::compile_tuned(&policy, b, s, r).unwrap();
            let cpu = c.secs();
            println!(
                "binth {b} spfac {s} root {r}: build {:.1} ms (cpu {:.1} ms), {} bytes, {:?}",
                rs.build_time().as_secs_f64() * 1e3,
                cpu * 1e3,
                rs.memory_bytes(),
                rs.build_stats()
            );
            (format!("b{b}s{s}r{r}"), rs)
        })
        .collect();
    if std::env::var_os("TUNE_BUILD_ONLY").is_some() {
        return;
    }
    let mut out = vec![0u32; pkts.len()];
    let mut best = vec![f64::MAX; sets.len() * 2];
    for _round in 0..5 {
        for (i, (_, rs)) in sets.iter().enumerate() {
            let t = Clock::now();
            for _ in 0..4 {
                for (c, o) in pkts.chunks(64).zip(out.chunks_mut(64)) {
                    rs.classify_index_bulk(c, o);
                }
            }
            best[2 * i] = best[2 * i].min(t.secs() / 4.0);
            let t = Clock::now();
            for (p, o) in pkts.iter().zip(out.iter_mut()) {
                *o = rs.classify(p).rule.unwrap_or(u32::MAX);
            }
            best[2 * i + 1] = best[2 * i + 1].min(t.secs());
        }
    }
    for (i, (name, _)) in sets.iter().enumerate() {
        println!(
            "{name}: classify_index_bulk {:.2} Mpps, classify {:.2} Mpps",
            pkts.len() as f64 / best[2 * i] / 1e6,
            pkts.len() as f64 / best[2 * i + 1] / 1e6
        );
    }
}
