//! Round trips for every frame shape, and the decoder's refusal (never a
//! panic) of arbitrary, truncated and oversized input.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use switchyard_protocol::{
    Codec, DecodeError, Field, Frame, GroupMode, Message, Properties, StreamOffset, TxOutcome,
    Value,
};

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Void),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(|b| Value::Float(f64::from_bits(b & !(0x7ff << 52)))),
        ".{0,20}".prop_map(Value::Text),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(|b| Value::Binary(b.into())),
        any::<u64>().prop_map(Value::Timestamp),
        proptest::collection::vec(".{0,8}", 0..4).prop_map(Value::TextList),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        ".{0,30}",
        0u8..4,
        proptest::option::of(".{0,10}"),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u8>()),
        proptest::collection::vec((".{0,10}", value()), 0..4),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(
            |(key, flags, id, expiration, priority, headers, body)| Message {
                routing_key: key,
                flags,
                properties: Properties {
                    message_id: id,
                    expiration,
                    priority,
                    ..Properties::default()
                },
                headers: headers.into_iter().map(|(n, v)| Field::new(n, v)).collect(),
                body: body.into(),
            },
        )
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<u64>(), ".{0,10}", message()).prop_map(|(seq, exchange, message)| {
            Frame::Publish {
                seq,
                exchange,
                message,
            }
        }),
        (
            any::<u64>(),
            ".{0,10}",
            proptest::collection::vec(message(), 0..5)
        )
            .prop_map(|(first_seq, exchange, messages)| Frame::PublishBatch {
                first_seq,
                exchange,
                messages
            }),
        (
            any::<u32>(),
            ".{0,10}",
            ".{0,10}",
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(
                |(req, name, kind, durable, passive)| Frame::DeclareExchange {
                    req,
                    name,
                    kind,
                    durable,
                    auto_delete: false,
                    passive,
                    arguments: vec![Field::new("x", Value::Int(1))],
                }
            ),
        proptest::collection::vec((0u64..100, 0u64..100), 0..5).prop_map(|r| Frame::Confirm {
            ranges: r.into_iter().map(|(a, b)| (a.min(b), a.max(b))).collect()
        }),
        proptest::collection::vec((0u64..100, 0u64..100), 0..5).prop_map(|r| Frame::Duplicate {
            ranges: r.into_iter().map(|(a, b)| (a.min(b), a.max(b))).collect()
        }),
        (".{0,10}", any::<u64>(), any::<bool>(), message()).prop_map(
            |(tag, delivery_tag, redelivered, message)| Frame::Deliver {
                tag,
                delivery_tag,
                redelivered,
                exchange: "ex".into(),
                message,
            }
        ),
        (
            any::<u32>(),
            proptest::collection::vec(proptest::collection::vec((".{0,5}", value()), 0..3), 0..3)
        )
            .prop_map(|(req, rows)| Frame::QueryReply {
                req,
                rows: rows
                    .into_iter()
                    .map(|r| r.into_iter().map(|(n, v)| Field::new(n, v)).collect())
                    .collect()
            }),
        (any::<u16>(), ".{0,40}").prop_map(|(code, reason)| Frame::Close { code, reason }),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|data| Frame::PluginChunk {
            data: Bytes::from(data)
        }),
        (
            any::<u32>(),
            ".{0,10}",
            proptest::collection::vec((".{0,5}", value()), 0..3),
            any::<bool>()
        )
            .prop_map(|(req, name, config, activate)| Frame::PluginLoad {
                req,
                name,
                config: config.into_iter().map(|(n, v)| Field::new(n, v)).collect(),
                activate
            }),
        (any::<u32>(), ".{0,10}", ".{0,10}")
            .prop_map(|(req, name, version)| { Frame::PluginActivate { req, name, version } }),
        (any::<u32>(), ".{0,10}", any::<bool>(), stream_offset()).prop_map(
            |(req, group, broadcast, offset)| Frame::ConsumeStream {
                req,
                queue: "s".into(),
                tag: String::new(),
                prefetch: 10,
                auto_ack: false,
                group,
                mode: if broadcast {
                    GroupMode::Broadcasting
                } else {
                    GroupMode::Clustering
                },
                member: "m".into(),
                offset,
            }
        ),
        (any::<u32>(), any::<u64>(), 1u8..4).prop_map(|(req, id, outcome)| Frame::TxEnd {
            req,
            id,
            outcome: match outcome {
                1 => TxOutcome::Commit,
                2 => TxOutcome::Rollback,
                _ => TxOutcome::Unknown,
            },
        }),
        (any::<u64>(), ".{0,10}", message()).prop_map(|(id, group, message)| Frame::TxCheck {
            id,
            group,
            exchange: "x".into(),
            message,
        }),
        (any::<u32>(), stream_offset()).prop_map(|(req, offset)| Frame::ResetGroup {
            req,
            queue: "s".into(),
            group: "g".into(),
            member: String::new(),
            offset,
        }),
    ]
}

