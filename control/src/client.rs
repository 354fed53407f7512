//! The manager's side of the bus, used by `rampartctl` (and by tests and the benchmark):
//! publish a policy document with publisher confirms, and watch RealizedState reports.

use crate::config::BrokerConfig;
use crate::connect::{self, ConnectError};
use crate::status::{DocumentKind, RealizedState};
use crate::topology;
use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::Confirmation;
use lapin::{BasicProperties, Channel, Connection, Consumer};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

/// Which nodes a document is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One node.
    Node(String),
    /// Every node of a cluster.
    Cluster(String),
    /// Every node.
    All,
}

impl Target {
    /// The routing key on the policy exchange.
    pub fn routing_key(&self) -> String {
        match self {
            Target::Node(n) => topology::node_key(n),
            Target::Cluster(c) => topology::cluster_key(c),
            Target::All => topology::ALL_KEY.to_owned(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(n) => write!(f, "node {n}"),
            Target::Cluster(c) => write!(f, "cluster {c}"),
            Target::All => f.write_str("all nodes"),
        }
    }
}

/// A publish or status operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// An AMQP operation failed.
    #[error("{step}: {source}")]
    Amqp {
        /// What was being done.
        step: &'static str,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// The broker refused the message (nack).
    #[error("the broker did not accept the document (nack)")]
    Nacked,
    /// No queue is bound for the target: no node of that name/cluster has ever connected.
    #[error("no node queue is bound for {0}: the document was returned unrouted")]
    Unroutable(Target),
    /// The broker did not confirm (confirms not enabled: a bug).
    #[error("publisher confirms were not enabled")]
    NotConfirmed,
}

fn amqp(step: &'static str) -> impl FnOnce(lapin::Error) -> ClientError {
    move |source| ClientError::Amqp { step, source }
}

/// A connection that publishes policy documents with confirms.
pub struct PolicyPublisher {
    conn: Connection,
    ch: Channel,
    exchange: String,
}

impl PolicyPublisher {
    /// Connect, enable confirms and make sure the topology exists.
    pub async fn connect(cfg: &BrokerConfig) -> Result<Self, ClientError> {
        let conn = connect::connect(cfg, "rampartctl publish").await?;
        let ch = conn
            .create_channel()
            .await
            .map_err(amqp("opening a channel"))?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(amqp("enabling publisher confirms"))?;
        topology::declare_exchanges(&ch, &cfg.names)
            .await
            .map_err(amqp("declaring exchanges"))?;
        Ok(Self {
            conn,
            ch,
            exchange: cfg.names.policy_exchange.clone(),
        })
    }

    /// Publish `document` (JSON) to `target` and wait for the broker's confirm. The message is
    /// persistent and mandatory: a target with no bound queue is an error, not a silent drop.
    pub async fn publish(&self, document: &[u8], target: &Target) -> Result<(), ClientError> {
        self.publish_kind(document, target, DocumentKind::Policy)
            .await
    }

    /// Publish an inventory update (`InventoryDocument` JSON) on its own, marked with the
    /// message type [`topology::INVENTORY_TYPE`]; otherwise like [`Self::publish`].
    pub async fn publish_inventory(
        &self,
        update: &[u8],
        target: &Target,
    ) -> Result<(), ClientError> {
        self.publish_kind(update, target, DocumentKind::Inventory)
            .await
    }

    async fn publish_kind(
        &self,
        body: &[u8],
        target: &Target,
        kind: DocumentKind,
    ) -> Result<(), ClientError> {
        let mut props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        if kind == DocumentKind::Inventory {
            props = props.with_type(topology::INVENTORY_TYPE.into());
        }
        let confirm = self
            .ch
            .basic_publish(
                self.exchange.as_str().into(),
                target.routing_key().as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                props,
            )
            .await
            .map_err(amqp("publishing"))?
            .await
            .map_err(amqp("waiting for the confirm"))?;
        match confirm {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(ClientError::Unroutable(target.clone())),
            Confirmation::Nack(_) => Err(ClientError::Nacked),
            Confirmation::NotRequested => Err(ClientError::NotConfirmed),
        }
    }

    /// Close the connection.
    pub async fn close(self) {
        let _ = self.conn.close(200, "done".into()).await;
    }
}

/// A private, transient queue on the status exchange.
pub struct StatusWatcher {
    conn: Connection,
    consumer: Consumer,
}

impl StatusWatcher {
    /// Watch reports of `node` (or of every node with `None`). Reports sent before this call
    /// are not seen; create the watcher before publishing.
    pub async fn connect(cfg: &BrokerConfig, node: Option<&str>) -> Result<Self, ClientError> {
        let conn = connect::connect(cfg, "rampartctl status").await?;
        let ch = conn
            .create_channel()
            .await
            .map_err(amqp("opening a channel"))?;
        topology::declare_exchanges(&ch, &cfg.names)
            .await
            .map_err(amqp("declaring exchanges"))?;
        let queue = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp("declaring the status queue"))?;
        let key = node.map_or_else(|| "status.#".to_owned(), topology::status_key);
        ch.queue_bind(
            queue.name().clone(),
            cfg.names.status_exchange.as_str().into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(amqp("binding the status queue"))?;
        let consumer = ch
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp("consuming status"))?;
        Ok(Self { conn, consumer })
    }

    /// The next report, or `None` if none arrives within `timeout`. Undecodable messages are
    /// skipped.
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<RealizedState>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.consumer.next()).await {
                Err(_) | Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(amqp("receiving status")(e)),
                Ok(Some(Ok(d))) => {
                    if let Ok(r) = serde_json::from_slice::<RealizedState>(&d.data) {
                        return Ok(Some(r));
                    }
                }
            }
        }
    }

    /// The first report satisfying `pred` within `timeout`.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&RealizedState) -> bool,
    ) -> Result<Option<RealizedState>, ClientError> {
        let deadline = Instant::now() + timeout;
        while let Some(r) = self
            .next(deadline.saturating_duration_since(Instant::now()))
            .await?
        {
            if pred(&r) {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Collect reports for `window` and keep the latest per node (sorted by node).
    pub async fn collect(&mut self, window: Duration) -> Result<Vec<RealizedState>, ClientError> {
        let deadline = Instant::now() + window;
        let mut latest = BTreeMap::new();
        while let Some(r) = self
            .next(deadline.saturating_duration_since(Instant::now()))
            .await?
        {
            latest.insert(r.node.clone(), r);
        }
        Ok(latest.into_values().collect())
    }

    /// Close the connection (the queue goes with it).
    pub async fn close(self) {
        let _ = self.conn.close(200, "done".into()).await;
    }
}
