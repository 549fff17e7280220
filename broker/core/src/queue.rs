//! A queue as the broker runs it: its settings (parsed from the declare
//! arguments), its storage id, its consumers and the signal that wakes them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use switchyard_base::ratelimit::LogLimiter;
use switchyard_protocol::{Field, Value};
use tokio::sync::Notify;

use super::counters::QueueCounters;
use super::error::BrokerError;
use super::records::QueueRecord;
use super::stream::{StreamArguments, StreamSettings, ViewOf};
use switchyard_storage::{FlushMode, QueueId, QueueStats};

/// What to do when a publish would take a queue past `max-length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop (or dead-letter) the oldest ready message.
    DropHead,
    /// Refuse the publish (a `Refuse` confirm names the queue).
    RejectPublish,
    /// Refuse the publish, and dead-letter the refused message from this
    /// queue (reason `maxlen`), as RabbitMQ's `reject-publish-dlx`.
    RejectPublishDlx,
}

/// Queue arguments, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSettings {
    pub flush: FlushMode,
    pub message_ttl_ms: Option<u64>,
    pub max_length: Option<u64>,
    /// The most bytes (as the log holds the messages) the queue keeps ready.
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    /// Deleted once unused (no consumers, no get, no redeclare) this long.
    pub expires_ms: Option<u64>,
    /// Where a dead letter goes when its dead-letter exchange cannot take
    /// it (missing, its plugin failed): this queue, else the vhost's
    /// parking queue.
    pub dead_letter_fallback: Option<String>,
    /// The dead-letter policy plugin deciding this queue's deaths (default:
    /// the built-in `dead-letter` when a dead-letter exchange is set).
    pub dead_letter_policy: Option<String>,
    /// Redeliveries allowed: dead-lettered (reason `delivery-limit`) when
    /// returned more than this many times (RabbitMQ's `x-delivery-limit`).
    pub delivery_limit: Option<u64>,
    /// One consumer at a time receives (the first registered still there);
    /// the next takes over when it goes, its unacked messages first.
    pub single_active_consumer: bool,
    /// `queue-type = stream`: messages stay after they are consumed, for
    /// as long as the retention allows; consumers read at offsets, in
    /// consumer groups (stream.rs, groups.rs).
    pub stream: Option<StreamSettings>,
}

const KNOWN: &[&str] = &[
    "expires",
    "dead-letter-fallback",
    "flush",
    "message-ttl",
    "max-length",
    "max-length-bytes",
    "overflow",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "dead-letter-policy",
    "delivery-limit",
    "single-active-consumer",
    "queue-type",
    "max-age",
];

impl QueueSettings {
    /// Whether the queue has a length limit at all (without one, nothing
    /// need be counted on the publish path).
    pub fn has_limits(&self) -> bool {
        self.max_length.is_some() || self.max_length_bytes.is_some()
    }

    /// Whether a publish would go past a limit: the queue is at its
    /// max-length or max-length-bytes.
    pub fn is_full(&self, stats: &QueueStats) -> bool {
        self.max_length.is_some_and(|max| stats.ready >= max)
            || self
                .max_length_bytes
                .is_some_and(|max| stats.ready_bytes >= max)
    }

    /// Whether the queue holds more than a limit allows (drop-head drops
    /// its oldest until it does not).
    pub fn is_over(&self, stats: &QueueStats) -> bool {
        self.max_length.is_some_and(|max| stats.ready > max)
            || self
                .max_length_bytes
                .is_some_and(|max| stats.ready_bytes > max)
    }

    /// Whether this queue's dead messages go anywhere (a dead-letter
    /// exchange or policy): without either they are dropped unread.
    pub fn dead_letters(&self) -> bool {
        self.dead_letter_exchange.is_some() || self.dead_letter_policy.is_some()
    }

