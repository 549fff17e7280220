//! A message's death history, as RabbitMQ keeps it in `x-death`: one entry
//! per (queue, reason), most recent first, each with how often the message
//! died that way, when first and last, the exchange it had been published
//! to and its routing keys. Carried in the `x-death` header as a JSON array
//! (the wire's values have no nested tables), so any client can read it:
//!
//! ```json
//! [{"queue":"work","reason":"rejected","count":2,"time-first":1700000000000,
//!   "time-last":1700000004000,"exchange":"orders","routing-keys":["eu.new"]}]
//! ```

use serde::{Deserialize, Serialize};
use switchyard_protocol::{Field, Value};

/// The header that carries the history.
pub const HEADER: &str = "x-death";

/// One way a message died, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Death {
    pub queue: String,
    pub reason: String,
    pub count: u64,
    /// Milliseconds since the epoch, by the broker's clock.
    pub time_first: u64,
    pub time_last: u64,
    pub exchange: String,
    pub routing_keys: Vec<String>,
}

/// The history in `headers`; empty if absent or not a history (a client
/// may set any header: a bogus one is replaced, never trusted).
pub fn read(headers: &[Field]) -> Vec<Death> {
    match switchyard_protocol::find(headers, HEADER) {
        Some(Value::Text(json)) => serde_json::from_str(json).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The header carrying `history`.
pub fn to_header(history: &[Death]) -> Field {
    let json = serde_json::to_string(history).expect("a death history serializes");
    Field::new(HEADER, Value::Text(json))
}

/// One more death in `queue` for `reason`: the entry for that pair counts
/// it (and moves to the front), or a new one is put first.
pub fn record(history: &mut Vec<Death>, death: Death) {
    match history
        .iter()
        .position(|d| d.queue == death.queue && d.reason == death.reason)
    {
        Some(i) => {
            let mut entry = history.remove(i);
            entry.count += 1;
            entry.time_last = death.time_last;
            history.insert(0, entry);
        }
        None => history.insert(0, death),
    }
}

/// Whether dying in `queue` for `reason` closes a cycle nobody rejected
/// in: the message died in `queue` before, and every death so far (this
/// one included) was automatic (expiry, max-length…). RabbitMQ drops such
/// messages instead of letting them circle for ever; a cycle with a
/// rejection in it is a consumer's retry loop and goes on.
pub fn is_automatic_cycle(history: &[Death], queue: &str, reason: &str) -> bool {
    reason != "rejected"
        && history.iter().any(|d| d.queue == queue)
        && history.iter().all(|d| d.reason != "rejected")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn death(queue: &str, reason: &str, at: u64) -> Death {
        Death {
            queue: queue.into(),
            reason: reason.into(),
            count: 1,
            time_first: at,
            time_last: at,
            exchange: "x".into(),
            routing_keys: vec!["k".into()],
        }
    }

    #[test]
    fn the_same_queue_and_reason_count_up_and_move_first() {
        let mut history = Vec::new();
        record(&mut history, death("work", "rejected", 1));
        record(&mut history, death("retry", "expired", 2));
        record(&mut history, death("work", "rejected", 3));
        assert_eq!(history.len(), 2);
        assert_eq!((history[0].queue.as_str(), history[0].count), ("work", 2));
        assert_eq!((history[0].time_first, history[0].time_last), (1, 3));
        assert_eq!((history[1].queue.as_str(), history[1].count), ("retry", 1));
    }

    #[test]
    fn the_history_survives_its_header_and_bogus_headers_are_ignored() {
        let history = vec![death("work", "expired", 5)];
        assert_eq!(read(&[to_header(&history)]), history);
        let bogus = Field::new(HEADER, Value::Text("not json".into()));
        assert!(read(&[bogus]).is_empty());
        assert!(read(&[Field::new(HEADER, Value::Int(3))]).is_empty());
    }

    #[test]
    fn only_cycles_without_a_rejection_are_automatic() {
        let expired = vec![death("b", "expired", 2), death("a", "expired", 1)];
        assert!(is_automatic_cycle(&expired, "a", "expired"));
        assert!(!is_automatic_cycle(&expired, "c", "expired"), "not a cycle");
        assert!(!is_automatic_cycle(&expired, "a", "rejected"));
        let retried = vec![death("retry", "expired", 2), death("work", "rejected", 1)];
        assert!(!is_automatic_cycle(&retried, "retry", "expired"));
    }
}
