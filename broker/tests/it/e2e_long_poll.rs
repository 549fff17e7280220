//! Long polling through the binary: a waiting `get` returns as soon as a
//! message is published (latency printed: run with --nocapture, not
//! asserted), returns empty once its wait is over, never takes a message
//! it did not report, and `switchyard get --wait` does the same.

use crate::support;

use std::time::{Duration, Instant};

use support::{Broker, queue_row};
use switchyard_client::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_get_returns_when_a_message_arrives() {
    let broker = Broker::start();
    let (connection, ch) = broker.channel().await;
    support::queue(&ch, "polled").await;
    let poller = connection.channel().await.unwrap();
    let mut latencies = Vec::new();
    for i in 0..200u64 {
        let waiting = {
            let poller = poller.clone();
            tokio::spawn(async move {
                let got = poller
                    .get_wait("polled", true, Duration::from_secs(60))
                    .await;
                (got, Instant::now())
            })
        };
        // Give the poll a moment to be waiting (not a condition: the
        // latency below is reported, and a publish that wins the race is
        // simply taken at once).
        tokio::time::sleep(Duration::from_millis(2 + i % 7)).await;
        let published = Instant::now();
        ch.publish("", Message::new("polled", format!("{i}")))
            .await
            .unwrap();
        let (got, arrived) = waiting.await.unwrap();
        let (delivery, _) = got.unwrap().expect("the waiting get returned the message");
        assert_eq!(delivery.message.body, format!("{i}"));
        latencies.push(arrived.saturating_duration_since(published));
    }
    latencies.sort();
    println!(
        "long poll: publish → waiting get returned: p50 {:?}, p99 {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100]
    );

    let started = Instant::now();
    let got = poller
        .get_wait("polled", false, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(got.is_none(), "an empty queue stays empty");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "returned before its wait was over"
    );
    let row = queue_row(&broker, "polled").unwrap();
    assert_eq!(
        (row["ready"].as_i64(), row["unacked"].as_i64()),
        (Some(0), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_get_wait_prints_the_message_that_arrives() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    support::queue(&ch, "later").await;
    let waiting = std::process::Command::new(support::BIN)
        .args(["get", "--queue", "later", "--wait", "60s"])
        .env("SWITCHYARD_URL", broker.guest_url())
        .env("SWITCHYARD_DATA_DIR", &broker.data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Most likely waiting by then; if not, it finds the message at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    ch.publish("", Message::new("later", "arrived"))
        .await
        .unwrap();
    let output = tokio::task::spawn_blocking(move || waiting.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("arrived"));
}
