//! An exchange at run time: its record, the plugin router that implements
//! its type, the filter plugin its `filter` argument names (if any), and its
//! bindings (to queues). The default exchange (empty name) has no plugin: it
//! routes to the queue named by the routing key.

use std::sync::Mutex;

use super::convert::fields_to_plugin;
use super::error::BrokerError;
use super::records::{BindingRecord, ExchangeRecord};
use switchyard_plugin_host::{Binding, ExchangeRouter, MessageFilter, SetRouter};

pub struct Exchange {
    pub record: ExchangeRecord,
    /// `None` for the default exchange.
    pub router: Option<ExchangeRouter>,
    /// Checks every message before routing (duplicates, rejections).
    pub filter: Option<MessageFilter>,
    /// Decides which cell serves each message (`set-router` argument).
    pub set_router: Option<SetRouter>,
    bindings: Mutex<Vec<BindingRecord>>,
    /// Totals since the broker started, for metrics.
    pub counters: super::counters::ExchangeCounters,
}

fn to_plugin_binding(binding: &BindingRecord) -> Binding {
    Binding {
        destination: binding.queue.clone(),
        key: binding.key.clone(),
        arguments: fields_to_plugin(&binding.arguments.decode()),
    }
}

impl Exchange {
    pub fn new(
        record: ExchangeRecord,
        router: Option<ExchangeRouter>,
        filter: Option<MessageFilter>,
    ) -> Self {
        Exchange {
            record,
            router,
            filter,
            set_router: None,
            bindings: Mutex::new(Vec::new()),
            counters: Default::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.record.name
    }

    pub fn is_default(&self) -> bool {
        self.router.is_none()
    }

    /// Why a message with `routing_key` reached no queue, in the terms of
    /// this exchange's type (the reason of a mandatory message's return).
    pub fn unroutable_reason(&self, routing_key: &str) -> String {
        let name = self.name();
        match self.record.kind.as_str() {
            _ if self.is_default() => format!(
                "the default exchange routes by queue name and there is no queue '{routing_key}'"
            ),
            "direct" | "topic" => {
                format!("no queue is bound to exchange '{name}' for routing key '{routing_key}'")
            }
            "fanout" => format!("no queue is bound to fanout exchange '{name}'"),
            "headers" => {
                format!("no binding of headers exchange '{name}' matches the message's headers")
            }
            kind => format!("exchange '{name}' (type '{kind}') routed the message to no queue"),
        }
    }

    pub fn bindings(&self) -> Vec<BindingRecord> {
        self.bindings.lock().unwrap().clone()
    }

    pub fn binding_count(&self) -> usize {
        self.bindings.lock().unwrap().len()
    }

    pub fn has_binding(&self, binding: &BindingRecord) -> bool {
        self.bindings.lock().unwrap().contains(binding)
    }

    /// Adds a binding after the plugin accepted it; false if it existed.
    pub fn bind(&self, binding: BindingRecord) -> Result<bool, BrokerError> {
        let Some(router) = &self.router else {
            return Err(BrokerError::access_refused(
                "the default exchange cannot be bound: it routes by queue name",
            ));
        };
        let mut bindings = self.bindings.lock().unwrap();
        if bindings.contains(&binding) {
            return Ok(false);
        }
        router.validate_binding(&to_plugin_binding(&binding))?;
        bindings.push(binding);
        router.set_bindings(bindings.iter().map(to_plugin_binding).collect());
        Ok(true)
    }

    /// Removes bindings matching `keep == false`; returns those removed.
    pub fn unbind_where(
        &self,
        mut remove: impl FnMut(&BindingRecord) -> bool,
    ) -> Vec<BindingRecord> {
        let Some(router) = &self.router else {
            return Vec::new();
        };
        let mut bindings = self.bindings.lock().unwrap();
        let (gone, kept): (Vec<_>, Vec<_>) = bindings.drain(..).partition(|b| remove(b));
        *bindings = kept;
        if !gone.is_empty() {
            router.set_bindings(bindings.iter().map(to_plugin_binding).collect());
        }
        gone
    }
}
