//! The Switchyard client: an async Rust API over QUIC + TLS.
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchyard_client::Error> {
//! use switchyard_client::{Connection, ConnectOptions, ConsumeOptions, Message, Trust};
//!
//! let trust = Trust::ca_file("data/tls/ca.pem".as_ref())?;
//! let connection =
//!     Connection::connect("switchyard://guest:guest@127.0.0.1:5673/", ConnectOptions::new(trust)).await?;
//! let channel = connection.channel().await?;
//! channel.declare_queue("orders", Default::default()).await?;
//! channel.confirm_select().await?;
//! // The default exchange ("") routes to the queue named by the routing key.
//! channel.publish("", Message::new("orders", "hello")).await?.await?;
//! let mut consumer = channel.consume("orders", ConsumeOptions::default()).await?;
//! while let Some(delivery) = consumer.next().await {
//!     println!("{:?}", delivery.message.body);
//!     delivery.ack().await?;
//! }
//! # Ok(()) }
//! ```
//!
//! ## When the connection is lost
//!
//! A connection does not reconnect by itself. When the broker dies, restarts
//! or becomes unreachable, the client notices within the idle timeout (the
//! smaller of [`ConnectOptions::idle_timeout`] and the broker's, 10 s by
//! default; keep-alives keep a quiet connection open meanwhile). From then
//! on every pending operation — replies, confirmations, a consumer's
//! `next()` (which returns `None`; [`Consumer::error`] says why) — and every
//! later call fails with [`Error::ConnectionLost`] ([`Error::Closed`] if the
//! broker closed the connection). [`Connection::close_reason`] tells a dead
//! connection from a refused operation.
//!
//! To carry on, connect again, declare again what you need (it may be a
//! new broker) and republish what was not confirmed: it may or may not have
//! been stored, so delivery is at least once. `examples/reconnect.rs` is a
//! runnable version of this pattern:
//!
//! ```no_run
//! use std::collections::VecDeque;
//! use std::time::Duration;
//! use switchyard_client::{ConnectOptions, Connection, Error, Message};
//!
//! /// Publishes every message at least once, however often the broker restarts.
//! async fn publish_all(url: &str, options: ConnectOptions, mut todo: VecDeque<Message>)
//!     -> Result<(), Error>
//! {
//!     while !todo.is_empty() {
//!         let connection = match Connection::connect(url, options.clone()).await {
//!             Ok(connection) => connection,
//!             Err(e @ Error::Connect { .. }) => {
//!                 eprintln!("{e}; retrying");
//!                 tokio::time::sleep(Duration::from_secs(1)).await;
//!                 continue;
//!             }
//!             Err(e) => return Err(e),
//!         };
//!         match publish_confirmed(&connection, &mut todo).await {
//!             Ok(()) => connection.close().await,
//!             Err(e) if connection.close_reason().is_some() => eprintln!("{e}; reconnecting"),
//!             // The broker refused something: reconnecting would not help.
//!             Err(e) => return Err(e),
//!         }
//!     }
//!     Ok(())
//! }
//!
//! /// Declares the queue and publishes, forgetting each message once confirmed.
//! async fn publish_confirmed(connection: &Connection, todo: &mut VecDeque<Message>)
//!     -> Result<(), Error>
//! {
//!     let channel = connection.channel().await?;
//!     channel.declare_queue("orders", Default::default()).await?;
//!     channel.confirm_select().await?;
//!     while let Some(message) = todo.front() {
//!         channel.publish("", message.clone()).await?.await?;
//!         todo.pop_front();
//!     }
//!     Ok(())
//! }
//! ```

mod address;
mod channel;
mod confirms;
mod connection;
mod consumer;
mod error;
mod plugins;
mod tls;
mod topology;
mod transactions;

pub use address::BrokerAddress;
pub use channel::{Channel, Returned};
pub use confirms::{Confirmation, Confirmed};
pub use connection::{CHANNEL_CLOSE_WAIT, ConnectOptions, Connection};
pub use consumer::{ConsumeOptions, Consumer, Delivery};
pub use error::Error;
pub use plugins::PluginLoadOptions;
pub use switchyard_protocol::{
    Field, Frame, GroupMode, Message, Properties, Query, StreamOffset, TxOutcome, Value, code,
};
pub use tls::Trust;
pub use topology::{ExchangeOptions, QueueInfo, QueueOptions};
pub use transactions::{CheckRequest, ProducerGroupOptions};
