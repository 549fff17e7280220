//! One loaded version of a plugin: its compiled component, pre-instantiated
//! once; a pool of live instances (one per concurrent caller, reused for
//! every call, never one per message); and the sandboxed call path that
//! classifies failures, replaces broken instances and quarantines a version
//! that keeps failing.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, ComponentExportIndex, InstancePre, ResourceAny};
use wasmtime::{Store, UpdateDeadline};

use super::admission::Admission;
use super::bindings::exports::switchyard::plugin::{
    dead_letter, dead_letter_batch, exchange, filter, set_router, set_router_batch,
};
use super::bindings::{PluginInfo, PluginKind, WIT_PACKAGE, WIT_VERSION, is_world_interface};
use super::capabilities::StoreState;
use super::engine::{PluginEngine, sha256_hex};
use super::error::PluginError;
use super::failure::CallFailure;
use super::kv::{KvScope, PluginKv};
use super::log_limit::LogLimiter;
use super::plugin_limits::CallLimits;
use super::quarantine::Health;
use super::sandbox::{CallClock, MemoryCap};
use super::stats::{CallStats, StatsSnapshot};

/// The export lookups of the world a component implements.
enum KindIndices {
    Exchange(exchange::GuestIndices),
    /// `decide-batch` is optional: 0.1.0 components and policies built from
    /// the `dead-letter-plugin` world have only `decide`.
    DeadLetter(
        dead_letter::GuestIndices,
        Option<dead_letter_batch::GuestIndices>,
    ),
    Filter(filter::GuestIndices),
    /// `route-batch` is optional too (`set-router-batch`).
    SetRouter(
        set_router::GuestIndices,
        Option<set_router_batch::GuestIndices>,
    ),
}

/// A live instance's typed exports.
pub(crate) enum KindExports {
    Exchange(exchange::Guest),
    DeadLetter(dead_letter::Guest, Option<dead_letter_batch::Guest>),
    Filter(filter::Guest),
    SetRouter(set_router::Guest, Option<set_router_batch::Guest>),
}

/// A live instance, checked out of the pool for the length of one call.
pub(crate) struct PluginInstance {
    pub(crate) store: Store<StoreState>,
    instance: wasmtime::component::Instance,
    pub(crate) exports: KindExports,
    /// Exchange routers built in this instance: exchange id → (binding
    /// generation, router resource).
    pub(crate) routers: HashMap<u64, (u64, ResourceAny)>,
}

static NEXT_VERSION_ID: AtomicU64 = AtomicU64::new(1);

pub struct PluginVersion {
    /// Unique in this process; keys caches that must not outlive a version.
    pub(crate) id: u64,
    info: PluginInfo,
    /// The name the component gave itself (`info.name` may be overridden).
    reported_name: String,
    sha256: String,
    /// The source language, when the component says.
    language: Option<String>,
    /// As loaded, `sandbox.*` keys included (for the record).
    config: Arc<BTreeMap<String, String>>,
    /// What the plugin's `config` import sees.
    plugin_config: Arc<BTreeMap<String, String>>,
    limits: CallLimits,
    label: Arc<str>,
    engine: PluginEngine,
    pre: InstancePre<StoreState>,
    indices: KindIndices,
    /// `None` only while the component describes itself during loading.
    kv: Option<PluginKv>,
    pool: Mutex<Vec<PluginInstance>>,
    /// Failure counting and quarantine, per kv scope (an exchange, or the
    /// host): messages that make the plugin fail on one tenant's exchange
    /// quarantine it there, not for every exchange that uses it.
    health: Mutex<HashMap<KvScope, Health>>,
    stats: CallStats,
    log_limit: Arc<LogLimiter>,
    admission: Admission,
    /// Set once a sampled cache hit disagreed with the plugin: its
    /// key-only claim is false, and no exchange caches its decisions again.
    key_only_refuted: AtomicBool,
}