fn stream_offset() -> impl Strategy<Value = StreamOffset> {
    prop_oneof![
        Just(StreamOffset::First),
        Just(StreamOffset::Last),
        Just(StreamOffset::Next),
        any::<u64>().prop_map(StreamOffset::Offset),
        any::<u64>().prop_map(StreamOffset::Timestamp),
    ]
}

proptest! {
    #[test]
    fn every_frame_round_trips(frames in proptest::collection::vec(frame(), 1..6)) {
        let codec = Codec::new(1 << 20);
        let mut buf = BytesMut::new();
        for f in &frames {
            codec.encode(f, &mut buf).unwrap();
        }
        // Feed the stream one byte at a time: framing must not depend on chunking.
        let bytes = buf.freeze();
        let mut input = BytesMut::new();
        let mut decoded = Vec::new();
        for b in bytes.iter() {
            input.extend_from_slice(&[*b]);
            while let Some(f) = codec.decode(&mut input).unwrap() {
                decoded.push(f);
            }
        }
        prop_assert_eq!(decoded, frames);
        prop_assert!(input.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let codec = Codec::new(4096);
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(_)) = codec.decode(&mut buf) {}
    }

    #[test]
    fn corrupted_frames_never_panic(f in frame(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let codec = Codec::new(1 << 20);
        let mut buf = BytesMut::new();
        codec.encode(&f, &mut buf).unwrap();
        for (at, byte) in flips {
            let at = 4 + at % (buf.len() - 4);
            buf[at] ^= byte | 1;
        }
        let _ = codec.decode(&mut buf);
    }

    #[test]
    fn truncated_payloads_are_errors(f in frame(), cut in any::<usize>()) {
        let mut buf = BytesMut::new();
        Codec::new(1 << 20).encode(&f, &mut buf).unwrap();
        let payload = buf.split_off(4).freeze();
        let cut = cut % payload.len();
        prop_assert!(Frame::decode(payload.slice(..cut)).is_err());
    }
}

#[test]
fn oversized_frames_are_refused_from_the_length_alone() {
    let codec = Codec::new(1024);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&(1_000_000u32).to_le_bytes());
    assert_eq!(
        codec.decode(&mut buf),
        Err(DecodeError::TooLarge {
            len: 1_000_000,
            max: 1024
        })
    );
}

#[test]
fn encoding_refuses_frames_over_the_limit_and_writes_nothing() {
    let codec = Codec::new(100);
    let mut buf = BytesMut::new();
    let big = Frame::Publish {
        seq: 1,
        exchange: String::new(),
        message: Message::new("k", vec![0u8; 200]),
    };
    assert!(matches!(
        codec.encode(&big, &mut buf),
        Err(DecodeError::TooLarge { .. })
    ));
    assert!(buf.is_empty());
}

#[test]
fn unknown_types_trailing_bytes_and_bad_utf8_are_named() {
    assert_eq!(
        Frame::decode(Bytes::from_static(&[0xee])),
        Err(DecodeError::UnknownType(0xee))
    );
    assert_eq!(Frame::decode(Bytes::new()), Err(DecodeError::Empty));
    // GetEmpty { req } followed by an extra byte.
    assert_eq!(
        Frame::decode(Bytes::from_static(&[0x47, 1, 0, 0, 0, 9])),
        Err(DecodeError::TrailingBytes(1))
    );
    // Close { code, reason } with invalid UTF-8.
    assert_eq!(
        Frame::decode(Bytes::from_static(&[0x03, 0, 0, 1, 0, 0xff])),
        Err(DecodeError::Utf8)
    );
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    // PublishBatch claiming 4 billion messages in a few bytes.
    let mut payload = vec![0x32];
    payload.extend_from_slice(&1u64.to_le_bytes());
    payload.extend_from_slice(&0u16.to_le_bytes());
    payload.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Frame::decode(Bytes::from(payload)),
        Err(DecodeError::Invalid(_))
    ));
}
