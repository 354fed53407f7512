//! The broker topology, declared idempotently by every node on every (re)connect and by
//! `rampartctl` before publishing:
//!
//! ```text
//! rampart.policy (topic, durable) ──node.<n> / cluster.<c> / all──▶ rampart.policy.node.<n> (durable,
//!                                                                    dead-letters to rampart.policy.dlx)
//! rampart.policy.dlx (fanout, durable) ──▶ rampart.policy.dead (durable): rejected documents
//! rampart.status (topic, durable) ──status.<n>──▶ whoever listens (rampartctl status, managers)
//! ```

use crate::config::TopologyNames;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

/// Routing key that reaches one node.
pub fn node_key(node: &str) -> String {
    format!("node.{node}")
}

/// Routing key that reaches every node of a cluster.
pub fn cluster_key(cluster: &str) -> String {
    format!("cluster.{cluster}")
}

/// AMQP message type (the `type` property) of an inventory update published on its own; a
/// message without it (or with any other type) is a policy document.
pub const INVENTORY_TYPE: &str = "rampart.inventory";

/// Routing key that reaches every node.
pub const ALL_KEY: &str = "all";

/// Routing key of a node's status reports.
pub fn status_key(node: &str) -> String {
    format!("status.{node}")
}

/// Declare the exchanges and the dead-letter queue (shared by nodes and publishers).
pub async fn declare_exchanges(ch: &Channel, names: &TopologyNames) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    for (name, kind) in [
        (&names.policy_exchange, ExchangeKind::Topic),
        (&names.status_exchange, ExchangeKind::Topic),
        (&names.dead_letter_exchange, ExchangeKind::Fanout),
    ] {
        ch.exchange_declare(name.as_str().into(), kind, durable, FieldTable::default())
            .await?;
    }
    ch.queue_declare(
        names.dead_letter_queue.as_str().into(),
        durable_queue(),
        FieldTable::default(),
    )
    .await?;
    ch.queue_bind(
        names.dead_letter_queue.as_str().into(),
        names.dead_letter_exchange.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
}

/// Declare `node`'s durable policy queue and bind it by node, cluster and `all`; returns its name.
pub async fn declare_node_queue(
    ch: &Channel,
    names: &TopologyNames,
    node: &str,
    cluster: Option<&str>,
) -> lapin::Result<String> {
    let queue = names.node_queue(node);
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(names.dead_letter_exchange.as_str().into()),
    );
    ch.queue_declare(queue.as_str().into(), durable_queue(), args)
        .await?;
    let mut keys = vec![node_key(node), ALL_KEY.to_owned()];
    keys.extend(cluster.map(cluster_key));
    for key in keys {
        ch.queue_bind(
            queue.as_str().into(),
            names.policy_exchange.as_str().into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    Ok(queue)
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}
