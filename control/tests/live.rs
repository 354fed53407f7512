//! The live view of a running control plane, through `rampartctl` as an operator runs it:
//! `explain --node` answers from the enforced generation (and compares with `--file`), bad
//! queries are refused with the parameter named, and a node without a dataplane says so for
//! `flows`. (The conntrack half, with real workers and traffic, is in the root package's
//! tests/firewall_netns.rs.) No broker: the policy comes from a file.

use rampart_classify::TableHandle;
use rampart_control::stats::{self, StatsError};
use rampart_control::{initial_ruleset, ControlConfig, ControlPlane};
use std::time::Duration;

fn rampartctl(args: &[&str]) -> (bool, String) {
    rampart_testkit::run(env!("CARGO_BIN_EXE_rampartctl"), args)
}

fn policy(generation: u64, web: &str) -> String {
    format!(
        r#"{{ "generation": {generation}, "default_action": "drop",
             "groups": [ {{ "name": "clients", "addresses": ["10.0.0.0/8"] }} ],
             "rules": [ {{ "id": 5, "name": "web", "protocol": "tcp",
                           "source": {{ "groups": ["clients"] }},
                           "destination": {{ "ports": [443] }}, "action": "{web}" }} ] }}"#
    )
}

#[test]
fn explain_on_a_live_node_names_its_generation_and_compares_with_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("policy.json");
    let next = dir.path().join("next.json");
    std::fs::write(&live, policy(3, "allow")).unwrap();
    std::fs::write(&next, policy(4, "reject")).unwrap();
    let cfg: ControlConfig = serde_json::from_value(serde_json::json!({
        "node": "live",
        "policy_file": live,
        "state_dir": dir.path().join("state"),
        "metrics_listen": "127.0.0.1:0",
    }))
    .unwrap();
    let boot = initial_ruleset(&cfg).unwrap();
    let plane = ControlPlane::spawn(cfg, TableHandle::new(boot.ruleset)).unwrap();
    let addr = plane.metrics_addr().expect("endpoint bound").to_string();

    let (ok, out) = rampartctl(&[
        "explain",
        "--node",
        &addr,
        "--src",
        "10.1.2.3",
        "--dst",
        "192.0.2.1",
        "--proto",
        "tcp",
        "--sport",
        "40000",
        "--dport",
        "443",
        "--file",
        next.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let (now, instead) = out.split_once("instead:").expect("both answers");
    assert!(now.contains("enforced generation 3"), "{out}");
    assert!(
        now.contains("rule 5 (web)") && now.contains("Allow"),
        "{out}"
    );
    assert!(
        now.contains("clients"),
        "the group it matched through: {out}"
    );
    // This node has no dataplane: the conntrack half says so instead of failing.
    assert!(now.contains("conntrack: not available"), "{out}");
    assert!(
        instead.contains("generation 4") && instead.contains("Reject"),
        "{out}"
    );

    // A packet no rule matches gets the default action.
    let (ok, out) = rampartctl(&[
        "explain",
        "--node",
        &addr,
        "--src",
        "172.16.0.1",
        "--dst",
        "192.0.2.1",
        "--dport",
        "443",
    ]);
    assert!(
        ok && out.contains("default action") && out.contains("Drop"),
        "{out}"
    );

    // Bad queries name the parameter; flows need a dataplane.
    match stats::fetch(
        &addr,
        "/explain?src=10.0.0.1&dst=nope",
        Duration::from_secs(5),
    ) {
        Err(StatsError::Http { status, body, .. }) => {
            assert!(status.contains("400"), "{status}");
            assert!(body.contains("parameter dst"), "{body}");
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    let (ok, out) = rampartctl(&["flows", "--endpoint", &addr]);
    assert!(
        !ok && out.contains("404") && out.contains("no dataplane"),
        "{out}"
    );
    plane.shutdown();
}
