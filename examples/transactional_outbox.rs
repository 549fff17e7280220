//! A transactional message kept consistent with a local database write,
//! as RocketMQ's order and payment flows do it: send a half message
//! (stored by the broker, invisible), write the order row to a local sled
//! table, and commit the message only when the write succeeded (roll it
//! back when it failed). When the producer dies between the two, the
//! broker asks the producer group — this process's check handler, or any
//! other member's — and the answer comes from the table: the row is there,
//! commit; it is not, roll back.
//!
//! ```sh
//! cargo run -p switchyard-examples --example transactional_outbox
//! ```
//! Three orders: one written and committed, one whose write fails (rolled
//! back), one written by a producer that "dies" before committing
//! (committed by the check). Exits non-zero unless exactly the first and
//! the third reach the `orders` queue.

use std::time::Duration;

use switchyard_client::{
    CheckRequest, ConsumeOptions, Field, Message, ProducerGroupOptions, QueueOptions, TxOutcome,
    Value,
};
use switchyard_examples::connect_from_env;

type Error = Box<dyn std::error::Error + Send + Sync>;

const GROUP: &str = "order-service";

/// The local transaction: the order row, refused when the amount is not
/// positive (the "failed write").
fn write_order(table: &sled::Tree, order: &str, amount: i64) -> Result<(), Error> {
    if amount <= 0 {
        return Err(format!("order {order}: amount {amount} refused by the database").into());
    }
    table.insert(order, amount.to_string().as_bytes())?;
    table.flush()?;
    Ok(())
}

fn order_of(message: &Message) -> Option<String> {
    message
        .headers
        .iter()
        .find(|f| f.name == "order-id")
        .and_then(|f| f.value.as_text())
}

/// The check-back handler: the table is the truth.
async fn answer_checks(table: sled::Tree, mut checks: tokio::sync::mpsc::Receiver<CheckRequest>) {
    while let Some(check) = checks.recv().await {
        let order = order_of(&check.message).unwrap_or_default();
        let outcome = match table.contains_key(&order) {
            Ok(true) => TxOutcome::Commit,
            Ok(false) => TxOutcome::Rollback,
            Err(_) => TxOutcome::Unknown,
        };
        println!(
            "broker asked about transaction {} (order {order}): {outcome:?}",
            check.id
        );
        if let Err(e) = check.answer(outcome).await {
            eprintln!("answering a check: {e}");
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let dir = std::env::temp_dir().join(format!("switchyard-outbox-{}", std::process::id()));
    let db = sled::open(&dir)?;
    let table = db.open_tree("orders")?;
    let connection = connect_from_env().await?;
    let channel = connection.channel().await?;
    let queue = format!("orders-{}", std::process::id());
    let options = QueueOptions {
        durable: true,
        arguments: vec![Field::new("flush", Value::Text("sync".into()))],
        ..QueueOptions::default()
    };
    channel.declare_queue(&queue, options).await?;
    // Checks come soon in this demo (RocketMQ's defaults are 6 s, then
    // every 60 s).
    let group_options = ProducerGroupOptions {
        check_timeout: Some(Duration::from_millis(500)),
        check_interval: Some(Duration::from_millis(500)),
        ..ProducerGroupOptions::default()
    };
    let checks = channel
        .join_producer_group(GROUP, group_options.clone())
        .await?;
    tokio::spawn(answer_checks(table.clone(), checks));

    for (order, amount, producer_dies) in
        [("A-1", 30, false), ("A-2", -5, false), ("A-3", 12, true)]
    {
        // A producer of its own per order, as separate processes would be.
        let producer = connection.channel().await?;
        let _own_checks = producer
            .join_producer_group(GROUP, group_options.clone())
            .await?;
        let message = Message::new(queue.clone(), format!("order {order}: {amount}"))
            .with_header("order-id", Value::Text(order.into()));
        let id = producer.send_half("", message).await?;
        match write_order(&table, order, amount) {
            Ok(()) if producer_dies => {
                println!("order {order} written; its producer dies before committing {id}");
                producer.close().await?;
            }
            Ok(()) => {
                producer.commit(id).await?;
                println!("order {order} written, transaction {id} committed");
            }
            Err(e) => {
                producer.rollback(id).await?;
                println!("{e}: transaction {id} rolled back");
            }
        }
    }

    let mut consumer = channel.consume(&queue, ConsumeOptions::default()).await?;
    let mut delivered = Vec::new();
    while delivered.len() < 2 {
        let delivery = tokio::time::timeout(Duration::from_secs(60), consumer.next())
            .await
            .map_err(|_| "no delivery within 60 s")?
            .ok_or("the consumer ended")?;
        delivery.ack().await?;
        delivered.push(order_of(&delivery.message).unwrap_or_default());
        println!(
            "delivered: {}",
            String::from_utf8_lossy(&delivery.message.body)
        );
    }
    // Nothing else comes: A-2 was rolled back.
    let extra = tokio::time::timeout(Duration::from_secs(2), consumer.next()).await;
    consumer.cancel().await?;
    channel.delete_queue(&queue, false, false).await?;
    connection.close().await;
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    delivered.sort();
    if delivered != ["A-1", "A-3"] || extra.is_ok() {
        return Err(format!(
            "expected orders A-1 and A-3 only, got {delivered:?} (and more: {})",
            extra.is_ok()
        )
        .into());
    }
    println!("the queue holds exactly the orders the database holds");
    Ok(())
}
