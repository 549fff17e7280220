//! Publishes messages with confirms to a durable, sync-flush queue.
//!
//! ```sh
//! switchyard serve &                       # in another terminal
//! cargo run -p switchyard-examples --example publish -- 1000
//! ```
//! Connects as guest to 127.0.0.1:5673 (or $SWITCHYARD_URL) and trusts the
//! broker's development CA in ./data/tls/ca.pem (or $SWITCHYARD_CA).

use std::collections::VecDeque;

use switchyard_client::{Field, Message, QueueOptions, Value};
use switchyard_examples::connect_from_env;

#[tokio::main]
async fn main() -> Result<(), switchyard_client::Error> {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let connection = connect_from_env().await?;
    let channel = connection.channel().await?;

    // Confirmed only once on disk (msync, shared by concurrent publishes).
    let arguments = vec![Field::new("flush", Value::Text("sync".into()))];
    channel
        .declare_queue(
            "orders",
            QueueOptions {
                durable: true,
                arguments,
                ..QueueOptions::default()
            },
        )
        .await?;
    channel.confirm_select().await?;

    // Keep up to 256 publishes in flight; each confirmation is a future.
    let mut in_flight = VecDeque::new();
    for i in 0..count {
        let message = Message::new("orders", format!("order #{i}")).persistent();
        in_flight.push_back(channel.publish("", message).await?);
        if in_flight.len() == 256 {
            in_flight.pop_front().unwrap().await?;
        }
    }
    for confirmation in in_flight {
        confirmation.await?;
    }
    println!("{count} messages stored durably");
    channel.close().await?;
    connection.close().await;
    Ok(())
}
