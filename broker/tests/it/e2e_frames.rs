//! A raw QUIC client sends malformed and oversized frames: the broker
//! closes that channel with a `Close` frame naming the problem and keeps
//! serving the connection's other channels and other connections.

use crate::support;

use bytes::BytesMut;
use support::{Broker, queue};
use switchyard_protocol::{Codec, Frame, VERSION, code};
use switchyard_transport::FrameReader;

/// Opens a stream, writes raw bytes and returns the broker's first frame.
async fn send_raw(connection: &quinn::Connection, bytes: &[u8]) -> Frame {
    let (mut send, recv) = connection.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    let mut reader = FrameReader::new(recv, 1 << 20);
    reader
        .next()
        .await
        .unwrap()
        .expect("the broker answers before ending the stream")
}

fn encode(frame: &Frame) -> Vec<u8> {
    let mut buf = BytesMut::new();
    Codec::new(1 << 20).encode(frame, &mut buf).unwrap();
    buf.to_vec()
}

fn assert_closed(frame: Frame, expected: &str) {
    match frame {
        Frame::Close { code, reason } => {
            assert_eq!(code, code::FRAME_ERROR, "{reason}");
            assert!(reason.contains(expected), "{reason}");
        }
        other => panic!("expected Close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_only_their_channel() {
    let broker = Broker::start();
    let raw = support::raw::connect(&broker, VERSION, 1 << 20).await;
    let connection = &raw.connection;
    let welcome = raw.welcome.clone();
    assert!(
        matches!(
            welcome,
            Some(Frame::Welcome {
                max_frame: 1048576,
                ..
            })
        ),
        "{welcome:?}"
    );

    // An unknown frame type.
    assert_closed(
        send_raw(connection, &[1, 0, 0, 0, 0xee]).await,
        "unknown frame type 0xee",
    );
    // A length over the negotiated limit: refused before the body arrives.
    let mut oversized = (64u32 << 20).to_le_bytes().to_vec();
    oversized.extend_from_slice(&[0x31; 100]);
    assert_closed(
        send_raw(connection, &oversized).await,
        "exceeds the limit of 1048576 bytes",
    );
    // A valid frame with its last byte cut off (length adjusted).
    let mut truncated = encode(&Frame::DeclareQueue {
        req: 1,
        name: "q".into(),
        durable: false,
        exclusive: false,
        auto_delete: false,
        passive: false,
        arguments: vec![],
    });
    truncated.pop();
    let len = (truncated.len() - 4) as u32;
    truncated[..4].copy_from_slice(&len.to_le_bytes());
    assert_closed(send_raw(connection, &truncated).await, "truncated");
    // Invalid UTF-8 in a name.
    let mut bad_utf8 = encode(&Frame::PurgeQueue {
        req: 1,
        name: "ab".into(),
    });
    let at = bad_utf8.len() - 1;
    bad_utf8[at] = 0xff;
    assert_closed(send_raw(connection, &bad_utf8).await, "UTF-8");
    // A frame only the broker may send.
    match send_raw(
        connection,
        &encode(&Frame::Confirm {
            ranges: vec![(1, 1)],
        }),
    )
    .await
    {
        Frame::Close { code, reason } => {
            assert_eq!(code, code::UNEXPECTED_FRAME);
            assert!(reason.contains("Confirm"), "{reason}");
        }
        other => panic!("expected Close, got {other:?}"),
    }

    // The same connection still serves a well-formed channel…
    let reply = send_raw(
        connection,
        &encode(&Frame::DeclareQueue {
            req: 7,
            name: "still-here".into(),
            durable: false,
            exclusive: false,
            auto_delete: false,
            passive: false,
            arguments: vec![],
        }),
    )
    .await;
    assert!(matches!(reply, Frame::Ok { req: 7, .. }), "{reply:?}");

    // …and other connections are unaffected.
    let (_c, ch) = broker.channel().await;
    queue(&ch, "other").await;
    ch.confirm_select().await.unwrap();
    ch.publish("", switchyard_client::Message::new("other", "fine"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ch.get("other", true).await.unwrap().is_some());
}
