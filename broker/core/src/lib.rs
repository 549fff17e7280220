//! The broker core: vhosts, exchanges (each a plugin from the registry),
//! queues (each a queue of the message store), bindings, users and
//! connections, with the operations the protocol asks for. No sockets
//! here: the QUIC shell in `server` calls these methods, and tests can too.
//!
//! - `records`, `auth` — what is persisted in sled, and who may do what.
//! - `queue`, `exchange` — one queue / one exchange at run time.
//! - `topology` — declare, delete, bind, unbind, purge.
//! - `publish` — route a batch through the exchange plugin, append once.
//! - `delivery` — next message for a consumer, ack / nack, dead letters.
//! - `delays` — delayed delivery: due times, the scheduler thread.
//! - `expiry` — TTL: expired heads dead-lettered proactively (sweeper thread).
//! - `stream`, `groups` — stream queues (offsets, retention) and their
//!   consumer groups (clustering, broadcasting), read through views.
//! - `transactions`, `transaction_checks` — half messages: send, commit,
//!   rollback; producer groups and the checker thread that asks them.
//! - `listing` — the rows of `switchyard list …`.

mod auth;
mod cells;
mod connections;
mod consumers;
mod convert;
mod counters;
mod dead_letter;
mod dead_letter_policy;
mod death_history;
mod definitions;
mod delays;
mod delivery;
mod error;
mod exchange;
mod exchange_arguments;
mod expiry;
mod groups;
mod handout;
mod header_limits;
mod json;
mod limits;
mod listing;
mod login;
mod metrics;
mod ordered;
mod password;
mod plugins;
mod publish;
mod queue;
mod queue_expiry;
mod records;
mod reserved_headers;
mod resource_limits;
mod routing;
mod stream;
mod topology;
mod transaction_checks;
mod transactions;
mod uploads;
mod user_admin;
mod vhosts;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};

pub use auth::{ADMINISTRATOR, Access, CELL_PEER, Permission, Principal, Users};
pub use cells::{
    CellTable, FEDERATION_HOPS_HEADER, Federation, FederationStatus, Forward, ForwardConfirm,
    LinkState, LinkStatus, Peer, SlotRange,
};
pub use consumers::{ConsumerSpec, Got};
pub use counters::{CounterValues, ExchangeCounterValues, ExchangeCounters, QueueCounters};
pub use dead_letter::PARKING_QUEUE;
pub use definitions::Definitions;
pub use delays::{DELAY_HEADER, DELIVER_AT_HEADER, MAX_DELAY_MS};
pub use delivery::Settle;
pub use error::BrokerError;
pub use exchange::Exchange;
pub use expiry::EXPIRY_SWEEP_INTERVAL;
pub use groups::{GroupRecord, Subscription};
pub use handout::{AckMode, Delivery};
pub use json::{fields_from_json, row_json, value_json};
pub use limits::Limits;
pub use metrics::{BrokerMetrics, ExchangeMetrics, FederationMetrics, LinkMetrics, QueueMetrics};
pub use ordered::{ORDERED, ORDERING_KEY_HEADER, partition_queue};
pub use plugins::{MAX_PLUGIN_BYTES, PluginUpload};
pub use publish::{DurableAt, Outcome, Published};
pub use queue::{Overflow, Queue, QueueSettings};
pub use records::{BindingRecord, EncodedFields, ExchangeRecord, QueueRecord, VhostRecord};
pub use stream::{STREAM_OFFSET_HEADER, StreamSettings, ViewOf};
pub use switchyard_plugin_host::PluginSummary;
pub use switchyard_storage::file_handles::raise_file_limit;
pub use topology::{BindingSpec, ExchangeSpec, QueueSpec};
pub use transaction_checks::{GroupSettings, ProducerGroupMetrics, TransactionCheck};
pub use transactions::{TRANSACTION_GROUP_HEADER, TRANSACTION_VHOST_HEADER};
pub use uploads::UploadReservation;

use switchyard_base::clock::{Clock, SystemClock};
use switchyard_plugin_host::{KvStore, PluginEngine, PluginRegistry, SandboxLimits};
use switchyard_storage::{MessageStore, StoreConfig};

/// How to open a broker.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    pub data_dir: PathBuf,
    pub store: StoreConfig,
    pub sandbox: SandboxLimits,
    /// Users refused from non-loopback addresses.
    pub loopback_users: Vec<String>,
    /// Where compiled plugin components are cached (default
    /// `<data_dir>/plugin-cache`; tests share one across brokers).
    pub plugin_cache: PathBuf,
    /// What clients may hold; login throttling (docs/SECURITY.md).
    pub limits: Limits,
    /// The time TTLs, expiry and connection times are measured by.
    pub clock: Arc<dyn Clock>,
    /// The configured SET table (`[cells]`): replaces the one in force at
    /// start when its version is greater.
    pub cells: Option<cells::CellTable>,
}

impl BrokerOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        BrokerOptions {
            store: StoreConfig::new(data_dir.join("store")),
            sandbox: SandboxLimits::default(),
            loopback_users: vec!["guest".into()],
            plugin_cache: data_dir.join("plugin-cache"),
            limits: Limits::default(),
            clock: Arc::new(SystemClock),
            cells: None,
            data_dir,
        }
    }
}

/// One vhost: a namespace of exchanges and queues.
pub struct Vhost {
    pub name: String,
    pub(crate) exchanges: RwLock<HashMap<String, Arc<Exchange>>>,
    pub(crate) queues: RwLock<HashMap<String, Arc<Queue>>>,
}

