//! Declaring, deleting, binding and purging; vhost administration; and
//! restoring the durable topology at start.

use std::sync::Arc;

use switchyard_protocol::{Field, code};

use super::auth::{Access, Principal};
use super::convert::{describe_arguments, fields_to_plugin};
use super::error::BrokerError;
use super::exchange::Exchange;
use super::exchange_arguments::check_exchange_arguments;
use super::ordered::ORDERED;
use super::queue::{Queue, QueueSettings};
use super::records::{
    BINDINGS, BindingRecord, EXCHANGES, EncodedFields, ExchangeRecord, QUEUES, QueueRecord, VHOSTS,
    VhostRecord,
};
use super::{Broker, Vhost};
use switchyard_plugin_host::{ExchangeRouter, KvScope, PluginError};
use switchyard_storage::metadata::key;

/// What a declare-exchange request asks for.
pub struct ExchangeSpec<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub durable: bool,
    pub auto_delete: bool,
    pub passive: bool,
    pub arguments: Vec<Field>,
}

/// What a bind or unbind request names.
pub struct BindingSpec<'a> {
    pub queue: &'a str,
    pub exchange: &'a str,
    pub key: &'a str,
    pub arguments: &'a [Field],
}

/// What a declare-queue request asks for.
pub struct QueueSpec<'a> {
    pub name: &'a str,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub passive: bool,
    pub arguments: Vec<Field>,
}

/// Characters that reorder the text around them (bidirectional embeddings,
/// overrides and isolates): a name holding them reads differently in a
/// listing than it is (`evil\u{202e}gpj.exe`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

pub(crate) fn check_name(kind: &str, name: &str) -> Result<(), BrokerError> {
    if name.len() > 255
        || name
            .chars()
            .any(|c| c.is_control() || is_bidi_control(c) || matches!(c, '<' | '>'))
    {
        return Err(BrokerError::invalid_argument(format!(
            "{kind} name '{}' is invalid: at most 255 bytes, no control or bidirectional \
             formatting characters, no '<' or '>'",
            name.escape_debug()
        )));
    }
    Ok(())
}

fn store_queue_name(vhost: &str, queue: &str) -> String {
    key(&[vhost, queue])
}

impl Broker {
    pub(crate) fn persist<T: serde::Serialize>(
        &self,
        tree: &str,
        k: &str,
        value: &T,
    ) -> Result<(), BrokerError> {
        let meta = self.store.metadata();
        meta.put(tree, k, value)?;
        Ok(meta.flush()?)
    }

    pub(crate) fn unpersist(&self, tree: &str, k: &str) -> Result<(), BrokerError> {
        let meta = self.store.metadata();
        meta.remove(tree, k)?;
        Ok(meta.flush()?)
    }

    fn binding_key(b: &BindingRecord) -> String {
        let arguments = hex::encode(b.arguments.as_bytes());
        key(&[&b.vhost, &b.exchange, &b.queue, &b.key, &arguments])
    }

    fn make_exchange(&self, record: ExchangeRecord) -> Result<Exchange, BrokerError> {
        if record.name.is_empty() {
            return Ok(Exchange::new(record, None, None));
        }
        let slot = self.registry.get(&record.kind).map_err(|e| {
            plugin_missing(
                e,
                format!(
                    "exchange type '{}' is not a loaded plugin (see `switchyard list plugins`)",
                    record.kind
                ),
            )
        })?;
        let arguments = record.arguments.decode();
        // Plugin state is the exchange's own: tenants never share kv keys.
        let scope = KvScope::exchange(&record.vhost, &record.name);
        let filter = self
            .exchange_filter(&arguments)?
            .map(|filter| filter.with_kv_scope(scope.clone()));
        super::cells::federation_arguments(&arguments)?;
        let set_router = self
            .exchange_set_router(&arguments)?
            .map(|router| router.with_kv_scope(scope.clone()));
        let router = ExchangeRouter::new(slot, fields_to_plugin(&arguments))?.with_kv_scope(scope);
        let mut exchange = Exchange::new(record, Some(router), filter);
        exchange.set_router = set_router;
        Ok(exchange)
    }

