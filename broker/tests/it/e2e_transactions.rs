//! Transactional (half) messages through the binary and the SDK: commit
//! delivers once, rollback never; a producer that dies leaves its
//! transaction to another member of its group, asked by the broker; no
//! answer ends in a discard (or a park) after the configured checks; 1,000
//! pending transactions survive a SIGKILL and each commits exactly once.

use crate::support;

use std::collections::HashSet;
use std::time::Duration;

use support::{Broker, drain, durable, eventually, queue_row};
use switchyard_client::{
    Channel, ExchangeOptions, Field, Message, ProducerGroupOptions, QueueOptions, TxOutcome, Value,
};

const LONG: Duration = Duration::from_secs(120);

fn quick_checks(max_checks: u32) -> ProducerGroupOptions {
    ProducerGroupOptions {
        check_timeout: Some(Duration::from_millis(200)),
        check_interval: Some(Duration::from_millis(200)),
        max_checks: Some(max_checks),
        give_up_queue: None,
    }
}

fn transactions_row(broker: &Broker, group: &str) -> serde_json::Value {
    broker
        .cli_ok(&["list", "transactions", "--json"])
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|row| row["group"] == group)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_delivers_once_in_every_queue_and_a_rollback_never() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    ch.declare_exchange("payments", "fanout", ExchangeOptions::default())
        .await
        .unwrap();
    for queue in ["ledger", "audit"] {
        ch.declare_queue(queue, durable()).await.unwrap();
        ch.bind(queue, "payments", "", vec![]).await.unwrap();
    }
    // Not before joining a producer group.
    let early = ch
        .send_half("payments", Message::new("", "x"))
        .await
        .unwrap_err();
    assert!(early.to_string().contains("producer group"), "{early}");
    let _checks = ch
        .join_producer_group("payments-service", ProducerGroupOptions::default())
        .await
        .unwrap();
    let paid = ch
        .send_half("payments", Message::new("", "paid 42"))
        .await
        .unwrap();
    // Stored, invisible.
    assert_eq!(queue_row(&broker, "ledger").unwrap()["ready"], 0);
    assert!(ch.get("audit", false).await.unwrap().is_none());
    assert_eq!(transactions_row(&broker, "payments-service")["pending"], 1);
    ch.commit(paid).await.unwrap();
    ch.commit(paid).await.unwrap();
    for queue in ["ledger", "audit"] {
        let got = drain(&ch, queue).await;
        assert_eq!(support::bodies(&got), vec!["paid 42"], "{queue}");
        let group = got[0]
            .message
            .headers
            .iter()
            .find(|f| f.name == "x-transaction-group")
            .map(|f| f.value.clone());
        assert_eq!(group, Some(Value::Text("payments-service".into())));
    }
    let refused = ch.rollback(paid).await.unwrap_err();
    assert!(refused.to_string().contains("was committed"), "{refused}");

    let failed = ch
        .send_half("payments", Message::new("", "failed"))
        .await
        .unwrap();
    ch.rollback(failed).await.unwrap();
    ch.rollback(failed).await.unwrap();
    let refused = ch.commit(failed).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("was rolled back: it cannot be committed"),
        "{refused}"
    );
    let unknown = ch.commit(1 << 40).await.unwrap_err();
    assert!(
        unknown.to_string().contains("no pending transaction"),
        "{unknown}"
    );
    // The CLI's spelling.
    broker.cli_ok(&[
        "publish",
        "--exchange",
        "payments",
        "--routing-key",
        "",
        "--transactional",
        "--rollback",
        "never",
    ]);
    for queue in ["ledger", "audit"] {
        assert!(drain(&ch, queue).await.is_empty(), "{queue}");
        let row = queue_row(&broker, queue).unwrap();
        assert_eq!(
            (row["ready"].as_i64(), row["unacked"].as_i64()),
            (Some(0), Some(0))
        );
    }
    let row = transactions_row(&broker, "payments-service");
    assert_eq!(
        (
            row["pending"].as_i64(),
            row["committed"].as_i64(),
            row["rolled_back"].as_i64()
        ),
        (Some(0), Some(1), Some(1)),
        "{row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_producers_transaction_is_checked_with_another_member_which_commits() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    ch.declare_queue("orders", durable()).await.unwrap();
    // The survivor: another connection of the same group.
    let (_survivor_connection, survivor) = broker.channel().await;
    let mut checks = survivor
        .join_producer_group("order-service", quick_checks(15))
        .await
        .unwrap();
    let id = {
        let (connection, producer) = broker.channel().await;
        let _own_checks = producer
            .join_producer_group("order-service", quick_checks(15))
            .await
            .unwrap();
        let id = producer
            .send_half("", Message::new("orders", "order 7"))
            .await
            .unwrap();
        // It dies before committing.
        drop((producer, connection));
        id
    };
    let check = tokio::time::timeout(LONG, checks.recv())
        .await
        .expect("a check within the timeout")
        .unwrap();
    assert_eq!(check.id, id);
    assert_eq!(check.group, "order-service");
    assert_eq!(&check.message.body[..], b"order 7");
    check.answer(TxOutcome::Commit).await.unwrap();
    let got = drain(&ch, "orders").await;
    assert_eq!(support::bodies(&got), vec!["order 7"]);
    // Committed once: later checks do not come, the message not again.
    let row = transactions_row(&broker, "order-service");
    assert_eq!(
        (row["pending"].as_i64(), row["committed"].as_i64()),
        (Some(0), Some(1))
    );
    assert!(drain(&ch, "orders").await.is_empty());
}