/// The kind a component implements, from the world interface it exports.
fn detect_kind(engine: &PluginEngine, component: &Component) -> Result<PluginKind, PluginError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine.engine())
        .map(|(name, _)| name.to_string())
        .collect();
    let kinds: Vec<PluginKind> = super::bindings::ALL_KINDS
        .into_iter()
        .filter(|kind| exports.iter().any(|e| is_world_interface(e, *kind)))
        .collect();
    match kinds.as_slice() {
        [kind] if exports.iter().any(|e| e == "describe") => Ok(*kind),
        [_] => Err(PluginError::invalid(
            "the component does not export `describe` (every plugin world requires it)",
        )),
        [] => Err(PluginError::invalid(format!(
            "the component implements none of the Switchyard plugin worlds: it exports [{}], \
             but a plugin must export one of {WIT_PACKAGE}/{{exchange,dead-letter,filter,set-router}}@{WIT_VERSION}",
            exports.join(", ")
        ))),
        many => Err(PluginError::invalid(format!(
            "the component exports {} plugin interfaces ({}); a plugin implements exactly one world",
            many.len(),
            many.iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The lookups of an optional `interface` (`dead-letter-batch`,
/// `set-router-batch`) when the component exports it; an export of that
/// name with the wrong types is an error.
fn optional_indices<T>(
    component: &Component,
    pre: &InstancePre<StoreState>,
    interface: &str,
    lookup: impl FnOnce(&InstancePre<StoreState>) -> wasmtime::Result<T>,
) -> wasmtime::Result<Option<T>> {
    let exported = component
        .component_type()
        .exports(component.engine())
        .any(|(name, _)| super::bindings::is_interface(name, interface));
    exported.then(|| lookup(pre)).transpose()
}

impl PluginVersion {
    /// Compiles and validates a component: it must implement exactly one
    /// plugin world with the right types, import nothing but the host
    /// capabilities, instantiate, and describe itself as that world's kind.
    /// `name` overrides the name the plugin reports.
    pub(crate) fn load(
        engine: &PluginEngine,
        bytes: &[u8],
        config: BTreeMap<String, String>,
        name: Option<&str>,
        kv_for: impl FnOnce(&str) -> Result<PluginKv, PluginError>,
    ) -> Result<Arc<Self>, PluginError> {
        let component = engine.compile(bytes)?;
        let kind = detect_kind(engine, &component)?;
        let pre = engine.linker().instantiate_pre(&component).map_err(|e| {
            PluginError::invalid(format!(
                "its imports cannot be satisfied ({e:#}); plugins may import only \
                 {WIT_PACKAGE}/{{log,clock,kv,config,types}}@{WIT_VERSION}"
            ))
        })?;
        let wrong_types = |e: wasmtime::Error| {
            PluginError::invalid(format!("the {kind} world's exports do not match: {e:#}"))
        };
        let indices = match kind {
            PluginKind::Exchange => {
                KindIndices::Exchange(exchange::GuestIndices::new(&pre).map_err(wrong_types)?)
            }
            PluginKind::DeadLetter => KindIndices::DeadLetter(
                dead_letter::GuestIndices::new(&pre).map_err(wrong_types)?,
                optional_indices(&component, &pre, "dead-letter-batch", |pre| {
                    dead_letter_batch::GuestIndices::new(pre)
                })
                .map_err(wrong_types)?,
            ),
            PluginKind::Filter => {
                KindIndices::Filter(filter::GuestIndices::new(&pre).map_err(wrong_types)?)
            }
            PluginKind::SetRouter => KindIndices::SetRouter(
                set_router::GuestIndices::new(&pre).map_err(wrong_types)?,
                optional_indices(&component, &pre, "set-router-batch", |pre| {
                    set_router_batch::GuestIndices::new(pre)
                })
                .map_err(wrong_types)?,
            ),
        };
        let describe = component
            .get_export_index(None, "describe")
            .ok_or_else(|| PluginError::invalid("missing `describe` export"))?;

        let limits = super::plugin_limits::resolve(engine.limits(), &config)?;
        let plugin_config = Arc::new(super::plugin_limits::plugin_config(&config));
        let config = Arc::new(config);
        // Until it has described itself, the plugin is known by its hash.
        let sha256 = sha256_hex(bytes);
        let provisional: Arc<str> = format!("sha256:{}", &sha256[..12]).into();
        let mut version = PluginVersion {
            id: NEXT_VERSION_ID.fetch_add(1, Ordering::Relaxed),
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                kind,
                key_only_routing: false,
                description: String::new(),
            },
            reported_name: String::new(),
            sha256,
            language: super::language::detect_language(bytes),
            config,
            plugin_config,
            limits,
            label: provisional,
            engine: engine.clone(),
            pre,
            indices,
            kv: None,
            pool: Mutex::new(Vec::new()),
            health: Mutex::new(HashMap::new()),
            stats: CallStats::default(),
            log_limit: Arc::new(LogLimiter::new(engine.limits().log_rate())),
            admission: Admission::new(
                engine.limits().concurrent_calls(),
                Duration::from_micros(engine.limits().offload_above_us),
            ),
            key_only_refuted: AtomicBool::new(false),
        };

        let mut instance = version.instantiate()?;
        let info = version.describe_with(&mut instance, describe)?;
        if info.kind != kind {
            return Err(PluginError::invalid(format!(
                "it implements the {kind} world but describes itself as {}",
                info.kind.a_plugin()
            )));
        }
        let name = name
            .map(str::to_string)
            .unwrap_or_else(|| info.name.clone());
        validate_name(&name)?;
        if info.version.is_empty() || info.version.len() > 64 {
            return Err(PluginError::invalid(
                "its version must be 1 to 64 characters",
            ));
        }
        version.label = format!("{name}@{}", info.version).into();
        version.kv = Some(kv_for(&name)?);
        version.reported_name = info.name.clone();
        version.info = PluginInfo { name, ..info };
        // The probe instance saw the provisional label and kv; start afresh.
        drop(instance);
        Ok(Arc::new(version))
    }

    fn describe_with(
        &self,
        instance: &mut PluginInstance,
        describe: ComponentExportIndex,
    ) -> Result<PluginInfo, PluginError> {
        let load_deadline = self.limits.load_deadline();
        self.prepare_with(&mut instance.store, load_deadline, &KvScope::host());
        let func = instance
            .instance
            .get_typed_func::<(), (PluginInfo,)>(&mut instance.store, describe)
            .map_err(|e| PluginError::invalid(format!("`describe` has the wrong type: {e:#}")))?;
        let (info,) = func
            .call(&mut instance.store, ())
            .map_err(|e| self.classify(CallFailure::Wasm(e), instance.store.data()))?;
        Ok(info)
    }

    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The name the plugin reports for itself, whatever it is registered as.
    pub fn reported_name(&self) -> &str {
        &self.reported_name
    }

    pub fn version(&self) -> &str {
        &self.info.version
    }

    pub fn kind(&self) -> PluginKind {
        self.info.kind
    }

    pub fn language(&self) -> Option<&str> {
        self.language.as_deref()
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn config(&self) -> &BTreeMap<String, String> {
        &self.config
    }

    /// The sandbox limits this version runs under.
    pub fn limits(&self) -> CallLimits {
        self.limits
    }

    /// `name@version`.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn stats(&self) -> StatsSnapshot {
        StatsSnapshot {
            log_lines_dropped: self.log_limit.total_dropped(),
            ..self.stats.snapshot()
        }
    }

    /// Whether it is quarantined for any scope.
    pub fn is_quarantined(&self) -> bool {
        let now = Instant::now();
        self.health
            .lock()
            .unwrap()
            .values()
            .any(|h| h.is_quarantined(now))
    }

    /// False once the version was caught routing on more than the key
    /// while claiming key-only routing.
    pub fn key_only_holds(&self) -> bool {
        !self.key_only_refuted.load(Ordering::Relaxed)
    }

    /// Records that the key-only claim is false (logged once per version).
    pub(crate) fn refute_key_only(
        &self,
        routing_key: &str,
        cached: &[u32],
        computed: &Result<super::cache::Targets, String>,
    ) {
        if !self.key_only_refuted.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                plugin = %self.label,
                routing_key,
                ?cached,
                ?computed,
                "plugin claims key-only routing but routed the same key differently; \
                 its decisions are no longer cached"
            );
        }
    }

    /// Whether this dead-letter policy exports `dead-letter-batch` (the
    /// broker then asks it about a batch in one plugin function call; else
    /// it calls `decide` per death).
    pub fn decides_batches(&self) -> bool {
        matches!(self.indices, KindIndices::DeadLetter(_, Some(_)))
    }

    pub fn kv(&self) -> Option<&PluginKv> {
        self.kv.as_ref()
    }

    fn instantiate(&self) -> Result<PluginInstance, PluginError> {
        let limits = self.limits;
        let state = StoreState {
            plugin: self.label.clone(),
            log_limit: self.log_limit.clone(),
            table: wasmtime::component::ResourceTable::new(),
            memory: MemoryCap {
                limit_bytes: limits.memory_bytes as usize,
                exceeded: false,
            },
            kv: self.kv.clone(),
            kv_scope: KvScope::host(),
            config: self.plugin_config.clone(),
            // Instantiation (start functions included) runs on the load budget.
            clock: CallClock::start(limits.load_deadline()),
            last_error_log: None,
        };
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|state| &mut state.memory);
        store.epoch_deadline_callback(move |store| {
            Ok(if store.data().clock.expired() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Continue(1)
            })
        });
        store.set_epoch_deadline(1);
        if let Some(fuel) = limits.fuel {
            let _ = store.set_fuel(fuel);
        }
        let loaded = self.pre.instantiate(&mut store).and_then(|live| {
            let exports = match &self.indices {
                KindIndices::Exchange(i) => KindExports::Exchange(i.load(&mut store, &live)?),
                KindIndices::DeadLetter(single, batch) => KindExports::DeadLetter(
                    single.load(&mut store, &live)?,
                    batch
                        .as_ref()
                        .map(|b| b.load(&mut store, &live))
                        .transpose()?,
                ),
                KindIndices::Filter(i) => KindExports::Filter(i.load(&mut store, &live)?),
                KindIndices::SetRouter(single, batch) => KindExports::SetRouter(
                    single.load(&mut store, &live)?,
                    batch
                        .as_ref()
                        .map(|b| b.load(&mut store, &live))
                        .transpose()?,
                ),
            };
            Ok((live, exports))
        });
        match loaded {
            Ok((instance, exports)) => Ok(PluginInstance {
                store,
                instance,
                exports,
                routers: HashMap::new(),
            }),
            Err(error) => Err(self.classify(CallFailure::Wasm(error), store.data())),
        }
    }

    /// Arms the sandbox for the next call, with `deadline` as its budget.
    fn prepare_with(&self, store: &mut Store<StoreState>, deadline: Duration, scope: &KvScope) {
        store.set_epoch_deadline(1);
        if let Some(fuel) = self.limits.fuel {
            let _ = store.set_fuel(fuel);
        }
        let state = store.data_mut();
        state.memory.exceeded = false;
        state.clock = CallClock::start(deadline);
        state.last_error_log = None;
        if state.kv_scope != *scope {
            state.kv_scope = scope.clone();
        }
    }

    fn classify(&self, failure: CallFailure, state: &StoreState) -> PluginError {
        super::failure::classify(&self.label, self.limits.fuel, failure, state)
    }

    /// Runs `call` on a pooled instance inside the sandbox, with `scope` as
    /// the kv state it sees. On any failure the instance is discarded (a
    /// fresh one is made from the pre-instance next time) and a fault counts
    /// towards quarantine.
    pub(crate) fn call<R>(
        &self,
        scope: &KvScope,
        call: impl FnOnce(&mut PluginInstance) -> Result<R, CallFailure>,
    ) -> Result<R, PluginError> {
        self.refuse_if_quarantined(scope)?;
        self.admission.run(|| {
            // The quarantine may have begun while this call waited its turn.
            self.refuse_if_quarantined(scope)?;
            self.call_admitted(scope, call)
        })
    }

    fn refuse_if_quarantined(&self, scope: &KvScope) -> Result<(), PluginError> {
        let health = self.health.lock().unwrap();
        let Some(health) = health.get(scope) else {
            return Ok(());
        };
        health
            .admit(Instant::now())
            .map_err(|q| PluginError::Quarantined {
                plugin: self.label.to_string(),
                failures: q.failures,
                retry_in: q.retry_in,
            })
    }

    /// [`PluginVersion::call`] once the version has a slot for it.
    fn call_admitted<R>(
        &self,
        scope: &KvScope,
        call: impl FnOnce(&mut PluginInstance) -> Result<R, CallFailure>,
    ) -> Result<R, PluginError> {
        let started = Instant::now();
        let pooled = self.pool.lock().unwrap().pop();
        let mut instance = match pooled {
            Some(instance) => instance,
            None => match self.instantiate() {
                Ok(instance) => instance,
                Err(error) => return Err(self.failed(scope, error, started)),
            },
        };
        self.prepare_with(&mut instance.store, self.limits.deadline(), scope);
        match call(&mut instance) {
            Ok(result) => {
                self.stats.record(started.elapsed(), true);
                let mut health = self.health.lock().unwrap();
                let scope_health = match health.get_mut(scope) {
                    Some(h) => h,
                    None => health.entry(scope.clone()).or_default(),
                };
                scope_health.on_success(self.engine.limits(), Instant::now());
                drop(health);
                self.pool.lock().unwrap().push(instance);
                Ok(result)
            }
            Err(failure) => {
                let error = self.classify(failure, instance.store.data());
                Err(self.failed(scope, error, started))
            }
        }
    }

    fn failed(&self, scope: &KvScope, error: PluginError, started: Instant) -> PluginError {
        self.stats.record(started.elapsed(), false);
        self.stats.count_failure(
            matches!(error, PluginError::Trap { .. }),
            matches!(error, PluginError::Timeout { .. }),
        );
        if !error.is_fault() {
            return error;
        }
        let now = Instant::now();
        let quarantined = self
            .health
            .lock()
            .unwrap()
            .entry(scope.clone())
            .or_default()
            .on_failure(self.engine.limits(), now);
        if quarantined {
            // Reload from scratch once the quarantine ends.
            self.pool.lock().unwrap().clear();
            tracing::warn!(plugin = %self.label, %scope, %error, "plugin quarantined for this scope");
        } else {
            tracing::warn!(plugin = %self.label, %error, "plugin call failed; instance replaced");
        }
        error
    }
}

impl std::fmt::Debug for PluginVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginVersion")
            .field("label", &self.label)
            .field("kind", &self.info.kind)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

fn validate_name(name: &str) -> Result<(), PluginError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(PluginError::invalid(format!(
            "plugin name {name:?} must be 1 to 64 characters of letters, digits, '-', '_' or '.'"
        )))
    }
}

/// Lends the plugin the bodies of one call as a `bodies` resource for the
/// length of `call`, then takes it back.
pub(crate) fn with_bodies<R>(
    store: &mut Store<StoreState>,
    bodies: Vec<bytes::Bytes>,
    call: impl FnOnce(
        &mut Store<StoreState>,
        wasmtime::component::Resource<super::capabilities::CallBodies>,
    ) -> wasmtime::Result<R>,
) -> Result<R, CallFailure> {
    let handle = store
        .data_mut()
        .table
        .push(super::capabilities::CallBodies(bodies))
        .map_err(wasmtime::Error::from)?;
    let borrowed = wasmtime::component::Resource::new_borrow(handle.rep());
    let result = call(store, borrowed);
    store
        .data_mut()
        .table
        .delete(handle)
        .map_err(wasmtime::Error::from)?;
    Ok(result?)
}
