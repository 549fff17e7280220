//! The rows of `switchyard list …`: one field table per exchange, queue,
//! binding, plugin, connection, user or vhost.

use std::sync::atomic::Ordering;

use switchyard_protocol::{Field, Query, Value, find};

use super::Broker;
use super::auth::Principal;
use super::convert::arguments_text;
use super::error::BrokerError;
use super::ordered::{ORDERED, is_ordered};

/// What a user without the administrator tag sees of a plugin: enough to
/// choose an exchange type (name, kind, active version). Not the version
/// history, the source language, the call statistics or the quarantine
/// state: those describe every tenant's traffic through the plugin and the
/// operator's deployment (docs/SECURITY.md). Columns added later stay
/// administrators' until listed here.
const TENANT_PLUGIN_COLUMNS: &[&str] = &["name", "kind", "active"];

fn text(name: &str, value: impl Into<String>) -> Field {
    Field::new(name, Value::Text(value.into()))
}

fn int(name: &str, value: impl TryInto<i64>) -> Field {
    Field::new(name, Value::Int(value.try_into().unwrap_or(i64::MAX)))
}

fn flag(name: &str, value: bool) -> Field {
    Field::new(name, Value::Bool(value))
}

/// Declared arguments as one `k=v,k=v` column: what was asked for
/// (TTL, max-length, dead-lettering…) shows in the listing.
fn arguments(name: &str, fields: &[Field]) -> Field {
    text(name, arguments_text(fields))
}

