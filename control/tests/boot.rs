//! Boot and the file source: what is enforced before the broker is reachable (or without one).

mod common;

use common::*;
use rampart_classify::table::TableHandle;
use rampart_control::{
    initial_ruleset, BootError, BootSource, BrokerConfig, ControlConfig, ControlPlane, NoPolicy,
    Outcome, SpawnOptions,
};
use std::time::{Duration, Instant};

fn closed_port_uri() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
}

#[test]
fn boots_from_the_persisted_policy_with_the_broker_unreachable() {
    let state = tempfile::tempdir().unwrap();
    let mut cfg = ControlConfig::new(unique("fw"));
    cfg.state_dir = state.path().to_owned();
    let mut broker = BrokerConfig::new(closed_port_uri());
    broker.reconnect.initial_ms = 20;
    broker.reconnect.max_ms = 100;
    cfg.broker = Some(broker);
    // What an earlier run persisted.
    rampart_control::persist::write_atomic(&cfg.last_good_path(), &doc(7, 12)).unwrap();

    let boot = initial_ruleset(&cfg).unwrap();
    assert_eq!(boot.source, BootSource::Persisted(cfg.last_good_path()));
    assert_eq!(
        (boot.ruleset.generation(), boot.ruleset.rule_count()),
        (7, 12)
    );

    let table = TableHandle::new(boot.ruleset);
    let worker = Worker::start(&table);
    let plane = ControlPlane::spawn_with(
        cfg,
        table.clone(),
        SpawnOptions {
            sighup: false,
            ..SpawnOptions::default()
        },
    )
    .unwrap();
    // The control plane keeps failing to connect; enforcement is untouched meanwhile.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(table.current().generation(), 7);
    assert_eq!(worker.seen(), vec![7]);
    // Shutdown is prompt even in the middle of reconnect backoff.
    let t = Instant::now();
    plane.shutdown();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        t.elapsed()
    );
}

