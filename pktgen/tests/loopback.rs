//! Runs the `pktgen` binary as a child process (one EAL per process) on two memif ports
//! connected to each other inside that process, so every frame sent on the TX port arrives on
//! the RX port, and every frame the "server" side answers arrives back on the TX port. The
//! counts must then be exact: tx == rx, one latency sample per stamped frame, and every TCP
//! session opened and closed.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

static RUN: AtomicUsize = AtomicUsize::new(0);

struct Loop {
    dir: PathBuf,
}

impl Loop {
    fn new() -> Loop {
        let n = RUN.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("pktgen-it-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Loop { dir }
    }

    /// Runs pktgen over a memif pair with `args`; returns the parsed JSON report.
    fn run(&self, args: &[&str]) -> Value {
        let sock = self.dir.join("m.sock");
        let sock = sock.display();
        let prefix = format!(
            "pktgen-it-{}-{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::SeqCst)
        );
        let eal = format!(
            "-l 0 --no-pci --no-huge -m 256 --file-prefix={prefix} --log-level=lib.eal:error"
        );
        let out = Command::new(env!("CARGO_BIN_EXE_pktgen"))
            .args([
                "--tx-port",
                &format!("net_memif0,role=server,socket={sock},id=0"),
            ])
            .args([
                "--rx-port",
                &format!("net_memif1,role=client,socket={sock},id=0"),
            ])
            .args([
                "--eal",
                &eal,
                "--json",
                "--quiet",
                "--drain-ms",
                "3000",
                "--quiet-ms",
                "1000",
            ])
            .args(args)
            .output()
            .expect("run pktgen");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "pktgen {args:?} failed: {}\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        );
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON in {stdout}\n{stderr}"));
        serde_json::from_str(line).unwrap()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

#[test]
fn udp_flows_arrive_exactly_once_with_a_latency_sample_each() {
    let l = Loop::new();
    let r = l.run(&[
        "--count", "20000", "--rate", "200k", "--flows", "1000", "--size", "128",
    ]);
    let t = &r["total"];
    assert_eq!(u(&t["tx"]), 20000, "{r}");
    assert_eq!(u(&t["rx"]), 20000, "{r}");
    assert_eq!(t["lost"], 0);
    assert_eq!(u(&t["latency"]["samples"]), 20000);
    assert!(u(&t["latency"]["p50_ns"]) > 0);
    assert!(u(&t["latency"]["max_ns"]) >= u(&t["latency"]["p99_ns"]));
    assert_eq!(u(&r["rx_port"]["ipackets"]), 20000);
    assert_eq!(u(&r["returned"]["total"]), 0);
    // 20,000 frames at 200k pps take about 0.1 s.
    let secs = r["duration_s"].as_f64().unwrap();
    assert!(
        (0.09..10.0).contains(&secs),
        "rate-limited: 20,000 frames at 200k pps take 0.1 s, took {secs}"
    );
}

#[test]
fn mixed_streams_from_toml_count_per_stream() {
    let l = Loop::new();
    let cfg = l.dir.join("run.toml");
    std::fs::write(
        &cfg,
        r#"
        [run]
        rate = "100k"
        count = 9000
        [[stream]]
        name = "udp-imix-vlan"
        proto = "udp"
        flows = 500
        size = "imix"
        vlan = 100
        share = 2
        [[stream]]
        name = "tcp6-vxlan"
        proto = "tcp"
        tcp_flags = "A"
        src = "2001:db8::1"
        dst = "2001:db8:1::1"
        flows = 300
        tunnel = { kind = "vxlan", vni = 5 }
        [[stream]]
        name = "icmp-geneve"
        proto = "icmp"
        flows = 64
        sport = "1-64"
        tunnel = { kind = "geneve", vni = 9, src = "2001:db8:f::1", dst = "2001:db8:f::2" }
        "#,
    )
    .unwrap();
    let r = l.run(&["--config", cfg.to_str().unwrap()]);
    let s = r["streams"].as_array().unwrap();
    assert_eq!(s.len(), 3);
    let tx: Vec<u64> = s.iter().map(|x| u(&x["tx"])).collect();
    assert_eq!(tx.iter().sum::<u64>(), 9000, "{r}");
    // shares 2:1:1
    assert_eq!(tx, vec![4500, 2250, 2250], "{r}");
    for x in s {
        assert_eq!(x["tx"], x["rx"], "{x}");
        assert_eq!(x["rx"], x["latency"]["samples"], "{x}");
    }
    assert_eq!(u(&r["unmatched"]["foreign"]), 0);
}

#[test]
fn tcp_sessions_open_carry_data_and_close() {
    let l = Loop::new();
    let r = l.run(&[
        "--tcp-session",
        "--flows",
        "200",
        "--count",
        "200",
        "--rate",
        "20k",
        "--segments",
        "3",
        "--segment-size",
        "100",
    ]);
    let s = &r["streams"][0];
    let c = &s["sessions"];
    assert_eq!(u(&c["started"]), 200, "{r}");
    assert_eq!(u(&c["established"]), 200, "{r}");
    assert_eq!(u(&c["closed"]), 200, "{r}");
    assert_eq!(u(&c["resets"]), 0);
    // Client: SYN + 3 data + FIN + ACK; server: SYN-ACK + FIN-ACK.
    assert_eq!(u(&s["tx"]), 200 * 8, "{r}");
    assert_eq!(s["tx"], s["rx"]);
    assert_eq!(u(&c["server_tx"]), 400);
    assert_eq!(
        u(&s["latency"]["samples"]),
        600,
        "one sample per data segment"
    );
}

#[test]
fn trace_and_pcap_replay_and_search() {
    let l = Loop::new();
    let trace = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/classbench/acl1_1k.trace.gz"
    );
    let r = l.run(&[
        "--trace", trace, "--limit", "500", "--count", "1500", "--rate", "100k",
    ]);
    assert_eq!(u(&r["total"]["tx"]), 1500, "{r}");
    assert_eq!(r["total"]["rx"], r["total"]["tx"]);
    assert_eq!(r["total"]["latency"]["samples"], r["total"]["rx"]);

    // A pcap of two UDP frames written by the library's writer, replayed 1000 times.
    let mut frames = Vec::new();
    for (sport, len) in [(1111u16, 100usize), (2222, 333)] {
        let mut f = vec![0u8; len];
        let n = rampart_wire::build_frame(
            &rampart_wire::EthernetRepr {
                src: [2, 0, 0, 0, 0, 1],
                dst: [2, 0, 0, 0, 0, 2],
                outer_vlan: None,
                inner_vlan: None,
                ethertype: 0,
            },
            &rampart_wire::IpSpec {
                src: "10.0.0.1".parse().unwrap(),
                dst: "10.0.0.2".parse().unwrap(),
                ttl: 64,
            },
            &rampart_wire::L4Repr::Udp(rampart_wire::UdpRepr {
                src_port: sport,
                dst_port: 53,
                payload: &vec![7u8; len - 42],
            }),
            &mut f,
        )
        .unwrap();
        assert_eq!(n, len);
        frames.push(rampart_pktgen::pcap::PcapRecord {
            ts_ns: 0,
            orig_len: len as u32,
            data: f,
        });
    }
    let pcap = l.dir.join("two.pcap");
    std::fs::write(&pcap, rampart_pktgen::pcap::write(1, &frames)).unwrap();
    let r = l.run(&[
        "--pcap",
        pcap.to_str().unwrap(),
        "--count",
        "1000",
        "--rate",
        "50k",
    ]);
    assert_eq!(u(&r["total"]["tx"]), 1000, "{r}");
    assert_eq!(u(&r["total"]["rx"]), 1000, "{r}");
    assert!(r["total"]["tx_bps"].as_f64().unwrap() > 0.0);

    // The loop loses nothing at 50k pps: the search passes at its ceiling in one trial.
    let r = l.run(&["--search", "--rate", "50k", "--duration", "0.2"]);
    assert_eq!(r["search"]["best_pps"], 50_000, "{r}");
    assert_eq!(r["search"]["trials"].as_array().unwrap().len(), 1);
    assert_eq!(r["best"]["total"]["lost"], 0);
}
