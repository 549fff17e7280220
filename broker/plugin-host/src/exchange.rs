//! Routing through an exchange plugin. An [`ExchangeRouter`] is one
//! exchange: its plugin (whichever version is active at each call), its
//! bindings, and the decision cache. Each plugin instance keeps a `router`
//! resource per exchange, rebuilt only when the bindings change.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use bytes::Bytes;

use super::bindings::{Binding, Field, Message, PluginKind};
use super::cache::{DecisionCache, Targets};
use super::error::PluginError;
use super::failure::CallFailure;
use super::kv::KvScope;
use super::registry::PluginSlot;
use super::version::{KindExports, PluginInstance, PluginVersion, with_bodies};

/// An exchange's bindings; replaced as a whole on every change.
pub struct BindingTable {
    generation: u64,
    pub bindings: Vec<Binding>,
    pub arguments: Vec<Field>,
}

/// The outcome of routing one message: binding indices, or the plugin's
/// reason for refusing the message.
pub type RouteResult = Result<Targets, String>;

/// Routing results and the plugin version that produced them.
pub struct Routed {
    pub version: Arc<PluginVersion>,
    /// The bindings the results index into.
    pub table: Arc<BindingTable>,
    pub results: Vec<RouteResult>,
}

static NEXT_EXCHANGE_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

pub struct ExchangeRouter {
    id: u64,
    slot: Arc<PluginSlot>,
    table: ArcSwap<BindingTable>,
    cache: DecisionCache,
    cache_enabled: bool,
    /// The kv state the plugin sees when routing for this exchange.
    scope: KvScope,
}

/// Longest error message a plugin may give for one message.
const MAX_REASON_BYTES: usize = 4096;

impl ExchangeRouter {
    pub fn new(slot: Arc<PluginSlot>, arguments: Vec<Field>) -> Result<Self, PluginError> {
        if slot.kind() != PluginKind::Exchange {
            return Err(PluginError::WrongKind {
                name: slot.name().to_string(),
                expected: PluginKind::Exchange,
                actual: slot.kind(),
            });
        }
        Ok(ExchangeRouter {
            id: NEXT_EXCHANGE_ID.fetch_add(1, Ordering::Relaxed),
            slot,
            table: ArcSwap::from_pointee(BindingTable {
                generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
                bindings: Vec::new(),
                arguments,
            }),
            cache: DecisionCache::default(),
            cache_enabled: true,
            scope: KvScope::host(),
        })
    }

    /// Gives the plugin this exchange's own kv state (the broker scopes
    /// every exchange; without it calls share the `host` scope).
    pub fn with_kv_scope(mut self, scope: KvScope) -> Self {
        self.scope = scope;
        self
    }

    /// Always asks the plugin, even when it declares key-only routing (for
    /// measuring the plugin itself, or plugins whose author lied).
    pub fn without_decision_cache(mut self) -> Self {
        self.cache_enabled = false;
        self
    }

    pub fn plugin(&self) -> &Arc<PluginSlot> {
        &self.slot
    }

    pub fn bindings(&self) -> Arc<BindingTable> {
        self.table.load_full()
    }

    /// Asks the plugin whether it accepts `binding`.
    pub fn validate_binding(&self, binding: &Binding) -> Result<(), PluginError> {
        let version = self.slot.active();
        let table = self.table.load();
        let verdict = version.call(&self.scope, |instance| {
            let KindExports::Exchange(exports) = &instance.exports else {
                unreachable!("exchange slots hold exchange plugins");
            };
            Ok(exports.call_validate_binding(&mut instance.store, binding, &table.arguments)?)
        })?;
        verdict.map_err(|reason| PluginError::Rejected {
            plugin: version.label().to_string(),
            reason: truncate(reason),
        })
    }

    /// Replaces the bindings; routers and cached decisions built for the old
    /// ones are not used again.
    pub fn set_bindings(&self, bindings: Vec<Binding>) {
        let arguments = self.table.load().arguments.clone();
        self.table.store(Arc::new(BindingTable {
            generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
            bindings,
            arguments,
        }));
    }

    /// Routes one message with a single plugin call (no batching).
    pub fn route(&self, message: &Message, body: &Bytes) -> Result<Routed, PluginError> {
        self.route_with(
            std::slice::from_ref(message),
            std::slice::from_ref(body),
            false,
        )
    }

    /// Routes a batch with one plugin call; `bodies[i]` belongs to
    /// `messages[i]` (missing bodies read as empty).
    pub fn route_batch(
        &self,
        messages: &[Message],
        bodies: &[Bytes],
    ) -> Result<Routed, PluginError> {
        self.route_with(messages, bodies, true)
    }

