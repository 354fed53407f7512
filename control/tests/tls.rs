//! amqps: a second RabbitMQ node with a TLS listener on its own ports (scripts/rabbitmq-tls.sh,
//! certificates made with openssl in a temp dir). The right CA connects and a policy applies over
//! TLS; a wrong CA is refused with an error that says so. The main broker is not touched.

mod common;

use common::*;
use rampart_control::client::{PolicyPublisher, StatusWatcher, Target};
use rampart_control::connect::{self, ConnectError};
use rampart_control::Outcome;
use rampart_testkit::TlsBroker;

#[tokio::test]
async fn amqps_verifies_the_broker_against_the_configured_ca() {
    let Some(tls) = TlsBroker::start() else {
        return;
    };

    // Wrong CA: refused, and the error says it is about TLS / the certificate.
    let wrong = tls.config("wrong-ca.pem", "tls");
    let err = connect::connect(&wrong, "tls test wrong ca")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    let msg = format!("{err} {:?}", std::error::Error::source(&err));
    assert!(
        msg.contains("TLS handshake") && msg.contains("wrong-ca.pem"),
        "{msg}"
    );
    assert!(
        msg.to_ascii_lowercase().contains("certificate") || msg.contains("UnknownIssuer"),
        "{msg}"
    );

    // Right CA (and a client certificate): a node consumes over amqps and applies a policy.
    let mut good = tls.config("ca.pem", "tls");
    good.client_cert = Some(tls.cert("client.pem"));
    good.client_key = Some(tls.cert("client.key"));
    let conn = connect::connect(&good, "tls test right ca")
        .await
        .expect("amqps with the right CA");
    let _ = conn.close(200, "".into()).await;

    let mut bus = TestBus::new("tls");
    bus.broker = good.clone();
    let mut watcher = StatusWatcher::connect(&good, None).await.unwrap();
    let node = Node::start(&bus, &unique("fw"), None);
    watcher
        .wait_for(WAIT, |r| r.outcome == Outcome::Current)
        .await
        .unwrap()
        .expect("node did not come up over amqps");
    let publisher = PolicyPublisher::connect(&good).await.unwrap();
    publisher
        .publish(&doc(1, 3), &Target::Node(node.name.clone()))
        .await
        .unwrap();
    watcher
        .wait_for(WAIT, |r| {
            r.outcome == Outcome::Applied && r.generation == Some(1)
        })
        .await
        .unwrap()
        .expect("policy not applied over amqps");
    assert_eq!(node.generation(), 1);

    publisher.close().await;
    watcher.close().await;
    drop(node);
    bus.cleanup().await;
    drop(tls);
}
