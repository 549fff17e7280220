//! A message an exchange's filter drops as a duplicate is confirmed with
//! its own outcome (the `Duplicate` frame), so the publisher can tell it
//! from a stored one; the CLI reports how many it dropped.

use crate::support;

use support::{Broker, stderr};
use switchyard_client::{Channel, Confirmed, Message};

/// Exchange `orders` (fanout, deduplicated by message-id through the
/// built-in `idempotency` filter) bound to queue `orders`.
fn deduplicated_exchange(broker: &Broker) {
    broker.cli_ok(&[
        "declare",
        "exchange",
        "orders",
        "--type",
        "fanout",
        "--arg",
        "filter=idempotency",
    ]);
    broker.cli_ok(&["declare", "queue", "orders"]);
    broker.cli_ok(&["bind", "orders", "orders"]);
}

fn with_id(id: &str, body: &str) -> Message {
    let mut message = Message::new("", body.as_bytes().to_vec());
    message.properties.message_id = Some(id.into());
    message
}

async fn publish(channel: &Channel, message: Message) -> Confirmed {
    channel
        .publish("orders", message)
        .await
        .unwrap()
        .outcome()
        .await
        .unwrap()
}

async fn ready_messages(channel: &Channel) -> u64 {
    let options = switchyard_client::QueueOptions {
        passive: true,
        ..Default::default()
    };
    channel
        .declare_queue("orders", options)
        .await
        .unwrap()
        .messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_is_confirmed_as_a_duplicate_and_stored_once() {
    let broker = Broker::start();
    deduplicated_exchange(&broker);
    let (_connection, channel) = broker.channel().await;
    channel.confirm_select().await.unwrap();

    let first = publish(&channel, with_id("order-1", "first")).await;
    assert!(!first.is_duplicate(), "the first sighting is stored");
    let again = publish(&channel, with_id("order-1", "again")).await;
    assert!(again.is_duplicate(), "the second is dropped as a duplicate");
    assert_eq!(ready_messages(&channel).await, 1);

    // A duplicate is not lost: awaiting the confirmation succeeds.
    channel
        .publish("orders", with_id("order-1", "a third time"))
        .await
        .unwrap()
        .await
        .unwrap();
    // In a batch, the duplicates are named by position.
    let batch = vec![
        with_id("order-2", "new"),
        with_id("order-1", "old"),
        with_id("order-2", "repeated"),
    ];
    let confirmed = channel
        .publish_batch("orders", batch)
        .await
        .unwrap()
        .outcome()
        .await
        .unwrap();
    assert_eq!(confirmed.duplicates(), [1, 2]);
    assert_eq!(ready_messages(&channel).await, 2);
}

#[test]
fn the_cli_reports_how_many_were_dropped_as_duplicates() {
    let broker = Broker::start();
    deduplicated_exchange(&broker);
    let publish = [
        "publish",
        "--exchange",
        "orders",
        "--routing-key",
        "",
        "--confirm",
    ];
    let once = [&publish[..], &["--message-id", "cli-1", "body"]].concat();
    let first = broker.cli(&once);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(!stderr(&first).contains("duplicate"), "{}", stderr(&first));
    let again = broker.cli(&once);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("1 of 1 dropped by the exchange's filter as duplicates"),
        "{}",
        stderr(&again)
    );
}
