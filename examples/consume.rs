//! Consumes a queue as an async stream, acknowledging each message.
//!
//! ```sh
//! cargo run -p switchyard-examples --example consume -- orders
//! ```
//! Ctrl-C stops it; unacknowledged messages go back to the queue.

use switchyard_client::ConsumeOptions;
use switchyard_examples::connect_from_env;

#[tokio::main]
async fn main() -> Result<(), switchyard_client::Error> {
    let queue = std::env::args().nth(1).unwrap_or_else(|| "orders".into());
    let connection = connect_from_env().await?;
    let channel = connection.channel().await?;
    let mut consumer = channel
        .consume(
            &queue,
            ConsumeOptions {
                prefetch: 50,
                ..ConsumeOptions::default()
            },
        )
        .await?;
    loop {
        tokio::select! {
            delivery = consumer.next() => {
                let Some(delivery) = delivery else {
                    // The consumer ended: say why (queue deleted, connection lost…).
                    if let Some(error) = consumer.error() {
                        return Err(error);
                    }
                    break;
                };
                println!(
                    "{}{}",
                    String::from_utf8_lossy(&delivery.message.body),
                    if delivery.redelivered { " (redelivered)" } else { "" }
                );
                delivery.ack().await?;
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    channel.close().await?;
    connection.close().await;
    Ok(())
}
