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
//! Reconnecting is explicit: see [`Connection`].

mod address;
mod channel;
mod confirms;
mod connection;
mod consumer;
mod error;
mod plugins;
mod tls;
pub mod transport;

pub use address::BrokerAddress;
pub use channel::{Channel, ConsumeOptions, ExchangeOptions, QueueInfo, QueueOptions, Returned};
pub use confirms::Confirmation;
pub use connection::{ConnectOptions, Connection, tune_transport};
pub use consumer::{Consumer, Delivery};
pub use error::Error;
pub use plugins::PluginLoadOptions;
pub use switchyard_protocol::{Field, Frame, Message, Properties, Query, Value, code};
pub use tls::Trust;
