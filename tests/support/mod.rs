//! Shared helpers for the appliance integration tests: the `rampart` binary as a child process,
//! EAL arguments unique per test, network namespaces + veth pairs with a cleanup guard, pcap files.
//!
//! Tests need root (namespaces, af_packet, hugepages); CI runs as root on the target machine.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A short tag unique to this test process and `name` (fits in 15-byte interface names).
pub fn tag(name: &str) -> String {
    format!("{}{}", name, std::process::id() % 100_000)
}

/// Run a command line through `sh -c`; panic with its output when it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn sh");
    if !out.status.success() {
        panic!(
            "command failed ({}): {cmd}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a command line; return whether it succeeded (output discarded).
pub fn sh_ok(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn free_hugepages() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("HugePages_Free:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// EAL arguments for one test appliance: two lcores, no PCI scan, a unique file prefix, and
/// hugepages when enough are free (else `--no-huge`, which DPDK forbids with `--in-memory`).
pub fn eal_args(prefix: &str) -> Vec<String> {
    let mut a: Vec<String> = ["-l", "0,1", "--no-pci", "--log-level=lib.eal:error"]
        .map(String::from)
        .to_vec();
    a.push(format!("--file-prefix={prefix}"));
    if free_hugepages() >= 128 && std::env::var_os("RAMPART_TEST_NO_HUGE").is_none() {
        a.push("--in-memory".into());
    } else {
        a.extend(["--no-huge", "-m", "512"].map(String::from));
    }
    a
}

/// The appliance binary running as a child process; killed on drop if still running.
pub struct Appliance {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// What a finished appliance left behind.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Asserts the appliance exited 0 after its clean-stop line; shows all it printed if not.
    /// `who` names it in the message (a node, a phase of the test).
    pub fn assert_stopped_cleanly(&self, who: &str) {
        assert!(
            self.status.success() && self.stdout.contains("rampart: stopped cleanly"),
            "{who}: {}\n{}\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }
}

fn collect(r: impl std::io::Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            into.lock().unwrap().push(line);
        }
    });
}

impl Appliance {
    /// Start `rampart` with `args` (appliance flags, then `--` and EAL args).
    pub fn spawn(args: &[String]) -> Appliance {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rampart");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().unwrap(), stdout.clone());
        collect(child.stderr.take().unwrap(), stderr.clone());
        Appliance {
            child,
            stdout,
            stderr,
        }
    }

    /// The child's process id (e.g. to send it SIGHUP).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    /// Everything printed to stderr so far (control-plane log records go there).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Wait until a stderr line contains every one of `needles`; panic (with the output) on
    /// timeout or exit.
    pub fn wait_for_stderr(&mut self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .cloned();
            if let Some(line) = found {
                return line;
            }
            let exited = self.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "rampart did not log a line with {needles:?} within {timeout:?} (exit: {exited:?})\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until a stdout line contains `needle`; panic (with the output) on timeout or exit.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .stdout
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "rampart exited ({st}) before printing {needle:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr.lock().unwrap().join("\n")
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "rampart did not print {needle:?} within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for the process to exit by itself (e.g. `--duration`), at most `timeout`.
    pub fn wait_exit(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "rampart did not exit within {timeout:?}\nstdout:\n{}",
                    self.stdout()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // Let the reader threads drain the pipes.
        std::thread::sleep(Duration::from_millis(200));
        Finished {
            status,
            stdout: self.stdout(),
            stderr: self.stderr.lock().unwrap().join("\n"),
        }
    }

    /// Send SIGTERM and wait for a clean exit.
    pub fn terminate(self, timeout: Duration) -> Finished {
        sh(&format!("kill -TERM {}", self.child.id()));
        self.wait_exit(timeout)
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Held by a test for as long as its appliance has af_packet ports: one such appliance at a
/// time in this test binary. DPDK's af_packet PMD names its PACKET_FANOUT group
/// `(pid ^ ifindex) & 0xffff`, and groups are per network namespace (the host ends are all in
/// the root one): two appliances whose pid/ifindex pairs collide make the second fail to attach
/// ("could not set PACKET_FANOUT ... Invalid argument"), which happened about one run in seven.
pub fn af_packet_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that panicked while holding it poisons it; the next one may still go.
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Two network namespaces, each with one veth end inside (`ns_a`: `10.99.0.1/24`,
/// `ns_b`: `10.99.0.2/24`) and the peer end in the root namespace (`host_a`, `host_b`) for the
/// appliance's af_packet ports. Offloads are off on all four ends (TCP over af_packet stalls
/// otherwise). Everything is deleted on drop.
pub struct NetnsPair {
    pub ns_a: String,
    pub ns_b: String,
    pub host_a: String,
    pub host_b: String,
}

pub const IP_A: &str = "10.99.0.1";
pub const IP_B: &str = "10.99.0.2";

impl NetnsPair {
    pub fn create(tag: &str) -> NetnsPair {
        let n = NetnsPair {
            ns_a: format!("{tag}na"),
            ns_b: format!("{tag}nb"),
            host_a: format!("{tag}ha"),
            host_b: format!("{tag}hb"),
        };
        n.cleanup();
        for (ns, host, ip, inner) in [
            (&n.ns_a, &n.host_a, IP_A, format!("{tag}ia")),
            (&n.ns_b, &n.host_b, IP_B, format!("{tag}ib")),
        ] {
            sh(&format!("ip netns add {ns}"));
            sh(&format!("ip link add {host} type veth peer name {inner}"));
            sh(&format!("ip link set {inner} netns {ns}"));
            // The tests speak IPv4 only. With IPv6 on, the kernel sends router solicitations
            // forever (router_solicitations = -1, backing off to an hour) plus MLD reports; one
            // landing in a test's window is a packet the policy drops, which turned
            // exact drop-count assertions flaky. Off before the link comes up: nothing is sent.
            sh(&format!(
                "ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
            ));
            sh(&format!("ip netns exec {ns} ip link set lo up"));
            sh(&format!(
                "ip netns exec {ns} ip addr add {ip}/24 dev {inner}"
            ));
            sh(&format!("ip netns exec {ns} ip link set {inner} up"));
            sh(&format!(
                "ip netns exec {ns} ethtool -K {inner} tx off tso off gso off gro off"
            ));
            sh(&format!("ethtool -K {host} tx off tso off gso off gro off"));
            // The host ends carry no addresses: keep IPv6 autoconf chatter off them.
            let _ = sh_ok(&format!("sysctl -qw net.ipv6.conf.{host}.disable_ipv6=1"));
            sh(&format!("ip link set {host} up"));
        }
        n
    }

    /// af_packet vdev strings for the two host ends (`index` makes the vdev names unique).
    pub fn vdevs(&self) -> (String, String) {
        let opts = "qdisc_bypass=1,framecnt=4096";
        (
            format!("net_af_packet0,iface={},{opts}", self.host_a),
            format!("net_af_packet1,iface={},{opts}", self.host_b),
        )
    }

    fn cleanup(&self) {
        let _ = sh_ok(&format!(
            "ip netns pids {0} | xargs -r kill -9; ip netns del {0}",
            self.ns_a
        ));
        let _ = sh_ok(&format!(
            "ip netns pids {0} | xargs -r kill -9; ip netns del {0}",
            self.ns_b
        ));
        let _ = sh_ok(&format!("ip link del {}", self.host_a));
        let _ = sh_ok(&format!("ip link del {}", self.host_b));
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("rampart-test-{tag}"));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Write frames to a classic pcap file (Ethernet link type, microsecond timestamps).
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).expect("write pcap");
}

/// Read every frame of a classic pcap file (either timestamp precision, little endian).
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(data.len() >= 24, "{} is not a pcap file", path.display());
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    assert!(
        magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d,
        "unexpected pcap magic {magic:#x}"
    );
    let mut frames = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let incl = u32::from_le_bytes(data[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16;
        assert!(off + incl <= data.len(), "truncated pcap record");
        frames.push(data[off..off + incl].to_vec());
        off += incl;
    }
    frames
}

/// A free TCP port on 127.0.0.1 (for a metrics endpoint, or a port nobody listens on).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` from the appliance's management endpoint (metrics, flows, explain): the body;
/// panics unless the answer is 200.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("metrics endpoint");
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    assert!(head.starts_with("HTTP/1.0 200"), "GET {path}: {response}");
    body.to_owned()
}

/// `GET /metrics` from the appliance's endpoint on `port`, summed over the label sets of the
/// metric `name` whose labels contain `filter`.
pub fn metric(port: u16, name: &str, filter: &str) -> u64 {
    http_get(port, "/metrics")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .map(|v| v as u64)
        .sum()
}

/// The whole `[control]` table (TOML) of a broker-fed node: deny-all when it has no policy,
/// metrics on `metrics_port`, and `policy_file` as its boot fallback if given.
pub fn control_toml(
    node: &str,
    state: &Path,
    broker: &rampart_control::BrokerConfig,
    metrics_port: u16,
    policy_file: Option<&Path>,
) -> String {
    #[derive(serde::Serialize)]
    struct C<'a> {
        node: &'a str,
        metrics_listen: String,
        state_dir: &'a Path,
        no_policy: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        policy_file: Option<&'a Path>,
        broker: &'a rampart_control::BrokerConfig,
    }
    #[derive(serde::Serialize)]
    struct W<'a> {
        control: C<'a>,
    }
    let control = C {
        node,
        metrics_listen: format!("127.0.0.1:{metrics_port}"),
        state_dir: state,
        no_policy: "deny-all",
        policy_file,
        broker,
    };
    toml::to_string(&W { control }).unwrap()
}
