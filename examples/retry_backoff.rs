//! A dead-letter policy loaded at run time, and hot-swapped: loads the
//! `retry-backoff` example policy (examples/plugins/retry-backoff, any
//! language's build), declares a queue it decides for, and rejects one
//! message until the policy parks it — printing when each retry arrived
//! against when the policy said it would (500 ms, 1 s, 2 s, then parked in
//! `<queue>.parked`). With a second build it then shows a hot swap: two
//! deaths under the first version, the second version (loaded with
//! `first-delay-ms=10`) activated, and the later deaths decided by it
//! while the retry already scheduled keeps the first version's delay.
//!
//! ```sh
//! cargo run -p switchyard-examples --example retry_backoff -- \
//!     examples/plugins/retry-backoff/rust/dist/retry-backoff.wasm \
//!     [examples/plugins/retry-backoff/python/dist/retry-backoff.wasm]
//! ```
//! Exits non-zero if a retry came early, a decision was not the policy's,
//! or the message was not parked.

use std::time::{Duration, Instant};

use switchyard_client::{
    Channel, ConsumeOptions, Consumer, Delivery, Field, Message, PluginLoadOptions, QueueOptions,
    Value,
};
use switchyard_examples::connect_from_env;

/// The name the policy is loaded under: one per run, so that runs against
/// the same broker do not meet each other's versions.
fn policy() -> String {
    format!("retry-backoff-{}", std::process::id())
}

type Error = Box<dyn std::error::Error>;

fn fail(what: String) -> Error {
    what.into()
}

async fn load(channel: &Channel, path: &str, config: &[(&str, &str)]) -> Result<String, Error> {
    let component = std::fs::read(path).map_err(|e| fail(format!("reading {path}: {e}")))?;
    let options = PluginLoadOptions {
        name: Some(policy()),
        config: config
            .iter()
            .map(|(k, v)| Field::new(*k, Value::Text((*v).into())))
            .collect(),
        activate: true,
    };
    Ok(channel.load_plugin(&component, options).await?)
}

/// A queue whose deaths `retry-backoff` decides, and the queue it parks in
/// (the policy republishes to the default exchange, which routes by
/// queue name).
async fn declare(channel: &Channel, queue: &str) -> Result<(), Error> {
    channel
        .declare_queue(&format!("{queue}.parked"), QueueOptions::default())
        .await?;
    let arguments = vec![Field::new("dead-letter-policy", Value::Text(policy()))];
    channel
        .declare_queue(
            queue,
            QueueOptions {
                arguments,
                ..QueueOptions::default()
            },
        )
        .await?;
    Ok(())
}

/// Rejects the next delivery and waits for it to come back; checks it is
/// not back before `expected` and prints how late it was.
async fn reject_and_await(
    consumer: &mut Consumer,
    rejected: Delivery,
    expected: Duration,
    label: &str,
) -> Result<Delivery, Error> {
    let at = Instant::now();
    rejected.reject(false).await?;
    let back = tokio::time::timeout(expected + Duration::from_secs(30), consumer.next())
        .await
        .map_err(|_| fail(format!("{label}: no retry within {expected:?} + 30 s")))?
        .ok_or_else(|| fail(format!("{label}: the consumer ended")))?;
    let waited = at.elapsed();
    if waited < expected {
        return Err(fail(format!(
            "{label}: back after {waited:?}, before {expected:?}"
        )));
    }
    println!(
        "{label}: retried after {} ms (policy: {} ms, late by {} ms)",
        waited.as_millis(),
        expected.as_millis(),
        (waited - expected).as_millis()
    );
    Ok(back)
}

