//! Inventory updates on their own, against a real RabbitMQ: a message of type
//! `rampart.inventory` on the policy exchange is validated, merged into the node's inventory,
//! the enforced policy is resolved again (tag-selected groups change members) and published by
//! RCU; the RealizedState says which inventory revision is live; the merged inventory is
//! persisted, so a restart resolves against it.

mod common;

use common::*;
use rampart_classify::PacketFields;
use rampart_config::policy::Action;
use rampart_control::client::{PolicyPublisher, StatusWatcher, Target};
use rampart_control::{DocumentKind, Outcome, RealizedState};

/// Generation `g`: TCP/80 to the workloads tagged `web` is allowed, everything else dropped.
/// The document carries one such workload itself (web-1, 10.0.0.1).
fn policy(g: u64) -> Vec<u8> {
    format!(
        r#"{{ "generation": {g}, "default_action": "drop",
  "groups": [ {{ "name": "web", "match_tags": ["web"] }} ],
  "inventory": [ {{ "name": "web-1", "addresses": ["10.0.0.1"], "tags": ["web", "prod"] }} ],
  "rules": [ {{ "id": 10, "protocol": "tcp", "destination": {{ "groups": ["web"], "ports": [80] }},
               "action": "allow" }} ] }}"#
    )
    .into_bytes()
}

fn inventory(json: &str) -> Vec<u8> {
    json.as_bytes().to_vec()
}

/// The enforced ruleset's verdict for a TCP/80 connection to `dst`.
fn verdict(node: &Node, dst: &str) -> Action {
    let p = PacketFields::from_ips(
        "192.0.2.7".parse().unwrap(),
        dst.parse().unwrap(),
        40_000,
        80,
        6,
    );
    node.table.current().classify(&p).action
}

fn verdicts(node: &Node) -> [Action; 3] {
    ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map(|a| verdict(node, a))
}

fn inv(outcome: Outcome, id: u64) -> impl Fn(&RealizedState) -> bool {
    move |r| {
        r.kind == DocumentKind::Inventory
            && r.outcome == outcome
            && match outcome {
                Outcome::Applied => r.inventory_revision == Some(id),
                _ => r.generation == Some(id),
            }
    }
}

async fn expect(
    watcher: &mut StatusWatcher,
    what: &str,
    pred: impl Fn(&RealizedState) -> bool,
) -> RealizedState {
    watcher
        .wait_for(WAIT, pred)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no report: {what}"))
}