    pub(crate) fn add_vhost_runtime(&self, name: &str) -> Arc<Vhost> {
        let vhost = Arc::new(Vhost::new(name));
        let default = ExchangeRecord {
            vhost: name.into(),
            name: String::new(),
            kind: "direct".into(),
            durable: true,
            auto_delete: false,
            arguments: EncodedFields::default(),
        };
        vhost
            .exchanges
            .write()
            .unwrap()
            .insert(String::new(), Arc::new(Exchange::new(default, None, None)));
        self.vhosts
            .write()
            .unwrap()
            .insert(name.into(), vhost.clone());
        vhost
    }

    /// Loads durable vhosts, exchanges, queues and bindings; deletes the
    /// store's queues that no durable queue owns (transient ones).
    pub(super) fn restore_topology(&self) -> Result<(), BrokerError> {
        let meta = self.store.metadata().clone();
        // A new broker has `/`; one whose `/` was deleted (another vhost
        // remained) does not get it back.
        if meta.scan::<VhostRecord>(VHOSTS, "")?.is_empty() {
            self.persist(VHOSTS, "/", &VhostRecord { name: "/".into() })?;
        }
        for (_, v) in meta.scan::<VhostRecord>(VHOSTS, "")? {
            self.add_vhost_runtime(&v.name);
        }
        for (_, record) in meta.scan::<ExchangeRecord>(EXCHANGES, "")? {
            let vhost = self.vhost(&record.vhost)?;
            let name = record.name.clone();
            match self.make_exchange(record) {
                Ok(exchange) => {
                    vhost
                        .exchanges
                        .write()
                        .unwrap()
                        .insert(name, Arc::new(exchange));
                }
                Err(e) => tracing::error!(exchange = %name, error = %e, "exchange not restored"),
            }
        }
        let mut kept = Vec::new();
        for (_, record) in meta.scan::<QueueRecord>(QUEUES, "")? {
            let vhost = self.vhost(&record.vhost)?;
            let settings = QueueSettings::parse(&record.arguments.decode())?;
            let store_name = store_queue_name(&record.vhost, &record.name);
            let id = self.store.create_queue(&store_name, settings.flush)?;
            kept.push(id);
            let name = record.name.clone();
            let last_used = self
                .recorded_use(&record.vhost, &name)
                .unwrap_or_else(|| self.now_ms());
            let queue = Queue::new(record, id, settings, None, last_used);
            // What was read from the metadata is what is recorded there.
            queue.note_recorded_use(last_used);
            vhost.queues.write().unwrap().insert(name, Arc::new(queue));
        }
        for (id, name) in self.store.queues() {
            if !kept.contains(&id) {
                tracing::info!(queue = %name, "deleting a transient queue from the previous run");
                self.store.delete_queue(id)?;
            }
        }
        for (_, binding) in meta.scan::<BindingRecord>(BINDINGS, "")? {
            let restored = self
                .vhost(&binding.vhost)
                .and_then(|v| v.exchange(&binding.exchange))
                .and_then(|e| e.bind(binding.clone()));
            if let Err(e) = restored {
                tracing::error!(exchange = %binding.exchange, queue = %binding.queue, error = %e, "binding not restored");
            }
        }
        Ok(())
    }