    /// Parses declare arguments (`x-` prefixes accepted, as in AMQP).
    pub fn parse(arguments: &[Field]) -> Result<Self, BrokerError> {
        let mut settings = QueueSettings {
            flush: FlushMode::Async,
            message_ttl_ms: None,
            max_length: None,
            max_length_bytes: None,
            overflow: Overflow::DropHead,
            dead_letter_exchange: None,
            dead_letter_routing_key: None,
            expires_ms: None,
            dead_letter_fallback: None,
            dead_letter_policy: None,
            delivery_limit: None,
            single_active_consumer: false,
            stream: None,
        };
        let mut unknown = Vec::new();
        let mut stream = StreamArguments::default();
        for field in arguments {
            let name = field.name.strip_prefix("x-").unwrap_or(&field.name);
            let text = || {
                field.value.as_text().ok_or_else(|| {
                    BrokerError::invalid_argument(format!(
                        "queue argument '{}' must be text",
                        field.name
                    ))
                })
            };
            let number = || match &field.value {
                Value::Int(i) if *i >= 0 => Ok(*i as u64),
                Value::Text(t) => t.parse::<u64>().map_err(|_| {
                    BrokerError::invalid_argument(format!(
                        "queue argument '{}' must be a non-negative integer, not '{t}'",
                        field.name
                    ))
                }),
                other => Err(BrokerError::invalid_argument(format!(
                    "queue argument '{}' must be a non-negative integer, not {other:?}",
                    field.name
                ))),
            };
            match name {
                "flush" => {
                    settings.flush = match text()?.as_str() {
                        "async" => FlushMode::Async,
                        "sync" => FlushMode::Sync,
                        other => {
                            return Err(BrokerError::invalid_argument(format!(
                                "queue argument 'flush' must be 'async' or 'sync', not '{other}'"
                            )));
                        }
                    }
                }
                "message-ttl" => settings.message_ttl_ms = Some(number()?),
                "max-length" => settings.max_length = Some(number()?),
                "max-length-bytes" => settings.max_length_bytes = Some(number()?),
                "overflow" => {
                    settings.overflow = match text()?.as_str() {
                        "drop-head" => Overflow::DropHead,
                        "reject-publish" => Overflow::RejectPublish,
                        "reject-publish-dlx" => Overflow::RejectPublishDlx,
                        other => {
                            return Err(BrokerError::invalid_argument(format!(
                                "queue argument 'overflow' must be 'drop-head', 'reject-publish' \
                                 or 'reject-publish-dlx', not '{other}'"
                            )));
                        }
                    }
                }
                "queue-type" => stream.queue_type = Some(text()?),
                "max-age" => stream.max_age = Some(field.value.clone()),
                "dead-letter-exchange" => settings.dead_letter_exchange = Some(text()?),
                "dead-letter-routing-key" => settings.dead_letter_routing_key = Some(text()?),
                "dead-letter-fallback" => settings.dead_letter_fallback = Some(text()?),
                "dead-letter-policy" => settings.dead_letter_policy = Some(text()?),
                "single-active-consumer" => {
                    settings.single_active_consumer = match &field.value {
                        Value::Bool(on) => *on,
                        Value::Text(t) if t == "true" => true,
                        Value::Text(t) if t == "false" => false,
                        other => {
                            return Err(BrokerError::invalid_argument(format!(
                                "queue argument 'single-active-consumer' must be true or false, not {other:?}"
                            )));
                        }
                    }
                }
                "delivery-limit" => match number()? {
                    0 => {
                        return Err(BrokerError::invalid_argument(
                            "queue argument 'delivery-limit' must be at least 1",
                        ));
                    }
                    n => settings.delivery_limit = Some(n),
                },
                "expires" => match number()? {
                    0 => {
                        return Err(BrokerError::invalid_argument(
                            "queue argument 'expires' must be at least 1 (ms)",
                        ));
                    }
                    ms => settings.expires_ms = Some(ms),
                },
                _ => unknown.push(field.name.as_str()),
            }
        }
        stream.apply(&mut settings, arguments)?;
        // A dead-letter policy reads the queue's arguments: what the broker
        // does not know is the policy's (`x-retry-max`…). Without one, an
        // unknown argument is a typo, refused.
        if let Some(name) = unknown.first()
            && !settings.dead_letters()
        {
            return Err(BrokerError::invalid_argument(format!(
                "unknown queue argument '{name}' (known: {}; others are accepted for a \
                 dead-letter policy, with dead-letter-policy or dead-letter-exchange)",
                KNOWN.join(", ")
            )));
        }
        Ok(settings)
    }
}

/// Who consumes from a queue.
#[derive(Default)]
struct Consumers {
    /// tag → connection id.
    tags: HashMap<String, u64>,
    /// Tags in the order they registered: the first is the single active
    /// consumer of a `single-active-consumer` queue.
    order: Vec<String>,
    exclusive: bool,
    ever_consumed: bool,
}

