//! Dev-only helpers for tests that need a real RabbitMQ: the control plane's broker tests
//! (control/tests) and the appliance's integration tests (tests/). One copy of:
//! - the local broker (127.0.0.1:5672), started with `rabbitmq-server -detached` if it is down;
//! - closing one node's connection from the broker side (`rabbitmqctl close_connection`);
//! - a private topology per test (unique exchange/queue names) and its deletion;
//! - the TLS broker node of `scripts/rabbitmq-tls.sh` (its own ports, certificates in a dir).
//!
//! A test that cannot get a broker skips loudly; `RAMPART_REQUIRE_BROKER=1` (CI) makes that a
//! failure instead.

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use rampart_control::{BrokerConfig, TopologyNames};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The main broker's listener.
pub const BROKER_ADDR: &str = "127.0.0.1:5672";

/// The main broker's URI (`RAMPART_TEST_AMQP_URI` overrides it).
pub fn broker_uri() -> String {
    std::env::var("RAMPART_TEST_AMQP_URI")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn require_broker() -> bool {
    std::env::var("RAMPART_REQUIRE_BROKER").as_deref() == Ok("1")
}

fn reachable(addr: &str) -> bool {
    TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(500)).is_ok()
}

/// Make sure the main broker is up, starting it if needed (once per test process). Returns
/// false — after shouting — only if it truly cannot be had; with `RAMPART_REQUIRE_BROKER=1`
/// that panics instead.
pub fn ensure_broker() -> bool {
    static UP: OnceLock<bool> = OnceLock::new();
    let up = *UP.get_or_init(|| {
        if reachable(BROKER_ADDR) {
            return true;
        }
        eprintln!(
            "RabbitMQ not reachable at {BROKER_ADDR}: starting it with rabbitmq-server -detached"
        );
        let _ = Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .status();
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if reachable(BROKER_ADDR) {
                // The listener opens slightly before the default vhost is ready.
                std::thread::sleep(Duration::from_secs(2));
                return true;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        false
    });
    if !up {
        assert!(
            !require_broker(),
            "RabbitMQ could not be started and RAMPART_REQUIRE_BROKER=1"
        );
        eprintln!("\n!!!!!!!! SKIPPING BROKER TEST: RabbitMQ could not be started at {BROKER_ADDR} !!!!!!!!\n");
    }
    up
}

/// A name no other test (or earlier run) uses: `<prefix>-<pid>-<nanos>-<n>`.
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

/// Settings for the broker at `uri` with a private topology named after `test` (unique per
/// call), fast reconnects and no periodic status (tests wait for events, not heartbeats).
pub fn private_broker(uri: impl Into<String>, test: &str) -> BrokerConfig {
    let mut b = BrokerConfig::new(uri);
    b.names = TopologyNames::with_prefix(&format!("rt.{}", unique(test)));
    b.reconnect.initial_ms = 50;
    b.reconnect.max_ms = 500;
    b.status_interval_ms = 0;
    b
}

/// Close, from the broker side, every connection a control plane of `node` opened (its
/// connection name is `rampart node <node>`); other connections stay up. True if one was closed.
pub fn close_connections_of_node(node: &str) -> bool {
    let out = match Command::new("rabbitmqctl")
        .args(["-q", "list_connections", "pid", "client_properties"])
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!("rabbitmqctl: {e}"),
    };
    let listing = String::from_utf8_lossy(&out.stdout);
    // The name is followed by a quote or a comma in the listing: "rampart node fw1" must not
    // also match "rampart node fw10".
    let needle = format!("rampart node {node}");
    let mut closed = false;
    for line in listing.lines() {
        let Some(at) = line.find(&needle) else {
            continue;
        };
        let next = line[at + needle.len()..].chars().next();
        if next.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '.') {
            continue;
        }
        let Some(pid) = line.split_whitespace().next() else {
            continue;
        };
        closed |= Command::new("rabbitmqctl")
            .args([
                "-q",
                "close_connection",
                pid,
                "rampart test: broker drops the node",
            ])
            .status()
            .is_ok_and(|s| s.success());
    }
    closed
}

/// Delete the queues of `nodes`, the dead-letter queue and the exchanges of `broker`'s
/// topology (inside a tokio runtime). Best effort: a broker that is gone leaves nothing to do.
pub async fn delete_topology(broker: &BrokerConfig, nodes: &[String]) {
    let Ok(conn) = rampart_control::connect::connect(broker, "test cleanup").await else {
        return;
    };
    let Ok(ch) = conn.create_channel().await else {
        return;
    };
    let names = &broker.names;
    let mut queues: Vec<String> = nodes.iter().map(|n| names.node_queue(n)).collect();
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

/// The amqps listener of the TLS node (scripts/rabbitmq-tls.sh's default).
pub const TLS_PORT: u16 = 5691;

fn tls_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/rabbitmq-tls.sh")
}

/// The second RabbitMQ node with a TLS listener on [`TLS_PORT`] (scripts/rabbitmq-tls.sh):
/// started unless it already runs, and then stopped on drop only if it was started here.
pub struct TlsBroker {
    dir: PathBuf,
    started_here: bool,
}

impl TlsBroker {
    /// Start the node (certificates are made once in a fixed temp dir). `None` — after
    /// shouting — if it cannot be started; with `RAMPART_REQUIRE_BROKER=1` that panics.
    pub fn start() -> Option<Self> {
        let dir = std::env::temp_dir().join("rampart-rabbitmq-tls");
        let already = TcpStream::connect(("127.0.0.1", TLS_PORT)).is_ok();
        let out = Command::new("bash")
            .arg(tls_script())
            .arg("start")
            .arg(&dir)
            .output();
        let failure = match &out {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = failure {
            assert!(
                !require_broker(),
                "TLS broker unavailable and RAMPART_REQUIRE_BROKER=1: {why}"
            );
            eprintln!("\n!!!!!!!! SKIPPING TLS TEST: rabbitmq-tls.sh start failed:\n{why}\n");
            return None;
        }
        Some(Self {
            dir,
            started_here: !already,
        })
    }

    /// A file of the node's certificate dir: `ca.pem` (signed the broker's certificate),
    /// `wrong-ca.pem` (an unrelated CA), `client.pem`/`client.key`.
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join("certs").join(name)
    }

    /// `amqps://guest:guest@localhost:<TLS_PORT>/%2f` (the certificate is for `localhost`).
    pub fn uri(&self) -> String {
        format!("amqps://guest:guest@localhost:{TLS_PORT}/%2f")
    }

    /// [`private_broker`] on this node, verifying it against the CA file `ca` (a [`Self::cert`]
    /// name).
    pub fn config(&self, ca: &str, test: &str) -> BrokerConfig {
        let mut cfg = private_broker(self.uri(), test);
        cfg.ca_file = Some(self.cert(ca));
        cfg
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        if self.started_here {
            let _ = Command::new("bash")
                .arg(tls_script())
                .arg("stop")
                .arg(&self.dir)
                .status();
        }
    }
}

/// Run a binary (e.g. `env!("CARGO_BIN_EXE_rampartctl")`) as an operator would, to completion:
/// whether it succeeded, and its stdout followed by its stderr.
pub fn run(binary: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(binary)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
