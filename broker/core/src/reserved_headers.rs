//! Headers only the broker writes: `x-switchyard-…` (where a forwarded
//! message came from and its place in that cell's stream, federation hops,
//! an outbox record's vhost and SET table). Another cell trusts them, and a
//! restart rebuilds the duplicate filter from them, so a client must never
//! be able to set them: a forged place would make the receiving cell drop
//! the genuine message that later takes it as a duplicate.
//!
//! Client publishes lose every reserved header (any case) before routing;
//! the broker's own writers replace a header rather than add a second
//! copy, so a reader that takes the first one reads the broker's.

use std::borrow::Cow;

use switchyard_protocol::{Field, Message, Value};

/// Every header whose name starts with this (ASCII case ignored) is the
/// broker's.
pub const RESERVED_HEADER_PREFIX: &str = "x-switchyard-";

pub(crate) fn is_reserved(name: &str) -> bool {
    let prefix = RESERVED_HEADER_PREFIX.as_bytes();
    name.as_bytes()
        .get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// `messages` without any reserved header; borrowed as they are when none
/// has one (the common case costs no copy).
pub(crate) fn without_reserved(messages: &[Message]) -> Cow<'_, [Message]> {
    let carries = |m: &Message| m.headers.iter().any(|f| is_reserved(&f.name));
    if !messages.iter().any(carries) {
        return Cow::Borrowed(messages);
    }
    Cow::Owned(
        messages
            .iter()
            .map(|message| {
                let mut message = message.clone();
                message.headers.retain(|f| !is_reserved(&f.name));
                message
            })
            .collect(),
    )
}

/// Sets header `name` to `value`, replacing every earlier one of that name.
pub(crate) fn set_header(message: &mut Message, name: &str, value: Value) {
    message
        .headers
        .retain(|f| !f.name.eq_ignore_ascii_case(name));
    message.headers.push(Field::new(name, value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_are_matched_without_case() {
        assert!(is_reserved("x-switchyard-forward-seq"));
        assert!(is_reserved("X-Switchyard-Forwarded-From"));
        assert!(!is_reserved("x-switch"));
        assert!(!is_reserved("x-set-key"));
        // Not a char boundary inside the prefix's length: no panic.
        assert!(!is_reserved("x-swïtchyard-a"));
    }

    #[test]
    fn only_reserved_headers_are_removed() {
        let mut message = Message::new("k", "body");
        message.headers = vec![
            Field::new("X-SWITCHYARD-FORWARD-SEQ", Value::Text("1/1".into())),
            Field::new("x-set-key", Value::Text("u".into())),
        ];
        let clean = without_reserved(std::slice::from_ref(&message));
        assert!(matches!(clean, Cow::Owned(_)));
        assert_eq!(clean[0].headers.len(), 1);
        assert_eq!(clean[0].headers[0].name, "x-set-key");
        let plain = [Message::new("k", "b")];
        assert!(matches!(without_reserved(&plain), Cow::Borrowed(_)));
    }

    #[test]
    fn set_header_replaces_every_earlier_copy() {
        let mut message = Message::new("k", "body");
        message.headers = vec![
            Field::new("x-switchyard-forward-seq", Value::Text("forged".into())),
            Field::new("X-Switchyard-Forward-Seq", Value::Text("forged".into())),
        ];
        set_header(
            &mut message,
            "x-switchyard-forward-seq",
            Value::Text("7/1".into()),
        );
        assert_eq!(message.headers.len(), 1);
        assert_eq!(message.headers[0].value, Value::Text("7/1".into()));
    }
}
