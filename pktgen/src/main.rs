//! `pktgen`: the Rampart traffic generator. See `pktgen --help` and the README's pktgen section.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Parser;
use rampart_dpdk::{Eal, Mempool, MempoolConfig, Port, PortConfig};
use rampart_pktgen::engine::{Generator, Io, RunParams};
use rampart_pktgen::rate::{parse_bps, parse_rate, Rate};
use rampart_pktgen::search::{search, SearchConfig};
use rampart_pktgen::spec::{Macs, Mode, Proto, RunFile, SizeSpec, StreamSpec, TunnelSpec};

#[derive(Debug, Parser)]
#[command(
    name = "pktgen",
    version,
    about = "DPDK traffic generator for the Rampart firewall: sends on one port, receives what the appliance forwards on the other"
)]
struct Cli {
    /// Device frames are sent on (PCI address or vdev string), e.g.
    /// "net_memif0,role=client,socket=/run/rampart/memif-in.sock".
    #[arg(long)]
    tx_port: String,
    /// Device forwarded frames arrive on.
    #[arg(long)]
    rx_port: String,
    /// EAL arguments (one string, split on whitespace). Default: "-l 0 --no-pci
    /// --file-prefix pktgen-<pid>" plus "--in-memory" with free hugepages, else "--no-huge -m 512".
    #[arg(long, allow_hyphen_values = true)]
    eal: Option<String>,
    /// A TOML run file with [run] and [[stream]] tables (stream flags below are then ignored).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,

    /// Total rate: packets per second ("2M", "500k") or percent of --line-rate ("50%"); 0 = max.
    #[arg(long)]
    rate: Option<String>,
    /// Line rate for percentages and the search ceiling.
    #[arg(long)]
    line_rate: Option<String>,
    /// Seconds to send.
    #[arg(long, short = 'd')]
    duration: Option<f64>,
    /// Stop after this many generated frames.
    #[arg(long)]
    count: Option<u64>,
    /// Frames per TX burst (1..=64).
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Longest wait for in-flight frames after sending stops, in ms.
    #[arg(long, default_value_t = 1000)]
    drain_ms: u64,
    /// The wait ends after this many ms without receiving anything.
    #[arg(long, default_value_t = 200)]
    quiet_ms: u64,

    /// Protocol of the command-line stream: udp, tcp or icmp.
    #[arg(long, default_value = "udp")]
    proto: String,
    /// Protocol mix, e.g. "udp=70,tcp=20,icmp=10": one stream per protocol with that share.
    #[arg(long)]
    mix: Option<String>,
    /// Distinct flows.
    #[arg(long, default_value_t = 1)]
    flows: u64,
    /// First source address (IPv6 addresses make an IPv6 stream).
    #[arg(long, default_value = "10.0.0.1")]
    src: String,
    /// Source addresses (default: enough for --flows after the port ranges).
    #[arg(long)]
    src_count: Option<u64>,
    /// First destination address.
    #[arg(long, default_value = "10.1.0.1")]
    dst: String,
    /// Destination addresses.
    #[arg(long, default_value_t = 1)]
    dst_count: u64,
    /// Source port range "lo-hi" (ICMP: echo identifiers).
    #[arg(long, default_value = "1024-65535")]
    sport: String,
    /// Destination port range.
    #[arg(long, default_value = "5001")]
    dport: String,
    /// Frame size with FCS (64..2052), "imix", or "64:7,594:4,1518:1".
    #[arg(long, default_value = "64")]
    size: String,
    /// 802.1Q VLAN id.
    #[arg(long)]
    vlan: Option<u16>,
    /// 802.1ad outer VLAN id (QinQ, with --vlan as the inner tag).
    #[arg(long)]
    qinq: Option<u16>,
    /// Encapsulate in VXLAN with this VNI.
    #[arg(long, conflicts_with = "geneve")]
    vxlan: Option<u32>,
    /// Encapsulate in Geneve with this VNI.
    #[arg(long)]
    geneve: Option<u32>,
    /// Outer source address of the tunnel.
    #[arg(long, default_value = "192.0.2.1")]
    tunnel_src: String,
    /// Outer destination address of the tunnel.
    #[arg(long, default_value = "192.0.2.2")]
    tunnel_dst: String,
    /// Stateless TCP flags (letters FSRPAU).
    #[arg(long, default_value = "S")]
    tcp_flags: String,
    /// Run whole TCP sessions (SYN, SYN-ACK, data, FIN) instead of stateless TCP; the rate
    /// counts sessions started.
    #[arg(long)]
    tcp_session: bool,
    /// Data segments per TCP session.
    #[arg(long, default_value_t = 4)]
    segments: u32,
    /// Payload bytes per TCP session data segment.
    #[arg(long, default_value_t = 64)]
    segment_size: u32,
    /// Replay the headers of a ClassBench trace file (.gz accepted).
    #[arg(long, conflicts_with = "pcap")]
    trace: Option<PathBuf>,
    /// Replay the frames of a classic pcap file.
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Use at most this many trace lines / pcap records.
    #[arg(long)]
    limit: Option<usize>,

