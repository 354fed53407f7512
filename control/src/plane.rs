//! The control plane as the appliance runs it: one OS thread ("rampart-control") with a
//! single-threaded tokio runtime, plus a small blocking pool for compiles and quiescence waits.
//! It never runs on a worker core's thread; the binary spawns it from its main thread after
//! `boot::initial_ruleset` and the workers' `TableHandle` exist.

use crate::apply::Applier;
use crate::broker::BrokerSource;
use crate::config::ControlConfig;
use crate::file_source::FileSource;
use crate::metrics::{self, ControlCounters, MetricsSource};
use crate::status::RealizedState;
use rampart_classify::table::TableHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// The control plane could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// Neither a broker nor a policy file is configured: nothing would ever change the policy.
    #[error("control plane has no policy source: configure a broker or a policy_file")]
    NoSource,
    /// The metrics endpoint could not listen on `metrics_listen`.
    #[error("metrics endpoint {addr}: {source}")]
    Metrics {
        /// The configured address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The runtime or the thread could not be created.
    #[error("starting the control thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A running control plane. Dropping it without [`ControlPlane::shutdown`] also stops it.
pub struct ControlPlane {
    shutdown: watch::Sender<bool>,
    reports: watch::Receiver<Option<RealizedState>>,
    metrics_addr: Option<SocketAddr>,
    thread: Option<JoinHandle<()>>,
}

/// Options the binary and tests choose; the config file does not.
#[derive(Clone)]
pub struct SpawnOptions {
    /// Reload the policy file on SIGHUP (only meaningful without a broker).
    pub sighup: bool,
    /// The dataplane's series for the metrics endpoint (with `metrics_listen` set).
    pub metrics: Option<Arc<dyn MetricsSource>>,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        Self {
            sighup: true,
            metrics: None,
        }
    }
}

impl ControlPlane {
    /// Start the control plane for `cfg`, publishing into `table` (already holding the boot
    /// ruleset). With a broker configured the broker is the source; otherwise the policy file.
    pub fn spawn(cfg: ControlConfig, table: TableHandle) -> Result<Self, SpawnError> {
        Self::spawn_with(cfg, table, SpawnOptions::default())
    }

    /// [`ControlPlane::spawn`] with explicit options.
    pub fn spawn_with(
        cfg: ControlConfig,
        table: TableHandle,
        opts: SpawnOptions,
    ) -> Result<Self, SpawnError> {
        if cfg.broker.is_none() && cfg.policy_file.is_none() {
            return Err(SpawnError::NoSource);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(2)
            .thread_name("rampart-control-blocking")
            .build()?;
        let metrics_listener = match &cfg.metrics_listen {
            Some(addr) => {
                let l = std::net::TcpListener::bind(addr.as_str())
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(|source| SpawnError::Metrics {
                        addr: addr.clone(),
                        source,
                    })?;
                Some(l)
            }
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let counters = Arc::new(ControlCounters::new());
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (reports_tx, reports_rx) = watch::channel(None);
        let applier = Applier {
            node: cfg.node.clone(),
            cluster: cfg.cluster.clone(),
            table,
            last_good_path: cfg.last_good_path(),
            inventory_path: cfg.inventory_path(),
            quiescent_timeout: cfg.quiescent_timeout(),
            state: Default::default(),
        };
        let (metrics_table, metrics_counters) = (applier.table.clone(), counters.clone());
        let metrics_shutdown = shutdown_rx.clone();
        let thread = std::thread::Builder::new()
            .name("rampart-control".into())
            .spawn(move || {
                // The document behind the boot ruleset and the persisted inventory, for
                // inventory updates and later documents to resolve against.
                let state = crate::boot::node_state(&cfg, applier.active_generation());
                *applier.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
                runtime.block_on(async move {
                    if let Some(listener) = metrics_listener {
                        match tokio::net::TcpListener::from_std(listener) {
                            Ok(l) => {
                                tokio::spawn(metrics::serve(
                                    l,
                                    metrics_table,
                                    metrics_counters,
                                    opts.metrics,
                                    metrics_shutdown,
                                ));
                            }
                            Err(e) => tracing::warn!(error = %e, "metrics endpoint disabled"),
                        }
                    }
                    match cfg.broker {
                        Some(broker) => {
                            BrokerSource {
                                cfg: broker,
                                applier,
                                reports: reports_tx,
                                counters,
                            }
                            .run(shutdown_rx)
                            .await
                        }
                        None => {
                            FileSource {
                                path: cfg.policy_file.unwrap_or_default(),
                                poll: Duration::from_millis(cfg.file_poll_ms.max(10)),
                                sighup: opts.sighup,
                                applier,
                                reports: reports_tx,
                                counters,
                            }
                            .run(shutdown_rx)
                            .await
                        }
                    }
                });
                // Let blocking tasks (a compile in flight) finish briefly, not forever.
                runtime.shutdown_timeout(Duration::from_secs(5));
            })?;
        Ok(Self {
            shutdown: shutdown_tx,
            reports: reports_rx,
            metrics_addr,
            thread: Some(thread),
        })
    }

    /// The latest report (applied / rejected / stale / current); `changed()` wakes on each.
    pub fn reports(&self) -> watch::Receiver<Option<RealizedState>> {
        self.reports.clone()
    }

    /// Where the metrics endpoint listens (the bound port when configured as `:0`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Stop consuming, close the broker connection, and join the thread. A document being
    /// applied is finished first; an unacked one is redelivered to the next run.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}
