//! The QUIC shell around the broker core: a quinn endpoint with rustls,
//! one task per connection, one session per channel stream, a consumer
//! task per consumer and a confirm pipeline per confirming channel.
//!
//! - `config` — `switchyard serve` settings (TOML, flags, env).
//! - `tls` — the server certificate, or a generated development CA.
//! - `certificates` — minting a CA and broker certificates signed by it.
//! - `admission` — which connection attempts are taken on, and what a
//!   connection may hold before it has logged in.
//! - `connection` — handshake and channel acceptance.
//! - `channel` — frames in, broker operations, frames out.
//! - `consumer`, `confirms` — deliveries with prefetch credit; confirms
//!   released per flush mode with group commit.
//! - `refusals`, `upload` — a channel's rate-limited refusal warnings and
//!   its plugin upload in progress.
//! - `memory` — freed memory handed back to the system after connections
//!   close.

mod admission;
mod certificates;
mod channel;
mod config;
mod config_overrides;
mod confirms;
mod connection;
mod consumer;
mod memory;
mod refusals;
mod tls;
mod upload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use certificates::{CA_CERT, CA_KEY, create_ca, issue};
pub use config::{HttpSettings, ServerConfig, StorageSettings, TlsSettings};
pub use config_overrides::{ENV_PREFIX, from_environment, parse_override};
pub use tls::{DEV_CA, https_config};

/// The first line `switchyard serve` prints on stdout, followed by the
/// bound address: how tools that start a broker learn its port.
pub const LISTENING_LINE: &str = "switchyard listening on ";

/// The address in a [`LISTENING_LINE`], if `line` is one.
pub fn listening_address(line: &str) -> Option<&str> {
    line.strip_prefix(LISTENING_LINE)?.split_whitespace().next()
}

/// The HTTP address a [`LISTENING_LINE`] names after `(http ` or
/// `(https `, if any (`off` when the listener is off).
pub fn http_address(line: &str) -> Option<&str> {
    let rest = line.strip_prefix(LISTENING_LINE)?;
    let rest = (rest.split_once("(http "))
        .or_else(|| rest.split_once("(https "))?
        .1;
    rest.split([',', ')']).next()
}

use switchyard_core::Broker;

/// A running server.
pub struct Server {
    endpoint: quinn::Endpoint,
    broker: Arc<Broker>,
    max_frame: u32,
    limits: switchyard_core::Limits,
}

impl Server {
    /// Opens the broker state and binds the endpoint.
    pub async fn bind(config: &ServerConfig) -> Result<Server, String> {
        config.validate()?;
        let options = config.broker_options();
        let broker = tokio::task::spawn_blocking(move || Broker::open(options))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("opening the broker in {}: {e}", config.data_dir.display()))?;
        let server_config = tls::server_config(config)?;
        let endpoint = switchyard_transport::bind_endpoint(config.listen, Some(server_config))
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let broker = Arc::new(broker);
        broker
            .start_expiry_sweeper()
            .map_err(|e| format!("starting the expiry sweeper: {e}"))?;
        broker
            .start_delay_scheduler()
            .map_err(|e| format!("starting the delay scheduler: {e}"))?;
        broker
            .start_transaction_checker()
            .map_err(|e| format!("starting the transaction checker: {e}"))?;
        Ok(Server {
            endpoint,
            broker,
            max_frame: config.max_frame,
            limits: config.limits.clone(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint
            .local_addr()
            .expect("a bound endpoint has an address")
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Serves until `shutdown` resolves, then closes connections and
    /// checkpoints the store.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let memory = memory::MemoryReturner::start();
        // Turns at checking a password, as many as the core runs at once.
        let logins = Arc::new(tokio::sync::Semaphore::new(
            self.broker.limits().max_concurrent_password_checks as usize,
        ));
        let admission = admission::Admission::new(&self.limits);
        let frames = switchyard_transport::SharedBudget::new(
            usize::try_from(self.limits.max_unfinished_frame_bytes).unwrap_or(usize::MAX),
            Duration::from_millis(self.limits.frame_timeout_ms),
        );
        let settings = Arc::new(connection::Settings {
            max_frame: self.max_frame,
            handshake_timeout: Duration::from_millis(self.limits.handshake_timeout_ms),
            frames,
            frame_bytes_per_connection: usize::try_from(
                self.limits.max_unfinished_frame_bytes_per_connection,
            )
            .unwrap_or(usize::MAX),
        });
        loop {
            tokio::select! {
                incoming = self.endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    // Decided before any TLS work: a refusal costs one
                    // small packet.
                    let address = incoming.remote_address().ip();
                    let ticket = match admission.decide(address, incoming.remote_address_validated()) {
                        admission::Decision::Admit(ticket) => ticket,
                        admission::Decision::Validate => {
                            // Not validated, so a Retry is allowed.
                            let _ = incoming.retry();
                            continue;
                        }
                        admission::Decision::Refuse(refusal) => {
                            admission.log_refusal(address, &refusal);
                            incoming.refuse();
                            continue;
                        }
                    };
                    let serve = connection::serve_connection(
                        self.broker.clone(),
                        incoming,
                        ticket,
                        settings.clone(),
                        logins.clone(),
                    );
                    let memory = memory.clone();
                    tokio::spawn(async move {
                        serve.await;
                        memory.connection_closed();
                    });
                }
                _ = &mut shutdown => break,
            }
        }
        self.endpoint.close(
            quinn::VarInt::from_u32(switchyard_protocol::code::CONNECTION_FORCED as u32),
            b"broker shutting down",
        );
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.endpoint.wait_idle())
            .await;
        if let Err(e) = self.broker.checkpoint() {
            tracing::error!(error = %e, "final checkpoint failed");
        }
    }
}
