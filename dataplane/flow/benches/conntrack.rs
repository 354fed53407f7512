//! Conntrack throughput on one core: lookups/s with 10K, 1M and 4M established flows
//! (single lookups, burst lookups with and without prefetching), burst lookup + track,
//! inserts/s, and bytes per flow. Plain harness printing a markdown table.
//! Run: `cargo bench -p rampart-flow --bench conntrack` (SIZES=10000,1000000 to pick).
//! Rates are per CPU-second of the benchmark thread (CLOCK_THREAD_CPUTIME_ID): the machine
//! is shared, and wall-clock rates would mostly measure the other tenants.

use cpu_time::ThreadTime as Instant;
use std::hint::black_box;

use rampart_flow::*;
use rampart_wire::tcp::flags as tf;
use rampart_wire::{proto, FlowKey};

const SAMPLE: usize = 1 << 16;
const REPS: usize = 32;
const LOOKUPS: usize = SAMPLE * REPS;
const BURST: usize = 32;
const ROUNDS: usize = 3;

fn key(i: u32) -> FlowKey {
    let b = i.to_be_bytes();
    FlowKey::v4(
        [10, b[1], b[2], b[3]],
        [192, 168, b[0], 1],
        proto::TCP,
        1024 + (i % 60000) as u16,
        443,
    )
}

fn pkt(flags: u8) -> PacketInfo {
    PacketInfo {
        proto: proto::TCP,
        tcp_flags: flags,
        window: 65535,
        frame_len: 64,
        ..Default::default()
    }
}

/// xorshift: deterministic pseudo-random lookup order.
fn order(n: u32, len: usize) -> Vec<u32> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % u64::from(n)) as u32
        })
        .collect()
}

fn mops(n: usize, secs: f64) -> f64 {
    n as f64 / secs / 1e6
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not: then only a smoke run.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let sizes: Vec<u32> = std::env::var("SIZES")
        .ok()
        .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or_else(|| {
            if smoke {
                vec![1_000]
            } else {
                vec![10_000, 1_000_000, 4_000_000]
            }
        });
    println!("| flows | insert (M/s) | single lookup (M/s) | burst {BURST}, no prefetch (M/s) | burst {BURST} + prefetch (M/s) | burst + track (M/s) | bytes/flow |");
    println!("|---|---|---|---|---|---|---|");
    let mut verdicts = Vec::new();
    for &n in &sizes {
        let mut t = FlowTable::new(&FlowConfig {
            capacity: n,
            ..FlowConfig::default()
        })
        .unwrap();
        let now = 1_000_000_000u64;
        // Insert: the pipeline's miss path (insert + track the SYN).
        let t0 = Instant::now();
        for i in 0..n {
            let h = t.insert(&key(i), RuleId(1), 1, now).unwrap();
            t.track(h.handle, h.dir, &pkt(tf::SYN), now);
        }
        let ins = mops(n as usize, t0.elapsed().as_secs_f64());
        // Complete the handshakes so every flow is established.
        for i in 0..n {
            let k = key(i);
            let r = t.lookup(&k.reversed(), now).unwrap();
            t.track(r.handle, r.dir, &pkt(tf::SYN | tf::ACK), now);
            let o = t.lookup(&k, now).unwrap();
            assert_eq!(
                t.track(o.handle, o.dir, &pkt(tf::ACK), now),
                TrackVerdict::Accept
            );
        }
        // A 64K-key random sample replayed: the packet stream itself should not be what
        // misses the cache.
        let keys: Vec<FlowKey> = order(n, SAMPLE).into_iter().map(key).collect();
        let mut out = vec![None; BURST];
        // Every timed burst lookup below is a hit: check it once, untimed.
        for c in keys.chunks(BURST) {
            t.lookup_burst(c, now, &mut out);
            assert!(out[..c.len()].iter().all(Option::is_some));
            t.lookup_burst_no_prefetch(c, now, &mut out);
            assert!(out[..c.len()].iter().all(Option::is_some));
        }
        let mut best = [0f64; 4];
        for _ in 0..ROUNDS {
            let t0 = Instant::now();
            let mut hits = 0usize;
            for k in keys.iter().cycle().take(LOOKUPS) {
                hits += t.lookup(black_box(k), now).is_some() as usize;
            }
            best[0] = best[0].max(mops(LOOKUPS, t0.elapsed().as_secs_f64()));
            assert_eq!(hits, LOOKUPS);

            let t0 = Instant::now();
            for c in (0..REPS).flat_map(|_| keys.chunks(BURST)) {
                t.lookup_burst_no_prefetch(c, now, &mut out);
                black_box(&out);
            }
            best[1] = best[1].max(mops(LOOKUPS, t0.elapsed().as_secs_f64()));

            let t0 = Instant::now();
            for c in (0..REPS).flat_map(|_| keys.chunks(BURST)) {
                t.lookup_burst(c, now, &mut out);
                black_box(&out);
            }
            best[2] = best[2].max(mops(LOOKUPS, t0.elapsed().as_secs_f64()));

            let p = pkt(tf::ACK);
            let t0 = Instant::now();
            for c in (0..REPS).flat_map(|_| keys.chunks(BURST)) {
                t.lookup_burst(c, now, &mut out);
                for h in out[..c.len()].iter().flatten() {
                    black_box(t.track(h.handle, h.dir, &p, now));
                }
            }
            best[3] = best[3].max(mops(LOOKUPS, t0.elapsed().as_secs_f64()));
        }
        let s = t.stats();
        let per = s.memory_bytes as f64 / f64::from(n);
        println!(
            "| {n} | {ins:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {per:.1} |",
            best[0], best[1], best[2], best[3]
        );
        let burst = best[1].max(best[2]);
        let target = match n {
            10_000 => Some(30.0),
            1_000_000 => Some(12.0),
            _ => None,
        };
        if let Some(goal) = target {
            verdicts.push(format!(
                "- {n} flows: best burst lookup {burst:.1} M/s vs target ≥ {goal} M/s: {}; {per:.1} B/flow vs ≤ 96: {}",
                if burst >= goal { "met" } else { "NOT met" },
                if per <= 96.0 { "met" } else { "NOT met" }
            ));
        }
    }
    println!();
    for v in verdicts {
        println!("{v}");
    }
}
