//! Which arguments an exchange accepts. The broker owns some (`filter`);
//! the rest are handed to the exchange's plugin, which reads its own (the
//! built-in `consistent-hash` reads `hash-header` and `hash-property`).
//! A misspelt argument is refused, naming it, rather than silently ignored.
//!
//! The broker knows the arguments of its built-in kinds. A user's exchange
//! plugin receives every argument that is not the broker's and is the judge
//! of its own (the plugin contract has no call to list them yet).

use switchyard_protocol::Field;

use super::error::BrokerError;

/// Arguments the broker itself acts on, for every exchange kind.
const BROKER_ARGUMENTS: &[&str] = &["filter"];

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