#[tokio::test]
async fn inventory_updates_re_resolve_the_enforced_policy_and_survive_a_restart() {
    if !broker_available() {
        return;
    }
    let bus = TestBus::new("inventory");
    let mut watcher = bus.watcher().await;
    let node = Node::start(&bus, &unique("fw"), None);
    expect(&mut watcher, "node up", |r| r.outcome == Outcome::Current).await;
    let target = Target::Node(node.name.clone());
    let publisher = PolicyPublisher::connect(&bus.broker).await.unwrap();
    use Action::{Allow, Drop};

    // Before any policy: the inventory is kept (nothing to resolve yet) and reported live.
    publisher
        .publish_inventory(
            &inventory(
                r#"{"generation": 1, "workloads": [
                    {"name": "web-2", "addresses": ["10.0.0.2"], "tags": ["web"]}]}"#,
            ),
            &target,
        )
        .await
        .unwrap();
    let r = expect(&mut watcher, "inventory 1", inv(Outcome::Applied, 1)).await;
    assert_eq!(r.active_generation, Some(0));
    assert!(
        r.warnings.iter().any(|w| w.contains("no policy document")),
        "{r:?}"
    );

    // A policy resolves against its own workloads and the standalone inventory.
    publisher.publish(&policy(1), &target).await.unwrap();
    let r = expect(&mut watcher, "policy 1", |r| {
        r.kind == DocumentKind::Policy && r.outcome == Outcome::Applied
    })
    .await;
    assert_eq!((r.generation, r.inventory_revision), (Some(1), Some(1)));
    assert_eq!(verdicts(&node), [Allow, Allow, Drop]);

    // An update moves workloads in and out of the tag group: the same policy generation is
    // resolved again and swapped in.
    publisher
        .publish_inventory(
            &inventory(
                r#"{"generation": 2, "removed": ["web-2"], "workloads": [
                    {"name": "web-3", "addresses": ["10.0.0.3/32"], "tags": ["web", "prod"]}]}"#,
            ),
            &target,
        )
        .await
        .unwrap();
    let r = expect(&mut watcher, "inventory 2", inv(Outcome::Applied, 2)).await;
    assert_eq!((r.generation, r.active_generation), (Some(1), Some(1)));
    assert_eq!(r.rule_count, 1);
    assert_eq!(verdicts(&node), [Allow, Drop, Allow]);

    // A stale revision is acked and ignored.
    publisher
        .publish_inventory(&inventory(r#"{"generation": 2, "replace": true}"#), &target)
        .await
        .unwrap();
    let r = expect(&mut watcher, "stale inventory", inv(Outcome::Stale, 2)).await;
    assert!(
        r.error
            .as_deref()
            .is_some_and(|e| e.contains("inventory revision 2 is not newer")),
        "{r:?}"
    );
    assert_eq!(r.inventory_revision, Some(2));

    // Invalid updates are rejected with the path named, dead-lettered, and change nothing.
    let bad_addr = inventory(
        r#"{"generation": 3, "workloads": [{"name": "db-1", "addresses": ["10.0.0.300"]}]}"#,
    );
    publisher
        .publish_inventory(&bad_addr, &target)
        .await
        .unwrap();
    let r = expect(&mut watcher, "bad address", inv(Outcome::Rejected, 3)).await;
    let error = r.error.unwrap();
    assert!(error.contains("workloads[0].addresses[0]"), "{error}");
    let no_revision = inventory(r#"{"workloads": []}"#);
    publisher
        .publish_inventory(&no_revision, &target)
        .await
        .unwrap();
    let r = expect(&mut watcher, "no revision", |r| {
        r.kind == DocumentKind::Inventory
            && r.outcome == Outcome::Rejected
            && r.generation.is_none()
    })
    .await;
    assert!(r.error.unwrap().starts_with("generation:"));
    assert_eq!(verdicts(&node), [Allow, Drop, Allow]);
    assert_eq!(bus.drain_dead_letters().await, vec![bad_addr, no_revision]);

    // A later policy still resolves against the merged inventory.
    publisher.publish(&policy(2), &target).await.unwrap();
    let r = expect(&mut watcher, "policy 2", |r| {
        r.kind == DocumentKind::Policy && r.outcome == Outcome::Applied && r.generation == Some(2)
    })
    .await;
    assert_eq!(r.inventory_revision, Some(2));
    assert_eq!(verdicts(&node), [Allow, Drop, Allow]);

    // Restart: the persisted policy and the persisted inventory give the same ruleset at boot,
    // and the next update applies on top of them.
    let persisted = std::fs::read(node.cfg.inventory_path()).expect("inventory persisted");
    let persisted = rampart_config::policy::InventoryDocument::from_json_slice(&persisted).unwrap();
    assert_eq!(persisted.generation, Some(2));
    let Node {
        mut plane,
        cfg,
        state_dir,
        ..
    } = node;
    if let Some(p) = plane.take() {
        p.shutdown();
    }
    let node = Node::start_with(cfg, state_dir);
    assert_eq!(node.generation(), 2);
    assert_eq!(verdicts(&node), [Allow, Drop, Allow]);
    let r = expect(&mut watcher, "restarted", |r| r.outcome == Outcome::Current).await;
    assert_eq!(r.inventory_revision, Some(2));
    publisher
        .publish_inventory(
            &inventory(
                r#"{"generation": 3, "workloads": [
                    {"name": "web-2", "addresses": ["10.0.0.2"], "tags": ["web"]}]}"#,
            ),
            &target,
        )
        .await
        .unwrap();
    let r = expect(&mut watcher, "inventory 3", inv(Outcome::Applied, 3)).await;
    assert_eq!(r.generation, Some(2));
    assert_eq!(verdicts(&node), [Allow, Allow, Allow]);

    publisher.close().await;
    watcher.close().await;
    drop(node);
    bus.cleanup().await;
}
