//! The broker dies under a client (SIGKILL: no close frame, and over UDP
//! nothing tells the client): everything pending on the connection, and
//! everything tried on it later, fails instead of waiting forever, and the
//! reconnect pattern of the SDK docs (a fresh `Connection` to a restarted
//! broker) works.

use crate::support;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use support::{Broker, queue};
use switchyard_client::{Channel, ConsumeOptions, Error, Message, Query};
use tokio::time::timeout;

/// A bound on hanging, not a measurement: far above the 5 s idle timeout
/// of the test brokers, after which the client must have noticed.
const GENEROUS: Duration = Duration::from_secs(60);

/// Confirms awaited at most this far behind the newest publish, as a
/// pipelining publisher (the CLI's) does.
const WINDOW: usize = 100;

/// Publishes with confirms until something fails; returns the error.
async fn publish_until_error(channel: Channel, confirmed: Arc<AtomicU64>) -> Error {
    let mut in_flight = VecDeque::new();
    loop {
        let confirmation = match channel.publish("", Message::new("work", "job")).await {
            Ok(confirmation) => confirmation,
            Err(e) => return e,
        };
        in_flight.push_back(confirmation);
        if in_flight.len() >= WINDOW {
            if let Err(e) = in_flight.pop_front().unwrap().await {
                return e;
            }
            confirmed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    timeout(GENEROUS, future)
        .await
        .unwrap_or_else(|_| panic!("{what} still waiting {GENEROUS:?} after the broker died"))
}

fn assert_lost(what: &str, error: &Error) {
    assert!(
        matches!(error, Error::ConnectionLost(_)),
        "{what}: expected a lost connection, got {error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_broker_fails_every_pending_and_later_operation_and_a_new_connection_works() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start_in(data_dir.path(), &[]);
    let connection = broker.connect_as(&broker.guest_url()).await.unwrap();

    let publisher = connection.channel().await.unwrap();
    queue(&publisher, "work").await;
    publisher.confirm_select().await.unwrap();
    let subscriber = connection.channel().await.unwrap();
    queue(&subscriber, "quiet").await;
    let mut consumer = subscriber
        .consume("quiet", ConsumeOptions::default())
        .await
        .unwrap();
    // A channel with nothing in flight when the broker dies.
    let idle = connection.channel().await.unwrap();
    idle.confirm_select().await.unwrap();

    let confirmed = Arc::new(AtomicU64::new(0));
    let publishing = tokio::spawn(publish_until_error(publisher, confirmed.clone()));
    let consuming = tokio::spawn(async move {
        let delivery = consumer.next().await;
        (delivery.is_none(), consumer.error())
    });
    within("the first confirms", async {
        while confirmed.load(Ordering::Relaxed) < 1000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    broker.kill();

    // (a) The publish loop ends with an error.
    let error = within("the confirmed publish loop", publishing)
        .await
        .unwrap();
    assert_lost("the publish loop", &error);
    // (b) The consumer waiting for its next delivery ends and says why.
    let (ended, why) = within("consumer.next()", consuming).await.unwrap();
    assert!(ended, "a delivery from a dead broker");
    assert_lost(
        "the consumer",
        &why.expect("the consumer says why it ended"),
    );

    // (c) Operations started after the death fail at once.
    let late_publish = within("a publish on the dead connection", async {
        idle.publish("", Message::new("work", "late")).await?.await
    })
    .await;
    assert_lost("a later publish", &late_publish.unwrap_err());
    let late_request = within(
        "a request on the dead connection",
        idle.query(Query::Queues),
    )
    .await;
    assert_lost("a later request", &late_request.unwrap_err());
    let late_channel = within("a new channel", connection.channel()).await;
    assert_lost("a later channel", &late_channel.unwrap_err());
    within("closing the dead connection", connection.close()).await;

    // (d) Reconnecting: a new connection to the broker restarted on the
    // same data directory, with the topology declared again.
    let restarted = Broker::start_in(data_dir.path(), &[]);
    let (_connection, channel) = restarted.channel().await;
    queue(&channel, "work").await;
    channel.confirm_select().await.unwrap();
    channel
        .publish("", Message::new("work", "after the restart"))
        .await
        .unwrap()
        .await
        .unwrap();
}
