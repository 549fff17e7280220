//! Consumer groups on stream queues. A consumer of a stream reads through a
//! *view* — a store queue with its own consumption state over the stream's
//! index (the store's views.rs), handed to the front door as a [`Queue`]
//! that delivers and settles like any other:
//!
//! - a *clustering* group has one view: its members share it, each message
//!   goes to one of them, and what a departed member held goes back to it
//!   for the others (RocketMQ clustering, a Kafka consumer group);
//! - a *broadcasting* group has a view per member (named by the member, or
//!   its consumer tag): every member receives every message;
//! - a consumer without a group has a view of its own, forgotten when it
//!   ends (RabbitMQ stream consumers that track no offset).
//!
//! A group's mode is recorded in the metadata (`groups`); its positions are
//! the views' acks, as durable as any ack. A new view starts at the offset
//! the consumer asks for; an existing one resumes where it is.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchyard_protocol::{Field, GroupMode, StreamOffset, Value};
use switchyard_storage::metadata::key;

use super::auth::{Access, Principal};
use super::error::BrokerError;
use super::queue::Queue;
use super::stream::ViewOf;
use super::topology::check_name;
use super::{Broker, Vhost};

/// The metadata tree of consumer groups.
pub const GROUPS: &str = "groups";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub vhost: String,
    pub queue: String,
    pub group: String,
    /// `clustering` or `broadcasting`.
    pub mode: String,
}

/// How a consumer attaches to a stream queue.
#[derive(Debug, Clone, Default)]
pub struct Subscription {
    pub group: Option<String>,
    pub mode: GroupMode,
    /// A broadcasting group's member (default: the consumer tag).
    pub member: Option<String>,
    /// Where a new position starts.
    pub offset: StreamOffset,
}

fn mode_named(name: &str) -> GroupMode {
    match name {
        "broadcasting" => GroupMode::Broadcasting,
        _ => GroupMode::Clustering,
    }
}

/// The store name of a view: `vhost␟queue␟g␟group[␟member]` for groups,
/// `vhost␟queue␟c␟unique` for a consumer without one (names cannot hold
/// the separator: no control characters).
fn view_name(vhost: &str, queue: &str, view_of: &ViewOf, unique: &str) -> String {
    match (&view_of.group, &view_of.member) {
        (Some(group), Some(member)) => key(&[vhost, queue, "g", group, member]),
        (Some(group), None) => key(&[vhost, queue, "g", group]),
        (None, _) => key(&[vhost, queue, "c", unique]),
    }
}

/// Whose view a store name is (`None` for a groupless consumer's).
fn parse_view_name(vhost: &str, queue: &str, name: &str) -> Option<ViewOf> {
    let rest = name.strip_prefix(&key(&[vhost, queue, "g", ""]))?;
    let mut parts = rest.split('\u{1f}');
    let group = parts.next()?.to_string();
    Some(ViewOf {
        group: Some(group),
        member: parts.next().map(str::to_string),
    })
}