impl Broker {
    pub fn list(&self, principal: &Principal, what: Query) -> Result<Vec<Vec<Field>>, BrokerError> {
        let vhost = self.vhost(&principal.vhost)?;
        let mut rows: Vec<Vec<Field>> = match what {
            Query::Exchanges => vhost
                .exchanges
                .read()
                .unwrap()
                .values()
                .map(|x| {
                    vec![
                        text("name", x.name()),
                        text(
                            "type",
                            if x.is_default() {
                                "default"
                            } else if is_ordered(&x.record) {
                                ORDERED
                            } else {
                                x.record.kind.as_str()
                            },
                        ),
                        flag("durable", x.record.durable),
                        int("bindings", x.bindings().len()),
                        text(
                            "plugin",
                            x.router
                                .as_ref()
                                .map(|r| r.plugin().active().label().to_string())
                                .unwrap_or_default(),
                        ),
                    ]
                })
                .collect(),
            Query::Queues => vhost
                .queues
                .read()
                .unwrap()
                .values()
                .map(|q| {
                    let stats = self.store.stats(q.id).unwrap_or_default();
                    let space = self.store.space(q.id).unwrap_or_default();
                    let counters = q.counters.values();
                    vec![
                        text("name", q.name()),
                        int("ready", stats.ready),
                        int("ready_bytes", stats.ready_bytes),
                        int("unacked", stats.unacked),
                        int("delayed", self.store.delayed(q.id)),
                        int("dead_letters_parked", q.parked()),
                        int("consumers", q.consumer_count()),
                        text("active_consumer", q.active_consumer().unwrap_or_default()),
                        flag("durable", q.record.durable),
                        flag("exclusive", q.record.exclusive),
                        flag("auto_delete", q.record.auto_delete),
                        text(
                            "flush",
                            match q.settings.flush {
                                switchyard_storage::FlushMode::Async => "async",
                                switchyard_storage::FlushMode::Sync => "sync",
                            },
                        ),
                        arguments("arguments", &q.record.arguments.decode()),
                        int("log_bytes_held", space.log_bytes_held),
                        int("index_bytes", space.index_bytes),
                        int("published", counters.published),
                        int("delivered", counters.delivered),
                        int("acked", counters.acked),
                        int("dead_lettered", counters.dead_lettered),
                    ]
                })
                .collect(),
            Query::Groups => self.group_rows(&vhost),
            Query::Transactions => self.transaction_rows(&vhost.name),
            Query::Cells => self.cell_rows(principal)?,
            Query::Links => self.link_rows(principal)?,
            Query::Federation => self.federation_rows(principal)?,
            Query::Bindings => vhost
                .exchanges
                .read()
                .unwrap()
                .values()
                .flat_map(|x| x.bindings())
                .map(|b| {
                    vec![
                        text("exchange", b.exchange),
                        text("queue", b.queue),
                        text("key", b.key),
                        arguments("arguments", &b.arguments.decode()),
                    ]
                })
                .collect(),
            Query::Plugins => self
                .registry
                .list()
                .into_iter()
                .map(|p| {
                    vec![
                        text("name", p.name),
                        text("kind", p.kind),
                        text("active", p.active),
                        text("versions", p.versions.join(",")),
                        text("language", p.language.unwrap_or_else(|| "unknown".into())),
                        int("calls", p.stats.calls),
                        int("errors", p.stats.errors),
                        int("p99_call_us", p.stats.p99_call_ns / 1000),
                        flag("quarantined", p.quarantined),
                        // The sandbox it runs in and what it holds (docs/SECURITY.md).
                        int("deadline_ms", p.limits.deadline_ms),
                        int("memory_mib", p.limits.memory_bytes >> 20),
                        text(
                            "fuel",
                            p.limits.fuel.map_or("off".into(), |f| f.to_string()),
                        ),
                        int("kv_keys", p.kv.keys),
                        int("kv_bytes", p.kv.bytes),
                        int("kv_refused", p.kv.refused_writes),
                        int("log_dropped", p.stats.log_lines_dropped),
                    ]
                })
                .map(|mut row| {
                    if !principal.administrator {
                        row.retain(|field| TENANT_PLUGIN_COLUMNS.contains(&field.name.as_str()));
                    }
                    row
                })
                .collect(),
            Query::Connections => self
                .connections
                .lock()
                .unwrap()
                .values()
                .filter(|c| principal.administrator || c.user == principal.user)
                .map(|c| {
                    vec![
                        int("id", c.id),
                        text("user", c.user.clone()),
                        text("vhost", c.vhost.clone()),
                        text("peer", c.peer.clone()),
                        text("client", c.client_name.clone()),
                        int("channels", c.channels.load(Ordering::Relaxed)),
                        Field::new("since", Value::Timestamp(c.since_ms)),
                    ]
                })
                .collect(),
            Query::Users => {
                principal.require_administrator("listing users")?;
                self.users
                    .list()?
                    .into_iter()
                    .map(|u| {
                        vec![
                            text("name", u.name),
                            text("tags", u.tags.join(",")),
                            text(
                                "vhosts",
                                u.permissions.keys().cloned().collect::<Vec<_>>().join(","),
                            ),
                        ]
                    })
                    .collect()
            }
            Query::Vhosts => self
                .vhosts
                .read()
                .unwrap()
                .keys()
                .map(|name| vec![text("name", name.clone())])
                .collect(),
        };
        if !principal.administrator {
            self.hide_others(principal, what, &mut rows)?;
        }
        rows.sort_by(|a, b| format!("{:?}", a.first()).cmp(&format!("{:?}", b.first())));
        Ok(rows)
    }

    /// Keeps the rows of resources a tenant's patterns cover (by the
    /// column naming the resource), and only the vhosts it may use.
    fn hide_others(
        &self,
        principal: &Principal,
        what: Query,
        rows: &mut Vec<Vec<Field>>,
    ) -> Result<(), BrokerError> {
        let column = match what {
            Query::Queues | Query::Exchanges => "name",
            Query::Bindings | Query::Groups => "queue",
            Query::Transactions => "group",
            Query::Vhosts => {
                let permitted = match self.users.get(&principal.user)? {
                    Some(user) => user.permissions,
                    None => Default::default(),
                };
                rows.retain(|row| {
                    matches!(find(row, "name"), Some(Value::Text(name)) if permitted.contains_key(name))
                });
                return Ok(());
            }
            _ => return Ok(()),
        };
        rows.retain(|row| match find(row, column) {
            // The default exchange is everyone's.
            Some(Value::Text(name)) => name.is_empty() || principal.sees(name),
            _ => true,
        });
        Ok(())
    }
}
