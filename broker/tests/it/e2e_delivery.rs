//! End to end through the real binary: prefetch credit, nack with requeue
//! (redelivered flag), reject without requeue (dead-lettering), and the
//! redelivery of a killed consumer's unacknowledged messages.

use crate::support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Broker, SHORT, bodies, drain, queue};
use switchyard_client::{
    ConnectOptions, Connection, ConsumeOptions, ExchangeOptions, Field, Message, QueueOptions,
    Trust, Value,
};

async fn fill(ch: &switchyard_client::Channel, queue: &str, n: usize) {
    ch.confirm_select().await.unwrap();
    let messages = (0..n)
        .map(|i| Message::new(queue, format!("{i}")))
        .collect();
    ch.publish_batch("", messages).await.unwrap().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_limits_unacknowledged_deliveries() {
    let broker = Broker::start();
    let (_c, ch) = broker.channel().await;
    queue(&ch, "work").await;
    fill(&ch, "work", 50).await;
    let options = ConsumeOptions {
        prefetch: 5,
        ..ConsumeOptions::default()
    };
    let mut consumer = ch.consume("work", options).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(consumer.next().await.unwrap());
    }
    assert!(
        tokio::time::timeout(SHORT, consumer.next()).await.is_err(),
        "a sixth delivery arrived with 5 unacknowledged and prefetch 5"
    );
    held[0].ack().await.unwrap();
    let sixth = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sixth.message.body, "5");
    assert!(tokio::time::timeout(SHORT, consumer.next()).await.is_err());
    // Acknowledging several at once returns as much credit.
    sixth.ack_multiple().await.unwrap();
    for _ in 0..5 {
        tokio::time::timeout(Duration::from_secs(5), consumer.next())
            .await
            .unwrap()
            .unwrap();
    }
}

