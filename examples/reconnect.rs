//! Publishes messages at least once across broker restarts: when the
//! connection is lost it connects again, declares its queue again and
//! republishes whatever was not confirmed.
//!
//! ```sh
//! switchyard serve &                       # in another terminal: kill it and
//!                                          # start it again while this runs
//! cargo run -p switchyard-examples --example reconnect -- 1000000
//! ```
//! Connects as guest to 127.0.0.1:5673 (or $SWITCHYARD_URL) and trusts the
//! broker's development CA in ./data/tls/ca.pem (or $SWITCHYARD_CA).

use std::collections::VecDeque;
use std::time::Duration;

use switchyard_client::{Connection, Error, Message, QueueOptions};
use switchyard_examples::connect_from_env;

/// Publishes awaiting their confirms at once: after a lost connection,
/// these are the messages that may end up stored twice.
const WINDOW: usize = 256;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let mut todo: VecDeque<Message> = (0..count)
        .map(|i| Message::new("orders", format!("order #{i}")).persistent())
        .collect();
    while !todo.is_empty() {
        let connection = match connect_from_env().await {
            Ok(connection) => connection,
            Err(e @ Error::Connect { .. }) => {
                eprintln!("{e}; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        match publish_confirmed(&connection, &mut todo).await {
            Ok(()) => connection.close().await,
            Err(e) if connection.close_reason().is_some() => {
                eprintln!("{e}; {} messages left, reconnecting", todo.len());
            }
            // The broker refused something: reconnecting would not help.
            Err(e) => return Err(e),
        }
    }
    println!("{count} messages confirmed");
    Ok(())
}

/// Declares the queue (the broker may have restarted without it) and
/// publishes with up to `WINDOW` confirms pending; a message leaves `todo`
/// only once the broker has confirmed it.
async fn publish_confirmed(
    connection: &Connection,
    todo: &mut VecDeque<Message>,
) -> Result<(), Error> {
    let channel = connection.channel().await?;
    let durable = QueueOptions {
        durable: true,
        ..QueueOptions::default()
    };
    channel.declare_queue("orders", durable).await?;
    channel.confirm_select().await?;
    let mut in_flight = VecDeque::new();
    loop {
        while in_flight.len() < WINDOW && in_flight.len() < todo.len() {
            let message = todo[in_flight.len()].clone();
            in_flight.push_back(channel.publish("", message).await?);
        }
        let Some(confirmation) = in_flight.pop_front() else {
            return Ok(());
        };
        confirmation.await?;
        todo.pop_front();
    }
}
