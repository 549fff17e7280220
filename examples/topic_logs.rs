//! Routing through the `topic` wasm plugin: two queues with wildcard
//! bindings, messages published with routing keys, results read back with
//! `get`; unroutable mandatory messages come back as returns.
//!
//! ```sh
//! cargo run -p switchyard-examples --example topic_logs
//! ```

use switchyard_client::{ExchangeOptions, Message, QueueOptions};
use switchyard_examples::connect_from_env;

#[tokio::main]
async fn main() -> Result<(), switchyard_client::Error> {
    let connection = connect_from_env().await?;
    let channel = connection.channel().await?;

    channel
        .declare_exchange("logs", "topic", ExchangeOptions::default())
        .await?;
    for (queue, pattern) in [("all-logs", "logs.#"), ("web-errors", "logs.web.error")] {
        channel
            .declare_queue(queue, QueueOptions::default())
            .await?;
        channel.bind(queue, "logs", pattern, vec![]).await?;
    }
    let mut returns = channel.returns();
    channel.confirm_select().await?;
    for key in ["logs.web.error", "logs.db.slow", "metrics.cpu"] {
        channel
            .publish(
                "logs",
                Message::new(key, format!("event on {key}")).mandatory(),
            )
            .await?
            .await?;
    }
    while let Ok(returned) = returns.try_recv() {
        println!(
            "returned: {} ({})",
            returned.message.routing_key, returned.reason
        );
    }
    for queue in ["all-logs", "web-errors"] {
        while let Some((delivery, _)) = channel.get(queue, true).await? {
            println!(
                "{queue}: {}",
                String::from_utf8_lossy(&delivery.message.body)
            );
        }
    }
    channel.close().await?;
    connection.close().await;
    Ok(())
}
