//! The commit-log record format (sans IO): encoding into a buffer and
//! decoding with checksum verification. See docs/STORAGE.md for the layout.
//!
//! ```text
//! off  size  field
//!   0     4  total length of the record in bytes (header included), LE
//!   4     4  CRC32C of bytes [8, length)
//!   8     1  format version (1)
//!   9     1  flags (bit 0: persistent; bit 1: consumption record, no queues;
//!              bit 2: delayed, indexed by its first queue only)
//!  10     2  routing key length
//!  12     2  queue count
//!  14     2  extension length: 0, or 8 for a promoted delayed message
//!  16     8  publish time, ms since the Unix epoch
//!  24     8  expiry time, ms (0 = never)
//!  32     8  deliver-after time, ms (0 = at once)
//!  40     4  attributes length (headers + properties, opaque to storage)
//!  44     4  body length
//!  48        queue ids (4 bytes each), extension, routing key, attributes, body
//! ```
//!
//! The extension of a promoted record is the offset (8 bytes, LE) in the
//! delay queue of the delayed record it was promoted from: replaying it
//! settles that offset, so a promotion and the end of its delay are one
//! write (store/delays.rs).

use bytes::Bytes;

pub const HEADER_LEN: usize = 48;
pub const FORMAT_VERSION: u8 = 1;
pub const FLAG_PERSISTENT: u8 = 1;
/// A record of consumption events (storage/consumption_log.rs), not a message.
pub const FLAG_CONSUMPTION: u8 = 2;
/// A delayed message: the first queue id is the delay queue, which alone
/// indexes it; the others are where it goes when due.
pub const FLAG_DELAYED: u8 = 4;
/// A half (transactional) message: the first queue id is the half queue,
/// which alone indexes it; the others are where it goes when committed.
pub const FLAG_HALF: u8 = 8;
/// The length of the promoted-from extension: the offset in the delay
/// queue…
const MOVED_FROM_LEN: usize = 8;
/// …or the offset and the hidden queue it was in (a committed half message).
const MOVED_FROM_QUEUE_LEN: usize = 12;

/// A message as the store keeps it. `attributes` are the encoded headers
/// and properties; storage does not look inside.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredMessage {
    pub flags: u8,
    pub publish_ms: u64,
    pub expiry_ms: u64,
    /// Not visible before this time (0: at once): the due time of a
    /// delayed record (store/delays.rs).
    pub deliver_after_ms: u64,
    pub routing_key: Bytes,
    pub attributes: Bytes,
    pub body: Bytes,
}

impl StoredMessage {
    pub fn is_persistent(&self) -> bool {
        self.flags & FLAG_PERSISTENT != 0
    }

    /// The time its index entry keeps: the expiry time, or for a delayed
    /// record (indexed by the delay queue alone) its due time, from which
    /// the timers are rebuilt.
    pub fn index_time(&self) -> u64 {
        match self.flags & FLAG_DELAYED {
            0 => self.expiry_ms,
            _ => self.deliver_after_ms,
        }
    }

    /// Whether only its first queue indexes it (delayed and half messages:
    /// the others are where it goes later).
    pub fn indexed_by_first_only(&self) -> bool {
        indexed_by_first_only(self.flags)
    }
}

fn indexed_by_first_only(flags: u8) -> bool {
    flags & (FLAG_DELAYED | FLAG_HALF) != 0
}

/// Queue ids are dense u32s assigned by the store.
pub type QueueId = u32;

/// Why bytes at a position are not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Zeroes: nothing was ever written here (the end of the log).
    End,
    /// Fewer bytes than the record claims.
    Truncated {
        needed: usize,
        available: usize,
    },
    /// The length field is impossible.
    BadLength(u32),
    BadVersion(u8),
    /// The checksum does not match: torn or corrupted.
    Checksum {
        stored: u32,
        computed: u32,
    },
    /// The lengths inside the record do not add up.
    Inconsistent,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::End => write!(f, "end of data"),
            RecordError::Truncated { needed, available } => {
                write!(f, "truncated record ({available} of {needed} bytes)")
            }
            RecordError::BadLength(len) => write!(f, "impossible record length {len}"),
            RecordError::BadVersion(v) => write!(f, "unknown record format version {v}"),
            RecordError::Checksum { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch (stored {stored:08x}, computed {computed:08x})"
                )
            }
            RecordError::Inconsistent => write!(f, "inconsistent field lengths"),
        }
    }
}

/// What a record holds besides the message: the queues it belongs to and,
/// for a promoted delayed message, the delay-queue offset it came from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Envelope<'a> {
    pub queues: &'a [QueueId],
    pub moved_from: Option<u64>,
    /// The hidden queue `moved_from` is an offset of, when it is not the
    /// delay queue.
    pub moved_from_queue: Option<QueueId>,
}

