//! Delayed delivery through the binary: `publish --delay` is confirmed at
//! once, counted as delayed in `list queues`, and delivered when due;
//! 100,000 messages with random due times in the next 10 s are each
//! delivered no earlier than due (lateness printed: run with --nocapture),
//! also when the broker is SIGKILLed in the middle — none lost, none
//! early, a message seen twice only if flagged redelivered.

use crate::support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{Broker, queue, queue_row};
use switchyard_client::{Channel, ConsumeOptions, Message};

const COUNT: u64 = 100_000;
const SPREAD_MS: u64 = 10_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_delay_is_confirmed_now_counted_and_delivered_when_due() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    queue(&ch, "later").await;
    // Counted, and invisible, however slow this machine is: due in 30 days.
    broker.cli_ok(&[
        "publish",
        "--routing-key",
        "later",
        "--delay",
        "30days",
        "--confirm",
        "much later",
    ]);
    let row = queue_row(&broker, "later").unwrap();
    assert_eq!(
        (row["ready"].as_i64(), row["delayed"].as_i64()),
        (Some(0), Some(1)),
        "{row}"
    );
    assert!(
        ch.get("later", false).await.unwrap().is_none(),
        "not before it is due"
    );
    let sent = now_ms();
    broker.cli_ok(&[
        "publish",
        "--routing-key",
        "later",
        "--delay",
        "2s",
        "--confirm",
        "soon",
    ]);
    let got = std::sync::Mutex::new(None);
    let arrived = support::eventually_async(Duration::from_secs(60), || async {
        let delivery = ch.get("later", true).await.unwrap();
        let found = delivery.is_some();
        *got.lock().unwrap() = delivery;
        found
    })
    .await;
    assert!(arrived, "the delayed message never arrived");
    let (delivery, _) = got.into_inner().unwrap().unwrap();
    assert_eq!(delivery.message.body, "soon");
    assert!(now_ms() >= sent + 2_000, "delivered early");
    let row = queue_row(&broker, "later").unwrap();
    assert_eq!(row["delayed"].as_i64(), Some(1), "{row}");

    let refused = broker.cli(&[
        "publish",
        "--routing-key",
        "later",
        "--delay",
        "400days",
        "--confirm",
        "x",
    ]);
    assert!(!refused.status.success());
    assert!(
        support::stderr(&refused).contains("longest delay"),
        "{}",
        support::stderr(&refused)
    );
}

/// Publishes COUNT messages due at random times in the next SPREAD_MS;
/// returns each one's due time by id.
async fn publish_spread(ch: &Channel, queue: &str) -> HashMap<u64, u64> {
    ch.confirm_select().await.unwrap();
    let start = now_ms() + 1_000;
    let mut dues = HashMap::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for batch in 0..COUNT / 1_000 {
        let messages: Vec<Message> = (batch * 1_000..(batch + 1) * 1_000)
            .map(|id| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let due = start + seed % SPREAD_MS;
                dues.insert(id, due);
                let at = UNIX_EPOCH + Duration::from_millis(due);
                Message::new(queue, format!("{id}"))
                    .persistent()
                    .deliver_at(at)
            })
            .collect();
        ch.publish_batch("", messages).await.unwrap().await.unwrap();
    }
    dues
}

/// Consumes until every id in `dues` was seen (or `stop_after` messages
/// arrived); checks none is early and none is seen twice unless flagged
/// redelivered. Returns the lateness of each (ms).
async fn receive(
    ch: &Channel,
    queue: &str,
    dues: &HashMap<u64, u64>,
    seen: &mut HashMap<u64, u32>,
    stop_after: usize,
) -> Vec<u64> {
    let options = ConsumeOptions {
        prefetch: 1_000,
        ..ConsumeOptions::default()
    };
    let mut consumer = ch.consume(queue, options).await.unwrap();
    let mut lateness = Vec::new();
    while seen.len() < dues.len() && lateness.len() < stop_after {
        let delivery = tokio::time::timeout(Duration::from_secs(60), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {} delivered", seen.len(), dues.len()))
            .unwrap();
        let arrived = now_ms();
        let id: u64 = String::from_utf8_lossy(&delivery.message.body)
            .parse()
            .unwrap();
        let due = dues[&id];
        assert!(
            arrived >= due,
            "message {id} arrived {} ms early",
            due - arrived
        );
        let count = seen.entry(id).or_default();
        *count += 1;
        assert!(
            *count == 1 || delivery.redelivered,
            "message {id} delivered twice, unflagged"
        );
        lateness.push(arrived - due);
        delivery.ack().await.unwrap();
    }
    lateness
}

fn report(what: &str, mut lateness: Vec<u64>) {
    lateness.sort_unstable();
    let at = |q: f64| lateness[((lateness.len() - 1) as f64 * q) as usize];
    println!(
        "{what}: {} deliveries, lateness p50 {} ms, p99 {} ms, max {} ms",
        lateness.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_random_delays_arrive_on_time() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    queue(&ch, "timed").await;
    let dues = publish_spread(&ch, "timed").await;
    let mut seen = HashMap::new();
    let lateness = receive(&ch, "timed", &dues, &mut seen, usize::MAX).await;
    assert_eq!(seen.len() as u64, COUNT);
    report("delays", lateness);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delays_survive_sigkill_none_lost_none_early() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start_in(dir.path(), &[]);
    let dues;
    let mut seen = HashMap::new();
    {
        let (_connection, ch) = broker.channel().await;
        ch.declare_queue("timed", support::durable()).await.unwrap();
        dues = publish_spread(&ch, "timed").await;
        // About a third has come due and been taken when the broker dies.
        receive(&ch, "timed", &dues, &mut seen, COUNT as usize / 3).await;
        broker.kill();
    }
    let broker = Broker::start_in(dir.path(), &[]);
    let (_connection, ch) = broker.channel().await;
    let lateness = receive(&ch, "timed", &dues, &mut seen, usize::MAX).await;
    assert_eq!(seen.len() as u64, COUNT, "none lost");
    report("delays across a SIGKILL (after the restart)", lateness);
}
