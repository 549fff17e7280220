//! `switchyard serve` settings: a TOML file, overridden by flags and
//! environment variables (see `cli::serve`). Unknown keys are errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use switchyard_core::{BrokerOptions, Limits};
use switchyard_plugin_host::SandboxLimits;
use switchyard_storage::StoreConfig;

/// 10 s: a dead consumer's messages come back within about 12.5 s (with
/// the keep-alive below), while a client may still stall for several
/// seconds (a GC pause, a busy machine) without losing its connection.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 10_000;

/// See [`ServerConfig::send_buffer_bytes`].
pub const DEFAULT_SEND_BUFFER_BYTES: u64 = 8 << 20;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Where the store, metadata, plugin cache and development CA live.
    pub data_dir: PathBuf,
    /// The UDP address to listen on.
    pub listen: SocketAddr,
    /// The largest frame accepted (type byte + payload).
    pub max_frame: u32,
    /// A connection silent this long is closed (its deliveries requeued).
    /// It bounds how long a killed client's unacknowledged messages stay
    /// away, and how long a stalled but live client may pause before it is
    /// dropped: docs/PROTOCOL.md, "Liveness".
    pub idle_timeout_ms: u64,
    /// Bytes sent to one connection and not yet acknowledged by its QUIC
    /// peer. It bounds what a fast producer of deliveries buffers per slow
    /// (or dead) consumer connection: at 64 MiB, ten stalled consumers once
    /// held ~640 MiB. 8 MiB still fills a loopback or LAN link.
    pub send_buffer_bytes: u64,
    /// Users refused from non-loopback addresses.
    pub loopback_users: Vec<String>,
    pub tls: TlsSettings,
    pub storage: StorageSettings,
    /// Plugin limits: deadlines, memory, fuel, quarantine, logs, kv quotas
    /// (`[sandbox]`, `[sandbox.kv]`); the ceiling for per-plugin limits.
    pub sandbox: SandboxLimits,
    /// Connections, channels, consumers, logins, uploads (docs/SECURITY.md).
    pub limits: Limits,
    /// The HTTP listener (JSON API, Prometheus metrics).
    pub http: HttpSettings,
    /// This broker's cell, the SET table and the other cells' brokers
    /// (docs/SET.md); applied at start when its `version` is greater than
    /// the table in force.
    pub cells: Option<switchyard_core::CellTable>,
}

/// The default HTTP port (RabbitMQ's management port + 1000).
pub const DEFAULT_HTTP_PORT: u16 = 15673;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Off: no HTTP listener at all.
    pub enabled: bool,
    /// The TCP address (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Serve HTTPS with the broker's certificate (`[tls]`, or the
    /// development one) instead of plain HTTP.
    pub tls: bool,
    /// HTTP connections open at once; one more is answered 503 and closed.
    /// Well under the usual 1,024 file descriptors, so idle HTTP clients
    /// never take the broker's (issue 27).
    pub max_connections: u32,
    /// A connection is closed unless it sends a complete request head
    /// this soon after opening, and after each response (keep-alive).
    pub request_head_timeout_ms: u64,
    /// A login waits at most this long for a turn at a password check,
    /// then is answered 503.
    pub login_wait_ms: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_HTTP_PORT)),
            tls: false,
            max_connections: 256,
            request_head_timeout_ms: 10_000,
            login_wait_ms: 10_000,
        }
    }
}