    fn route_with(
        &self,
        messages: &[Message],
        bodies: &[Bytes],
        batch: bool,
    ) -> Result<Routed, PluginError> {
        let version = self.slot.active();
        let table = self.table.load_full();
        if !(self.cache_enabled && version.info().key_only_routing && version.key_only_holds()) {
            let results = self.call_plugin(&version, &table, messages, bodies, batch)?;
            return Ok(Routed {
                version,
                table,
                results,
            });
        }

        let stamp = (version.id, table.generation);
        let mut results: Vec<Option<RouteResult>> = Vec::with_capacity(messages.len());
        // Cached decisions to check against the plugin's own answer.
        let mut to_verify: Vec<(usize, Targets)> = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            match self.cache.get(stamp, &message.routing_key) {
                Some(cached) if self.cache.verify_this_hit() => {
                    to_verify.push((i, cached));
                    results.push(None);
                }
                hit => results.push(hit.map(Ok)),
            }
        }
        let misses: Vec<usize> = (0..messages.len())
            .filter(|&i| results[i].is_none())
            .collect();
        if !misses.is_empty() {
            let computed = if misses.len() == messages.len() {
                self.call_plugin(&version, &table, messages, bodies, batch)?
            } else {
                let subset: Vec<Message> = misses.iter().map(|&i| messages[i].clone()).collect();
                let subset_bodies: Vec<Bytes> = misses
                    .iter()
                    .map(|&i| bodies.get(i).cloned().unwrap_or_default())
                    .collect();
                self.call_plugin(&version, &table, &subset, &subset_bodies, batch)?
            };
            for (i, result) in misses.iter().zip(&computed) {
                if let Some((_, cached)) = to_verify.iter().find(|(v, _)| v == i)
                    && result.as_ref() != Ok(cached)
                {
                    version.refute_key_only(&messages[*i].routing_key, cached, result);
                }
            }
            if version.key_only_holds() {
                self.cache.insert_all(
                    stamp,
                    misses.iter().zip(&computed).filter_map(|(&i, result)| {
                        result
                            .as_ref()
                            .ok()
                            .map(|t| (messages[i].routing_key.as_str(), t))
                    }),
                );
            }
            for (i, result) in misses.into_iter().zip(computed) {
                results[i] = Some(result);
            }
        }
        Ok(Routed {
            version,
            table,
            results: results
                .into_iter()
                .map(|r| r.expect("every miss was filled"))
                .collect(),
        })
    }

    /// Whether routing for this exchange uses the decision cache now: the
    /// active version claims key-only routing and has not been caught
    /// breaking the claim.
    pub fn decision_cache_enabled(&self) -> bool {
        let version = self.slot.active();
        self.cache_enabled && version.info().key_only_routing && version.key_only_holds()
    }

    fn call_plugin(
        &self,
        version: &PluginVersion,
        table: &BindingTable,
        messages: &[Message],
        bodies: &[Bytes],
        batch: bool,
    ) -> Result<Vec<RouteResult>, PluginError> {
        let call_bodies: Vec<Bytes> = (0..messages.len())
            .map(|i| bodies.get(i).cloned().unwrap_or_default())
            .collect();
        version.call(&self.scope, |instance| {
            let router = self.router_in(instance, table)?;
            let PluginInstance { store, exports, .. } = instance;
            let KindExports::Exchange(exports) = exports else {
                unreachable!("exchange slots hold exchange plugins");
            };
            let raw = with_bodies(store, call_bodies, |store, bodies| {
                let router_calls = exports.router();
                if batch {
                    router_calls.call_route_batch(store, router, messages, bodies)
                } else {
                    Ok(vec![router_calls.call_route(
                        store,
                        router,
                        &messages[0],
                        bodies,
                    )?])
                }
            })?;
            if raw.len() != messages.len() {
                return Err(CallFailure::InvalidResult(format!(
                    "{} results for {} messages",
                    raw.len(),
                    messages.len()
                )));
            }
            raw.into_iter()
                .map(|result| check_targets(table.bindings.len(), result))
                .collect()
        })
    }

    /// The instance's router for the current bindings, built on first use.
    fn router_in(
        &self,
        instance: &mut PluginInstance,
        table: &BindingTable,
    ) -> Result<wasmtime::component::ResourceAny, CallFailure> {
        if let Some((generation, router)) = instance.routers.get(&self.id)
            && *generation == table.generation
        {
            return Ok(*router);
        }
        let KindExports::Exchange(exports) = &instance.exports else {
            unreachable!("exchange slots hold exchange plugins");
        };
        let router = exports.router().call_constructor(
            &mut instance.store,
            &table.bindings,
            &table.arguments,
        )?;
        // Exchanges come and go; bound the routers one instance keeps.
        if instance.routers.len() >= 1024 {
            for (_, (_, old)) in instance.routers.drain() {
                old.resource_drop(&mut instance.store)?;
            }
        }
        if let Some((_, old)) = instance.routers.insert(self.id, (table.generation, router)) {
            old.resource_drop(&mut instance.store)?;
        }
        Ok(router)
    }

    /// Decisions cached so far (for diagnostics and tests).
    pub fn cached_decisions(&self) -> usize {
        self.cache.len()
    }
}

/// Checks one message's result: every index names a binding, no binding
/// twice, and error messages stay short.
fn check_targets(
    binding_count: usize,
    result: Result<Vec<u32>, String>,
) -> Result<RouteResult, CallFailure> {
    let mut targets = match result {
        Ok(targets) => targets,
        Err(reason) => return Ok(Err(truncate(reason))),
    };
    if targets.len() > binding_count {
        return Err(CallFailure::InvalidResult(format!(
            "{} binding indices for one message, but the exchange has {binding_count} bindings",
            targets.len()
        )));
    }
    if let Some(bad) = targets.iter().find(|&&i| i as usize >= binding_count) {
        return Err(CallFailure::InvalidResult(format!(
            "binding index {bad} out of range (the exchange has {binding_count} bindings)"
        )));
    }
    targets.sort_unstable();
    targets.dedup();
    Ok(Ok(targets.into()))
}

fn truncate(mut reason: String) -> String {
    if reason.len() > MAX_REASON_BYTES {
        let mut cut = MAX_REASON_BYTES;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push('…');
    }
    reason
}