    /// RFC 2544 search for the highest rate with loss <= --loss (each trial runs --duration).
    #[arg(long)]
    search: bool,
    /// Acceptable loss in percent for --search.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Search resolution in pps (default: 1% of the ceiling).
    #[arg(long)]
    resolution: Option<String>,
    /// Most trials of a search.
    #[arg(long, default_value_t = 20)]
    max_trials: u32,
    /// Pause between search trials, in ms (lets queues empty).
    #[arg(long, default_value_t = 200)]
    settle_ms: u64,

    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// No progress lines.
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pktgen: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn hugepages_free() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("HugePages_Free:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn eal_args(cli: &Cli) -> Vec<String> {
    if let Some(e) = &cli.eal {
        let mut v: Vec<String> = e.split_whitespace().map(str::to_owned).collect();
        if !v
            .iter()
            .any(|a| a.starts_with("--file-prefix") || a == "--in-memory" || a == "--no-shconf")
        {
            v.push(format!("--file-prefix=pktgen-{}", std::process::id()));
        }
        return v;
    }
    let mut v: Vec<String> = ["-l", "0", "--no-pci", "--log-level=lib.eal:warning"]
        .map(str::to_owned)
        .to_vec();
    if hugepages_free() >= 128 && std::path::Path::new("/dev/hugepages").exists() {
        v.push("--in-memory".into());
    } else {
        v.extend(["--no-huge", "-m", "512"].map(str::to_owned));
        v.push(format!("--file-prefix=pktgen-{}", std::process::id()));
    }
    v
}

/// The streams: from the run file, or one (or a mix) from the flags.
fn streams_from(cli: &Cli, file: &RunFile) -> anyhow::Result<Vec<StreamSpec>> {
    if !file.streams.is_empty() {
        return Ok(file.streams.clone());
    }
    let proto = |s: &str| -> anyhow::Result<Proto> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "udp" => Proto::Udp,
            "tcp" => Proto::Tcp,
            "icmp" => Proto::Icmp,
            other => bail!("unknown protocol {other:?} (udp, tcp, icmp)"),
        })
    };
    let size = match cli.size.parse::<u32>() {
        Ok(n) => SizeSpec::Fixed(n),
        Err(_) => SizeSpec::Mix(cli.size.clone()),
    };
    let tunnel = match (cli.vxlan, cli.geneve) {
        (Some(vni), _) => Some(("vxlan", vni)),
        (_, Some(vni)) => Some(("geneve", vni)),
        _ => None,
    }
    .map(|(kind, vni)| TunnelSpec {
        kind: kind.into(),
        vni,
        src: cli.tunnel_src.clone(),
        dst: cli.tunnel_dst.clone(),
    });
    let base = StreamSpec {
        name: None,
        proto: proto(&cli.proto)?,
        mode: if cli.tcp_session {
            Mode::TcpSession
        } else {
            Mode::Stateless
        },
        flows: cli.flows,
        src: cli.src.clone(),
        src_count: cli.src_count,
        dst: cli.dst.clone(),
        dst_count: cli.dst_count,
        sport: cli.sport.clone(),
        dport: cli.dport.clone(),
        size,
        vlan: cli.vlan,
        qinq: cli.qinq,
        tunnel,
        share: 1.0,
        tcp_flags: cli.tcp_flags.clone(),
        segments: cli.segments,
        segment_size: cli.segment_size,
        ttl: 64,
        trace: cli.trace.clone(),
        pcap: cli.pcap.clone(),
        limit: cli.limit,
    };
    if cli.tcp_session && base.proto != Proto::Tcp {
        return Ok(vec![StreamSpec {
            proto: Proto::Tcp,
            ..base
        }]);
    }
    let Some(mix) = &cli.mix else {
        return Ok(vec![base]);
    };
    mix.split(',')
        .map(|part| {
            let (p, share) = part.split_once('=').unwrap_or((part, "1"));
            let share: f64 = share
                .trim()
                .parse()
                .with_context(|| format!("bad share in --mix {part:?}"))?;
            Ok(StreamSpec {
                name: Some(p.trim().to_owned()),
                proto: proto(p)?,
                share,
                ..base.clone()
            })
        })
        .collect()
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let file: RunFile = match &cli.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("{}", p.display()))?
        }
        None => RunFile::default(),
    };
    let specs = streams_from(cli, &file)?;
    if specs.len() > 256 {
        bail!("at most 256 streams");
    }
    let rate = match cli.rate.as_deref().or(file.run.rate.as_deref()) {
        Some(r) => parse_rate(r).map_err(anyhow::Error::msg)?,
        None => Rate::Pps(0),
    };
    let line_bps = parse_bps(
        cli.line_rate
            .as_deref()
            .or(file.run.line_rate.as_deref())
            .unwrap_or("10G"),
    )
    .map_err(anyhow::Error::msg)?;
    let duration_s =
        cli.duration
            .or(file.run.duration)
            .unwrap_or(if cli.count.or(file.run.count).is_some() {
                3600.0
            } else {
                10.0
            });
    if duration_s.is_nan() || duration_s <= 0.0 {
        bail!("--duration must be positive");
    }
    if cli.search && !(0.0..100.0).contains(&cli.loss) {
        bail!("--loss must be in [0, 100)");
    }

    // Streams are built (and every spec error reported) before EAL starts; the real MAC
    // addresses are filled in once the ports are up.
    let placeholder = Macs {
        tx: [0x02, 0, 0, 0, 0, 1],
        rx: [0x02, 0, 0, 0, 0, 2],
    };
    let mut streams = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.build(i, &placeholder).with_context(|| {
                format!("stream {}", s.name.clone().unwrap_or_else(|| i.to_string()))
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let eal = Eal::init(&eal_args(cli)).context("EAL")?;
    let hz = rampart_dpdk::tsc_hz();
    let pool = Mempool::create(&MempoolConfig {
        name: "pktgen_pool".into(),
        mbufs: 16383,
        ..MempoolConfig::default()
    })?;
    let tx_id = Port::attach(&cli.tx_port).context("--tx-port")?;
    let rx_id = Port::attach(&cli.rx_port).context("--rx-port")?;
    if tx_id == rx_id {
        bail!("--tx-port and --rx-port are the same device; pktgen needs two ports");
    }
    let (tx_port, mut tx_rxq, mut tx_txq) =
        Port::start(tx_id, &PortConfig::default(), &pool).context("--tx-port")?;
    let (rx_port, mut rx_rxq, mut rx_txq) =
        Port::start(rx_id, &PortConfig::default(), &pool).context("--rx-port")?;
    // net_null's RX invents frames: never poll it (it is only a TX sink here).
    let real_rx = |id| {
        Port::info(id)
            .map(|i| i.driver != "net_null")
            .unwrap_or(true)
    };
    let (poll_near, poll_far) = (real_rx(tx_id), real_rx(rx_id));
    let macs = Macs {
        tx: tx_port.mac(),
        rx: rx_port.mac(),
    };
    for s in &mut streams {
        s.set_macs(&macs);
    }
    let mut gen = Generator::new(streams, hz);
    let mut io = Io {
        tx_port,
        rx_port,
        near_rx: tx_rxq.remove(0),
        near_tx: tx_txq.remove(0),
        far_rx: rx_rxq.remove(0),
        far_tx: rx_txq.remove(0),
        pool,
        poll_near,
        poll_far,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let avg = gen.avg_frame_size();
    let params = RunParams {
        pps: rate.pps(line_bps, avg),
        duration_s,
        count: cli.count.or(file.run.count),
        burst: cli.burst,
        trial: 0,
        progress: !cli.quiet,
        drain_ms: cli.drain_ms,
        quiet_ms: cli.quiet_ms,
    };
    // Let links come up (memif connects asynchronously) before the clock starts.
    wait_for_link(&io);

    let code = if cli.search {
        let max_pps = match rate {
            Rate::Pps(0) => Rate::LinePercent(100.0).pps(line_bps, avg),
            r => r.pps(line_bps, avg),
        };
        let resolution_pps = match &cli.resolution {
            Some(r) => match parse_rate(r).map_err(anyhow::Error::msg)? {
                Rate::Pps(p) => p,
                pct => pct.pps(line_bps, avg),
            },
            None => (max_pps / 100).max(1),
        };
        let cfg = SearchConfig {
            max_pps,
            loss_pct: cli.loss,
            resolution_pps,
            max_trials: cli.max_trials,
        };
        let mut trial_no = 0u8;
        let result = search(&cfg, |pps| {
            trial_no = trial_no.wrapping_add(1);
            let p = RunParams {
                pps,
                trial: trial_no,
                ..params.clone()
            };
            let r = gen.run(&mut io, &p, &stop);
            if !cli.quiet {
                eprintln!(
                    "trial {trial_no}: {pps} pps offered, {} sent, loss {:.4}%",
                    r.total.tx, r.total.loss_pct
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(cli.settle_ms));
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                bail!("interrupted");
            }
            Ok((r.total.loss_pct, r))
        })?;
        if cli.json {
            let v = serde_json::json!({
                "search": {
                    "loss_threshold_pct": cli.loss,
                    "max_pps": max_pps,
                    "resolution_pps": resolution_pps,
                    "best_pps": result.best.as_ref().map(|b| b.0),
                    "trials": result.trials.iter().map(|t| serde_json::json!({"rate_pps": t.rate_pps, "loss_pct": t.loss_pct, "pass": t.pass})).collect::<Vec<_>>(),
                },
                "best": result.best.as_ref().map(|b| &b.1),
            });
            println!("{v}");
        } else {
            for t in &result.trials {
                println!(
                    "trial {:>12} pps  loss {:>8.4}%  {}",
                    t.rate_pps,
                    t.loss_pct,
                    if t.pass { "pass" } else { "fail" }
                );
            }
            match &result.best {
                Some((pps, r)) => {
                    println!(
                        "throughput: {pps} pps with loss <= {}% ({:.3} Mpps)",
                        cli.loss,
                        *pps as f64 / 1e6
                    );
                    print!("{}", r.table());
                }
                None => println!(
                    "throughput: no rate passed (loss above {}% at every rate tried)",
                    cli.loss
                ),
            }
        }
        ExitCode::SUCCESS
    } else {
        let r = gen.run(&mut io, &params, &stop);
        if cli.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            print!("{}", r.table());
        }
        ExitCode::SUCCESS
    };
    io.tx_port.stop();
    io.rx_port.stop();
    drop(io);
    drop(gen);
    eal.cleanup();
    Ok(code)
}

/// Waits up to 3 s for both links to report up (memif and af_packet come up asynchronously).
fn wait_for_link(io: &Io) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        if io.tx_port.link_up() && io.rx_port.link_up() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