impl HttpSettings {
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("max_connections", self.max_connections as u64),
            ("request_head_timeout_ms", self.request_head_timeout_ms),
            ("login_wait_ms", self.login_wait_ms),
        ] {
            if value == 0 {
                return Err(format!("http.{name} must be at least 1"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM certificate chain; without it a development CA and a server
    /// certificate for localhost / 127.0.0.1 / ::1 are generated into
    /// `<data_dir>/tls/`.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// Extra names (DNS or IP) for the generated server certificate.
    pub hostnames: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    pub segment_bytes: usize,
    /// Async queues: flush at least this often.
    pub flush_interval_ms: u64,
    pub checkpoint_interval_ms: u64,
    /// Refuse publishes that would grow the log past this (bytes).
    pub max_log_bytes: Option<u64>,
    /// Refuse publishes while less than this stays free on the disk
    /// (bytes); default: a sixteenth of the filesystem, at most 50 MiB.
    pub disk_free_limit_bytes: Option<u64>,
}

impl Default for StorageSettings {
    fn default() -> Self {
        let store = StoreConfig::new("");
        StorageSettings {
            segment_bytes: store.segment_size,
            flush_interval_ms: store.flush_interval.as_millis() as u64,
            checkpoint_interval_ms: store.checkpoint_interval.as_millis() as u64,
            max_log_bytes: None,
            disk_free_limit_bytes: None,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: PathBuf::from("./data"),
            listen: SocketAddr::from(([127, 0, 0, 1], switchyard_protocol::DEFAULT_PORT)),
            max_frame: switchyard_protocol::DEFAULT_MAX_FRAME,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            send_buffer_bytes: DEFAULT_SEND_BUFFER_BYTES,
            loopback_users: vec!["guest".into()],
            sandbox: SandboxLimits::default(),
            tls: TlsSettings::default(),
            storage: StorageSettings::default(),
            limits: Limits::default(),
            http: HttpSettings::default(),
            cells: None,
        }
    }
}

impl ServerConfig {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.max_frame < 4096 || self.max_frame > switchyard_protocol::MAX_FRAME_LIMIT {
            return Err(format!(
                "max_frame must be between 4096 and {} bytes, not {}",
                switchyard_protocol::MAX_FRAME_LIMIT,
                self.max_frame
            ));
        }
        if self.idle_timeout_ms < 100 {
            return Err(format!(
                "idle_timeout_ms must be at least 100, not {}",
                self.idle_timeout_ms
            ));
        }
        if self.send_buffer_bytes < 64 << 10 {
            return Err(format!(
                "send_buffer_bytes must be at least 65536, not {}",
                self.send_buffer_bytes
            ));
        }
        self.limits.validate()?;
        self.http.validate()?;
        if self.limits.max_unfinished_frame_bytes_per_connection < self.max_frame as u64 {
            return Err(format!(
                "limits.max_unfinished_frame_bytes_per_connection ({}) must be at least \
                 max_frame ({}): the largest frame must fit",
                self.limits.max_unfinished_frame_bytes_per_connection, self.max_frame
            ));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err("tls.cert and tls.key must be given together".into());
        }
        self.sandbox.validate()?;
        if self.storage.segment_bytes < (1 << 20) {
            return Err(format!(
                "storage.segment_bytes must be at least 1 MiB, not {}",
                self.storage.segment_bytes
            ));
        }
        Ok(())
    }

    /// The broker pings a connection silent for a quarter of the idle
    /// timeout, so a live client that sends no keep-alives of its own
    /// answers (and stays connected) even if a ping or two is lost; a
    /// connection with traffic sends no pings. The interval also bounds
    /// detection: the first ping after the peer's last packet restarts the
    /// idle timer once (RFC 9000 §10.1), so a dead peer is dropped at most
    /// idle timeout + this interval after it went quiet.
    pub fn keep_alive_interval(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms / 4)
    }

    pub fn broker_options(&self) -> BrokerOptions {
        let mut options = BrokerOptions::new(&self.data_dir);
        options.store.segment_size = self.storage.segment_bytes;
        options.store.flush_interval = Duration::from_millis(self.storage.flush_interval_ms);
        options.store.checkpoint_interval =
            Duration::from_millis(self.storage.checkpoint_interval_ms);
        options.store.max_log_bytes = self.storage.max_log_bytes;
        options.store.disk_free_limit = self.storage.disk_free_limit_bytes;
        options.loopback_users = self.loopback_users.clone();
        options.sandbox = self.sandbox.clone();
        options.limits = self.limits.clone();
        options.cells = self.cells.clone();
        options
    }
}
