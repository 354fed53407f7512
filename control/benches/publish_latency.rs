//! Publish-to-enforced latency: from `rampartctl publish` (publish + confirm) until the node's
//! RealizedState (Applied) arrives on the status exchange, for synthetic policies of 1K, 10K and
//! 100K rules. The node is a real ControlPlane with one worker thread passing quiescent points,
//! against the local RabbitMQ (127.0.0.1:5672, guest/guest).
//!
//! cargo bench -p rampart-control --bench publish_latency [-- --sizes 1000,10000,100000 --reps 5]
//! cargo bench -p rampart-control --bench publish_latency -- --split 1000,10000 [--reps 5]
//!   (no broker: where a document's time goes — parse, validate, compile)

use rampart_classify::table::TableHandle;
use rampart_control::client::{PolicyPublisher, StatusWatcher, Target};
use rampart_control::{
    BrokerConfig, ControlConfig, ControlPlane, NoPolicy, Outcome, SpawnOptions, TopologyNames,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Where the time of one document goes on the node, in process (no broker): JSON → document,
/// validation/resolution, compilation. Medians of `reps`, in ms.
fn split(rules: usize, reps: usize) -> (f64, f64, f64) {
    let (mut parse, mut validate, mut compile) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps {
        let body = rampart_control::synth::policy(1, rules, rep as u64 + 1).to_json_vec();
        let t0 = Instant::now();
        let doc = rampart_config::policy::PolicyDocument::from_json_slice(&body).unwrap();
        let t1 = Instant::now();
        let validated = doc.validate_standalone().unwrap();
        let t2 = Instant::now();
        let ruleset = rampart_classify::Ruleset::compile(&validated).unwrap();
        let t3 = Instant::now();
        if rep == 0 {
            eprintln!(
                "{rules} rules: {} compiler warnings",
                ruleset.warnings().len()
            );
        }
        std::hint::black_box(ruleset);
        parse.push((t1 - t0).as_secs_f64() * 1e3);
        validate.push((t2 - t1).as_secs_f64() * 1e3);
        compile.push((t3 - t2).as_secs_f64() * 1e3);
    }
    (
        median(&mut parse),
        median(&mut validate),
        median(&mut compile),
    )
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: then a quick smoke run.
    let smoke = !std::env::args().any(|a| a == "--bench");
    if let Some(sizes) = arg("--split") {
        let reps: usize = arg("--reps").map_or(5, |r| r.parse().expect("--reps N"));
        // With --worker, a thread loads/quiesces every ~20 µs meanwhile, as in the broker run.
        let stop = Arc::new(AtomicBool::new(false));
        let sleeper = std::env::args().any(|a| a == "--worker").then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_micros(20));
                }
            })
        });
        println!("| rules | parse ms | validate ms | compile ms (median of {reps}, in process) |");
        println!("|---|---|---|---|");
        for rules in sizes
            .split(',')
            .map(|s| s.trim().parse::<usize>().expect("--split N,M"))
        {
            let (p, v, c) = split(rules, reps);
            println!("| {rules} | {p:.1} | {v:.1} | {c:.1} |");
        }
        stop.store(true, Ordering::Relaxed);
        if let Some(t) = sleeper {
            t.join().unwrap();
        }
        return;
    }
    let default_sizes = if smoke { "100" } else { "1000,10000,100000" };
    if smoke
        && std::net::TcpStream::connect_timeout(
            &"127.0.0.1:5672".parse().unwrap(),
            Duration::from_millis(500),
        )
        .is_err()
    {
        eprintln!("publish_latency smoke run: no broker at 127.0.0.1:5672, skipped");
        return;
    }
    let sizes: Vec<usize> = arg("--sizes")
        .unwrap_or_else(|| default_sizes.into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("--sizes: comma-separated rule counts")
        })
        .collect();
    let reps: usize =
        arg("--reps").map_or(if smoke { 1 } else { 5 }, |r| r.parse().expect("--reps N"));
    let uri = std::env::var("RAMPART_BENCH_AMQP_URI")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());

    let mut broker = BrokerConfig::new(uri);
    broker.names = TopologyNames::with_prefix(&format!("bench.{}", std::process::id()));
    // Heartbeats, so the watcher (connected after the node) surely sees the node come up.
    broker.status_interval_ms = 500;
    let state = std::env::temp_dir().join(format!("rampart-bench-{}", std::process::id()));
    let mut cfg = ControlConfig::new("bench-node");
    cfg.broker = Some(broker.clone());
    cfg.state_dir = state.clone();
    cfg.no_policy = NoPolicy::DenyAll;

    let boot = rampart_control::initial_ruleset(&cfg).expect("boot");
    let table = TableHandle::new(boot.ruleset);
    // A worker: load once per burst, quiescent after it; a burst every ~20 µs.
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let mut reader = table.register_reader();
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::hint::black_box(reader.load().generation());
                reader.quiescent();
                std::thread::sleep(Duration::from_micros(20));
            }
        })
    };
    let plane = ControlPlane::spawn_with(
        cfg,
        table.clone(),
        SpawnOptions {
            sighup: false,
            ..SpawnOptions::default()
        },
    )
    .expect("control plane");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut watcher = StatusWatcher::connect(&broker, None).await.expect("broker reachable");
        watcher
            .wait_for(Duration::from_secs(30), |r| r.outcome == Outcome::Current)
            .await
            .unwrap()
            .expect("node up");
        let publisher = PolicyPublisher::connect(&broker).await.unwrap();
        let target = Target::Node("bench-node".into());
        println!("| rules | message KiB | publish→RealizedState ms (median of {reps}) | min ms | compile ms | enforce ms |");
        println!("|---|---|---|---|---|---|");
        let mut generation = 0;
        for &rules in &sizes {
            let (mut total, mut compile, mut enforce) = (Vec::new(), Vec::new(), Vec::new());
            let mut size = 0;
            for _ in 0..reps {
                generation += 1;
                let body = rampart_control::synth::policy(generation, rules, generation).to_json_vec();
                size = body.len();
                let t0 = Instant::now();
                publisher.publish(&body, &target).await.unwrap();
                let r = watcher
                    .wait_for(Duration::from_secs(300), |r| r.generation == Some(generation))
                    .await
                    .unwrap()
                    .expect("report");
                assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
                total.push(t0.elapsed().as_secs_f64() * 1e3);
                compile.push(r.compile_ms);
                enforce.push(r.enforce_ms);
            }
            let min = total.iter().cloned().fold(f64::INFINITY, f64::min);
            println!(
                "| {rules} | {} | {:.1} | {:.1} | {:.1} | {:.2} |",
                size / 1024,
                median(&mut total),
                min,
                median(&mut compile),
                median(&mut enforce)
            );
        }
        publisher.close().await;
        watcher.close().await;
    });
    plane.shutdown();
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    let _ = std::fs::remove_dir_all(state);
    // Remove the bench topology.
    rt.block_on(rampart_testkit::delete_topology(
        &broker,
        &["bench-node".to_owned()],
    ));
}