impl<'a> Envelope<'a> {
    pub fn of(queues: &'a [QueueId]) -> Self {
        Envelope {
            queues,
            moved_from: None,
            moved_from_queue: None,
        }
    }

    fn extension_len(&self) -> usize {
        match (self.moved_from, self.moved_from_queue) {
            (None, _) => 0,
            (Some(_), None) => MOVED_FROM_LEN,
            (Some(_), Some(_)) => MOVED_FROM_QUEUE_LEN,
        }
    }
}

/// The encoded size of a record.
pub fn encoded_len(message: &StoredMessage, envelope: Envelope<'_>) -> usize {
    HEADER_LEN
        + 4 * envelope.queues.len()
        + envelope.extension_len()
        + message.routing_key.len()
        + message.attributes.len()
        + message.body.len()
}

/// Encodes into `out`, which must be exactly `encoded_len` bytes long.
pub fn encode_into(message: &StoredMessage, envelope: Envelope<'_>, out: &mut [u8]) {
    let queues = envelope.queues;
    let len = out.len();
    debug_assert_eq!(len, encoded_len(message, envelope));
    out[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    out[8] = FORMAT_VERSION;
    out[9] = message.flags;
    out[10..12].copy_from_slice(&(message.routing_key.len() as u16).to_le_bytes());
    out[12..14].copy_from_slice(&(queues.len() as u16).to_le_bytes());
    out[14..16].copy_from_slice(&(envelope.extension_len() as u16).to_le_bytes());
    out[16..24].copy_from_slice(&message.publish_ms.to_le_bytes());
    out[24..32].copy_from_slice(&message.expiry_ms.to_le_bytes());
    out[32..40].copy_from_slice(&message.deliver_after_ms.to_le_bytes());
    out[40..44].copy_from_slice(&(message.attributes.len() as u32).to_le_bytes());
    out[44..48].copy_from_slice(&(message.body.len() as u32).to_le_bytes());
    let mut at = HEADER_LEN;
    for queue in queues {
        out[at..at + 4].copy_from_slice(&queue.to_le_bytes());
        at += 4;
    }
    if let Some(offset) = envelope.moved_from {
        out[at..at + MOVED_FROM_LEN].copy_from_slice(&offset.to_le_bytes());
        at += MOVED_FROM_LEN;
        if let Some(queue) = envelope.moved_from_queue {
            out[at..at + 4].copy_from_slice(&queue.to_le_bytes());
            at += 4;
        }
    }
    for part in [&message.routing_key, &message.attributes, &message.body] {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    let crc = crc32c::crc32c(&out[8..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// The length a record at the start of `bytes` claims, without checking it.
pub fn claimed_len(bytes: &[u8]) -> Option<u32> {
    bytes
        .get(0..4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
}

/// The queue ids a (possibly damaged) record's header claims, if the header
/// is plausible at all: its version is right and the list fits inside the
/// `len` bytes the record occupies. Unverified: a hint for keeping queue
/// offsets in step when the record is skipped.
pub fn claimed_queues(bytes: &[u8], len: usize) -> Option<Vec<QueueId>> {
    if len < HEADER_LEN || bytes.len() < len || bytes[8] != FORMAT_VERSION {
        return None;
    }
    let count = u16_at(bytes, 12);
    if HEADER_LEN + 4 * count > len {
        return None;
    }
    // A delayed (half) record claims only the delay (half) queue until it
    // is due (committed).
    let count = match indexed_by_first_only(bytes[9]) {
        false => count,
        true => count.min(1),
    };
    Some(
        (0..count)
            .map(|i| u32_at(bytes, HEADER_LEN + 4 * i))
            .collect(),
    )
}

/// A decoded record; its byte fields share the buffer it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    pub message: StoredMessage,
    pub queues: Vec<QueueId>,
    /// For a promoted delayed message: its offset in the delay queue (or,
    /// with `moved_from_queue`, in that queue: a committed half message).
    pub moved_from: Option<u64>,
    pub moved_from_queue: Option<QueueId>,
    pub len: usize,
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Decodes and verifies the record at the start of `buf` (which may extend
/// past it). `max_len` bounds the length field (the segment size).
pub fn decode(buf: &Bytes, max_len: usize) -> Result<DecodedRecord, RecordError> {
    let len = claimed_len(buf).ok_or(RecordError::Truncated {
        needed: 4,
        available: buf.len(),
    })?;
    if len == 0 {
        return Err(RecordError::End);
    }
    let len = len as usize;
    if len < HEADER_LEN || len > max_len {
        return Err(RecordError::BadLength(len as u32));
    }
    if buf.len() < len {
        return Err(RecordError::Truncated {
            needed: len,
            available: buf.len(),
        });
    }
    let b = &buf[..len];
    let stored = u32_at(b, 4);
    let computed = crc32c::crc32c(&b[8..]);
    if stored != computed {
        return Err(RecordError::Checksum { stored, computed });
    }
    if b[8] != FORMAT_VERSION {
        return Err(RecordError::BadVersion(b[8]));
    }
    let key_len = u16_at(b, 10);
    let queue_count = u16_at(b, 12);
    let attributes_len = u32_at(b, 40) as usize;
    let body_len = u32_at(b, 44) as usize;
    let extension_len = u16_at(b, 14);
    if !matches!(extension_len, 0 | MOVED_FROM_LEN | MOVED_FROM_QUEUE_LEN)
        || HEADER_LEN + 4 * queue_count + extension_len + key_len + attributes_len + body_len != len
    {
        return Err(RecordError::Inconsistent);
    }
    let queues = (0..queue_count)
        .map(|i| u32_at(b, HEADER_LEN + 4 * i))
        .collect();
    let mut at = HEADER_LEN + 4 * queue_count;
    let moved_from = (extension_len >= MOVED_FROM_LEN).then(|| u64_at(b, at));
    let moved_from_queue =
        (extension_len == MOVED_FROM_QUEUE_LEN).then(|| u32_at(b, at + MOVED_FROM_LEN));
    at += extension_len;
    let mut take = |n: usize| {
        let part = buf.slice(at..at + n);
        at += n;
        part
    };
    let routing_key = take(key_len);
    let attributes = take(attributes_len);
    let body = take(body_len);
    Ok(DecodedRecord {
        message: StoredMessage {
            flags: b[9],
            publish_ms: u64_at(b, 16),
            expiry_ms: u64_at(b, 24),
            deliver_after_ms: u64_at(b, 32),
            routing_key,
            attributes,
            body,
        },
        queues,
        moved_from,
        moved_from_queue,
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredMessage {
        StoredMessage {
            flags: FLAG_PERSISTENT,
            publish_ms: 1,
            expiry_ms: 2,
            deliver_after_ms: 3,
            routing_key: Bytes::from_static(b"orders.eu"),
            attributes: Bytes::from_static(b"\x01\x02"),
            body: Bytes::from_static(b"hello"),
        }
    }

    fn encoded(queues: &[QueueId]) -> Bytes {
        encoded_moved(queues, None)
    }

    fn encoded_moved(queues: &[QueueId], moved_from: Option<u64>) -> Bytes {
        let message = sample();
        let envelope = Envelope {
            queues,
            moved_from,
            moved_from_queue: None,
        };
        let mut buf = vec![0; encoded_len(&message, envelope)];
        encode_into(&message, envelope, &mut buf);
        Bytes::from(buf)
    }

    #[test]
    fn promoted_records_carry_their_delay_offset() {
        let buf = encoded_moved(&[4], Some(1 << 33));
        let record = decode(&buf, 1 << 20).unwrap();
        assert_eq!(record.message, sample());
        assert_eq!(record.queues, vec![4]);
        assert_eq!(record.moved_from, Some(1 << 33));
        assert_eq!(decode(&encoded(&[4]), 1 << 20).unwrap().moved_from, None);
        let message = sample();
        let envelope = Envelope {
            queues: &[4, 5],
            moved_from: Some(7),
            moved_from_queue: Some(9),
        };
        let mut buf = vec![0; encoded_len(&message, envelope)];
        encode_into(&message, envelope, &mut buf);
        let record = decode(&Bytes::from(buf), 1 << 20).unwrap();
        assert_eq!(record.message, sample());
        assert_eq!(
            (record.queues, record.moved_from, record.moved_from_queue),
            (vec![4, 5], Some(7), Some(9))
        );
    }

    #[test]
    fn round_trip() {
        let buf = encoded(&[3, 9]);
        let record = decode(&buf, 1 << 20).unwrap();
        assert_eq!(record.message, sample());
        assert_eq!(record.queues, vec![3, 9]);
        assert_eq!(record.len, buf.len());
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let buf = encoded(&[1]);
        for byte in 0..buf.len() {
            let mut damaged = buf.to_vec();
            damaged[byte] ^= 0x10;
            assert!(
                decode(&Bytes::from(damaged), 1 << 20).is_err(),
                "byte {byte}"
            );
        }
    }

    #[test]
    fn zeroes_are_the_end_and_short_buffers_are_truncated() {
        assert_eq!(
            decode(&Bytes::from(vec![0; 64]), 1 << 20),
            Err(RecordError::End)
        );
        let buf = encoded(&[]);
        let short = buf.slice(..buf.len() - 1);
        assert!(matches!(
            decode(&short, 1 << 20),
            Err(RecordError::Truncated { .. })
        ));
    }
}
