//! Where a consumer of a stream queue starts, and how a consumer group
//! shares a stream (docs/CONSUMPTION.md).

use crate::error::DecodeError;
use crate::wire::{Reader, Wire, Writer};

/// A position in a stream: where a new group (or a consumer without one)
/// starts. A group that exists resumes at its own durable position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamOffset {
    /// The first message the stream still retains.
    First,
    /// The last message stored (and everything after it).
    Last,
    /// Only messages published from now on.
    #[default]
    Next,
    /// The message at this offset (clamped to what is retained).
    Offset(u64),
    /// The first message published at or after this time (ms since the
    /// Unix epoch).
    Timestamp(u64),
}

impl StreamOffset {
    /// Parses `first`, `last`, `next`, an offset, or a time: RFC 3339
    /// (`2026-11-30T06:00:00Z`), `@<ms since the epoch>`, or an age
    /// (`-10m`: ten minutes ago, counted from `now_ms`).
    pub fn parse(text: &str, now_ms: u64) -> Result<StreamOffset, String> {
        let bad = |why: String| {
            format!(
                "offset '{text}': {why} (use first, last, next, a number, an RFC 3339 time, \
                 @<ms since the epoch> or -<age> like -10m)"
            )
        };
        Ok(match text {
            "first" => StreamOffset::First,
            "last" => StreamOffset::Last,
            "next" => StreamOffset::Next,
            _ if text.starts_with('@') => StreamOffset::Timestamp(
                text[1..]
                    .parse()
                    .map_err(|e| bad(format!("not a time in ms: {e}")))?,
            ),
            _ if text.starts_with('-') => {
                let age = humantime::parse_duration(&text[1..]).map_err(|e| bad(e.to_string()))?;
                StreamOffset::Timestamp(now_ms.saturating_sub(age.as_millis() as u64))
            }
            _ if text.bytes().all(|b| b.is_ascii_digit()) => StreamOffset::Offset(
                text.parse()
                    .map_err(|e| bad(format!("not an offset: {e}")))?,
            ),
            _ => {
                let time = humantime::parse_rfc3339_weak(text).map_err(|e| bad(e.to_string()))?;
                let ms = time
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|_| bad("before 1970".into()))?
                    .as_millis() as u64;
                StreamOffset::Timestamp(ms)
            }
        })
    }
}

impl std::fmt::Display for StreamOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamOffset::First => f.write_str("first"),
            StreamOffset::Last => f.write_str("last"),
            StreamOffset::Next => f.write_str("next"),
            StreamOffset::Offset(n) => write!(f, "{n}"),
            StreamOffset::Timestamp(ms) => write!(f, "@{ms}"),
        }
    }
}

/// Kind byte, then a u64 (0 for the kinds without a value).
impl Wire for StreamOffset {
    fn put(&self, w: &mut Writer<'_>) {
        let (kind, value) = match *self {
            StreamOffset::First => (1u8, 0),
            StreamOffset::Last => (2, 0),
            StreamOffset::Next => (3, 0),
            StreamOffset::Offset(n) => (4, n),
            StreamOffset::Timestamp(ms) => (5, ms),
        };
        w.u8(kind);
        w.u64(value);
    }
    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let kind = r.u8()?;
        let value = r.u64()?;
        Ok(match kind {
            1 => StreamOffset::First,
            2 => StreamOffset::Last,
            3 => StreamOffset::Next,
            4 => StreamOffset::Offset(value),
            5 => StreamOffset::Timestamp(value),
            other => {
                return Err(DecodeError::Invalid(format!(
                    "stream offset kind {other} is not 1..=5"
                )));
            }
        })
    }
}

/// How the members of a consumer group share a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupMode {
    /// The members share one position: each message goes to one member
    /// (RocketMQ clustering, a Kafka consumer group).
    #[default]
    Clustering,
    /// Each member has its own position and receives every message
    /// (RocketMQ broadcasting).
    Broadcasting,
}

impl GroupMode {
    pub fn name(self) -> &'static str {
        match self {
            GroupMode::Clustering => "clustering",
            GroupMode::Broadcasting => "broadcasting",
        }
    }
}

impl Wire for GroupMode {
    fn put(&self, w: &mut Writer<'_>) {
        w.u8(match self {
            GroupMode::Clustering => 1,
            GroupMode::Broadcasting => 2,
        });
    }
    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        match r.u8()? {
            1 => Ok(GroupMode::Clustering),
            2 => Ok(GroupMode::Broadcasting),
            other => Err(DecodeError::Invalid(format!(
                "group mode {other} is not 1 (clustering) or 2 (broadcasting)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_and_name_what_is_wrong() {
        let now = 1_000_000;
        assert_eq!(StreamOffset::parse("first", now), Ok(StreamOffset::First));
        assert_eq!(StreamOffset::parse("42", now), Ok(StreamOffset::Offset(42)));
        assert_eq!(
            StreamOffset::parse("@123", now),
            Ok(StreamOffset::Timestamp(123))
        );
        assert_eq!(
            StreamOffset::parse("-10s", now),
            Ok(StreamOffset::Timestamp(990_000))
        );
        assert_eq!(
            StreamOffset::parse("1970-01-01T00:00:01Z", now),
            Ok(StreamOffset::Timestamp(1000))
        );
        let e = StreamOffset::parse("yesterday", now).unwrap_err();
        assert!(e.contains("offset 'yesterday'"), "{e}");
    }
}
