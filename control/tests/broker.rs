//! The control plane against a real RabbitMQ (127.0.0.1:5672): publish → enforced on the table
//! and seen by a worker thread; rejection to the dead-letter queue; stale generations; ordering
//! over 100 back-to-back publishes; reconnect after the broker drops the connection; three nodes.
//! Each test has its own exchanges and queues (unique names), deleted at the end.

mod common;

use common::*;
use rampart_control::client::{PolicyPublisher, StatusWatcher, Target};
use rampart_control::{Outcome, RealizedState};
use std::time::{Duration, Instant};

fn is(outcome: Outcome, generation: u64) -> impl Fn(&RealizedState) -> bool {
    move |r| r.outcome == outcome && r.generation == Some(generation)
}

/// One node on a private bus, up (it has announced generation 0), and a publisher aimed at it.
struct OneNode {
    bus: TestBus,
    watcher: StatusWatcher,
    node: Node,
    target: Target,
    publisher: PolicyPublisher,
}

impl OneNode {
    async fn start(test: &str) -> Self {
        let bus = TestBus::new(test);
        let mut watcher = bus.watcher().await;
        let node = Node::start(&bus, &unique("fw"), None);
        // The node announces itself once it consumes (its queue exists from then on).
        watcher
            .wait_for(WAIT, is(Outcome::Current, 0))
            .await
            .unwrap()
            .expect("no initial report from the node");
        let target = Target::Node(node.name.clone());
        let publisher = PolicyPublisher::connect(&bus.broker).await.unwrap();
        OneNode {
            bus,
            watcher,
            node,
            target,
            publisher,
        }
    }

    async fn publish(&self, doc: &[u8]) {
        self.publisher.publish(doc, &self.target).await.unwrap();
    }

    /// The node's next report of `outcome` for `generation` (other reports are skipped).
    async fn report(&mut self, outcome: Outcome, generation: u64) -> RealizedState {
        self.watcher
            .wait_for(WAIT, is(outcome, generation))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no {outcome:?} report for generation {generation}"))
    }

    async fn finish(self) {
        self.publisher.close().await;
        self.watcher.close().await;
        drop(self.node);
        self.bus.cleanup().await;
    }
}

#[tokio::test]
async fn publish_is_enforced_and_seen_by_a_worker() {
    if !broker_available() {
        return;
    }
    let mut t = OneNode::start("apply").await;
    t.publish(&doc(1, 50)).await;
    let applied = t.report(Outcome::Applied, 1).await;
    let (bus, node) = (&t.bus, &t.node);
    assert_eq!(applied.node, node.name);
    assert_eq!(applied.active_generation, Some(1));
    assert_eq!(applied.rule_count, 50);
    assert!(
        applied.compile_ms > 0.0 && applied.enforce_ms >= 0.0,
        "{applied:?}"
    );
    assert!(applied.error.is_none());

    // The swap happened before the report: the table and the worker already have it.
    assert_eq!(node.generation(), 1);
    assert!(
        node.worker.wait_for_generation(1, Duration::from_secs(1)),
        "{:?}",
        node.worker.seen()
    );
    assert_eq!(node.worker.seen(), vec![0, 1]);
    // Acked (nothing left in the queue) and persisted as last-good.
    assert_eq!(bus.queue_depth(&node.name).await, 0);
    let persisted = std::fs::read(node.cfg.last_good_path()).expect("last-good policy persisted");
    let persisted = rampart_config::policy::PolicyDocument::from_json_slice(&persisted).unwrap();
    assert_eq!((persisted.generation, persisted.rules.len()), (1, 50));
    // The node-local report stream agrees.
    let local = node
        .plane
        .as_ref()
        .unwrap()
        .reports()
        .borrow()
        .clone()
        .unwrap();
    assert_eq!(
        (local.outcome, local.generation),
        (Outcome::Applied, Some(1))
    );

    t.finish().await;
}

#[tokio::test]
async fn invalid_documents_are_dead_lettered_and_the_previous_policy_stays() {
    if !broker_available() {
        return;
    }
    let mut t = OneNode::start("reject").await;
    t.publish(&doc(1, 5)).await;
    t.report(Outcome::Applied, 1).await;

    // Valid JSON, invalid policy: a port out of range.
    let bad = br#"{"generation": 2, "rules": [{"id": 1, "protocol": "tcp",
        "destination": {"ports": [70000]}, "action": "allow"}]}"#;
    t.publish(bad).await;
    let rejected = t.report(Outcome::Rejected, 2).await;
    let error = rejected.error.clone().unwrap();
    assert!(
        error.contains("rules[0].destination.ports[0]"),
        "error does not name the path: {error}"
    );
    assert_eq!(rejected.active_generation, Some(1));

    // Not even JSON.
    t.publish(b"{not json").await;
    let garbage = t
        .watcher
        .wait_for(WAIT, |r| {
            r.outcome == Outcome::Rejected && r.generation.is_none()
        })
        .await
        .unwrap()
        .expect("no report for the unparsable document");
    assert!(garbage.error.unwrap().contains("JSON"));

    // Both went to the dead-letter queue; generation 1 is still enforced.
    assert_eq!(t.node.generation(), 1);
    let dead = t.bus.drain_dead_letters().await;
    assert_eq!(dead.len(), 2, "dead letters: {dead:?}");
    assert_eq!(dead[0], bad.to_vec());
    assert_eq!(dead[1], b"{not json".to_vec());
    assert_eq!(t.node.worker.seen(), vec![0, 1]);

    // And a later good document still applies.
    t.publish(&doc(3, 5)).await;
    t.report(Outcome::Applied, 3).await;
    assert_eq!(t.node.generation(), 3);

    t.finish().await;
}

