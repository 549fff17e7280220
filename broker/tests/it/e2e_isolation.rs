//! End to end through the real binary (issue 12): a misbehaving client
//! cannot flood the broker's log.

use crate::support;

use std::time::{Duration, Instant};

use support::Broker;
use switchyard_client::{Message, QueueOptions};
use switchyard_protocol::{Field, Value};

/// Every refusal a log line accounts for: one for itself plus the number it
/// says were held back.
fn refusals_accounted(log: &str) -> (usize, u64) {
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("refused")).collect();
    let counted = lines
        .iter()
        .map(|line| {
            let held_back: u64 = line
                .split_whitespace()
                .zip(line.split_whitespace().skip(1))
                .find(|(_, next)| *next == "more")
                .and_then(|(n, _)| n.parse().ok())
                .unwrap_or(0);
            // The closing summary stands for held-back refusals only.
            if line.contains("before it closed") {
                held_back
            } else {
                1 + held_back
            }
        })
        .sum();
    (lines.len(), counted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_publishes_without_confirms_are_logged_a_few_times_with_a_count() {
    const PUBLISHES: u64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("broker.log");
    let data = dir.path().join("data");
    let broker = Broker::start_logging(&data, &[], Some(&log));
    let (connection, ch) = broker.channel().await;
    let options = QueueOptions {
        arguments: vec![
            Field::new("max-length", Value::Int(1)),
            Field::new("overflow", Value::Text("reject-publish".into())),
        ],
        ..QueueOptions::default()
    };
    ch.declare_queue("full", options).await.unwrap();
    for i in 0..PUBLISHES {
        // No confirm mode: the publish is only sent.
        drop(
            ch.publish("", Message::new("full", format!("m{i}")))
                .await
                .unwrap(),
        );
    }
    // A request on the same channel is answered after every publish before it.
    ch.declare_queue(
        "full",
        QueueOptions {
            passive: true,
            ..QueueOptions::default()
        },
    )
    .await
    .unwrap();
    ch.close().await.unwrap();
    drop(connection);

    let deadline = Instant::now() + Duration::from_secs(60);
    let (lines, counted) = loop {
        let (lines, counted) = refusals_accounted(&std::fs::read_to_string(&log).unwrap());
        if counted >= PUBLISHES - 1 || Instant::now() > deadline {
            break (lines, counted);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("{} refusals reported in {lines} log lines", PUBLISHES - 1);
    assert_eq!(counted, PUBLISHES - 1, "every refusal is accounted for");
    assert!(
        lines < 100,
        "{lines} warnings for {PUBLISHES} refused publishes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_publish_into_another_tenants_queue_through_the_default_exchange() {
    let broker = Broker::start();
    let (_guest, admin) = broker.channel().await;
    admin
        .declare_queue("alice.secret", QueueOptions::default())
        .await
        .unwrap();
    broker.cli_ok(&["user", "add", "nina", "--password", "pw"]);
    broker.cli_ok(&[
        "user",
        "permit",
        "nina",
        "--configure",
        "nina\\..*",
        "--write",
        "nina\\..*",
        "--read",
        "nina\\..*",
    ]);
    let nina = broker
        .connect_as(&broker.url("nina", "pw", "/"))
        .await
        .unwrap();
    let ch = nina.channel().await.unwrap();
    ch.confirm_select().await.unwrap();
    let outcome = match ch.publish("", Message::new("alice.secret", "x")).await {
        Ok(confirmation) => confirmation.await.map(|_| ()),
        Err(e) => Err(e),
    };
    let refused = outcome.expect_err("nina published into alice's queue");
    assert_eq!(
        refused.code(),
        Some(switchyard_protocol::code::ACCESS_REFUSED)
    );
    assert!(
        refused
            .to_string()
            .contains("no write permission on queue 'alice.secret'"),
        "{refused}"
    );
    assert!(support::drain(&admin, "alice.secret").await.is_empty());
}