/// A consumer with a prefetch above the client's default buffer that has
/// not taken its deliveries yet still gets answers to requests on its
/// channel: they are not held behind the deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_while_a_large_prefetch_waits_to_be_taken() {
    let broker = Broker::start();
    let (_c, ch) = broker.channel().await;
    queue(&ch, "backlog").await;
    for _ in 0..6 {
        fill(&ch, "backlog", 500).await;
    }
    let options = ConsumeOptions {
        prefetch: 3_000,
        ..ConsumeOptions::default()
    };
    let mut consumer = ch.consume("backlog", options).await.unwrap();
    // Nothing is taken: all 3,000 deliveries come while requests are made.
    for i in 0..20 {
        let answered = tokio::time::timeout(
            Duration::from_secs(60),
            ch.declare_queue(&format!("side-{i}"), QueueOptions::default()),
        )
        .await;
        assert!(
            matches!(answered, Ok(Ok(_))),
            "request {i} was not answered"
        );
    }
    for _ in 0..3_000 {
        tokio::time::timeout(Duration::from_secs(60), consumer.next())
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_with_requeue_redelivers_with_the_redelivered_flag() {
    let broker = Broker::start();
    let (_c, ch) = broker.channel().await;
    queue(&ch, "retry").await;
    fill(&ch, "retry", 3).await;
    let mut consumer = ch
        .consume("retry", ConsumeOptions::default())
        .await
        .unwrap();
    let first = consumer.next().await.unwrap();
    assert_eq!(
        (first.message.body.as_ref(), first.redelivered),
        (&b"0"[..], false)
    );
    first.nack(true).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = tokio::time::timeout(Duration::from_secs(5), consumer.next())
            .await
            .unwrap()
            .unwrap();
        seen.push((
            String::from_utf8_lossy(&d.message.body).into_owned(),
            d.redelivered,
        ));
        d.ack().await.unwrap();
    }
    seen.sort();
    assert_eq!(
        seen,
        [("0".into(), true), ("1".into(), false), ("2".into(), false)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_and_expired_messages_go_to_the_dead_letter_exchange() {
    let broker = Broker::start();
    let (_c, ch) = broker.channel().await;
    ch.declare_exchange("dlx", "fanout", ExchangeOptions::default())
        .await
        .unwrap();
    queue(&ch, "graveyard").await;
    ch.bind("graveyard", "dlx", "", vec![]).await.unwrap();
    let arguments = vec![
        Field::new("dead-letter-exchange", Value::Text("dlx".into())),
        Field::new("message-ttl", Value::Int(200)),
    ];
    ch.declare_queue(
        "short-lived",
        QueueOptions {
            arguments,
            ..QueueOptions::default()
        },
    )
    .await
    .unwrap();
    fill(&ch, "short-lived", 2).await;
    let (rejected, _) = ch.get("short-lived", false).await.unwrap().unwrap();
    rejected.reject(false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The second one expired while waiting.
    assert!(ch.get("short-lived", false).await.unwrap().is_none());
    let dead = drain(&ch, "graveyard").await;
    assert_eq!(bodies(&dead), ["0", "1"]);
    let reason = |d: &switchyard_client::Delivery| {
        switchyard_client::Value::clone(
            switchyard_protocol::find(&d.message.headers, "x-death-reason").unwrap(),
        )
    };
    assert_eq!(reason(&dead[0]), Value::Text("rejected".into()));
    assert_eq!(reason(&dead[1]), Value::Text("expired".into()));
}

const CHILD_URL: &str = "SWITCHYARD_E2E_CHILD_URL";
const CHILD_CA: &str = "SWITCHYARD_E2E_CHILD_CA";

/// Child process: takes 10 deliveries without acknowledging them, says so,
/// and waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_greedy_consumer() {
    let (Ok(url), Ok(ca)) = (std::env::var(CHILD_URL), std::env::var(CHILD_CA)) else {
        return;
    };
    let trust = Trust::ca_file(ca.as_ref()).unwrap();
    let connection = Connection::connect(&url, ConnectOptions::new(trust))
        .await
        .unwrap();
    let ch = connection.channel().await.unwrap();
    let options = ConsumeOptions {
        prefetch: 10,
        ..ConsumeOptions::default()
    };
    let mut consumer = ch.consume("jobs", options).await.unwrap();
    let mut taken = Vec::new();
    for _ in 0..10 {
        let d = consumer.next().await.unwrap();
        taken.push(String::from_utf8_lossy(&d.message.body).into_owned());
    }
    println!("took {}", taken.join(","));
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_consumers_unacknowledged_messages_are_redelivered() {
    let broker = Broker::start();
    let (_c, ch) = broker.channel().await;
    queue(&ch, "jobs").await;
    fill(&ch, "jobs", 100).await;

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "e2e_delivery::child_greedy_consumer",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_URL, broker.guest_url())
        .env(CHILD_CA, broker.data_dir.join("tls/ca.pem"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut taken = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // libtest writes "test child_greedy_consumer ... " before it.
        if let Some((_, list)) = line.split_once("took ") {
            taken = Some(list.split(',').map(String::from).collect::<BTreeSet<_>>());
            break;
        }
    }
    let taken = taken.expect("the child consumer reports what it took");
    assert_eq!(taken.len(), 10);
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = std::time::Instant::now();

    // The broker learns of the death when the connection times out: within
    // idle timeout + keep-alive interval (docs/PROTOCOL.md, "Liveness").
    let mut consumer = ch.consume("jobs", ConsumeOptions::default()).await.unwrap();
    let mut all = BTreeSet::new();
    let mut redelivered = BTreeSet::new();
    while all.len() < 100 {
        let d = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .expect("every message arrives")
            .unwrap();
        let body = String::from_utf8_lossy(&d.message.body).into_owned();
        if d.redelivered {
            redelivered.insert(body.clone());
        }
        assert!(all.insert(body), "a message was delivered twice");
        d.ack().await.unwrap();
    }
    assert_eq!(
        redelivered, taken,
        "exactly the killed consumer's messages come back, flagged"
    );
    eprintln!(
        "a killed consumer's messages came back {:.1} s after the kill (idle timeout 5 s)",
        killed.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_sent_just_before_the_connection_closes_are_applied() {
    let broker = Broker::start();
    let (connection, channel) = broker.channel().await;
    channel
        .declare_queue("jobs", support::durable())
        .await
        .unwrap();
    support::publish_confirmed(&channel, "jobs", 200).await;
    let consumer_channel = connection.channel().await.unwrap();
    let mut consumer = consumer_channel
        .consume("jobs", ConsumeOptions::default())
        .await
        .unwrap();
    for _ in 0..200 {
        let delivery = consumer.next().await.unwrap();
        delivery.ack().await.unwrap();
    }
    // Closed at once: the channels are not closed first by the caller.
    connection.close().await;

    let (_connection, channel) = broker.channel().await;
    let left = support::drain(&channel, "jobs").await;
    assert!(left.is_empty(), "{} acked messages redelivered", left.len());
}