#[tokio::test]
async fn stale_and_duplicate_generations_are_acked_and_reported() {
    if !broker_available() {
        return;
    }
    let mut t = OneNode::start("stale").await;
    t.publish(&doc(5, 3)).await;
    t.report(Outcome::Applied, 5).await;

    for stale in [3, 5] {
        t.publish(&doc(stale, 7)).await;
        let r = t.report(Outcome::Stale, stale).await;
        assert_eq!(r.active_generation, Some(5));
        assert!(r.error.unwrap().contains("not newer"));
    }
    assert_eq!(t.node.generation(), 5);
    assert_eq!(t.node.table.current().rule_count(), 3);
    // Acked, not rejected: nothing queued, nothing dead-lettered.
    assert_eq!(t.bus.queue_depth(&t.node.name).await, 0);
    assert!(t.bus.drain_dead_letters().await.is_empty());

    t.finish().await;
}

#[tokio::test]
async fn hundred_back_to_back_publishes_apply_in_order() {
    if !broker_available() {
        return;
    }
    let mut t = OneNode::start("hundred").await;
    let docs: Vec<Vec<u8>> = (1..=100).map(|g| doc(g, 20)).collect();
    for d in &docs {
        t.publish(d).await;
    }
    let mut applied = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while applied.last() != Some(&100) {
        let left = deadline.saturating_duration_since(Instant::now());
        let r = t
            .watcher
            .next(left)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("stuck after {applied:?}"));
        assert_ne!(r.outcome, Outcome::Rejected, "{r:?}");
        assert_ne!(r.outcome, Outcome::Stale, "{r:?}");
        if r.outcome == Outcome::Applied {
            applied.push(r.generation.unwrap());
        }
    }
    assert_eq!(applied, (1..=100).collect::<Vec<_>>());
    assert_eq!(t.node.generation(), 100);
    // The worker only ever moved forward.
    let seen = t.node.worker.seen();
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "worker went backwards: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&100));

    t.finish().await;
}

#[tokio::test]
async fn reconnects_after_the_broker_drops_the_connection() {
    if !broker_available() {
        return;
    }
    let mut t = OneNode::start("reconnect").await;
    t.publish(&doc(1, 5)).await;
    t.report(Outcome::Applied, 1).await;

    assert!(
        rampart_testkit::close_connections_of_node(&t.node.name),
        "could not find the node's connection"
    );
    // Published while the node may be disconnected: the durable queue keeps it.
    t.publish(&doc(2, 5)).await;
    // Enforcement never stopped: generation 1 stays until 2 arrives.
    assert!(t.node.generation() >= 1);
    // The node reconnects (and announces itself again), then applies generation 2.
    let r = t.report(Outcome::Applied, 2).await;
    assert_eq!(r.node, t.node.name);
    assert_eq!(t.node.generation(), 2);
    assert_eq!(t.node.worker.seen(), vec![0, 1, 2]);

    // A second drop, then a publish after recovery.
    assert!(rampart_testkit::close_connections_of_node(&t.node.name));
    t.report(Outcome::Current, 2).await;
    t.publish(&doc(3, 5)).await;
    t.report(Outcome::Applied, 3).await;

    t.finish().await;
}

#[tokio::test]
async fn three_nodes_one_publish_three_realized_states() {
    if !broker_available() {
        return;
    }
    let bus = TestBus::new("three");
    let mut watcher = bus.watcher().await;
    let cluster = unique("dc");
    let nodes: Vec<Node> = (0..3)
        .map(|i| Node::start(&bus, &unique(&format!("fw{i}")), Some(&cluster)))
        .collect();
    let mut up = std::collections::HashSet::new();
    while up.len() < 3 {
        let r = watcher
            .wait_for(WAIT, is(Outcome::Current, 0))
            .await
            .unwrap()
            .expect("a node did not come up");
        up.insert(r.node);
    }

    let publisher = PolicyPublisher::connect(&bus.broker).await.unwrap();
    publisher
        .publish(&doc(7, 30), &Target::Cluster(cluster.clone()))
        .await
        .unwrap();
    let mut realized = std::collections::BTreeMap::new();
    while realized.len() < 3 {
        let r = watcher
            .wait_for(WAIT, is(Outcome::Applied, 7))
            .await
            .unwrap()
            .expect("missing a RealizedState");
        assert_eq!(r.cluster.as_deref(), Some(cluster.as_str()));
        realized.insert(r.node.clone(), r);
    }
    let names: std::collections::BTreeSet<_> = nodes.iter().map(|n| n.name.clone()).collect();
    assert_eq!(
        realized
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        names
    );
    for n in &nodes {
        assert_eq!(n.generation(), 7);
        assert_eq!(realized[&n.name].rule_count, 30);
    }

    // Addressing one node reaches only that node.
    publisher
        .publish(&doc(8, 30), &Target::Node(nodes[1].name.clone()))
        .await
        .unwrap();
    let r = watcher
        .wait_for(WAIT, is(Outcome::Applied, 8))
        .await
        .unwrap()
        .expect("gen 8 not applied");
    assert_eq!(r.node, nodes[1].name);
    assert_eq!(
        [
            nodes[0].generation(),
            nodes[1].generation(),
            nodes[2].generation()
        ],
        [7, 8, 7]
    );

    publisher.close().await;
    watcher.close().await;
    drop(nodes);
    bus.cleanup().await;
}

#[tokio::test]
async fn publishing_to_an_unknown_node_is_an_error() {
    if !broker_available() {
        return;
    }
    let bus = TestBus::new("unroutable");
    let publisher = PolicyPublisher::connect(&bus.broker).await.unwrap();
    let err = publisher
        .publish(&doc(1, 1), &Target::Node("nobody".into()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("node nobody"), "{err}");
    publisher.close().await;
    bus.cleanup().await;
}
