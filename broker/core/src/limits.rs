//! The limits an operator sets on what clients may hold (the `[limits]`
//! section of the config file), with their defaults, and the refusals that
//! name them. docs/SECURITY.md lists them and why each default.

use serde::Deserialize;
use switchyard_protocol::code;

use super::error::BrokerError;

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Authenticated connections, all users together.
    pub max_connections: u32,
    /// Authenticated connections of one user.
    pub max_connections_per_user: u32,
    /// Channels open at once on one connection.
    pub max_channels_per_connection: u32,
    /// Consumers at once on one channel.
    pub max_consumers_per_channel: u32,
    /// Argon2 password checks running at once (each fills the stored
    /// hash's memory cost, 19 MiB by default); further logins wait.
    pub max_concurrent_password_checks: u32,
    /// Failed logins a user name may have before it must wait: the burst of
    /// a token bucket refilled by one every `login_failure_refill_ms`.
    pub login_failures_per_user: u32,
    /// Failed logins from one (non-loopback) address before it must wait.
    pub login_failures_per_address: u32,
    /// How often one more failed login is allowed to a throttled user or
    /// address.
    pub login_failure_refill_ms: u64,
    /// Bytes of plugin uploads buffered at once, all connections together
    /// (one upload may hold up to 64 MiB).
    pub max_upload_bytes: u64,
    /// Queues one vhost may hold (each holds an open file).
    pub max_queues_per_vhost: u32,
    /// Exchanges one vhost may hold.
    pub max_exchanges_per_vhost: u32,
    /// Bindings one exchange may hold.
    pub max_bindings_per_exchange: u32,
    /// File handles always left free for the commit log, the metadata and
    /// connections: a queue that would take one of them is refused.
    pub file_handle_reserve: u32,
    /// Connections not logged in yet (from the first QUIC packet to an
    /// accepted `Hello`), all addresses together; more are refused before
    /// any TLS work.
    pub max_handshakes: u32,
    /// Connections not logged in yet from one source address (an IPv6
    /// address counts by its /64).
    pub max_handshakes_per_address: u32,
    /// Connections from one source address, logged in or not.
    pub max_connections_per_address: u32,
    /// A connection must finish TLS and be welcomed within this.
    pub handshake_timeout_ms: u64,
    /// A frame a channel has begun to receive must be complete within this
    /// much waiting for it, or the channel is closed.
    pub frame_timeout_ms: u64,
    /// Bytes of large frames (over 64 KiB) being received, all connections
    /// together; a channel waits (and QUIC stops its peer) for its share.
    pub max_unfinished_frame_bytes: u64,
    /// The same, per connection; at least `max_frame`, so the largest
    /// frame always fits.
    pub max_unfinished_frame_bytes_per_connection: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_connections_per_user: 2_000,
            max_channels_per_connection: 512,
            max_consumers_per_channel: 1_024,
            max_concurrent_password_checks: 4,
            login_failures_per_user: 10,
            login_failures_per_address: 30,
            login_failure_refill_ms: 2_000,
            max_upload_bytes: 256 << 20,
            max_queues_per_vhost: 10_000,
            max_exchanges_per_vhost: 10_000,
            max_bindings_per_exchange: 100_000,
            file_handle_reserve: 512,
            max_handshakes: 1_024,
            max_handshakes_per_address: 32,
            max_connections_per_address: 2_000,
            handshake_timeout_ms: 10_000,
            frame_timeout_ms: 60_000,
            max_unfinished_frame_bytes: 512 << 20,
            max_unfinished_frame_bytes_per_connection: 64 << 20,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_connections", self.max_connections as u64),
            (
                "max_connections_per_user",
                self.max_connections_per_user as u64,
            ),
            (
                "max_channels_per_connection",
                self.max_channels_per_connection as u64,
            ),
            (
                "max_consumers_per_channel",
                self.max_consumers_per_channel as u64,
            ),
            (
                "max_concurrent_password_checks",
                self.max_concurrent_password_checks as u64,
            ),
            (
                "login_failures_per_user",
                self.login_failures_per_user as u64,
            ),
            (
                "login_failures_per_address",
                self.login_failures_per_address as u64,
            ),
            ("login_failure_refill_ms", self.login_failure_refill_ms),
            ("max_queues_per_vhost", self.max_queues_per_vhost as u64),
            (
                "max_exchanges_per_vhost",
                self.max_exchanges_per_vhost as u64,
            ),
            (
                "max_bindings_per_exchange",
                self.max_bindings_per_exchange as u64,
            ),
            ("max_handshakes", self.max_handshakes as u64),
            (
                "max_handshakes_per_address",
                self.max_handshakes_per_address as u64,
            ),
            (
                "max_connections_per_address",
                self.max_connections_per_address as u64,
            ),
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("frame_timeout_ms", self.frame_timeout_ms),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("limits.{name} must be at least 1"));
            }
        }
        if self.max_unfinished_frame_bytes < self.max_unfinished_frame_bytes_per_connection {
            return Err(format!(
                "limits.max_unfinished_frame_bytes ({}) must be at least \
                 limits.max_unfinished_frame_bytes_per_connection ({})",
                self.max_unfinished_frame_bytes, self.max_unfinished_frame_bytes_per_connection
            ));
        }
        Ok(())
    }

    /// The refusal for reaching limit `name` (its config key) of `value`.
    pub fn reached(name: &str, value: impl std::fmt::Display, what: &str) -> BrokerError {
        BrokerError::new(
            code::NOT_ALLOWED,
            format!("{what}: the limit is {value} (limits.{name} in the broker's configuration)"),
        )
    }

    /// Fails if a channel holding `consumers` consumers may not take another.
    pub fn check_consumers(&self, consumers: usize) -> Result<(), BrokerError> {
        if consumers as u64 >= self.max_consumers_per_channel as u64 {
            return Err(Self::reached(
                "max_consumers_per_channel",
                self.max_consumers_per_channel,
                "too many consumers on this channel",
            ));
        }
        Ok(())
    }
}
