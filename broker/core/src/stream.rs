//! Stream queues (`queue-type = stream`): messages stay after they are
//! consumed, for as long as the retention allows (`max-age`,
//! `max-length-bytes`; enforced by the store in whole log segments), and
//! consumers read them at offsets through views — a consumer group's
//! durable position, or a groupless consumer's own (groups.rs). Here: the
//! stream's settings, where an offset lands, and the retention sweep.

use std::sync::Arc;

use switchyard_protocol::{StreamOffset, Value};
use switchyard_storage::QueueId;

use super::error::BrokerError;
use super::queue::{Queue, QueueSettings};
use super::{Broker, Vhost};

/// Header of a message delivered from a stream: its offset in the stream
/// (what `--offset N` and `group reset --to N` take).
pub const STREAM_OFFSET_HEADER: &str = "x-stream-offset";

/// A stream's retention: messages older than `max_age_ms` or beyond
/// `max_bytes` (the oldest first) leave it, a whole segment at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamSettings {
    pub max_age_ms: Option<u64>,
    pub max_bytes: Option<u64>,
}

/// Whose position in its stream a view is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewOf {
    /// The consumer group; `None` for a consumer without a group (its
    /// position lives as long as it does).
    pub group: Option<String>,
    /// A broadcasting group's member.
    pub member: Option<String>,
}

/// The stream arguments as declared, before they are checked.
#[derive(Default)]
pub(crate) struct StreamArguments {
    pub queue_type: Option<String>,
    pub max_age: Option<Value>,
}

/// Arguments a stream refuses, with why.
const NOT_FOR_STREAMS: &str = "a stream keeps messages for every consumer group; \
     per-message TTL, length limits, dead-lettering, delivery limits, single \
     active consumers and expiry are for classic queues (use max-age and \
     max-length-bytes for retention, a clustering group for one consumer at a time)";

impl StreamArguments {
    /// Makes `settings` a stream's if `queue-type` says so; refuses
    /// arguments that mean nothing to a stream.
    pub(crate) fn apply(
        self,
        settings: &mut QueueSettings,
        arguments: &[switchyard_protocol::Field],
    ) -> Result<(), BrokerError> {
        match self.queue_type.as_deref() {
            None | Some("classic") => {
                if self.max_age.is_some() {
                    return Err(BrokerError::invalid_argument(
                        "queue argument 'max-age' needs queue-type = stream",
                    ));
                }
                return Ok(());
            }
            Some("stream") => {}
            Some(other) => {
                return Err(BrokerError::invalid_argument(format!(
                    "queue argument 'queue-type' must be 'classic' or 'stream', not '{other}'"
                )));
            }
        }
        let max_age_ms = self.max_age.as_ref().map(parse_age).transpose()?;
        const REFUSED: &[&str] = &[
            "message-ttl",
            "max-length",
            "overflow",
            "dead-letter-exchange",
            "dead-letter-routing-key",
            "dead-letter-fallback",
            "dead-letter-policy",
            "delivery-limit",
            "single-active-consumer",
            "expires",
        ];
        for field in arguments {
            let name = field.name.strip_prefix("x-").unwrap_or(&field.name);
            if REFUSED.contains(&name) {
                return Err(BrokerError::invalid_argument(format!(
                    "queue argument '{}' is not for a stream queue: {NOT_FOR_STREAMS}",
                    field.name
                )));
            }
            if !matches!(
                name,
                "queue-type" | "max-age" | "max-length-bytes" | "flush"
            ) {
                return Err(BrokerError::invalid_argument(format!(
                    "unknown stream queue argument '{}' (known: queue-type, max-age, \
                     max-length-bytes, flush)",
                    field.name
                )));
            }
        }
        settings.stream = Some(StreamSettings {
            max_age_ms,
            max_bytes: settings.max_length_bytes.take(),
        });
        Ok(())
    }
}

