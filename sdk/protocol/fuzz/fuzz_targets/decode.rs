//! Feeds arbitrary bytes to the frame decoder in arbitrary chunks: it must
//! never panic, and whatever it decodes must re-encode to a frame that
//! decodes to the same value.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard_protocol::{Codec, Frame};

fuzz_target!(|data: &[u8]| {
    let codec = Codec::new(1 << 16);
    let (chunk, data) = match data.split_first() {
        Some((c, rest)) => ((*c as usize).max(1), rest),
        None => return,
    };
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => round_trip(&codec, &frame),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});

fn round_trip(codec: &Codec, frame: &Frame) {
    let mut out = BytesMut::new();
    codec.encode(frame, &mut out).expect("a decoded frame fits the limit it was decoded under");
    let again = codec.decode(&mut out).expect("re-encoded frames decode").expect("complete");
    // NaN floats are not equal to themselves; compare encodings instead.
    let mut second = BytesMut::new();
    codec.encode(&again, &mut second).unwrap();
    let mut first = BytesMut::new();
    codec.encode(frame, &mut first).unwrap();
    assert_eq!(first, second);
}