    pub fn declare_exchange(
        &self,
        principal: &Principal,
        spec: ExchangeSpec<'_>,
    ) -> Result<(), BrokerError> {
        let vhost = self.vhost(&principal.vhost)?;
        if spec.passive {
            return vhost.exchange(spec.name).map(drop);
        }
        if spec.kind == ORDERED {
            return self.declare_ordered(principal, spec);
        }
        check_name("exchange", spec.name)?;
        if spec.name.is_empty() || spec.name.starts_with("amq.") {
            return Err(BrokerError::access_refused(format!(
                "exchange name '{}' is reserved",
                spec.name
            )));
        }
        principal.check(Access::Configure, "exchange", spec.name)?;
        check_exchange_arguments(spec.kind, &spec.arguments)?;
        let record = ExchangeRecord {
            vhost: vhost.name.clone(),
            name: spec.name.into(),
            kind: spec.kind.into(),
            durable: spec.durable,
            auto_delete: spec.auto_delete,
            arguments: EncodedFields::bounded(
                &spec.arguments,
                &format!("exchange '{}'", spec.name),
            )?,
        };
        if let Ok(existing) = vhost.exchange(spec.name) {
            if existing.record.kind != record.kind
                || existing.record.durable != record.durable
                || existing.record.arguments != record.arguments
            {
                return Err(BrokerError::precondition(format!(
                    "exchange '{}' already exists with type '{}' (durable: {}, arguments: {})",
                    spec.name,
                    existing.record.kind,
                    existing.record.durable,
                    describe_arguments(&existing.record.arguments.decode())
                )));
            }
            return Ok(());
        }
        self.admit_exchange(&vhost)?;
        let exchange = self.make_exchange(record.clone())?;
        if record.durable {
            self.persist(EXCHANGES, &key(&[&vhost.name, spec.name]), &record)?;
        }
        vhost
            .exchanges
            .write()
            .unwrap()
            .insert(spec.name.into(), Arc::new(exchange));
        Ok(())
    }

    pub fn delete_exchange(
        &self,
        principal: &Principal,
        name: &str,
        if_unused: bool,
    ) -> Result<(), BrokerError> {
        let vhost = self.vhost(&principal.vhost)?;
        if name.is_empty() {
            return Err(BrokerError::access_refused(
                "the default exchange cannot be deleted",
            ));
        }
        principal.check(Access::Configure, "exchange", name)?;
        let exchange = vhost.exchange(name)?;
        if if_unused && !exchange.bindings().is_empty() {
            return Err(BrokerError::precondition(format!(
                "exchange '{name}' has bindings"
            )));
        }
        for binding in exchange.unbind_where(|_| true) {
            self.unpersist(BINDINGS, &Self::binding_key(&binding))?;
        }
        self.unpersist(EXCHANGES, &key(&[&vhost.name, name]))?;
        vhost.exchanges.write().unwrap().remove(name);
        self.forget_plugin_state(&KvScope::exchange(&vhost.name, name));
        Ok(())
    }

    /// Drops what plugins kept for a deleted exchange or vhost.
    pub(crate) fn forget_plugin_state(&self, scope: &KvScope) {
        let dropped = self.registry.kv().drop_scope(scope);
        if dropped > 0 {
            tracing::debug!(%scope, dropped, "plugin state of a deleted scope dropped");
        }
    }

    /// Declares a queue; returns its name (generated for an empty one),
    /// ready messages and consumers.
    pub fn declare_queue(
        &self,
        principal: &Principal,
        connection: u64,
        spec: QueueSpec<'_>,
    ) -> Result<(String, u64, u32), BrokerError> {
        let vhost = self.vhost(&principal.vhost)?;
        let name = if spec.name.is_empty() {
            format!("sy.gen-{connection}-{:x}", now_nanos())
        } else {
            spec.name.to_string()
        };
        check_name("queue", &name)?;
        principal.check(Access::Configure, "queue", &name)?;
        if let Ok(existing) = vhost.queue(&name) {
            existing.check_owner(connection)?;
            existing.touch(self.now_ms());
            if !spec.passive
                && (existing.record.durable != spec.durable
                    || existing.settings != QueueSettings::parse(&spec.arguments)?)
            {
                return Err(BrokerError::precondition(format!(
                    "queue '{name}' already exists with different settings (durable: {}, \
                     arguments: {})",
                    existing.record.durable,
                    describe_arguments(&existing.record.arguments.decode())
                )));
            }
            let stats = self.store.stats(existing.id)?;
            return Ok((name, stats.ready, existing.consumer_count()));
        }
        if spec.passive {
            return Err(BrokerError::not_found("queue", &name, &vhost.name));
        }
        let settings = QueueSettings::parse(&spec.arguments)?;
        if let Some(dlx) = &settings.dead_letter_exchange {
            principal.check(Access::Write, "exchange", dlx)?;
        }
        if let Some(fallback) = &settings.dead_letter_fallback {
            self.authorize_keep_in(principal, &vhost, fallback)
                .map_err(|e| e.context("queue argument 'dead-letter-fallback'"))?;
        }
        if let Some(policy) = &settings.dead_letter_policy {
            let slot = self.registry.get(policy).map_err(|e| {
                BrokerError::invalid_argument(format!("queue argument 'dead-letter-policy': {e}"))
            })?;
            switchyard_plugin_host::DeadLetterPolicy::new(slot).map_err(|e| {
                BrokerError::invalid_argument(format!("queue argument 'dead-letter-policy': {e}"))
            })?;
        }
        let record = QueueRecord {
            vhost: vhost.name.clone(),
            name: name.clone(),
            durable: spec.durable,
            exclusive: spec.exclusive,
            auto_delete: spec.auto_delete,
            arguments: EncodedFields::bounded(&spec.arguments, &format!("queue '{name}'"))?,
        };
        let owner = spec.exclusive.then_some(connection);
        self.admit_queue(&vhost)?;
        self.create_queue(&vhost, record, settings, owner)?;
        Ok((name, 0, 0))
    }