pub struct Queue {
    pub record: QueueRecord,
    pub id: QueueId,
    pub settings: QueueSettings,
    /// The connection owning an exclusive queue.
    pub owner: Option<u64>,
    /// Signalled when messages become ready (publish, requeue, release);
    /// a stream shares it with its views.
    pub ready: Arc<Notify>,
    /// Signalled when the single active consumer goes (the next takes over).
    pub active_changed: Notify,
    consumers: Mutex<Consumers>,
    /// For a view: whose position in its stream it is.
    pub view_of: Option<ViewOf>,
    /// Totals since the broker started (a view's count as its stream's).
    pub counters: Arc<QueueCounters>,
    /// For a stream: its views in use or known, by store name.
    pub(crate) views: Mutex<HashMap<String, Arc<Queue>>>,
    deleted: AtomicBool,
    /// Messages skipped because the store could not read them.
    corrupt: AtomicU64,
    /// Dead letters kept in a fallback queue because their policy or
    /// exchange failed; their log lines, one a second.
    parked: AtomicU64,
    park_log: Mutex<LogLimiter>,
    /// When it was last used (declared, consumed from, read by `get`, or
    /// left by its last consumer), by the broker's clock: what `expires`
    /// counts from.
    last_used_ms: AtomicU64,
    /// The last use written to the metadata (durable expiring queues), so
    /// the sweep writes only when it changed.
    recorded_use_ms: AtomicU64,
}

impl Queue {
    pub fn new(
        record: QueueRecord,
        id: QueueId,
        settings: QueueSettings,
        owner: Option<u64>,
        last_used_ms: u64,
    ) -> Self {
        Queue {
            record,
            id,
            settings,
            owner,
            ready: Arc::new(Notify::new()),
            active_changed: Notify::new(),
            consumers: Mutex::new(Consumers::default()),
            view_of: None,
            views: Mutex::new(HashMap::new()),
            counters: Arc::default(),
            deleted: AtomicBool::new(false),
            corrupt: AtomicU64::new(0),
            parked: AtomicU64::new(0),
            park_log: Mutex::new(LogLimiter::new(std::time::Duration::from_secs(1))),
            last_used_ms: AtomicU64::new(last_used_ms),
            recorded_use_ms: AtomicU64::new(0),
        }
    }

    /// A view of this stream: store queue `id`, read by consumers as if it
    /// were this queue (same name, settings and ready signal).
    pub(crate) fn view(&self, id: QueueId, view_of: ViewOf) -> Queue {
        let mut view = Queue::new(
            self.record.clone(),
            id,
            self.settings.clone(),
            self.owner,
            self.last_used_ms(),
        );
        view.ready = self.ready.clone();
        view.counters = self.counters.clone();
        view.view_of = Some(view_of);
        view
    }

