//! The firewall end to end: two network namespaces joined only through the appliance, the
//! kernel's own TCP/ICMP stacks as peers, policy from a file and from a real RabbitMQ broker.
//!
//! What is checked is what an operator would check: a connection is accepted, refused (the
//! appliance's RST) or silently dropped; an established session stops moving when a new deny
//! is enforced; a transfer during 100 back-to-back publishes arrives intact with no policy
//! drops; the broker dropping the node's connection does not stop forwarding; a restart with
//! the broker unreachable enforces the persisted policy.

mod support;

use rampart_control::client::{PolicyPublisher, StatusWatcher, Target};
use rampart_control::live::{FlowEntry, LiveExplanation, PacketQuery};
use rampart_control::{BrokerConfig, Outcome, RealizedState};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const OK_PORT: u16 = 5001;
const REJECT_PORT: u16 = 5002;
const DROP_PORT: u16 = 5003;
const WAIT: Duration = Duration::from_secs(30);

/// Generation `g`: ICMP allowed; TCP to OK_PORT allowed (or dropped, with `block_ok`);
/// TCP to REJECT_PORT rejected; everything else dropped by default.
fn policy(g: u64, block_ok: bool) -> String {
    let ok = if block_ok { "drop" } else { "allow" };
    format!(
        r#"{{ "generation": {g}, "default_action": "drop",
  "groups": [ {{ "name": "a-side", "addresses": ["{IP_A}/32"] }} ],
  "rules": [
    {{ "id": 1, "name": "ping", "protocol": "icmp", "action": "allow" }},
    {{ "id": 2, "name": "service", "protocol": "tcp", "source": {{ "groups": ["a-side"] }},
       "destination": {{ "ports": [{OK_PORT}] }}, "action": "{ok}" }},
    {{ "id": 3, "name": "refused", "protocol": "tcp", "destination": {{ "ports": [{REJECT_PORT}] }},
       "action": "reject" }}
  ] }}"#
    )
}

/// The appliance's config file: af_packet ports on the pair, a firewall, a control section.
/// `control` is the whole `[control]` table (TOML text).
fn write_config(path: &Path, net: &NetnsPair, eal: &[String], control: &str) {
    let (va, vb) = net.vdevs();
    let eal: Vec<String> = eal.iter().map(|a| format!("{a:?}")).collect();
    let text = format!(
        r#"[eal]
args = [{}]

[[pairs]]
inside = "{va}"
outside = "{vb}"

[workers]
idle_sleep_us = 20

[stats]
interval_ms = 0

{control}
"#,
        eal.join(", ")
    );
    std::fs::write(path, text).unwrap();
}

/// A TCP listener in `ns` accepting any number of connections, discarding the data; stopped
/// on drop. (Processes are killed by handle: `pkill -f` would reach other tests' listeners,
/// since namespaces separate networks, not processes.)
struct Sink(Child);

fn sink(ns: &str, port: u16) -> Sink {
    Sink(
        Command::new("ip")
            .args(["netns", "exec", ns, "socat", "-u"])
            .arg(format!("TCP-LISTEN:{port},reuseaddr,fork"))
            .arg("OPEN:/dev/null")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn socat (apt-get install socat)"),
    )
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        // Let the port be free again before someone else listens on it.
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Connect {
    Accepted,
    Refused,
    TimedOut,
}

/// Try one TCP connection from `ns` to `ip:port` within `secs`.
fn connect(ns: &str, ip: &str, port: u16, secs: u32) -> Connect {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "timeout",
            &(secs + 1).to_string(),
            "socat",
            "-u",
            "OPEN:/dev/null",
        ])
        .arg(format!("TCP:{ip}:{port},connect-timeout={secs}"))
        .output()
        .expect("socat");
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Connect::Accepted
    } else if err.contains("refused") {
        Connect::Refused
    } else {
        Connect::TimedOut
    }
}

