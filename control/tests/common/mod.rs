//! Shared helpers of the broker tests: a real RabbitMQ (started if it is not running), a private
//! topology per test (unique exchange/queue names, deleted at the end), a node = ControlPlane +
//! TableHandle + a reader thread that behaves like a worker (load once per "burst", then report
//! a quiescent state) and records every generation it sees.

#![allow(dead_code)]

use lapin::options::{
    BasicGetOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use rampart_classify::table::TableHandle;
use rampart_control::client::StatusWatcher;
use rampart_control::{
    BrokerConfig, ControlConfig, ControlPlane, NoPolicy, SpawnOptions, TopologyNames,
};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const BROKER_ADDR: &str = "127.0.0.1:5672";

pub fn broker_uri() -> String {
    std::env::var("RAMPART_TEST_AMQP_URI")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn reachable() -> bool {
    TcpStream::connect_timeout(&BROKER_ADDR.parse().unwrap(), Duration::from_millis(500)).is_ok()
}

/// Make sure the main broker is up (start it if needed). Returns false — after shouting — only
/// if it truly cannot be had; RAMPART_REQUIRE_BROKER=1 turns that into a failure.
pub fn broker_available() -> bool {
    static UP: OnceLock<bool> = OnceLock::new();
    *UP.get_or_init(|| {
        if reachable() {
            return true;
        }
        eprintln!("RabbitMQ not reachable at {BROKER_ADDR}: starting it with rabbitmq-server -detached");
        let _ = Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .status();
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if reachable() {
                // The listener opens slightly before the vhost is ready.
                std::thread::sleep(Duration::from_secs(2));
                return true;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        if std::env::var("RAMPART_REQUIRE_BROKER").as_deref() == Ok("1") {
            panic!("RabbitMQ could not be started and RAMPART_REQUIRE_BROKER=1");
        }
        eprintln!("\n!!!!!!!! SKIPPING BROKER TEST: RabbitMQ could not be started at {BROKER_ADDR} !!!!!!!!\n");
        false
    })
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000_000;
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A private topology for one test.
pub struct TestBus {
    pub broker: BrokerConfig,
    pub nodes: Mutex<Vec<String>>,
}

impl TestBus {
    pub fn new(test: &str) -> Self {
        let mut broker = BrokerConfig::new(broker_uri());
        broker.names = TopologyNames::with_prefix(&format!("rt.{}", unique(test)));
        broker.reconnect.initial_ms = 50;
        broker.reconnect.max_ms = 500;
        broker.status_interval_ms = 0;
        Self {
            broker,
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
        let Ok(conn) = rampart_control::connect::connect(&self.broker, "test cleanup").await else {
            return;
        };
        let ch = conn.create_channel().await.unwrap();
        let names = self.names().clone();
        let mut queues: Vec<String> = self
            .nodes
            .lock()
            .unwrap()
            .iter()
            .map(|n| names.node_queue(n))
            .collect();
        queues.push(names.dead_letter_queue.clone());
        for q in queues {
            let _ = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for x in [
            &names.policy_exchange,
            &names.status_exchange,
            &names.dead_letter_exchange,
        ] {
            let _ = ch
                .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
        let _ = conn.close(200, "".into()).await;
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