    /// The queue was used at `now_ms`: its `expires` lease starts again.
    pub fn touch(&self, now_ms: u64) {
        self.last_used_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    pub fn last_used_ms(&self) -> u64 {
        self.last_used_ms.load(Ordering::Relaxed)
    }

    /// Marks `ms` as the recorded last use; whether it differed from the
    /// one recorded before (then it must be written).
    pub(crate) fn note_recorded_use(&self, ms: u64) -> bool {
        self.recorded_use_ms.swap(ms, Ordering::Relaxed) != ms
    }

    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// Refuses (RESOURCE_LOCKED) a connection other than the owner of an
    /// exclusive queue: it may not consume, get, redeclare or delete it.
    pub fn check_owner(&self, connection: u64) -> Result<(), BrokerError> {
        match self.owner {
            Some(owner) if owner != connection => Err(BrokerError::new(
                switchyard_protocol::code::RESOURCE_LOCKED,
                format!("queue '{}' is exclusive to another connection", self.name()),
            )),
            _ => Ok(()),
        }
    }

    /// Registers a consumer; refused if someone holds the queue exclusively
    /// or an exclusive consumer is asked for while others consume.
    pub fn add_consumer(
        &self,
        tag: &str,
        connection: u64,
        exclusive: bool,
    ) -> Result<(), BrokerError> {
        let mut consumers = self.consumers.lock().unwrap();
        if consumers.exclusive {
            return Err(BrokerError::new(
                switchyard_protocol::code::ACCESS_REFUSED,
                format!("queue '{}' has an exclusive consumer", self.name()),
            ));
        }
        if exclusive && !consumers.tags.is_empty() {
            return Err(BrokerError::new(
                switchyard_protocol::code::ACCESS_REFUSED,
                format!(
                    "cannot consume queue '{}' exclusively: it has {} consumers",
                    self.name(),
                    consumers.tags.len()
                ),
            ));
        }
        if consumers.tags.insert(tag.to_string(), connection).is_some() {
            return Err(BrokerError::new(
                switchyard_protocol::code::NOT_ALLOWED,
                format!(
                    "consumer tag '{tag}' is already in use on queue '{}'",
                    self.name()
                ),
            ));
        }
        consumers.exclusive = exclusive;
        consumers.ever_consumed = true;
        consumers.order.push(tag.to_string());
        Ok(())
    }

    /// Removes a consumer; true when an auto-delete queue (not a view)
    /// just lost its last one.
    pub fn remove_consumer(&self, tag: &str) -> bool {
        let mut consumers = self.consumers.lock().unwrap();
        if consumers.tags.remove(tag).is_some() {
            consumers.exclusive = false;
        }
        let was_active = consumers.order.first().is_some_and(|t| t == tag);
        consumers.order.retain(|t| t != tag);
        if was_active {
            self.active_changed.notify_waiters();
        }
        self.view_of.is_none()
            && self.record.auto_delete
            && consumers.ever_consumed
            && consumers.tags.is_empty()
    }

    /// Whether consumer `tag` may receive now: always, unless the queue has
    /// a single active consumer and it is another one.
    pub fn is_active_consumer(&self, tag: &str) -> bool {
        !self.settings.single_active_consumer
            || self
                .consumers
                .lock()
                .unwrap()
                .order
                .first()
                .is_some_and(|t| t == tag)
    }

    /// The single active consumer's tag, for listings.
    pub fn active_consumer(&self) -> Option<String> {
        if !self.settings.single_active_consumer {
            return None;
        }
        self.consumers.lock().unwrap().order.first().cloned()
    }

    /// Its consumers (a stream's: those of all its views).
    pub fn consumer_count(&self) -> u32 {
        let own = self.consumers.lock().unwrap().tags.len() as u32;
        let views: u32 = (self.views.lock().unwrap().values())
            .map(|view| view.consumer_count())
            .sum();
        own + views
    }

    /// Marks it (and a stream's views) deleted: its consumers end.
    pub fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
        for view in self.views.lock().unwrap().values() {
            view.mark_deleted();
        }
        self.ready.notify_waiters();
    }

    pub fn count_corrupt(&self) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
    }

    /// A dead letter of this queue was kept in a fallback queue: `Some(n)`
    /// when it should be logged (`n` more since the last line), `None` to
    /// stay quiet (a failing policy does not flood the log).
    pub(crate) fn note_parked(&self) -> Option<u64> {
        self.parked.fetch_add(1, Ordering::Relaxed);
        self.park_log
            .lock()
            .unwrap()
            .admit(std::time::Instant::now())
    }

    /// How many dead letters were kept in a fallback queue since the
    /// broker started.
    pub fn parked(&self) -> u64 {
        self.parked.load(Ordering::Relaxed)
    }

    /// How many unreadable messages were skipped since the broker started.
    pub fn corrupt_skipped(&self) -> u64 {
        self.corrupt.load(Ordering::Relaxed)
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_parsed_with_or_without_the_x_prefix() {
        let s = QueueSettings::parse(&[
            Field::new("flush", Value::Text("sync".into())),
            Field::new("x-max-length", Value::Int(10)),
            Field::new("overflow", Value::Text("reject-publish".into())),
            Field::new("message-ttl", Value::Text("500".into())),
        ])
        .unwrap();
        assert_eq!(s.flush, FlushMode::Sync);
        assert_eq!(s.max_length, Some(10));
        assert_eq!(s.overflow, Overflow::RejectPublish);
        assert_eq!(s.message_ttl_ms, Some(500));
    }

    #[test]
    fn bad_arguments_are_named() {
        let e = QueueSettings::parse(&[Field::new("flush", Value::Text("sometimes".into()))])
            .unwrap_err();
        assert!(
            e.message.contains("'flush' must be 'async' or 'sync'"),
            "{e}"
        );
        let e = QueueSettings::parse(&[Field::new("max-lenght", Value::Int(1))]).unwrap_err();
        assert!(
            e.message.contains("unknown queue argument 'max-lenght'"),
            "{e}"
        );
        let e = QueueSettings::parse(&[Field::new("max-length", Value::Int(-1))]).unwrap_err();
        assert!(e.message.contains("non-negative"), "{e}");
    }
}
