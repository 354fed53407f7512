//! `rampart` processes on the message bus, no namespaces needed: each appliance runs between two
//! `net_null` ports that receive nothing (`no-rx=1`), so only the control plane is exercised —
//! its queue, its RealizedState reports, its metrics endpoint and its state dir.
//!
//! - Three appliance processes (distinct node names, state dirs, EAL file prefixes) on one
//!   broker: one broadcast publish, three RealizedStates of the same generation, and each
//!   node's metrics endpoint enforcing it.
//! - amqps: an appliance verifying the TLS broker node (scripts/rabbitmq-tls.sh) against its CA
//!   applies a publish; one configured with the wrong CA logs why it is refused and keeps
//!   enforcing its boot policy.

mod support;

use rampart_control::client::{PolicyPublisher, StatusWatcher, Target};
use rampart_control::{BrokerConfig, Outcome, RealizedState};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

const WAIT: Duration = Duration::from_secs(60);

/// One appliance process and what a test reads from it.
struct Node {
    name: String,
    app: Appliance,
    metrics_port: u16,
    state: PathBuf,
}

impl Node {
    /// Start `rampart` as node `name` on `broker`: its own EAL file prefix, state dir and
    /// metrics port; `policy_file` is its boot policy if given (deny-all otherwise).
    fn spawn(dir: &TempDir, name: &str, broker: &BrokerConfig, policy_file: Option<&Path>) -> Node {
        let state = dir.path(&format!("{name}-state"));
        let metrics_port = free_port();
        let eal: Vec<String> = eal_args(name).iter().map(|a| format!("{a:?}")).collect();
        // Idle ports and small rings: three of these share the machine with everything else.
        let text = format!(
            r#"[eal]
args = [{}]

[[pairs]]
inside = "net_null0,no-rx=1"
outside = "net_null1,no-rx=1"

[workers]
idle_sleep_us = 500

[mempool]
mbufs = 2048
cache = 32

[queues]
rx_desc = 128
tx_desc = 128

[stats]
interval_ms = 0

[firewall]
flow_capacity = 4096

{}
"#,
            eal.join(", "),
            control_toml(name, &state, broker, metrics_port, policy_file)
        );
        let cfg = dir.path(&format!("{name}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let app = Appliance::spawn(&["--config".into(), cfg.display().to_string()]);
        Node {
            name: name.to_owned(),
            app,
            metrics_port,
            state,
        }
    }

    fn generation(&self) -> u64 {
        metric(self.metrics_port, "rampart_policy_generation", "")
    }

    /// Stop with SIGTERM and insist on a clean exit.
    fn stop(self) {
        let name = self.name;
        let done = self.app.terminate(Duration::from_secs(30));
        done.assert_stopped_cleanly(&format!("node {name}"));
    }
}

/// Reports from `watcher` until `want` (node name → report) holds one per node in `nodes`
/// satisfying `pred`.
async fn one_each(
    watcher: &mut StatusWatcher,
    nodes: &BTreeSet<String>,
    what: &str,
    pred: impl Fn(&RealizedState) -> bool,
) -> BTreeMap<String, RealizedState> {
    let deadline = Instant::now() + WAIT;
    let mut got = BTreeMap::new();
    while got.len() < nodes.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let r = watcher.next(left).await.expect("status stream");
        let Some(r) = r else {
            panic!("{what}: only {:?} of {nodes:?} within {WAIT:?}", got.keys())
        };
        if nodes.contains(&r.node) && pred(&r) {
            got.insert(r.node.clone(), r);
        }
    }
    got
}

#[test]
fn three_appliances_realize_one_broadcast_publish() {
    if !rampart_testkit::ensure_broker() {
        return;
    }
    let t = tag("bus3");
    let broker = rampart_testkit::private_broker(rampart_testkit::broker_uri(), &t);
    let dir = TempDir::new(&t);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Watch before the nodes start: each announces itself (Current) once it consumes.
    let mut watcher = rt
        .block_on(StatusWatcher::connect(&broker, None))
        .expect("status watcher");
    let nodes: Vec<Node> = (0..3)
        .map(|i| Node::spawn(&dir, &format!("{t}n{i}"), &broker, None))
        .collect();
    let names: BTreeSet<String> = nodes.iter().map(|n| n.name.clone()).collect();
    rt.block_on(one_each(&mut watcher, &names, "nodes up", |r| {
        r.outcome == Outcome::Current && r.active_generation == Some(0)
    }));

    // One publish to every node of this topology.
    let generation = 7;
    let rules = 25;
    let publisher = rt
        .block_on(PolicyPublisher::connect(&broker))
        .expect("publisher");
    let doc = rampart_control::synth::policy(generation, rules, 1).to_json_vec();
    rt.block_on(publisher.publish(&doc, &Target::All))
        .expect("publish");
    let realized = rt.block_on(one_each(&mut watcher, &names, "applied", |r| {
        r.outcome != Outcome::Current
    }));
    for (node, r) in &realized {
        assert_eq!(
            (r.outcome, r.generation, r.active_generation, r.rule_count),
            (Outcome::Applied, Some(generation), Some(generation), rules),
            "{node}: {r:?}"
        );
        assert!(r.error.is_none(), "{r:?}");
    }

    for n in &nodes {
        // Each process enforces it (its own metrics endpoint, read from its RCU table) …
        assert_eq!(n.generation(), generation, "node {}", n.name);
        assert_eq!(
            metric(n.metrics_port, "rampart_policy_rules", ""),
            rules as u64
        );
        assert_eq!(
            metric(
                n.metrics_port,
                "rampart_control_documents_total",
                "outcome=\"applied\""
            ),
            1
        );
        // … and keeps it in its own state dir for the next boot (written just after the
        // report, so it may take a moment).
        let path = n.state.join("last-good-policy.json");
        let deadline = Instant::now() + WAIT;
        while !path.exists() {
            assert!(
                Instant::now() < deadline,
                "node {}: no last-good policy",
                n.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let persisted = std::fs::read(&path).unwrap();
        let persisted =
            rampart_config::policy::PolicyDocument::from_json_slice(&persisted).unwrap();
        assert_eq!(persisted.generation, generation);
    }

    for n in nodes {
        n.stop();
    }
    rt.block_on(publisher.close());
    rt.block_on(watcher.close());
    rt.block_on(rampart_testkit::delete_topology(
        &broker,
        &names.into_iter().collect::<Vec<_>>(),
    ));
}

#[test]
fn appliance_over_amqps_applies_and_the_wrong_ca_is_refused_fail_closed() {
    let Some(tls) = rampart_testkit::TlsBroker::start() else {
        return;
    };
    let t = tag("bustls");
    let good = tls.config("ca.pem", &t);
    let mut wrong = good.clone();
    wrong.ca_file = Some(tls.cert("wrong-ca.pem"));
    let dir = TempDir::new(&t);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut watcher = rt
        .block_on(StatusWatcher::connect(&good, None))
        .expect("status watcher over amqps");

    // The misconfigured node boots from a policy file (generation 5); it must keep enforcing
    // it, never fall back to something weaker, while the broker refuses it.
    let boot_policy = dir.path("boot-policy.json");
    std::fs::write(
        &boot_policy,
        rampart_control::synth::policy(5, 4, 5).to_json_vec(),
    )
    .unwrap();
    let ok_name = format!("{t}ok");
    let bad_name = format!("{t}bad");
    let ok = Node::spawn(&dir, &ok_name, &good, None);
    let mut bad = Node::spawn(&dir, &bad_name, &wrong, Some(&boot_policy));

    let names = BTreeSet::from([ok_name.clone()]);
    rt.block_on(one_each(&mut watcher, &names, "amqps node up", |r| {
        r.outcome == Outcome::Current
    }));
    let publisher = rt
        .block_on(PolicyPublisher::connect(&good))
        .expect("publisher over amqps");
    rt.block_on(publisher.publish(
        &rampart_control::synth::policy(1, 3, 1).to_json_vec(),
        &Target::Node(ok_name.clone()),
    ))
    .expect("publish over amqps");
    let applied = rt.block_on(one_each(&mut watcher, &names, "applied over amqps", |r| {
        r.outcome != Outcome::Current
    }));
    assert_eq!(
        (applied[&ok_name].outcome, applied[&ok_name].generation),
        (Outcome::Applied, Some(1)),
        "{applied:?}"
    );
    assert_eq!(ok.generation(), 1);
    assert_eq!(
        metric(ok.metrics_port, "rampart_control_broker_connected", ""),
        1
    );

    // The wrong CA: the log says what failed (TLS, which CA file, the verification error) and
    // that the boot policy stays in force; the node keeps retrying without ever connecting.
    let line = bad.app.wait_for_stderr(
        &[
            "TLS handshake",
            "wrong-ca.pem",
            "enforcement continues with generation 5",
        ],
        WAIT,
    );
    assert!(
        line.contains("UnknownIssuer") || line.to_ascii_lowercase().contains("certificate"),
        "the refusal does not say it is the certificate: {line}"
    );
    let deadline = Instant::now() + WAIT;
    while bad.app.stderr().matches("TLS handshake").count() < 3 {
        assert!(
            Instant::now() < deadline,
            "the node stopped retrying:\n{}",
            bad.app.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(bad.generation(), 5);
    assert_eq!(
        metric(bad.metrics_port, "rampart_policy_rules", ""),
        4,
        "the boot policy is not the one enforced"
    );
    assert_eq!(
        metric(
            bad.metrics_port,
            "rampart_control_broker_connects_total",
            ""
        ),
        0
    );
    assert!(
        !bad.state.join("last-good-policy.json").exists(),
        "the refused node persisted a policy it never received"
    );

    ok.stop();
    bad.stop();
    rt.block_on(publisher.close());
    rt.block_on(watcher.close());
    rt.block_on(rampart_testkit::delete_topology(&good, &[ok_name]));
    drop(tls);
}
