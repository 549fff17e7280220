//! Which arguments an exchange accepts. The broker owns some (`filter`,
//! `set-router`: plugins it calls besides the exchange type's);
//! the rest are handed to the exchange's plugin, which reads its own (the
//! built-in `consistent-hash` reads `hash-header` and `hash-property`).
//! A misspelt argument is refused, naming it, rather than silently ignored.
//!
//! The broker knows the arguments of its built-in kinds. A user's exchange
//! plugin receives every argument that is not the broker's and is the judge
//! of its own (the plugin contract has no call to list them yet).

use std::sync::Arc;

use switchyard_plugin_host::{MessageFilter, PluginSlot, SetRouter};
use switchyard_protocol::{Field, Value};

use super::Broker;
use super::error::BrokerError;
use super::topology::plugin_missing;

/// Arguments the broker itself acts on, for every exchange kind.
const BROKER_ARGUMENTS: &[&str] = &[
    "filter",
    "set-router",
    "federation-upstream",
    "federation-exchange",
    "max-hops",
];

/// The plugin arguments of each built-in exchange kind.
const BUILTIN_KINDS: &[(&str, &[&str])] = &[
    ("direct", &[]),
    ("fanout", &[]),
    ("topic", &[]),
    ("headers", &[]),
    ("consistent-hash", &["hash-header", "hash-property"]),
];

/// An argument's name without the AMQP `x-` prefix.
pub(super) fn bare_name(field: &Field) -> &str {
    field.name.strip_prefix("x-").unwrap_or(&field.name)
}

/// Refuses arguments an exchange of `kind` would not act on.
pub(super) fn check_exchange_arguments(kind: &str, arguments: &[Field]) -> Result<(), BrokerError> {
    let Some((_, plugin_arguments)) = BUILTIN_KINDS.iter().find(|(k, _)| *k == kind) else {
        return Ok(());
    };
    for field in arguments {
        let name = bare_name(field);
        if !BROKER_ARGUMENTS.contains(&name) && !plugin_arguments.contains(&name) {
            let known: Vec<&str> = BROKER_ARGUMENTS
                .iter()
                .chain(plugin_arguments.iter())
                .copied()
                .collect();
            return Err(BrokerError::invalid_argument(format!(
                "unknown argument '{}' for a {kind} exchange (known: {})",
                field.name,
                known.join(", ")
            )));
        }
    }
    Ok(())
}

impl Broker {
    /// The filter plugin named by an exchange's `filter` argument.
    pub(super) fn exchange_filter(
        &self,
        arguments: &[Field],
    ) -> Result<Option<MessageFilter>, BrokerError> {
        self.exchange_plugin_argument(arguments, "filter", "a filter plugin")?
            .map(|slot| Ok(MessageFilter::new(slot)?))
            .transpose()
    }

    /// The SET router plugin named by an exchange's `set-router` argument.
    pub(super) fn exchange_set_router(
        &self,
        arguments: &[Field],
    ) -> Result<Option<SetRouter>, BrokerError> {
        self.exchange_plugin_argument(arguments, "set-router", "a set-router plugin")?
            .map(|slot| Ok(SetRouter::new(slot)?))
            .transpose()
    }

    /// The loaded plugin an exchange argument `argument` names.
    fn exchange_plugin_argument(
        &self,
        arguments: &[Field],
        argument: &str,
        what: &str,
    ) -> Result<Option<Arc<PluginSlot>>, BrokerError> {
        let Some(field) = arguments.iter().find(|f| bare_name(f) == argument) else {
            return Ok(None);
        };
        let Value::Text(name) = &field.value else {
            return Err(BrokerError::invalid_argument(format!(
                "exchange argument '{argument}' must name {what}"
            )));
        };
        let slot = self.registry.get(name).map_err(|e| {
            plugin_missing(
                e,
                format!(
                    "{argument} '{name}' is not a loaded plugin (see `switchyard list plugins`)"
                ),
            )
        })?;
        Ok(Some(slot))
    }
}
