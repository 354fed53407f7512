//! Two network namespaces joined only through the appliance (af_packet ports on veth):
//! ping crosses it, and a 12 MiB TCP transfer arrives intact (same size and sha256).

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Pseudo-random bytes (xorshift), so the transfer is not trivially compressible or periodic.
fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn sha256(path: &std::path::Path) -> String {
    sh(&format!("sha256sum {}", path.display()))
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn ping_and_tcp_transfer_cross_the_appliance() {
    let t = tag("nt");
    let net = NetnsPair::create(&t);
    let dir = TempDir::new(&t);

    // Without the appliance the namespaces cannot reach each other.
    assert!(
        !sh_ok(&format!("ip netns exec {} ping -c 1 -W 1 {IP_B}", net.ns_a)),
        "namespaces are connected without the appliance"
    );

    let (va, vb) = net.vdevs();
    let mut args: Vec<String> = vec![
        "--inside".into(),
        va,
        "--outside".into(),
        vb,
        "--idle-sleep-us".into(),
        "20".into(),
        "--".into(),
    ];
    args.extend(eal_args(&t));
    let mut app = Appliance::spawn(&args);
    app.wait_for("rampart: forwarding", Duration::from_secs(60));

    // Ping (the first one may wait for ARP through the appliance).
    let ping = format!("ip netns exec {} ping -c 3 -i 0.2 -W 2 {IP_B}", net.ns_a);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sh_ok(&ping) {
        assert!(
            Instant::now() < deadline,
            "ping through the appliance failed\n{}",
            app.stdout()
        );
    }

    // TCP: 12 MiB from ns_a to ns_b through the appliance, checked by size and sha256.
    let src = dir.path("src.bin");
    let dst = dir.path("dst.bin");
    std::fs::write(&src, payload(12 << 20)).unwrap();
    let port = 20000 + std::process::id() % 20000;
    let mut server = Command::new("ip")
        .args(["netns", "exec", &net.ns_b, "timeout", "120", "socat", "-u"])
        .arg(format!("TCP-LISTEN:{port},reuseaddr"))
        .arg(format!("OPEN:{},creat,trunc", dst.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn socat server (apt-get install socat)");
    let client = format!(
        "ip netns exec {} timeout 120 socat -u OPEN:{} TCP:{IP_B}:{port}",
        net.ns_a,
        src.display()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    // The server may not be listening yet: retry until the connection is accepted.
    while !sh_ok(&client) {
        assert!(
            Instant::now() < deadline,
            "TCP client could not connect through the appliance"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let st = server.wait().expect("socat server");
    assert!(st.success(), "socat server failed: {st}");

    assert_eq!(
        std::fs::metadata(&dst).unwrap().len(),
        12 << 20,
        "received size"
    );
    assert_eq!(
        sha256(&src),
        sha256(&dst),
        "sha256 of sent and received data"
    );

    let done = app.terminate(Duration::from_secs(30));
    done.assert_stopped_cleanly("rampart");
    // 12 MiB in <= 1500-byte segments: at least 8000 frames each way through in0 -> out0.
    let rx_in: u64 = done
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("in0 "))
        .and_then(|l| l.split("rx").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no in0 summary:\n{}", done.stdout));
    assert!(rx_in > 8000, "only {rx_in} frames counted on in0");
}
