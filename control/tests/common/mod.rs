//! Shared helpers of the broker tests: a real RabbitMQ (started if it is not running), a private
//! topology per test (unique exchange/queue names, deleted at the end), a node = ControlPlane +
//! TableHandle + a reader thread that behaves like a worker (load once per "burst", then report
//! a quiescent state) and records every generation it sees.

#![allow(dead_code)]

use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use rampart_classify::table::TableHandle;
use rampart_control::client::StatusWatcher;
use rampart_control::{
    BrokerConfig, ControlConfig, ControlPlane, NoPolicy, SpawnOptions, TopologyNames,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use rampart_testkit::{broker_uri, unique};

/// Make sure the main broker is up (started if needed); false (after shouting) if it cannot be.
pub fn broker_available() -> bool {
    rampart_testkit::ensure_broker()
}

/// A private topology for one test.
pub struct TestBus {
    pub broker: BrokerConfig,
    pub nodes: Mutex<Vec<String>>,
}

impl TestBus {
    pub fn new(test: &str) -> Self {
        Self {
            broker: rampart_testkit::private_broker(broker_uri(), test),
            nodes: Mutex::new(Vec::new()),
        }
    }

    pub fn names(&self) -> &TopologyNames {
        &self.broker.names
    }

    /// Messages waiting in the dead-letter queue (drains it).
    pub async fn drain_dead_letters(&self) -> Vec<Vec<u8>> {
        let conn = rampart_control::connect::connect(&self.broker, "test dlq")
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let mut out = Vec::new();
        while let Some(m) = ch
            .basic_get(
                self.names().dead_letter_queue.as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()
        {
            out.push(m.delivery.data.clone());
        }
        let _ = conn.close(200, "".into()).await;
        out
    }

    /// Ready messages in `node`'s queue.
    pub async fn queue_depth(&self, node: &str) -> u32 {
        let conn = rampart_control::connect::connect(&self.broker, "test depth")
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                self.names().node_queue(node).as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _ = conn.close(200, "".into()).await;
        q.message_count()
    }

    /// Delete every queue and exchange of this test.
    pub async fn cleanup(&self) {
        let nodes = self.nodes.lock().unwrap().clone();
        rampart_testkit::delete_topology(&self.broker, &nodes).await;
    }

    pub async fn watcher(&self) -> StatusWatcher {
        StatusWatcher::connect(&self.broker, None).await.unwrap()
    }
}

/// A reader thread standing in for a worker core.
pub struct Worker {
    stop: Arc<AtomicBool>,
    pub seen: Arc<Mutex<Vec<u64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    pub fn start(table: &TableHandle) -> Self {
        let mut reader = table.register_reader();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let generation = reader.load().generation();
                {
                    let mut v = v.lock().unwrap();
                    if v.last() != Some(&generation) {
                        v.push(generation);
                    }
                }
                reader.quiescent();
                // One "burst" every 100 µs: responsive without eating a shared core.
                std::thread::sleep(Duration::from_micros(100));
            }
        });
        Self {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Generations observed, in order (consecutive duplicates folded).
    pub fn seen(&self) -> Vec<u64> {
        self.seen.lock().unwrap().clone()
    }

    pub fn wait_for_generation(&self, generation: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.seen().last() == Some(&generation) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One appliance node: control plane + table + worker thread + its state dir.
pub struct Node {
    pub name: String,
    pub table: TableHandle,
    pub worker: Worker,
    pub plane: Option<ControlPlane>,
    pub cfg: ControlConfig,
    pub state_dir: tempfile::TempDir,
}

impl Node {
    pub fn config(
        bus: &TestBus,
        name: &str,
        cluster: Option<&str>,
        state_dir: &std::path::Path,
    ) -> ControlConfig {
        let mut cfg = ControlConfig::new(name);
        cfg.cluster = cluster.map(str::to_owned);
        cfg.broker = Some(bus.broker.clone());
        cfg.state_dir = state_dir.to_owned();
        cfg.no_policy = NoPolicy::DenyAll;
        bus.nodes.lock().unwrap().push(name.to_owned());
        cfg
    }

    /// Boot (deny-all when nothing persisted) and start the control plane.
    pub fn start(bus: &TestBus, name: &str, cluster: Option<&str>) -> Self {
        let state_dir = tempfile::tempdir().unwrap();
        let cfg = Self::config(bus, name, cluster, state_dir.path());
        Self::start_with(cfg, state_dir)
    }

    pub fn start_with(cfg: ControlConfig, state_dir: tempfile::TempDir) -> Self {
        let boot = rampart_control::initial_ruleset(&cfg).unwrap();
        let table = TableHandle::new(boot.ruleset);
        let worker = Worker::start(&table);
        let plane = ControlPlane::spawn_with(
            cfg.clone(),
            table.clone(),
            SpawnOptions {
                sighup: false,
                ..SpawnOptions::default()
            },
        )
        .unwrap();
        Self {
            name: cfg.node.clone(),
            table,
            worker,
            plane: Some(plane),
            cfg,
            state_dir,
        }
    }

    pub fn generation(&self) -> u64 {
        self.table.current().generation()
    }

    pub fn stop(&mut self) {
        if let Some(p) = self.plane.take() {
            p.shutdown();
        }
    }
}

/// A valid JSON document with `rules` rules.
pub fn doc(generation: u64, rules: usize) -> Vec<u8> {
    rampart_control::synth::policy(generation, rules, generation).to_json_vec()
}

pub const WAIT: Duration = Duration::from_secs(20);