/// Connect until accepted (the first attempt may wait for ARP through the appliance).
fn until_accepted(ns: &str, ip: &str, port: u16) {
    let deadline = Instant::now() + WAIT;
    loop {
        match connect(ns, ip, port, 2) {
            Connect::Accepted => return,
            other => assert!(
                Instant::now() < deadline,
                "{ip}:{port} never accepted: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A long-lived session from ns_a to ns_b:OK_PORT carrying a line every 50 ms; the receiver
/// appends to `file`, so the file's size tells whether the session still moves.
struct Session {
    server: Child,
    client: Child,
}

impl Session {
    fn start(net: &NetnsPair, port: u16, file: &Path) -> Session {
        let server = Command::new("ip")
            .args(["netns", "exec", &net.ns_b, "socat", "-u"])
            .arg(format!("TCP-LISTEN:{port},reuseaddr"))
            .arg(format!("OPEN:{},creat,trunc", file.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let client = Command::new("ip")
            .args(["netns", "exec", &net.ns_a, "sh", "-c"])
            .arg(format!(
                "while true; do echo tick; sleep 0.05; done | socat -u - TCP:{IP_B}:{port}"
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Session { server, client }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.client.kill();
        let _ = self.server.kill();
        let _ = self.client.wait();
        let _ = self.server.wait();
    }
}

fn size(file: &Path) -> u64 {
    std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)
}

/// True if `file` grows within `within`.
fn grows(file: &Path, within: Duration) -> bool {
    let before = size(file);
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        if size(file) > before {
            return true;
        }
    }
    false
}

fn ping_ok(net: &NetnsPair) -> bool {
    sh_ok(&format!(
        "ip netns exec {} ping -c 2 -i 0.2 -W 2 {IP_B}",
        net.ns_a
    ))
}

#[test]
fn file_policy_allows_refuses_drops_and_cuts_sessions() {
    let _turn = af_packet_turn();
    let t = tag("ff");
    let net = NetnsPair::create(&t);
    let dir = TempDir::new(&t);
    let policy_file = dir.path("policy.json");
    std::fs::write(&policy_file, policy(1, false)).unwrap();
    let metrics_port = free_port();
    let control = format!(
        "[control]\nnode = \"{t}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\npolicy_file = \"{}\"\nstate_dir = \"{}\"\nfile_poll_ms = 200\n",
        policy_file.display(),
        dir.path("state").display()
    );
    let cfg = dir.path("rampart.toml");
    write_config(&cfg, &net, &eal_args(&t), &control);
    let mut app = Appliance::spawn(&["--config".into(), cfg.display().to_string()]);
    app.wait_for("rampart: forwarding", Duration::from_secs(60));

    let ok_sink = sink(&net.ns_b, OK_PORT);
    let _reject_sink = sink(&net.ns_b, REJECT_PORT);
    let _drop_sink = sink(&net.ns_b, DROP_PORT);
    let deadline = Instant::now() + WAIT;
    while !ping_ok(&net) {
        assert!(
            Instant::now() < deadline,
            "ping is allowed but did not cross\n{}",
            app.stdout()
        );
    }
    until_accepted(&net.ns_a, IP_B, OK_PORT);
    // Listeners run on both ports below, so a refusal can only be the appliance's RST.
    assert_eq!(connect(&net.ns_a, IP_B, REJECT_PORT, 3), Connect::Refused);
    assert_eq!(connect(&net.ns_a, IP_B, DROP_PORT, 2), Connect::TimedOut);
    // The policy is directional in its source group: B cannot open to A's port.
    let _sink_a = sink(&net.ns_a, OK_PORT);
    assert_eq!(connect(&net.ns_b, IP_A, OK_PORT, 2), Connect::TimedOut);
    assert!(
        metric(
            metrics_port,
            "rampart_packets_total",
            "outcome=\"rejected\""
        ) >= 1
    );
    assert!(metric(metrics_port, "rampart_packets_total", "outcome=\"denied\"") >= 1);
    // Per-rule hits: the accepted service, the refused port, the default drop.
    let service_hits = metric(metrics_port, "rampart_rule_hits_total", "rule=\"2\"");
    assert!(service_hits >= 1);
    assert!(metric(metrics_port, "rampart_rule_hits_total", "rule=\"3\"") >= 1);
    assert!(metric(metrics_port, "rampart_rule_hits_total", "rule=\"default\"") >= 1);
    // The drivers' own counters: what crossed each af_packet port, and the device drop reasons.
    for (port, dir) in [("in0", "rx"), ("in0", "tx"), ("out0", "rx"), ("out0", "tx")] {
        let filter = format!("port=\"{port}\",device=\"net_af_packet");
        let with_dir = |name| {
            http_get(metrics_port, "/metrics")
                .lines()
                .filter(|l| l.starts_with(name) && l.contains(&filter))
                .filter(|l| l.contains(&format!("direction=\"{dir}\"")))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum::<u64>()
        };
        assert!(
            with_dir("rampart_device_packets_total{") > 0,
            "{port} {dir}"
        );
        assert!(
            with_dir("rampart_device_bytes_total{")
                >= 42 * with_dir("rampart_device_packets_total{")
        );
    }
    let text = http_get(metrics_port, "/metrics");
    assert!(
        text.contains("rampart_device_drops_total{port=\"out0\"")
            && text.contains("reason=\"rx_missed\"}"),
        "{text}"
    );

    // An established session stops when a new generation denies it.
    let file = dir.path("session.out");
    // The fork-sink owns OK_PORT in ns_b: stop it so the session's own server can listen.
    drop(ok_sink);
    std::thread::sleep(Duration::from_millis(200));
    let session = Session::start(&net, OK_PORT, &file);
    assert!(
        grows(&file, Duration::from_secs(10)),
        "session did not start"
    );
    // The live view (`rampartctl flows` / `explain --node`): the session is in a worker's
    // table under rule 2, and explaining its packet on the node names rule 2 and that entry.
    let flows: Vec<FlowEntry> =
        serde_json::from_str(&http_get(metrics_port, "/flows?top=10")).unwrap();
    let f = flows
        .iter()
        .find(|f| f.dport == OK_PORT && f.state == "TcpEstablished")
        .unwrap_or_else(|| panic!("the session is not among the top flows: {flows:?}"));
    // Admitted by rule 2 under the node's first ruleset.
    assert_eq!((f.rule, f.ruleset_seq), (Some(2), 1));
    assert!(f.packets_orig > 0 && f.bytes_orig > 0);
    let q = PacketQuery {
        src: IP_A.parse().unwrap(),
        dst: IP_B.parse().unwrap(),
        proto: 6,
        sport: f.sport,
        dport: OK_PORT,
        icmp_type: None,
        icmp_code: None,
        vlan: None,
        vni: None,
        direction: rampart_classify::PacketDirection::Out,
    };
    let x: LiveExplanation = serde_json::from_str(&http_get(
        metrics_port,
        &format!("/explain?{}", q.to_query()),
    ))
    .unwrap();
    assert_eq!(
        (x.generation, x.rule, x.action.as_str()),
        (1, Some(2), "allow")
    );
    assert_eq!(x.flows.len(), 1, "{x:?}");
    assert_eq!(x.flows[0].sport, f.sport);
    std::fs::write(&policy_file, policy(2, true)).unwrap();
    let deadline = Instant::now() + WAIT;
    while metric(metrics_port, "rampart_policy_generation", "") != 2 {
        assert!(
            Instant::now() < deadline,
            "generation 2 never enforced\n{}",
            app.stdout()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !grows(&file, Duration::from_secs(2)),
        "the session still moves under a deny"
    );
    assert!(
        metric(
            metrics_port,
            "rampart_flow_revalidations_total",
            "result=\"cut\""
        ) >= 1
    );
    drop(session);

    // An invalid document is refused and generation 2 stays in force.
    std::fs::write(
        &policy_file,
        r#"{ "generation": 3, "rules": [ { "id": 1, "action": "maybe" } ] }"#,
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(metric(metrics_port, "rampart_policy_generation", ""), 2);

    // SIGHUP reloads at once; generation 4 allows the service again.
    std::fs::write(&policy_file, policy(4, false)).unwrap();
    sh(&format!("kill -HUP {}", app.pid()));
    let _sink = sink(&net.ns_b, OK_PORT);
    until_accepted(&net.ns_a, IP_B, OK_PORT);
    assert_eq!(metric(metrics_port, "rampart_policy_generation", ""), 4);
    // Rule 2's hits follow its id through generations 2 (drop) and 4: nothing was reset.
    assert!(metric(metrics_port, "rampart_rule_hits_total", "rule=\"2\"") > service_hits);

    let done = app.terminate(Duration::from_secs(30));
    done.assert_stopped_cleanly("rampart");
}

/// The broker side of one test: a private topology (names unique to the test), or `None`
/// (after shouting) when no broker can be had.
fn broker(t: &str) -> Option<BrokerConfig> {
    rampart_testkit::ensure_broker()
        .then(|| rampart_testkit::private_broker(rampart_testkit::broker_uri(), t))
}

async fn applied(w: &mut StatusWatcher, node: &str, generation: u64) -> RealizedState {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "generation {generation} was not reported applied by {node}"
        );
        if let Some(s) = w.next(left).await.expect("status stream") {
            if s.node == node && s.outcome == Outcome::Applied && s.generation == Some(generation) {
                return s;
            }
        }
    }
}

#[test]
fn broker_policy_is_enforced_survives_broker_loss_and_restarts_from_disk() {
    let _turn = af_packet_turn();
    let t = tag("fb");
    let Some(b) = broker(&t) else { return };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let net = NetnsPair::create(&t);
    let dir = TempDir::new(&t);
    let state = dir.path("state");
    let metrics_port = free_port();
    let cfg = dir.path("rampart.toml");
    write_config(
        &cfg,
        &net,
        &eal_args(&t),
        &control_toml(&t, &state, &b, metrics_port, None),
    );

    let mut watcher = rt
        .block_on(StatusWatcher::connect(&b, Some(&t)))
        .expect("status watcher");
    let publisher = rt
        .block_on(PolicyPublisher::connect(&b))
        .expect("publisher");
    let target = Target::Node(t.clone());
    let publish = |g: u64, block: bool| {
        rt.block_on(publisher.publish(policy(g, block).as_bytes(), &target))
            .expect("publish")
    };

    let mut app = Appliance::spawn(&["--config".into(), cfg.display().to_string()]);
    app.wait_for("rampart: forwarding", Duration::from_secs(60));
    // Fail closed: nothing crosses before a policy arrives (deny-all boot policy).
    assert!(
        !ping_ok(&net),
        "traffic crossed with the deny-all boot policy"
    );

    // Generation 1 allows: publish → enforced.
    let ok_sink = sink(&net.ns_b, OK_PORT);
    publish(1, false);
    let s = rt.block_on(applied(&mut watcher, &t, 1));
    assert_eq!(s.rule_count, 3);
    until_accepted(&net.ns_a, IP_B, OK_PORT);

    // Generation 2 denies: a running session stops and new connections time out.
    drop(ok_sink);
    let file = dir.path("session.out");
    let session = Session::start(&net, OK_PORT, &file);
    assert!(
        grows(&file, Duration::from_secs(10)),
        "session did not start"
    );
    publish(2, true);
    rt.block_on(applied(&mut watcher, &t, 2));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !grows(&file, Duration::from_secs(2)),
        "the session still moves under a deny"
    );
    drop(session);
    let ok_sink = sink(&net.ns_b, OK_PORT);
    assert_eq!(connect(&net.ns_a, IP_B, OK_PORT, 2), Connect::TimedOut);

    // Generation 3 allows again.
    publish(3, false);
    rt.block_on(applied(&mut watcher, &t, 3));
    until_accepted(&net.ns_a, IP_B, OK_PORT);

    // 100 back-to-back publishes while 8 MiB cross: the data arrives intact and no packet is
    // dropped by policy (every generation allows the transfer).
    let policy_drops = metric(
        metrics_port,
        "rampart_port_drops_total",
        "reason=\"policy\"",
    );
    let conntrack_drops = metric(
        metrics_port,
        "rampart_port_drops_total",
        "reason=\"conntrack\"",
    );
    drop(ok_sink);
    let src = dir.path("src.bin");
    let dst = dir.path("dst.bin");
    sh(&format!("head -c 8388608 /dev/urandom > {}", src.display()));
    let mut server = Command::new("ip")
        .args(["netns", "exec", &net.ns_b, "timeout", "120", "socat", "-u"])
        .arg(format!("TCP-LISTEN:{OK_PORT},reuseaddr"))
        .arg(format!("OPEN:{},creat,trunc", dst.display()))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut client = Command::new("ip")
        .args(["netns", "exec", &net.ns_a, "timeout", "120", "sh", "-c"])
        // Slow the sender a little so the transfer overlaps the publishes.
        .arg(format!(
            "(for i in $(seq 0 31); do dd if={} bs=262144 skip=$i count=1 status=none; sleep 0.05; done) | socat -u - TCP:{IP_B}:{OK_PORT}",
            src.display()
        ))
        .spawn()
        .unwrap();
    for g in 4..104 {
        publish(g, false);
    }
    rt.block_on(applied(&mut watcher, &t, 103));
    assert!(client.wait().unwrap().success(), "client failed");
    assert!(server.wait().unwrap().success(), "server failed");
    assert_eq!(
        sh(&format!("sha256sum < {}", src.display())),
        sh(&format!("sha256sum < {}", dst.display()))
    );
    assert_eq!(metric(metrics_port, "rampart_policy_generation", ""), 103);
    assert_eq!(
        metric(
            metrics_port,
            "rampart_port_drops_total",
            "reason=\"policy\""
        ),
        policy_drops
    );
    assert_eq!(
        metric(
            metrics_port,
            "rampart_port_drops_total",
            "reason=\"conntrack\""
        ),
        conntrack_drops
    );

    // The broker drops the node: forwarding never stops, and the next publish applies.
    let ping = Command::new("ip")
        .args([
            "netns", "exec", &net.ns_a, "ping", "-c", "40", "-i", "0.1", "-W", "1", IP_B,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        rampart_testkit::close_connections_of_node(&t),
        "no broker connection of node {t} found"
    );
    let out = ping.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" 0% packet loss"),
        "ping lost packets while the broker was away:\n{text}"
    );
    publish(104, true);
    rt.block_on(applied(&mut watcher, &t, 104));

    let done = app.terminate(Duration::from_secs(30));
    done.assert_stopped_cleanly("rampart");

    // Restart with the broker unreachable: generation 104 (persisted) is enforced at once —
    // ping is allowed and the service port is blocked, which the deny-all fallback would not
    // allow and an allow-all would not block.
    let mut dead = b.clone();
    let closed = free_port();
    dead.uri = format!("amqp://guest:guest@127.0.0.1:{closed}/%2f");
    let metrics_port = free_port();
    write_config(
        &cfg,
        &net,
        &eal_args(&t),
        &control_toml(&t, &state, &dead, metrics_port, None),
    );
    let mut app = Appliance::spawn(&["--config".into(), cfg.display().to_string()]);
    app.wait_for("rampart: forwarding", Duration::from_secs(60));
    assert_eq!(metric(metrics_port, "rampart_policy_generation", ""), 104);
    let deadline = Instant::now() + WAIT;
    while !ping_ok(&net) {
        assert!(
            Instant::now() < deadline,
            "persisted policy does not allow ping"
        );
    }
    let _sink = sink(&net.ns_b, OK_PORT);
    assert_eq!(connect(&net.ns_a, IP_B, OK_PORT, 2), Connect::TimedOut);
    let done = app.terminate(Duration::from_secs(30));
    done.assert_stopped_cleanly("rampart");
    rt.block_on(publisher.close());
    rt.block_on(watcher.close());
    rt.block_on(rampart_testkit::delete_topology(
        &b,
        std::slice::from_ref(&t),
    ));
}