impl Vhost {
    fn new(name: &str) -> Self {
        Vhost {
            name: name.into(),
            exchanges: RwLock::new(HashMap::new()),
            queues: RwLock::new(HashMap::new()),
        }
    }

    pub fn queue(&self, name: &str) -> Result<Arc<Queue>, BrokerError> {
        self.queues
            .read()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::not_found("queue", name, &self.name))
    }

    /// Its stream queues.
    pub(crate) fn streams(&self) -> Vec<Arc<Queue>> {
        (self.queues.read().unwrap().values())
            .filter(|q| q.is_stream())
            .cloned()
            .collect()
    }

    pub fn exchange(&self, name: &str) -> Result<Arc<Exchange>, BrokerError> {
        self.exchanges
            .read()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::not_found("exchange", name, &self.name))
    }
}

/// A client connection, for listing and for exclusive queues.
#[derive(Debug)]
pub struct ConnectionInfo {
    pub id: u64,
    pub user: String,
    pub vhost: String,
    pub peer: String,
    pub client_name: String,
    pub since_ms: u64,
    pub channels: AtomicU32,
    /// Set (with why) when the broker wants the connection closed: its
    /// front door closes it.
    pub close_requested: tokio::sync::watch::Sender<Option<String>>,
}

pub struct Broker {
    store: Arc<MessageStore>,
    registry: PluginRegistry,
    users: Users,
    vhosts: RwLock<HashMap<String, Arc<Vhost>>>,
    connections: Mutex<BTreeMap<u64, Arc<ConnectionInfo>>>,
    next_connection: AtomicU64,
    /// Numbers the views of consumers without a group.
    next_view: AtomicU64,
    limits: Limits,
    logins: login::LoginThrottle,
    uploads: uploads::UploadBudget,
    clock: Arc<dyn Clock>,
    delay_wakeup: Arc<delays::DelayWakeup>,
    transactions: transactions::Transactions,
    cells: cells::Cells,
    data_dir: PathBuf,
}

impl Broker {
    /// Opens (or creates) the broker's state in `options.data_dir`:
    /// recovers the store, loads plugins (built-ins included), users and
    /// the durable topology. Transient queues left by a previous run are
    /// deleted.
    pub fn open(options: BrokerOptions) -> Result<Broker, BrokerError> {
        std::fs::create_dir_all(&options.data_dir).map_err(|e| {
            BrokerError::new(
                switchyard_protocol::code::INTERNAL_ERROR,
                format!("cannot create data dir {}: {e}", options.data_dir.display()),
            )
        })?;
        let mut store_config = options.store.clone();
        store_config.file_handle_reserve = options.limits.file_handle_reserve;
        let (store, report) = MessageStore::open(store_config)?;
        for damage in &report.damage {
            tracing::warn!(%damage, "storage recovery");
        }
        tracing::info!(
            replayed = report.records_replayed,
            scanned_bytes = report.scanned_bytes,
            "storage recovered"
        );
        let meta = store.metadata().clone();
        let engine =
            PluginEngine::new(options.sandbox.clone(), Some(options.plugin_cache.clone()))?;
        // Plugin state in a database of its own: a plugin filling it cannot
        // stop the broker from recording topology.
        let kv = KvStore::open(
            &options.data_dir.join("plugin-kv"),
            options.sandbox.kv.clone(),
        )?;
        let registry = PluginRegistry::open_with_kv(engine, meta.db().clone(), kv)?;
        registry.install_builtins();
        let users = Users::new(
            meta.clone(),
            options.loopback_users.clone(),
            options.limits.max_concurrent_password_checks as usize,
        );
        users.ensure_default()?;
        let cells = cells::Cells::open(&meta)?;
        let broker = Broker {
            store: Arc::new(store),
            registry,
            users,
            vhosts: RwLock::new(HashMap::new()),
            connections: Mutex::new(BTreeMap::new()),
            next_connection: AtomicU64::new(1),
            next_view: AtomicU64::new(1),
            logins: login::LoginThrottle::new(&options.limits),
            uploads: uploads::UploadBudget::new(options.limits.max_upload_bytes),
            limits: options.limits,
            clock: options.clock,
            delay_wakeup: Arc::default(),
            transactions: Default::default(),
            cells,
            data_dir: options.data_dir,
        };
        broker.restore_topology()?;
        broker.restore_groups()?;
        broker.restore_transactions()?;
        broker.restore_cells(options.cells)?;
        Ok(broker)
    }

    pub fn registry(&self) -> &PluginRegistry {
        &self.registry
    }

    pub fn users(&self) -> &Users {
        &self.users
    }

    /// Now, by the broker's clock (milliseconds since the epoch).
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn data_dir(&self) -> &PathBuf {
        &self.data_dir
    }

    pub fn vhost(&self, name: &str) -> Result<Arc<Vhost>, BrokerError> {
        self.vhosts
            .read()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| {
                BrokerError::new(
                    switchyard_protocol::code::NOT_ALLOWED,
                    format!("vhost '{name}' does not exist"),
                )
            })
    }

    /// Stops as if the process had been killed: nothing flushed or
    /// checkpointed beyond what already was. For recovery tests.
    #[doc(hidden)]
    pub fn abandon(self) {
        if let Ok(store) = Arc::try_unwrap(self.store) {
            store.abandon();
        }
    }

    /// Flushes and checkpoints the store (orderly shutdown).
    pub fn checkpoint(&self) -> Result<(), BrokerError> {
        Ok(self.store.checkpoint()?)
    }
}
