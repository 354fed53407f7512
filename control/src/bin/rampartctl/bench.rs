//! `rampartctl bench classify --rules F --trace T [--json] [--output FILE]`: ClassBench
//! rules → classifier; every trace packet classified in bursts and checked against the
//! linear first-match reference.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use rampart_classify::classbench::{load_rules, load_trace, to_policy};
use rampart_classify::linear::Linear;
use rampart_classify::{PacketFields, Ruleset};

/// Benchmarks.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Classifier lookup rate and build time on a ClassBench rule file and trace.
    Classify(ClassifyArgs),
}

/// Arguments of `bench classify`.
#[derive(clap::Args)]
pub struct ClassifyArgs {
    /// ClassBench rule file (first match wins; rule id = 0-based line number).
    #[arg(long)]
    pub rules: PathBuf,
    /// ClassBench trace (may be .gz).
    #[arg(long)]
    pub trace: PathBuf,
    /// Print one JSON object: rules, packets, mismatches, build_ms, memory_bytes, mpps.
    #[arg(long)]
    pub json: bool,
    /// Write the matched rule index (or -1) of every trace packet, one per line.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Packets per classify call.
    #[arg(long, default_value_t = 64)]
    pub burst: usize,
    /// Passes over the trace for timing (0 = as many as fit in --min-time-ms).
    #[arg(long, default_value_t = 0)]
    pub iterations: u32,
    /// Minimum timed duration when --iterations is 0.
    #[arg(long, default_value_t = 1000)]
    pub min_time_ms: u64,
}

pub fn run(c: &Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Classify(a) => classify(a),
    }
}

fn classify(a: &ClassifyArgs) -> anyhow::Result<ExitCode> {
    let rules = load_rules(&a.rules)?;
    let trace = load_trace(&a.trace)?;
    let policy = to_policy(&rules);
    let rs = Ruleset::compile(&policy).context("building the classifier")?;
    let pkts: Vec<PacketFields> = trace.iter().map(|p| p.fields()).collect();
    let burst = a.burst.max(1);
    let mut got = vec![u32::MAX; pkts.len()];
    let pass = |out: &mut [u32]| {
        for (chunk, o) in pkts.chunks(burst).zip(out.chunks_mut(burst)) {
            rs.classify_index_bulk(chunk, o);
        }
    };
    // Warm-up pass, which is also the answer checked below.
    pass(&mut got);
    let mut scratch = vec![u32::MAX; pkts.len()];
    let mut iters = 0u64;
    let start = Instant::now();
    loop {
        pass(&mut scratch);
        iters += 1;
        let done = if a.iterations > 0 {
            iters >= a.iterations as u64
        } else {
            start.elapsed().as_millis() as u64 >= a.min_time_ms
        };
        if done {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(&scratch);
    let mpps = (pkts.len() as f64 * iters as f64) / secs / 1e6;

    // Reference: linear first match, once per run of identical headers.
    let oracle = Linear::new(&policy);
    let mut mismatches = 0u64;
    let mut last: Option<(PacketFields, u32)> = None;
    for (p, &g) in pkts.iter().zip(&got) {
        let want = match last {
            Some((q, w)) if q == *p => w,
            _ => {
                let w = oracle.classify(p).rule.unwrap_or(u32::MAX);
                last = Some((*p, w));
                w
            }
        };
        mismatches += (want != g) as u64;
    }

    if let Some(path) = &a.output {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        for &g in &got {
            if g == u32::MAX {
                writeln!(f, "-1")?;
            } else {
                writeln!(f, "{g}")?;
            }
        }
        f.flush()?;
    }
    let build_ms = rs.build_time().as_secs_f64() * 1e3;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "rules": rules.len(),
                "packets": pkts.len(),
                "mismatches": mismatches,
                "build_ms": (build_ms * 1000.0).round() / 1000.0,
                "memory_bytes": rs.memory_bytes(),
                "mpps": (mpps * 100.0).round() / 100.0,
            })
        );
    } else {
        let s = rs.build_stats();
        println!("rules:        {}", rules.len());
        println!("packets:      {}", pkts.len());
        println!("mismatches:   {mismatches}");
        println!("build_ms:     {build_ms:.3}");
        println!("memory_bytes: {}", rs.memory_bytes());
        println!("mpps:         {mpps:.2}");
        println!(
            "(trees {} ({} masked), boxes {}, leaf entries {}, {iters} passes of {} packets in bursts of {burst})",
            s.trees,
            s.masked_trees,
            s.boxes,
            s.leaf_entries,
            pkts.len()
        );
        if std::env::var_os("RAMPART_BENCH_COST").is_some() {
            let mut tot: Vec<(usize, usize)> = Vec::new();
            for p in &pkts {
                for (i, c) in rs.lookup_cost(p).into_iter().enumerate() {
                    if tot.len() <= i {
                        tot.resize(i + 1, (0, 0));
                    }
                    tot[i].0 += c.0;
                    tot[i].1 += c.1;
                }
            }
            for (i, (n, c)) in tot.iter().enumerate() {
                println!(
                    "tree {i}: {:.2} nodes, {:.2} boxes compared per packet",
                    *n as f64 / pkts.len() as f64,
                    *c as f64 / pkts.len() as f64
                );
            }
        }
    }
    Ok(if mismatches == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