/// The last rejection: the policy parks the message in `<queue>.parked`.
async fn reject_and_expect_parked(
    channel: &Channel,
    queue: &str,
    rejected: Delivery,
) -> Result<(), Error> {
    rejected.reject(false).await?;
    let parked = format!("{queue}.parked");
    for _ in 0..300 {
        if let Ok(Some((delivery, _))) = channel.get(&parked, true).await {
            println!(
                "{queue}: parked in '{parked}' ({})",
                String::from_utf8_lossy(&delivery.message.body)
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(fail(format!("{queue}: not parked in '{parked}'")))
}

async fn first_delivery(
    channel: &Channel,
    queue: &str,
    body: &str,
) -> Result<(Consumer, Delivery), Error> {
    declare(channel, queue).await?;
    channel.confirm_select().await?;
    channel
        .publish("", Message::new(queue, body.to_string()))
        .await?
        .await?;
    let mut consumer = channel.consume(queue, ConsumeOptions::default()).await?;
    let delivery = consumer
        .next()
        .await
        .ok_or_else(|| fail(format!("{queue}: nothing delivered")))?;
    Ok((consumer, delivery))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let builds: Vec<String> = std::env::args().skip(1).collect();
    let Some(first) = builds.first() else {
        eprintln!("usage: retry_backoff FIRST.wasm [SECOND.wasm]");
        std::process::exit(2);
    };
    let connection = connect_from_env().await?;
    let channel = connection.channel().await?;
    // Plugins are loaded on a channel of their own: compiling a component
    // takes a while, and deliveries on `channel` go on meanwhile.
    let admin = connection.channel().await?;
    let run = std::process::id();

    println!("loaded {}", load(&admin, first, &[]).await?);
    let queue = format!("orders-{run}");
    let (mut consumer, mut delivery) = first_delivery(&channel, &queue, "job").await?;
    for (attempt, delay) in [500, 1000, 2000].into_iter().enumerate() {
        let label = format!("{queue} death {}", attempt + 1);
        delivery = reject_and_await(
            &mut consumer,
            delivery,
            Duration::from_millis(delay),
            &label,
        )
        .await?;
    }
    reject_and_expect_parked(&channel, &queue, delivery).await?;

    if let Some(second) = builds.get(1) {
        let queue = format!("swap-{run}");
        let (mut consumer, delivery) = first_delivery(&channel, &queue, "job").await?;
        let delivery = reject_and_await(
            &mut consumer,
            delivery,
            Duration::from_millis(500),
            &format!("{queue} death 1 (first version)"),
        )
        .await?;
        // Death 2 is decided by the first version (1 s); the swap happens
        // while that retry waits, and does not change it.
        let at = Instant::now();
        delivery.reject(false).await?;
        // The rejection is decided once the broker answers a request sent
        // after it on the same channel: only then is the policy swapped.
        channel.query(switchyard_client::Query::Vhosts).await?;
        let swapped = load(&admin, second, &[("first-delay-ms", "10")]).await?;
        println!("hot-swapped to {swapped} (first-delay-ms=10)");
        let back = consumer
            .next()
            .await
            .ok_or_else(|| fail("consumer ended".into()))?;
        if at.elapsed() < Duration::from_millis(1000) {
            return Err(fail(format!(
                "{queue}: the retry decided before the swap came early"
            )));
        }
        println!(
            "{queue} death 2 (first version): retried, read {} ms later, after the swap (policy: 1000 ms)",
            at.elapsed().as_millis()
        );
        // Death 3, under the new version: 10 ms × 4 instead of 2 s (the
        // first version's), far enough apart to tell on a busy machine.
        let at = Instant::now();
        back.reject(false).await?;
        let back = consumer
            .next()
            .await
            .ok_or_else(|| fail("consumer ended".into()))?;
        let waited = at.elapsed();
        if waited < Duration::from_millis(40) || waited >= Duration::from_millis(2000) {
            return Err(fail(format!(
                "{queue}: death 3 retried after {waited:?}: not the new version's 40 ms"
            )));
        }
        println!(
            "{queue} death 3 (new version): retried after {} ms (policy: 40 ms)",
            waited.as_millis()
        );
        reject_and_expect_parked(&channel, &queue, back).await?;
    }
    admin.close().await?;
    channel.close().await?;
    connection.close().await;
    Ok(())
}