/// `max-age`: milliseconds, or a duration with a unit as RabbitMQ writes
/// it (`7D`, `12h`, `30m`, `10s`; `Y`, `M` for years and months) or as
/// humantime does (`1day 2h`).
fn parse_age(value: &Value) -> Result<u64, BrokerError> {
    let bad =
        |why: String| BrokerError::invalid_argument(format!("queue argument 'max-age': {why}"));
    let text = match value {
        Value::Int(ms) if *ms > 0 => return Ok(*ms as u64),
        Value::Text(text) => text.trim(),
        other => {
            return Err(bad(format!(
                "must be a duration like 7D or 12h, not {other:?}"
            )));
        }
    };
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit_ms: Option<u64> = match &text[digits.len()..] {
        "" => Some(1),
        "Y" => Some(365 * 86_400_000),
        "M" => Some(30 * 86_400_000),
        "D" => Some(86_400_000),
        "h" => Some(3_600_000),
        "m" => Some(60_000),
        "s" => Some(1000),
        _ => None,
    };
    let ms = match (unit_ms, digits.parse::<u64>()) {
        (Some(unit), Ok(n)) => n.saturating_mul(unit),
        _ => humantime::parse_duration(text)
            .map_err(|e| bad(format!("'{text}' is not a duration: {e}")))?
            .as_millis() as u64,
    };
    if ms == 0 {
        return Err(bad("must be more than 0".into()));
    }
    Ok(ms)
}

impl Queue {
    pub fn is_stream(&self) -> bool {
        self.settings.stream.is_some()
    }

    /// Refuses what a stream does not do (`get`, purge): `doing` names it.
    pub(crate) fn refuse_if_stream(&self, doing: &str) -> Result<(), BrokerError> {
        match self.is_stream() {
            true => Err(BrokerError::precondition(format!(
                "queue '{}' is a stream: {doing} is not possible; consume it with an \
                 offset or in a consumer group",
                self.name()
            ))),
            false => Ok(()),
        }
    }
}

impl Broker {
    /// The offset `offset` names in stream `stream`.
    pub(crate) fn resolve_offset(
        &self,
        stream: QueueId,
        offset: StreamOffset,
    ) -> Result<u64, BrokerError> {
        let bounds = self.store.stream_bounds(stream)?;
        Ok(match offset {
            StreamOffset::First => bounds.first,
            StreamOffset::Last => bounds.end.saturating_sub(1).max(bounds.first),
            StreamOffset::Next => bounds.end,
            StreamOffset::Offset(n) => n,
            StreamOffset::Timestamp(ms) => self.store.offset_at_time(stream, ms)?,
        })
    }

    /// Applies every stream's retention (the sweeper calls this); returns
    /// the messages that left.
    pub fn apply_retention(&self) -> u64 {
        let vhosts: Vec<Arc<Vhost>> = self.vhosts.read().unwrap().values().cloned().collect();
        let mut cut = 0;
        for vhost in vhosts {
            for stream in vhost.streams() {
                let Some(retention) = &stream.settings.stream else {
                    continue;
                };
                match self.store.apply_retention(
                    stream.id,
                    retention.max_age_ms,
                    retention.max_bytes,
                    self.now_ms(),
                ) {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::debug!(queue = stream.name(), messages = n, "stream retention");
                        cut += n;
                    }
                    Err(e) => {
                        tracing::warn!(queue = stream.name(), error = %e, "stream retention failed")
                    }
                }
            }
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_rabbitmq_and_humantime_write_them() {
        assert_eq!(
            parse_age(&Value::Text("7D".into())).unwrap(),
            7 * 86_400_000
        );
        assert_eq!(
            parse_age(&Value::Text("12h".into())).unwrap(),
            12 * 3_600_000
        );
        assert_eq!(parse_age(&Value::Text("1500".into())).unwrap(), 1500);
        assert_eq!(parse_age(&Value::Int(5)).unwrap(), 5);
        assert_eq!(
            parse_age(&Value::Text("1day 1s".into())).unwrap(),
            86_401_000
        );
        let e = parse_age(&Value::Text("soon".into())).unwrap_err();
        assert!(e.message.contains("'soon' is not a duration"), "{e}");
    }
}