    /// Whether `principal` may have the broker keep messages in `queue` of
    /// `vhost` later (a dead-letter fallback, a give-up queue): write
    /// permission on it, and configure permission if it does not exist yet
    /// (keeping a message creates it).
    pub(crate) fn authorize_keep_in(
        &self,
        principal: &Principal,
        vhost: &Vhost,
        queue: &str,
    ) -> Result<(), BrokerError> {
        check_name("queue", queue)?;
        principal.check(Access::Write, "queue", queue)?;
        if vhost.queue(queue).is_err() {
            principal.check(Access::Configure, "queue", queue)?;
        }
        Ok(())
    }

    /// Creates a queue the checks allowed (or the broker wants).
    pub(super) fn create_queue(
        &self,
        vhost: &Vhost,
        record: QueueRecord,
        settings: QueueSettings,
        owner: Option<u64>,
    ) -> Result<Arc<Queue>, BrokerError> {
        let name = record.name.clone();
        let id = self
            .store
            .create_queue(&store_queue_name(&vhost.name, &name), settings.flush)?;
        if record.durable && !record.exclusive {
            self.persist(QUEUES, &key(&[&vhost.name, &name]), &record)?;
        }
        let queue = Arc::new(Queue::new(record, id, settings, owner, self.now_ms()));
        self.record_use(&queue);
        vhost.queues.write().unwrap().insert(name, queue.clone());
        Ok(queue)
    }