impl Broker {
    /// Registers consumer `tag` of `connection` on stream `stream` as
    /// `subscription` asks; the view it takes messages from.
    pub(crate) fn subscribe(
        &self,
        stream: &Arc<Queue>,
        connection: u64,
        tag: &str,
        exclusive: bool,
        subscription: &Subscription,
    ) -> Result<Arc<Queue>, BrokerError> {
        let view_of = match &subscription.group {
            Some(group) => {
                check_name("consumer group", group)?;
                let mode = self.group_mode(stream, group, subscription.mode)?;
                let member = match mode {
                    GroupMode::Broadcasting => {
                        let member = subscription.member.as_deref().unwrap_or(tag);
                        check_name("group member", member)?;
                        Some(member.to_string())
                    }
                    GroupMode::Clustering => None,
                };
                ViewOf {
                    group: Some(group.clone()),
                    member,
                }
            }
            None => ViewOf {
                group: None,
                member: None,
            },
        };
        let unique = format!(
            "{connection}-{}",
            self.next_view
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let view = self.open_view(stream, view_of, &unique, subscription.offset)?;
        if let Err(e) = view.add_consumer(tag, connection, exclusive) {
            self.forget_if_groupless(stream, &view);
            return Err(e);
        }
        Ok(view)
    }

    /// The mode of `group` on `stream`, recorded now if it is new; refused
    /// if the group exists in the other mode.
    fn group_mode(
        &self,
        stream: &Queue,
        group: &str,
        asked: GroupMode,
    ) -> Result<GroupMode, BrokerError> {
        let record_key = key(&[&stream.record.vhost, stream.name(), group]);
        let meta = self.store.metadata();
        if let Some(record) = meta.get::<GroupRecord>(GROUPS, &record_key)? {
            let mode = mode_named(&record.mode);
            if mode != asked {
                return Err(BrokerError::precondition(format!(
                    "consumer group '{group}' of queue '{}' is {}, not {}",
                    stream.name(),
                    mode.name(),
                    asked.name()
                )));
            }
            return Ok(mode);
        }
        let record = GroupRecord {
            vhost: stream.record.vhost.clone(),
            queue: stream.name().to_string(),
            group: group.to_string(),
            mode: asked.name().to_string(),
        };
        self.persist(GROUPS, &record_key, &record)?;
        Ok(asked)
    }

    /// The view named for `view_of`, opened (created at `offset` if new).
    fn open_view(
        &self,
        stream: &Queue,
        view_of: ViewOf,
        unique: &str,
        offset: StreamOffset,
    ) -> Result<Arc<Queue>, BrokerError> {
        let name = view_name(&stream.record.vhost, stream.name(), &view_of, unique);
        let mut views = stream.views.lock().unwrap();
        if let Some(view) = views.get(&name) {
            return Ok(view.clone());
        }
        let start = self.resolve_offset(stream.id, offset)?;
        let (id, _) = self.store.create_view(stream.id, &name, start)?;
        let view = Arc::new(stream.view(id, view_of));
        views.insert(name, view.clone());
        Ok(view)
    }

    /// A consumer of a view ended: a groupless consumer's view goes with
    /// it; an auto-delete stream whose last consumer this was is deleted.
    pub(crate) fn end_view_consumer(&self, vhost: &Vhost, view: &Arc<Queue>, tag: &str) {
        view.remove_consumer(tag);
        // Deleted with its stream: nothing is left to forget.
        if view.is_deleted() {
            return;
        }
        let Ok(stream) = vhost.queue(view.name()) else {
            return;
        };
        self.forget_if_groupless(&stream, view);
        stream.touch(self.now_ms());
        if stream.record.auto_delete
            && stream.consumer_count() == 0
            && let Err(e) = self.remove_queue(vhost, stream.name())
        {
            tracing::warn!(queue = stream.name(), error = %e, "auto-delete failed");
        }
    }

    /// Deletes a groupless consumer's view once nobody consumes from it.
    fn forget_if_groupless(&self, stream: &Queue, view: &Arc<Queue>) {
        let is_groupless = view.view_of.as_ref().is_some_and(|v| v.group.is_none());
        if !is_groupless || view.consumer_count() > 0 {
            return;
        }
        stream
            .views
            .lock()
            .unwrap()
            .retain(|_, v| !Arc::ptr_eq(v, view));
        view.mark_deleted();
        if let Err(e) = self.store.delete_queue(view.id) {
            tracing::warn!(queue = stream.name(), error = %e, "forgetting a consumer's position");
        }
    }

    /// Moves consumer group `group` of stream `queue` (one broadcasting
    /// member's position with `member`) to `offset`. Its members must have
    /// stopped. Needs configure permission on the queue. Returns the new
    /// position.
    pub fn reset_group(
        &self,
        principal: &Principal,
        queue: &str,
        group: &str,
        member: Option<&str>,
        offset: StreamOffset,
    ) -> Result<u64, BrokerError> {
        principal.check(Access::Configure, "queue", queue)?;
        let vhost = self.vhost(&principal.vhost)?;
        let stream = vhost.queue(queue)?;
        if !stream.is_stream() {
            return Err(BrokerError::precondition(format!(
                "queue '{queue}' is not a stream: it has no consumer groups"
            )));
        }
        let views: Vec<Arc<Queue>> = (stream.views.lock().unwrap().values())
            .filter(|v| {
                v.view_of.as_ref().is_some_and(|of| {
                    of.group.as_deref() == Some(group)
                        && (member.is_none() || of.member.as_deref() == member)
                })
            })
            .cloned()
            .collect();
        if views.is_empty() {
            let what = match member {
                Some(member) => format!("member '{member}' of consumer group '{group}'"),
                None => format!("consumer group '{group}'"),
            };
            return Err(BrokerError::new(
                switchyard_protocol::code::NOT_FOUND,
                format!("no {what} on queue '{queue}' in vhost '{}'", vhost.name),
            ));
        }
        let consuming: u32 = views.iter().map(|v| v.consumer_count()).sum();
        if consuming > 0 {
            return Err(BrokerError::precondition(format!(
                "consumer group '{group}' of queue '{queue}' has {consuming} members consuming: \
                 stop them before resetting its position"
            )));
        }
        let to = self.resolve_offset(stream.id, offset)?;
        let mut position = to;
        for view in views {
            position = self.store.reset_view(view.id, to)?;
        }
        Ok(position)
    }

    /// After the queues are restored: the views of every stream's groups
    /// (for listings and resets before their members come back); views of
    /// groupless consumers and of groups no longer recorded are deleted.
    pub(crate) fn restore_groups(&self) -> Result<(), BrokerError> {
        let meta = self.store.metadata().clone();
        for (record_key, record) in meta.scan::<GroupRecord>(GROUPS, "")? {
            let exists = self
                .vhost(&record.vhost)
                .and_then(|v| v.queue(&record.queue))
                .is_ok_and(|q| q.is_stream());
            if !exists {
                meta.remove(GROUPS, &record_key)?;
            }
        }
        let vhosts: Vec<Arc<Vhost>> = self.vhosts.read().unwrap().values().cloned().collect();
        for vhost in vhosts {
            for stream in vhost.streams() {
                for (id, name) in self.store.views(stream.id) {
                    let view_of = parse_view_name(&vhost.name, stream.name(), &name);
                    let recorded = view_of
                        .as_ref()
                        .and_then(|of| of.group.as_deref())
                        .is_some_and(|group| {
                            meta.get::<GroupRecord>(
                                GROUPS,
                                &key(&[&vhost.name, stream.name(), group]),
                            )
                            .ok()
                            .flatten()
                            .is_some()
                        });
                    match view_of {
                        Some(view_of) if recorded => {
                            let view = Arc::new(stream.view(id, view_of));
                            stream.views.lock().unwrap().insert(name, view);
                        }
                        _ => self.store.delete_queue(id)?,
                    }
                }
            }
        }
        Ok(())
    }

    /// Forgets the group records of a deleted stream.
    pub(crate) fn forget_groups(&self, vhost: &str, queue: &str) -> Result<(), BrokerError> {
        let meta = self.store.metadata();
        for (record_key, _) in meta.scan::<GroupRecord>(GROUPS, &key(&[vhost, queue, ""]))? {
            meta.remove(GROUPS, &record_key)?;
        }
        Ok(meta.flush()?)
    }

    /// `list groups`: a row per clustering group and per broadcasting
    /// member, with its position (everything below is acknowledged), lag
    /// (messages from there to the end) and deliveries in flight.
    pub(crate) fn group_rows(&self, vhost: &Vhost) -> Vec<Vec<Field>> {
        let text = |name: &str, value: &str| Field::new(name, Value::Text(value.into()));
        let int = |name: &str, value: u64| {
            Field::new(name, Value::Int(value.min(i64::MAX as u64) as i64))
        };
        let meta = self.store.metadata();
        let mut rows = Vec::new();
        for stream in vhost.streams() {
            let Ok(bounds) = self.store.stream_bounds(stream.id) else {
                continue;
            };
            let views: Vec<Arc<Queue>> = stream.views.lock().unwrap().values().cloned().collect();
            for view in views {
                let Some(ViewOf {
                    group: Some(group),
                    member,
                }) = &view.view_of
                else {
                    continue;
                };
                let mode = meta
                    .get::<GroupRecord>(GROUPS, &key(&[&vhost.name, stream.name(), group]))
                    .ok()
                    .flatten()
                    .map_or_else(|| "clustering".to_string(), |r| r.mode);
                let position = self.store.committed(view.id).unwrap_or(0).max(bounds.first);
                let unacked = self.store.stats(view.id).map_or(0, |s| s.unacked);
                rows.push(vec![
                    text("queue", stream.name()),
                    text("group", group),
                    text("mode", &mode),
                    text("member", member.as_deref().unwrap_or("")),
                    int("consumers", u64::from(view.consumer_count())),
                    int("position", position),
                    int("lag", bounds.end.saturating_sub(position)),
                    int("unacked", unacked),
                ]);
            }
        }
        rows
    }
}
