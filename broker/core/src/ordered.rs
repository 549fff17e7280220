//! Ordered destinations in one declaration: `declare exchange orders
//! --type ordered --arg partitions=8` makes a `consistent-hash` exchange
//! hashing the ordering key (header `x-ordering-key`), eight durable
//! partition queues `orders.0` … `orders.7` with single active consumers,
//! and equal bindings. Every key's messages go to one partition in publish
//! order; its single active consumer processes them in that order, also
//! across failover (its unacked messages go to the next consumer first).
//! What is declared is ordinary: listings show the exchange, queues and
//! bindings as what they are. Declaring it again with another partition
//! count is refused: keys would move, and lose their order.

use switchyard_protocol::{Field, Value};

use super::Broker;
use super::auth::Principal;
use super::error::BrokerError;
use super::exchange_arguments::bare_name;
use super::topology::{BindingSpec, ExchangeSpec, QueueSpec};
pub use switchyard_protocol::ORDERING_KEY_HEADER;

/// The exchange type that declares an ordered, partitioned destination.
pub const ORDERED: &str = "ordered";
/// The most partitions one ordered destination may have.
const MAX_PARTITIONS: u64 = 1024;
/// Ring points per partition: enough for an even spread of keys.
const WEIGHT: &str = "100";

/// The partition queue `i` of ordered exchange `exchange`.
pub fn partition_queue(exchange: &str, i: u64) -> String {
    format!("{exchange}.{i}")
}

fn partitions(arguments: &[Field]) -> Result<u64, BrokerError> {
    let mut partitions = None;
    for field in arguments {
        if bare_name(field) != "partitions" {
            return Err(BrokerError::invalid_argument(format!(
                "unknown argument '{}' for an ordered exchange (known: partitions)",
                field.name
            )));
        }
        let n = match &field.value {
            Value::Int(n) => u64::try_from(*n).ok(),
            Value::Text(t) => t.trim().parse().ok(),
            _ => None,
        };
        partitions = Some(
            n.filter(|n| (1..=MAX_PARTITIONS).contains(n))
                .ok_or_else(|| {
                    BrokerError::invalid_argument(format!(
                        "argument 'partitions' must be a number from 1 to {MAX_PARTITIONS}"
                    ))
                })?,
        );
    }
    partitions.ok_or_else(|| {
        BrokerError::invalid_argument("an ordered exchange needs the argument 'partitions'")
    })
}

impl Broker {
    /// Declares an ordered destination (see the module comment), each part
    /// with the principal's own permissions; declaring it again is a no-op.
    pub(super) fn declare_ordered(
        &self,
        principal: &Principal,
        spec: ExchangeSpec<'_>,
    ) -> Result<(), BrokerError> {
        let partitions = partitions(&spec.arguments)?;
        // Keys would move to other partitions (and lose their order) if
        // the count changed under them.
        if let Ok(existing) = self.vhost(&principal.vhost)?.exchange(spec.name) {
            let bound = existing.bindings().len() as u64;
            if bound != partitions {
                return Err(BrokerError::precondition(format!(
                    "exchange '{}' already exists with {bound} partitions, not {partitions}",
                    spec.name
                )));
            }
        }
        // No part is exclusive to a connection: none is named.
        let connection = 0;
        let name = spec.name;
        let durable = spec.durable;
        self.declare_exchange(
            principal,
            ExchangeSpec {
                kind: "consistent-hash",
                arguments: vec![Field::new(
                    "hash-header",
                    Value::Text(ORDERING_KEY_HEADER.into()),
                )],
                ..spec
            },
        )?;
        for i in 0..partitions {
            let queue = partition_queue(name, i);
            self.declare_queue(
                principal,
                connection,
                QueueSpec {
                    name: &queue,
                    durable,
                    exclusive: false,
                    auto_delete: false,
                    passive: false,
                    arguments: vec![Field::new("single-active-consumer", Value::Bool(true))],
                },
            )?;
            self.bind(
                principal,
                connection,
                &BindingSpec {
                    queue: &queue,
                    exchange: name,
                    key: WEIGHT,
                    arguments: &[],
                },
            )?;
        }
        Ok(())
    }
}

/// Whether `record` is the exchange of an `ordered` declaration (a
/// consistent-hash exchange over `x-ordering-key`): listed as `ordered`,
/// the type it was declared with.
pub(crate) fn is_ordered(record: &super::records::ExchangeRecord) -> bool {
    record.kind == "consistent-hash"
        && record.arguments.decode()
            == [Field::new(
                "hash-header",
                Value::Text(ORDERING_KEY_HEADER.into()),
            )]
}