    /// Deletes a queue and its bindings; returns the messages it held.
    pub fn delete_queue(
        &self,
        principal: &Principal,
        connection: u64,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u64, BrokerError> {
        let vhost = self.vhost(&principal.vhost)?;
        principal.check(Access::Configure, "queue", name)?;
        let queue = vhost.queue(name)?;
        queue.check_owner(connection)?;
        let stats = self.store.stats(queue.id)?;
        if if_unused && queue.consumer_count() > 0 {
            return Err(BrokerError::precondition(format!(
                "queue '{name}' has consumers"
            )));
        }
        if if_empty && stats.ready + stats.unacked > 0 {
            return Err(BrokerError::precondition(format!(
                "queue '{name}' is not empty ({} messages)",
                stats.ready + stats.unacked
            )));
        }
        self.remove_queue(&vhost, name)?;
        Ok(stats.ready + stats.unacked)
    }

    /// Deletes a queue without checks (exclusive owner gone, auto-delete).
    pub(crate) fn remove_queue(&self, vhost: &Vhost, name: &str) -> Result<(), BrokerError> {
        let Some(queue) = vhost.queues.write().unwrap().remove(name) else {
            return Ok(());
        };
        let exchanges: Vec<Arc<Exchange>> =
            vhost.exchanges.read().unwrap().values().cloned().collect();
        for exchange in exchanges {
            let removed = exchange.unbind_where(|b| b.queue == name);
            self.forget_bindings(vhost, &exchange, removed)?;
        }
        self.unpersist(QUEUES, &key(&[&vhost.name, name]))?;
        self.forget_use(&vhost.name, name);
        if queue.is_stream() {
            self.forget_groups(&vhost.name, name)?;
        }
        queue.mark_deleted();
        self.store.delete_queue(queue.id)?;
        Ok(())
    }

    /// Drops a queue's ready messages (read permission; not another
    /// connection's exclusive queue); returns how many.
    pub fn purge_queue(
        &self,
        principal: &Principal,
        connection: u64,
        name: &str,
    ) -> Result<u64, BrokerError> {
        let vhost = self.vhost(&principal.vhost)?;
        principal.check(Access::Read, "queue", name)?;
        let queue = vhost.queue(name)?;
        queue.check_owner(connection)?;
        queue.refuse_if_stream("purging")?;
        Ok(self.store.purge_queue(queue.id)?)
    }

    /// The vhost, exchange and binding a bind or unbind names, after the
    /// checks: write on the queue, read on the exchange, and not another
    /// connection's exclusive queue.
    fn binding_target(
        &self,
        principal: &Principal,
        connection: u64,
        spec: &BindingSpec<'_>,
    ) -> Result<(Arc<Vhost>, Arc<Exchange>, BindingRecord), BrokerError> {
        let vhost = self.vhost(&principal.vhost)?;
        principal.check(Access::Write, "queue", spec.queue)?;
        principal.check(Access::Read, "exchange", spec.exchange)?;
        if let Ok(queue) = vhost.queue(spec.queue) {
            queue.check_owner(connection)?;
        }
        let x = vhost.exchange(spec.exchange)?;
        let binding = BindingRecord {
            vhost: vhost.name.clone(),
            exchange: spec.exchange.into(),
            queue: spec.queue.into(),
            key: spec.key.into(),
            arguments: EncodedFields::bounded(spec.arguments, "a binding")?,
        };
        Ok((vhost, x, binding))
    }

    pub fn bind(
        &self,
        principal: &Principal,
        connection: u64,
        spec: &BindingSpec<'_>,
    ) -> Result<(), BrokerError> {
        let (vhost, x, binding) = self.binding_target(principal, connection, spec)?;
        let q = vhost.queue(spec.queue)?;
        self.admit_binding(&x, &binding)?;
        if x.bind(binding.clone())? && q.record.durable && x.record.durable && q.owner.is_none() {
            self.persist(BINDINGS, &Self::binding_key(&binding), &binding)?;
        }
        Ok(())
    }

    pub fn unbind(
        &self,
        principal: &Principal,
        connection: u64,
        spec: &BindingSpec<'_>,
    ) -> Result<(), BrokerError> {
        let (vhost, x, wanted) = self.binding_target(principal, connection, spec)?;
        let removed = x.unbind_where(|b| *b == wanted);
        if removed.is_empty() {
            return Err(BrokerError::new(
                code::NOT_FOUND,
                format!(
                    "no binding of queue '{}' to exchange '{}' with key '{}'",
                    spec.queue, spec.exchange, spec.key
                ),
            ));
        }
        self.forget_bindings(&vhost, &x, removed)
    }

    /// Unpersists removed bindings; an auto-delete exchange whose last
    /// binding went is deleted.
    fn forget_bindings(
        &self,
        vhost: &Vhost,
        exchange: &Exchange,
        removed: Vec<BindingRecord>,
    ) -> Result<(), BrokerError> {
        if removed.is_empty() {
            return Ok(());
        }
        for binding in &removed {
            self.unpersist(BINDINGS, &Self::binding_key(binding))?;
        }
        if exchange.record.auto_delete && exchange.bindings().is_empty() {
            self.unpersist(EXCHANGES, &key(&[&vhost.name, exchange.name()]))?;
            vhost.exchanges.write().unwrap().remove(exchange.name());
            self.forget_plugin_state(&KvScope::exchange(&vhost.name, exchange.name()));
        }
        Ok(())
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A plugin an exchange needs is missing: `not_loaded` when it was never
/// loaded, the registry's reason when it failed to load.
pub(super) fn plugin_missing(error: PluginError, not_loaded: String) -> BrokerError {
    match error {
        PluginError::Unavailable { .. } => {
            BrokerError::new(code::NOT_FOUND, format!("{error}; see the broker's log"))
        }
        _ => BrokerError::new(code::NOT_FOUND, not_loaded),
    }
}
