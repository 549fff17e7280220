//! Producer groups belong to their tenant, end to end through the binary:
//! joining needs write permission on the group's name, changing its
//! settings configure permission, a give-up queue the caller's own write
//! permission; a member joining with default options leaves the group's
//! settings as they are (it used to overwrite them).

use crate::support;

use std::time::Duration;

use support::{Broker, add_user, eventually, queue_row};
use switchyard_client::{Channel, Connection, ExchangeOptions, Message, ProducerGroupOptions};

async fn channel_as(broker: &Broker, user: &str) -> (Connection, Channel) {
    let url = broker.url(user, &format!("{user}-pw"), "/");
    let connection = broker.connect_as(&url).await.unwrap();
    let channel = connection.channel().await.unwrap();
    (connection, channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_can_neither_join_nor_reconfigure_a_producer_group() {
    let broker = Broker::start();
    for tenant in ["alice", "mallory"] {
        let own = format!("{tenant}\\..*");
        add_user(
            &broker,
            tenant,
            &format!("{tenant}-pw"),
            "/",
            [&own, &own, &own],
        );
    }
    let (_alice, alice) = channel_as(&broker, "alice").await;
    alice
        .declare_exchange("alice.payments", "fanout", ExchangeOptions::default())
        .await
        .unwrap();
    alice
        .declare_queue("alice.ledger", support::durable())
        .await
        .unwrap();
    alice
        .bind("alice.ledger", "alice.payments", "", vec![])
        .await
        .unwrap();
    let quick = ProducerGroupOptions {
        check_timeout: Some(Duration::from_millis(200)),
        check_interval: Some(Duration::from_millis(200)),
        max_checks: Some(2),
        give_up_queue: Some("alice.unanswered".into()),
    };
    let _checks = alice
        .join_producer_group("alice.billing", quick.clone())
        .await
        .unwrap();

    // Mallory can't join Alice's group, even with no settings.
    let (_mallory, mallory) = channel_as(&broker, "mallory").await;
    let refused = mallory
        .join_producer_group("alice.billing", ProducerGroupOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("producer group 'alice.billing'") && refused.contains("write"),
        "{refused}"
    );
    // Nor give up into Alice's queue from a group of her own.
    let (_mallory, mallory) = channel_as(&broker, "mallory").await;
    let into_alice = ProducerGroupOptions {
        give_up_queue: Some("alice.unanswered".into()),
        ..ProducerGroupOptions::default()
    };
    let refused = mallory
        .join_producer_group("mallory.billing", into_alice)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("queue 'alice.unanswered'"), "{refused}");

    // A second member of Alice's joins with default options: the group's
    // quick checks and give-up queue stay, so the unanswered transaction
    // is parked after two checks.
    let (_second, second) = channel_as(&broker, "alice").await;
    let _more = second
        .join_producer_group("alice.billing", ProducerGroupOptions::default())
        .await
        .unwrap();
    alice
        .send_half("alice.payments", Message::new("", "paid 7"))
        .await
        .unwrap();
    let parked = eventually(Duration::from_secs(90), || {
        queue_row(&broker, "alice.unanswered").is_some_and(|row| row["ready"].as_u64() == Some(1))
    })
    .await;
    assert!(
        parked,
        "the transaction was not parked: the group's settings changed"
    );
}
