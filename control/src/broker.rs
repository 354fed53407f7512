//! The broker source: consume policy documents from this node's queue (manual ack, prefetch 1),
//! apply each, and report. When the broker goes away the workers keep enforcing what they have;
//! this loop reconnects with backoff and jitter and resumes consuming.

use crate::apply::Applier;
use crate::backoff::Backoff;
use crate::config::BrokerConfig;
use crate::connect::{self, ConnectError};
use crate::metrics::ControlCounters;
use crate::policy::Refusal;
use crate::status::{DocumentKind, RealizedState};
use crate::topology;
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Why a broker session ended (it is retried after a backoff).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Could not connect.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// An AMQP operation failed (connection lost, channel closed by the broker, …).
    #[error("{step}: {source}")]
    Amqp {
        /// What was being done.
        step: &'static str,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// The broker cancelled the consumer or closed the stream.
    #[error("consumer stream ended (queue deleted or connection closed)")]
    ConsumerEnded,
    /// A blocking task panicked.
    #[error("apply task failed: {0}")]
    Task(String),
}

fn amqp(step: &'static str) -> impl FnOnce(lapin::Error) -> SessionError {
    move |source| SessionError::Amqp { step, source }
}

/// Everything one broker loop needs.
pub struct BrokerSource {
    /// The broker settings.
    pub cfg: BrokerConfig,
    /// The apply steps and node identity.
    pub applier: Applier,
    /// Latest report, shared with the handle (metrics, tests).
    pub reports: watch::Sender<Option<RealizedState>>,
    /// Counters for the metrics endpoint.
    pub counters: Arc<ControlCounters>,
}

impl BrokerSource {
    /// Run until `shutdown` flips to true: sessions separated by backoff delays.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(self.cfg.reconnect);
        loop {
            match self.session(&mut backoff, &mut shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    warn!(node = %self.applier.node, error = %e, "broker session ended; enforcement continues with generation {}", self.applier.active_generation())
                }
            }
            let delay = backoff.next_delay();
            info!(node = %self.applier.node, ?delay, "reconnecting to the broker");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// One connection: declare, consume, apply until the connection fails or shutdown.
    async fn session(
        &self,
        backoff: &mut Backoff,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), SessionError> {
        let node = &self.applier.node;
        let conn = connect::connect(&self.cfg, &format!("rampart node {node}")).await?;
        self.counters.set_connected(true);
        let result = self.consume(&conn, backoff, shutdown).await;
        self.counters.set_connected(false);
        // Graceful close on shutdown; on errors the connection is usually gone already.
        let _ = conn
            .close(200, "rampart control plane stopping".into())
            .await;
        result
    }

    async fn consume(
        &self,
        conn: &Connection,
        backoff: &mut Backoff,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), SessionError> {
        let names = &self.cfg.names;
        let node = &self.applier.node;
        let ch = conn
            .create_channel()
            .await
            .map_err(amqp("opening a channel"))?;
        topology::declare_exchanges(&ch, names)
            .await
            .map_err(amqp("declaring exchanges"))?;
        let queue = topology::declare_node_queue(&ch, names, node, self.applier.cluster.as_deref())
            .await
            .map_err(amqp("declaring the node queue"))?;
        // One unacknowledged document at a time: the next is not even delivered until the
        // current one is enforced (or rejected).
        ch.basic_qos(1, BasicQosOptions::default())
            .await
            .map_err(amqp("setting prefetch"))?;
        let mut consumer = ch
            .basic_consume(
                queue.as_str().into(),
                format!("rampart-{node}").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp("starting the consumer"))?;
        backoff.reset();
        info!(%node, %queue, generation = self.applier.active_generation(), "consuming policy");
        self.publish(&ch, self.applier.current_report()).await?;

        let interval_ms = self.cfg.status_interval_ms;
        let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        return Ok(());
                    }
                }
                _ = ticker.tick(), if interval_ms > 0 => {
                    self.publish(&ch, self.applier.current_report()).await?;
                }
                next = consumer.next() => match next {
                    None => return Err(SessionError::ConsumerEnded),
                    Some(Err(e)) => return Err(amqp("receiving")(e)),
                    Some(Ok(delivery)) => self.handle(&ch, delivery).await?,
                },
            }
        }
    }

    /// Apply one document (a policy, or an inventory update by its message type); ack/reject
    /// it; report.
    async fn handle(
        &self,
        ch: &Channel,
        delivery: lapin::message::Delivery,
    ) -> Result<(), SessionError> {
        let lapin::message::Delivery {
            data,
            acker,
            properties,
            ..
        } = delivery;
        let kind = match properties.kind() {
            Some(t) if t.as_str() == topology::INVENTORY_TYPE => DocumentKind::Inventory,
            _ => DocumentKind::Policy,
        };
        let applier = self.applier.clone();
        let compiled = tokio::task::spawn_blocking(move || match kind {
            DocumentKind::Policy => applier.compile_json(data),
            DocumentKind::Inventory => applier.compile_inventory(&data),
        })
        .await
        .map_err(|e| SessionError::Task(e.to_string()))?;
        let compiled = match compiled {
            Ok(c) => c,
            Err(refusal) => {
                let report = self.applier.refusal_report(kind, &refusal);
                match &refusal {
                    Refusal::Stale { .. } => {
                        info!(node = %report.node, ?kind, generation = ?report.generation, "stale document ignored");
                        acker.ack(BasicAckOptions::default()).await
                    }
                    Refusal::Invalid { error, .. } => {
                        warn!(node = %report.node, ?kind, generation = ?report.generation, %error, "document rejected; the enforced policy stays");
                        // No requeue: the queue dead-letters it for inspection.
                        acker.reject(BasicRejectOptions { requeue: false }).await
                    }
                }
                .map_err(amqp("acknowledging"))?;
                return self.publish(ch, report).await;
            }
        };

        let applier = self.applier.clone();
        let enforced = tokio::task::spawn_blocking(move || applier.enforce(compiled))
            .await
            .map_err(|e| SessionError::Task(e.to_string()))?;
        // Acked only now that every worker has moved on to it.
        let acked = acker.ack(BasicAckOptions::default()).await;
        let report = enforced.report.clone();
        info!(node = %report.node, ?kind, generation = ?report.generation, inventory = ?report.inventory_revision,
              rules = report.rule_count, compile_ms = report.compile_ms, enforce_ms = report.enforce_ms, "applied");
        let published = self.publish(ch, report).await;
        let applier = self.applier.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || applier.commit(enforced))
            .await
            .map_err(|e| SessionError::Task(e.to_string()))?
        {
            warn!(error = %e, ?kind, "persisting failed; it is enforced but will not survive a restart");
        }
        acked.map_err(amqp("acknowledging"))?;
        published
    }

    /// Send a report to the status exchange (and to the local watchers).
    async fn publish(&self, ch: &Channel, report: RealizedState) -> Result<(), SessionError> {
        debug!(?report, "status");
        let body = report.to_json();
        self.counters.record(&report);
        let _ = self.reports.send(Some(report));
        ch.basic_publish(
            self.cfg.names.status_exchange.as_str().into(),
            topology::status_key(&self.applier.node).as_str().into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default().with_content_type("application/json".into()),
        )
        .await
        .map_err(amqp("publishing status"))?;
        Ok(())
    }
}