/// Joins `group` and never answers; returns the channel, and a task
/// counting the checks it receives.
async fn silent_member(
    broker: &Broker,
    group: &str,
    options: ProducerGroupOptions,
) -> (
    switchyard_client::Connection,
    Channel,
    tokio::task::JoinHandle<u32>,
) {
    let (connection, ch) = broker.channel().await;
    let mut checks = ch.join_producer_group(group, options).await.unwrap();
    let counter = tokio::spawn(async move {
        let mut received = 0;
        while tokio::time::timeout(Duration::from_secs(5), checks.recv())
            .await
            .ok()
            .flatten()
            .is_some()
        {
            received += 1;
        }
        received
    });
    (connection, ch, counter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_checks_end_in_a_discard_or_a_park_and_nothing_is_delivered() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    ch.declare_queue("shipments", durable()).await.unwrap();
    let (_c1, discarding, counter) = silent_member(&broker, "discarding", quick_checks(3)).await;
    discarding
        .send_half("", Message::new("shipments", "lost"))
        .await
        .unwrap();
    let parking_options = ProducerGroupOptions {
        give_up_queue: Some("abandoned".into()),
        ..quick_checks(2)
    };
    let (_c2, parking, _) = silent_member(&broker, "parking", parking_options).await;
    parking
        .send_half("", Message::new("shipments", "parked"))
        .await
        .unwrap();
    let ended = eventually(LONG, || {
        transactions_row(&broker, "discarding")["given_up"] == 1
            && transactions_row(&broker, "parking")["given_up"] == 1
    })
    .await;
    assert!(
        ended,
        "{} {}",
        transactions_row(&broker, "discarding"),
        transactions_row(&broker, "parking")
    );
    assert_eq!(counter.await.unwrap(), 3, "asked exactly max-checks times");
    assert!(drain(&ch, "shipments").await.is_empty());
    let parked = drain(&ch, "abandoned").await;
    assert_eq!(support::bodies(&parked), vec!["parked"]);
    let row = transactions_row(&broker, "discarding");
    assert_eq!(
        (row["pending"].as_i64(), row["checks_sent"].as_i64()),
        (Some(0), Some(3)),
        "{row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_pending_transactions_survive_a_sigkill_and_each_commits_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start_in(dir.path(), &[]);
    let options = ProducerGroupOptions {
        check_timeout: Some(Duration::from_millis(500)),
        check_interval: Some(Duration::from_secs(2)),
        max_checks: Some(100),
        give_up_queue: None,
    };
    {
        let (_connection, ch) = broker.channel().await;
        let sync = QueueOptions {
            arguments: vec![Field::new("flush", Value::Text("sync".into()))],
            ..durable()
        };
        ch.declare_queue("invoices", sync).await.unwrap();
        let _checks = ch
            .join_producer_group("billing", options.clone())
            .await
            .unwrap();
        for n in 0..1000 {
            ch.send_half("", Message::new("invoices", n.to_string()))
                .await
                .unwrap();
        }
        broker.kill();
    }
    let broker = Broker::start_in(dir.path(), &[]);
    let (_connection, ch) = broker.channel().await;
    let row = queue_row(&broker, "invoices").unwrap();
    assert_eq!(row["ready"], 0, "none visible after the restart: {row}");
    assert_eq!(transactions_row(&broker, "billing")["pending"], 1000);
    // Checks resume; this member commits each one it is asked about.
    let (_member_connection, member) = broker.channel().await;
    let mut checks = member
        .join_producer_group("billing", options)
        .await
        .unwrap();
    let mut committed = HashSet::new();
    while committed.len() < 1000 {
        let check = tokio::time::timeout(LONG, checks.recv())
            .await
            .expect("checks keep coming")
            .unwrap();
        if committed.insert(check.id) {
            check.answer(TxOutcome::Commit).await.unwrap();
        }
    }
    let got = drain(&ch, "invoices").await;
    let bodies: HashSet<String> = support::bodies(&got).into_iter().collect();
    assert_eq!(got.len(), 1000, "each delivered once");
    assert_eq!(bodies.len(), 1000);
    assert_eq!(transactions_row(&broker, "billing")["pending"], 0);
}
