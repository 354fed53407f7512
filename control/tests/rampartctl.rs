//! `rampartctl publish` / `status` against a real node and broker (the binary, as an operator
//! runs it).

mod common;

use common::*;

fn rampartctl(args: &[&str]) -> (bool, String) {
    rampart_testkit::run(env!("CARGO_BIN_EXE_rampartctl"), args)
}

#[tokio::test]
async fn publish_waits_for_the_node_and_status_lists_it() {
    if !broker_available() {
        return;
    }
    let mut bus = TestBus::new("ctl");
    bus.broker.status_interval_ms = 300;
    let prefix = bus
        .names()
        .policy_exchange
        .trim_end_matches(".policy")
        .to_owned();
    let mut watcher = bus.watcher().await;
    let node = Node::start(&bus, &unique("fw"), Some("dc9"));
    watcher
        .wait_for(WAIT, |r| r.node == node.name)
        .await
        .unwrap()
        .expect("node up");

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("policy.json");
    std::fs::write(&good, doc(4, 9)).unwrap();
    let (ok, out) = rampartctl(&[
        "publish",
        good.to_str().unwrap(),
        "--node",
        &node.name,
        "--wait",
        "20",
        "--topology-prefix",
        &prefix,
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("published generation 4 (9 rules") && out.contains("confirmed"),
        "{out}"
    );
    assert!(out.contains(&node.name) && out.contains("applied"), "{out}");
    assert_eq!(node.generation(), 4);

    // An invalid document is refused locally…
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, br#"{"generation": 5, "rules": [{"id": 1, "protocol": "tcp", "destination": {"ports": [70000]}, "action": "allow"}]}"#).unwrap();
    let (ok, out) = rampartctl(&[
        "publish",
        bad.to_str().unwrap(),
        "--node",
        &node.name,
        "--topology-prefix",
        &prefix,
    ]);
    assert!(
        !ok && out.contains("rules[0].destination.ports[0]"),
        "{out}"
    );
    // …and with --no-validate the node rejects it, which publish reports (exit 1).
    let (ok, out) = rampartctl(&[
        "publish",
        bad.to_str().unwrap(),
        "--node",
        &node.name,
        "--no-validate",
        "--wait",
        "20",
        "--topology-prefix",
        &prefix,
    ]);
    assert!(
        !ok && out.contains("rejected") && out.contains("error: rules[0]"),
        "{out}"
    );
    assert_eq!(node.generation(), 4);

    let (ok, out) = rampartctl(&["status", "--wait", "1.5", "--topology-prefix", &prefix]);
    assert!(ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&node.name))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("dc9") && line.contains(" 4 "), "{line}");

    watcher.close().await;
    drop(node);
    bus.cleanup().await;
}
