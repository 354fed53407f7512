//! Bring-up, run and shutdown of the dataplane: EAL → mempool → ports → workers on lcores →
//! stats loop → stop workers → summary → stop ports → EAL cleanup.

use crate::firewall::{self, FirewallPlane};
use crate::metrics::DataplaneMetrics;
use crate::stats::{self, Sample};
use anyhow::{bail, Context};
use rampart_config::appliance::ApplianceConfig;
use rampart_dataplane::{assign_queues, ForwardAll, PortIndex, Worker, WorkerSettings};
use rampart_dpdk::{Eal, Mempool, MempoolConfig, Port, PortConfig};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Consecutive empty polls before an idle worker sleeps (when idle_sleep_us > 0).
const IDLE_POLLS_BEFORE_SLEEP: u32 = 64;

/// Run the appliance until `stop` is set (signal) or `duration` elapsed.
pub fn run(
    cfg: &ApplianceConfig,
    stop: Arc<AtomicBool>,
    duration: Option<Duration>,
) -> anyhow::Result<()> {
    // Firewall mode needs a policy before anything is forwarded: read the control section
    // now so a bad one fails before EAL starts.
    let control = firewall::control_config(cfg)?;
    check_hugepages(&cfg.eal.args)?;
    let eal = Eal::init(&cfg.eal.args)?;
    let mut plane = match &control {
        Some(c) => Some(FirewallPlane::boot(
            c,
            &cfg.firewall,
            rampart_dpdk::tsc_hz(),
        )?),
        None => None,
    };
    let workers_wanted = cfg.workers.count as usize;
    let lcores = eal.worker_lcores();
    if lcores.len() < workers_wanted {
        bail!(
            "workers.count is {workers_wanted} but EAL has {} worker lcore(s) besides the main one; list more cores with -l (e.g. -l 0-{workers_wanted})",
            lcores.len()
        );
    }

    let pool = Mempool::create(&MempoolConfig {
        name: "rampart_rx".into(),
        mbufs: cfg.mempool_size(),
        cache: cfg.mempool.cache,
        ..MempoolConfig::default()
    })?;

    // Ports in config order: pair k is (2k inside, 2k+1 outside), each the other's peer.
    let devices = cfg.devices();
    let mut ports = Vec::with_capacity(devices.len());
    let mut rx = Vec::with_capacity(devices.len());
    let mut tx = Vec::with_capacity(devices.len());
    let port_cfg = PortConfig {
        rx_queues: workers_wanted as u16,
        tx_queues: workers_wanted as u16,
        rx_desc: cfg.queues.rx_desc,
        tx_desc: cfg.queues.tx_desc,
        promiscuous: true,
    };
    for dev in &devices {
        let id = Port::attach(dev)?;
        if ports.iter().any(|p: &Port| p.id() == id) {
            bail!("device {dev:?} resolves to a port that is already used by another pair");
        }
        let (port, r, t) = Port::start(id, &port_cfg, &pool)?;
        ports.push(port);
        rx.push(r);
        tx.push(t);
    }
    let names: Vec<String> = ports.iter().map(|p| p.name().to_owned()).collect();
    let peer: Vec<PortIndex> = (0..ports.len())
        .map(|i| PortIndex((i ^ 1) as u16))
        .collect();

    let quit = Arc::new(AtomicBool::new(false));
    let settings = WorkerSettings {
        idle_polls_before_sleep: if cfg.workers.idle_sleep_us > 0 {
            IDLE_POLLS_BEFORE_SLEEP
        } else {
            0
        },
        idle_sleep: Duration::from_micros(cfg.workers.idle_sleep_us as u64),
    };
    let mut counters = Vec::new();
    let mut launched = Vec::new();
    for (queues, lcore) in assign_queues(rx, tx, &peer, workers_wanted)
        .into_iter()
        .zip(lcores)
    {
        // One monomorphised poll loop per mode: the raw forwarder or the firewall pipeline.
        let launched_one = match plane.as_mut() {
            Some(p) => {
                let worker = Worker::new(queues, p.stage()?, quit.clone(), settings);
                counters.push(worker.counters());
                eal.launch(lcore, move || {
                    worker.run();
                    0
                })
            }
            None => {
                let worker = Worker::new(queues, ForwardAll, quit.clone(), settings);
                counters.push(worker.counters());
                eal.launch(lcore, move || {
                    worker.run();
                    0
                })
            }
        };
        if let Err(e) = launched_one {
            quit.store(true, Ordering::SeqCst);
            for l in &launched {
                eal.wait(*l);
            }
            return Err(e.into());
        }
        launched.push(lcore);
    }
    // The control plane starts once every worker holds its table reader, so the first swap
    // waits for all of them. Its metrics endpoint (control.metrics_listen) serves the
    // dataplane's counters too.
    if let (Some(p), Some(c)) = (plane.as_mut(), control) {
        let metrics = DataplaneMetrics {
            ports: (0..ports.len())
                .map(|i| (stats::port_label(i), ports[i].name().to_owned()))
                .collect(),
            port_ids: ports.iter().map(Port::id).collect(),
            workers: counters.clone(),
            firewalls: p.counters.clone(),
            inspectors: p.inspectors.clone(),
        };
        if let Err(e) = p.start(c, Arc::new(metrics)) {
            quit.store(true, Ordering::SeqCst);
            for l in &launched {
                eal.wait(*l);
            }
            return Err(e);
        }
    }
    let lcore_list: Vec<String> = launched.iter().map(|l| l.0.to_string()).collect();
    let pairs: Vec<String> = cfg
        .pairs
        .iter()
        .enumerate()
        .map(|(k, _)| format!("{} <-> {}", names[2 * k], names[2 * k + 1]))
        .collect();
    if let Some(p) = &plane {
        let rs = p.table.current();
        println!(
            "rampart: firewall enforcing generation {} ({} rules)",
            rs.generation(),
            rs.rule_count()
        );
    }
    println!(
        "rampart: forwarding {} with {} worker(s) on lcore(s) {} ({})",
        pairs.join(", "),
        launched.len(),
        lcore_list.join(","),
        rampart_dpdk::version()
    );
    let _ = std::io::stdout().flush();

    // The main lcore: periodic stats until a signal or the duration ends.
    let start = Instant::now();
    let first = Sample::take(&counters, &ports);
    let mut prev = first.clone();
    let interval = Duration::from_millis(cfg.stats.interval_ms);
    let mut next_print = start + interval;
    while !stop.load(Ordering::Relaxed) {
        if duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        if !interval.is_zero() && Instant::now() >= next_print {
            let cur = Sample::take(&counters, &ports);
            println!("{}", stats::line(start, &prev, &cur));
            let _ = std::io::stdout().flush();
            prev = cur;
            next_print += interval;
        }
    }

    // Shutdown: stop the control plane (a swap in flight finishes first; its metrics endpoint
    // closes with it), then stop and join the workers (they drop their bursts, freeing every mbuf),
    // then report, then stop and close the ports, then clean up EAL.
    if let Some(p) = plane.as_mut() {
        p.shutdown();
    }
    quit.store(true, Ordering::SeqCst);
    for l in &launched {
        eal.wait(*l);
    }
    let last = Sample::take(&counters, &ports);
    println!("{}", stats::summary(&first, &last, &names));
    if let Some(p) = &plane {
        println!("{}", p.summary());
    }
    for p in &ports {
        p.stop();
    }
    drop(ports);
    // The mempool is a handle only: DPDK frees its memory in EAL cleanup, after the ports that
    // held its mbufs are closed (above).
    eal.cleanup();
    println!("rampart: stopped cleanly");
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Fail with one clear sentence before EAL does if hugepages are needed but none are free.
fn check_hugepages(eal_args: &[String]) -> anyhow::Result<()> {
    if eal_args.iter().any(|a| a == "--no-huge") {
        return Ok(());
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("cannot read /proc/meminfo")?;
    let free = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if free == 0 {
        bail!(
            "no free hugepages: reserve some (echo 512 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages, hugetlbfs mounted on /dev/hugepages) or run without them by adding --no-huge -m 512 --file-prefix=rampart to the EAL arguments (instead of --in-memory)"
        );
    }
    Ok(())
}