#[test]
fn fails_closed_without_any_policy_unless_configured() {
    let state = tempfile::tempdir().unwrap();
    let mut cfg = ControlConfig::new("fw");
    cfg.state_dir = state.path().to_owned();
    cfg.policy_file = Some(state.path().join("missing.json"));
    let err = initial_ruleset(&cfg).unwrap_err();
    assert!(matches!(err, BootError::NoPolicy { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("fail-closed") && msg.contains("missing.json"),
        "{msg}"
    );

    cfg.no_policy = NoPolicy::DenyAll;
    let boot = initial_ruleset(&cfg).unwrap();
    assert_eq!(boot.source, BootSource::Empty(NoPolicy::DenyAll));
    assert_eq!(
        (boot.ruleset.generation(), boot.ruleset.rule_count()),
        (0, 0)
    );
    assert_eq!(
        boot.ruleset.default_action(),
        rampart_config::policy::Action::Drop
    );
    assert_eq!(boot.skipped.len(), 1);

    cfg.no_policy = NoPolicy::AllowAll;
    let boot = initial_ruleset(&cfg).unwrap();
    assert_eq!(
        boot.ruleset.default_action(),
        rampart_config::policy::Action::Allow
    );
}

#[test]
fn the_newer_of_persisted_and_file_wins_and_a_corrupt_one_is_skipped() {
    let state = tempfile::tempdir().unwrap();
    let mut cfg = ControlConfig::new("fw");
    cfg.state_dir = state.path().to_owned();
    let file = state.path().join("policy.json");
    cfg.policy_file = Some(file.clone());
    std::fs::write(&file, doc(4, 2)).unwrap();
    rampart_control::persist::write_atomic(&cfg.last_good_path(), &doc(9, 3)).unwrap();
    let boot = initial_ruleset(&cfg).unwrap();
    assert_eq!(
        (boot.ruleset.generation(), boot.source.clone()),
        (9, BootSource::Persisted(cfg.last_good_path()))
    );

    std::fs::write(&file, doc(11, 2)).unwrap();
    let boot = initial_ruleset(&cfg).unwrap();
    assert_eq!(
        (boot.ruleset.generation(), boot.source),
        (11, BootSource::File(file.clone()))
    );

    // A torn / corrupt persisted file does not prevent booting from the configured file.
    std::fs::write(cfg.last_good_path(), b"{\"generation\": 12, \"rules\": [").unwrap();
    let boot = initial_ruleset(&cfg).unwrap();
    assert_eq!(boot.ruleset.generation(), 11);
    assert_eq!(boot.skipped.len(), 1, "{:?}", boot.skipped);
}

#[test]
fn file_source_reloads_on_change_and_keeps_the_policy_on_errors() {
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("policy.json");
    std::fs::write(&file, doc(1, 4)).unwrap();
    let mut cfg = ControlConfig::new("fw");
    cfg.state_dir = state.path().join("state");
    cfg.policy_file = Some(file.clone());
    cfg.file_poll_ms = 20;
    cfg.metrics_listen = Some("127.0.0.1:0".into());

    let boot = initial_ruleset(&cfg).unwrap();
    assert_eq!(boot.source, BootSource::File(file.clone()));
    let table = TableHandle::new(boot.ruleset);
    let worker = Worker::start(&table);
    let opts = SpawnOptions {
        sighup: false,
        metrics: Some(std::sync::Arc::new(Dataplane)),
    };
    let plane = ControlPlane::spawn_with(cfg.clone(), table.clone(), opts).unwrap();
    let mut reports = plane.reports();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut wait_for = |outcome: Outcome, generation: Option<u64>| {
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    if let Some(r) = reports.borrow_and_update().clone() {
                        if r.outcome == outcome && r.generation == generation {
                            return r;
                        }
                    }
                    reports.changed().await.unwrap();
                }
            })
            .await
            .unwrap_or_else(|_| panic!("no {outcome:?} report for {generation:?}"))
        })
    };
    // At start the file is checked once: same generation as enforced → stale, nothing changes.
    wait_for(Outcome::Stale, Some(1));

    std::fs::write(&file, doc(2, 6)).unwrap();
    let r = wait_for(Outcome::Applied, Some(2));
    assert_eq!(r.rule_count, 6);
    assert_eq!(table.current().generation(), 2);
    assert!(worker.wait_for_generation(2, Duration::from_secs(1)));
    assert!(cfg.last_good_path().exists(), "persisted");

    std::fs::write(
        &file,
        br#"{"generation": 3, "rules": [{"id": 1, "action": "maybe"}]}"#,
    )
    .unwrap();
    let r = wait_for(Outcome::Rejected, None);
    assert!(r.error.unwrap().contains("maybe"));
    assert_eq!(table.current().generation(), 2);

    // The metrics endpoint: the control plane's series plus the dataplane's (plugged in).
    let endpoint = plane.metrics_addr().unwrap().to_string();
    let body =
        rampart_control::stats::fetch(&endpoint, "/metrics", Duration::from_secs(5)).unwrap();
    let samples = rampart_control::stats::parse(&body);
    let value = |name: &str, labels: &str| {
        samples
            .iter()
            .find(|s| s.name == name && s.labels == labels)
            .unwrap_or_else(|| panic!("{name}{{{labels}}} missing in\n{body}"))
            .value
    };
    assert_eq!(value("rampart_policy_generation", ""), 2.0);
    assert_eq!(value("rampart_policy_rules", ""), 6.0);
    assert_eq!(
        value("rampart_control_documents_total", "outcome=\"applied\""),
        1.0
    );
    assert_eq!(
        value("rampart_control_documents_total", "outcome=\"rejected\""),
        1.0
    );
    assert_eq!(value("rampart_rx_packets_total", "port=\"0\""), 42.0);

    plane.shutdown();
    assert_eq!(worker.seen(), vec![1, 2]);
}

struct Dataplane;

impl rampart_control::metrics::MetricsSource for Dataplane {
    fn render(&self, out: &mut String) {
        out.push_str(
            "# TYPE rampart_rx_packets_total counter\nrampart_rx_packets_total{port=\"0\"} 42\n",
        );
    }
}
