//! Definitions: a broker's topology and users as one JSON document, to move
//! them to another broker (RabbitMQ's definitions export / import): vhosts,
//! users with their password hashes and permissions, durable exchanges,
//! queues and bindings, and the plugins they use by name, version and
//! hash. Import is idempotent (what exists as the file says is left alone)
//! and checks everything before changing anything: a plugin missing here
//! (or here with other content), or an exchange or queue that exists with
//! other settings, refuses the whole file, naming what.

use serde::{Deserialize, Serialize};
use switchyard_protocol::Field;

use super::Broker;
use super::auth::{Principal, UserRecord};
use super::error::BrokerError;
use super::json::{fields_from_json as from_json, value_json};
use super::queue::QueueSettings;
use super::records::{BINDINGS, BindingRecord, EXCHANGES, ExchangeRecord, QUEUES, QueueRecord};
use super::topology::{BindingSpec, ExchangeSpec, QueueSpec};

/// The document's format.
const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definitions {
    pub format: u32,
    pub broker_version: String,
    pub vhosts: Vec<String>,
    pub users: Vec<UserRecord>,
    pub plugins: Vec<PluginReference>,
    pub exchanges: Vec<ExchangeDefinition>,
    pub queues: Vec<QueueDefinition>,
    pub bindings: Vec<BindingDefinition>,
    /// The SET table (docs/SET.md), when the broker is in a SET deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cells: Option<super::cells::CellTable>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginReference {
    pub name: String,
    pub kind: String,
    pub version: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeDefinition {
    pub vhost: String,
    pub name: String,
    /// The plugin implementing it.
    pub kind: String,
    pub auto_delete: bool,
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueDefinition {
    pub vhost: String,
    pub name: String,
    pub auto_delete: bool,
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingDefinition {
    pub vhost: String,
    pub exchange: String,
    pub queue: String,
    pub key: String,
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

fn to_json(fields: &[Field]) -> serde_json::Map<String, serde_json::Value> {
    fields
        .iter()
        .map(|f| (f.name.clone(), value_json(&f.value)))
        .collect()
}

impl Broker {
    /// Everything durable the broker holds, as definitions (administrators).
    pub fn export_definitions(&self, principal: &Principal) -> Result<Definitions, BrokerError> {
        principal.require_administrator("exporting definitions")?;
        let meta = self.store.metadata();
        let mut vhosts: Vec<String> = self.vhosts.read().unwrap().keys().cloned().collect();
        vhosts.sort();
        let exchanges = (meta.scan::<ExchangeRecord>(EXCHANGES, "")?.into_iter())
            .map(|(_, x)| ExchangeDefinition {
                arguments: to_json(&x.arguments.decode()),
                vhost: x.vhost,
                name: x.name,
                kind: x.kind,
                auto_delete: x.auto_delete,
            })
            .collect();
        let queues = (meta.scan::<QueueRecord>(QUEUES, "")?.into_iter())
            .map(|(_, q)| QueueDefinition {
                arguments: to_json(&q.arguments.decode()),
                vhost: q.vhost,
                name: q.name,
                auto_delete: q.auto_delete,
            })
            .collect();
        let bindings = (meta.scan::<BindingRecord>(BINDINGS, "")?.into_iter())
            .map(|(_, b)| BindingDefinition {
                arguments: to_json(&b.arguments.decode()),
                vhost: b.vhost,
                exchange: b.exchange,
                queue: b.queue,
                key: b.key,
            })
            .collect();
        let plugins = (self.registry.list().into_iter())
            .filter_map(|p| {
                let slot = self.registry.get(&p.name).ok()?;
                Some(PluginReference {
                    sha256: slot.active().sha256().to_string(),
                    name: p.name,
                    kind: p.kind,
                    version: p.active,
                })
            })
            .collect();
        Ok(Definitions {
            format: FORMAT,
            broker_version: env!("CARGO_PKG_VERSION").into(),
            vhosts,
            users: self.users.list()?,
            plugins,
            exchanges,
            queues,
            bindings,
            cells: Some(self.cell_table().as_ref().clone())
                .filter(|t| t.is_deployed() || !t.ranges.is_empty()),
        })
    }

    /// The table `definitions` would put in force here: theirs, with this
    /// broker's own cell kept when it has one (a table moves between the
    /// cells of a deployment; each broker stays the cell it is).
    fn imported_cells(&self, definitions: &Definitions) -> Option<super::cells::CellTable> {
        let mut table = definitions.cells.clone()?;
        let current = self.cell_table();
        if current.is_deployed() {
            table.local = current.local.clone();
        }
        table.peers.remove(&table.local);
        table.version = current.version;
        Some(table)
    }

    /// Applies `definitions` (administrators): checks all of it first, then
    /// creates what is missing. Returns how many things it created or
    /// changed (0 the second time).
    pub fn import_definitions(
        &self,
        principal: &Principal,
        definitions: &Definitions,
    ) -> Result<u64, BrokerError> {
        principal.require_administrator("importing definitions")?;
        if definitions.format != FORMAT {
            return Err(BrokerError::invalid_argument(format!(
                "definitions format {} is not {FORMAT}",
                definitions.format
            )));
        }
        self.check_definitions(definitions)?;
        let mut changed = 0;
        if let Some(table) = self.imported_cells(definitions)
            && table != *self.cell_table()
        {
            self.set_cell_table(principal, 0, table)?;
            changed += 1;
        }
        for vhost in &definitions.vhosts {
            if self.vhost(vhost).is_err() {
                self.add_vhost(&operator(&principal.user, "/"), vhost)?;
                changed += 1;
            }
        }
        for user in &definitions.users {
            if self.users.get(&user.name)?.as_ref() != Some(user) {
                self.users.replace(user)?;
                changed += 1;
            }
        }
        for x in &definitions.exchanges {
            let vhost = self.vhost(&x.vhost)?;
            if vhost.exchange(&x.name).is_err() {
                let spec = ExchangeSpec {
                    name: &x.name,
                    kind: &x.kind,
                    durable: true,
                    auto_delete: x.auto_delete,
                    passive: false,
                    arguments: from_json(&x.arguments)?,
                };
                self.declare_exchange(&operator(&principal.user, &x.vhost), spec)?;
                changed += 1;
            }
        }
        for q in &definitions.queues {
            let vhost = self.vhost(&q.vhost)?;
            if vhost.queue(&q.name).is_err() {
                let spec = QueueSpec {
                    name: &q.name,
                    durable: true,
                    exclusive: false,
                    auto_delete: q.auto_delete,
                    passive: false,
                    arguments: from_json(&q.arguments)?,
                };
                self.declare_queue(&operator(&principal.user, &q.vhost), 0, spec)?;
                changed += 1;
            }
        }
        for b in &definitions.bindings {
            let arguments = from_json(&b.arguments)?;
            let x = self.vhost(&b.vhost)?.exchange(&b.exchange)?;
            let exists = x.bindings().iter().any(|have| {
                have.queue == b.queue && have.key == b.key && have.arguments.decode() == arguments
            });
            if !exists {
                let spec = BindingSpec {
                    queue: &b.queue,
                    exchange: &b.exchange,
                    key: &b.key,
                    arguments: &arguments,
                };
                self.bind(&operator(&principal.user, &b.vhost), 0, &spec)?;
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Everything that would refuse the file, before anything changes.
    fn check_definitions(&self, definitions: &Definitions) -> Result<(), BrokerError> {
        if let Some(table) = self.imported_cells(definitions) {
            table.validate().map_err(|e| {
                BrokerError::invalid_argument(format!(
                    "the definitions' SET table: {e} (nothing was imported)"
                ))
            })?;
        }
        for plugin in &definitions.plugins {
            let here = self.registry.get(&plugin.name).map_err(|_| {
                BrokerError::precondition(format!(
                    "the definitions use plugin '{}' {}, which this broker does not have: \
                     load it first (nothing was imported)",
                    plugin.name, plugin.version
                ))
            })?;
            if !here.versions().contains(&plugin.version) {
                return Err(BrokerError::precondition(format!(
                    "the definitions use plugin '{}' version {}, which this broker does not \
                     have (it has {}): nothing was imported",
                    plugin.name,
                    plugin.version,
                    here.versions().join(", ")
                )));
            }
        }
        let known = |name: &str| self.registry.get(name).is_ok();
        for x in &definitions.exchanges {
            if !known(&x.kind) {
                return Err(BrokerError::precondition(format!(
                    "exchange '{}' of vhost '{}' needs plugin '{}', which this broker does not \
                     have: nothing was imported",
                    x.name, x.vhost, x.kind
                )));
            }
            if let Ok(existing) = self.vhost(&x.vhost).and_then(|v| v.exchange(&x.name))
                && (existing.record.kind != x.kind
                    || existing.record.arguments.decode() != from_json(&x.arguments)?)
            {
                return Err(BrokerError::precondition(format!(
                    "exchange '{}' of vhost '{}' exists here with other settings (type '{}'): \
                     nothing was imported",
                    x.name, x.vhost, existing.record.kind
                )));
            }
        }
        for q in &definitions.queues {
            let settings = QueueSettings::parse(&from_json(&q.arguments)?)?;
            if let Some(policy) = &settings.dead_letter_policy
                && !known(policy)
            {
                return Err(BrokerError::precondition(format!(
                    "queue '{}' of vhost '{}' needs dead-letter policy plugin '{policy}', which \
                     this broker does not have: nothing was imported",
                    q.name, q.vhost
                )));
            }
            if let Ok(existing) = self.vhost(&q.vhost).and_then(|v| v.queue(&q.name))
                && existing.settings != settings
            {
                return Err(BrokerError::precondition(format!(
                    "queue '{}' of vhost '{}' exists here with other settings: nothing was imported",
                    q.name, q.vhost
                )));
            }
        }
        for user in &definitions.users {
            if user.password_hash.is_empty() {
                return Err(BrokerError::invalid_argument(format!(
                    "user '{}' has no password hash",
                    user.name
                )));
            }
            super::password::check_importable(&user.password_hash).map_err(|why| {
                BrokerError::invalid_argument(format!(
                    "user '{}': its password hash cannot be imported: {why}; nothing was imported",
                    user.name
                ))
            })?;
        }
        Ok(())
    }
}

/// The importing administrator acting with every right in `vhost`.
fn operator(user: &str, vhost: &str) -> Principal {
    Principal::operator(user, vhost)
}
