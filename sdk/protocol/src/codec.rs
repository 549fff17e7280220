//! Sans-IO framing: bytes in, frames out, and back. The caller owns the
//! buffers and the socket; the codec only checks lengths and (de)serialises.

use bytes::{Buf, BufMut, BytesMut};

use crate::error::DecodeError;
use crate::frame::Frame;
use crate::wire::Writer;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// Frames a byte stream, refusing frames over `max_frame` bytes (type byte
/// and payload) before buffering them.
#[derive(Debug, Clone, Copy)]
pub struct Codec {
    max_frame: usize,
}

impl Codec {
    pub fn new(max_frame: u32) -> Self {
        Codec {
            max_frame: max_frame as usize,
        }
    }

    pub fn max_frame(&self) -> u32 {
        self.max_frame as u32
    }

    /// Takes the next whole frame off the front of `buf`, `Ok(None)` if more
    /// bytes are needed. After an error the stream must be closed: the
    /// offending frame has been consumed (if its length was acceptable) but
    /// the peer is not to be trusted further.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if buf.len() < LENGTH_PREFIX {
            return Ok(None);
        }
        let len = u32::from_le_bytes(buf[..LENGTH_PREFIX].try_into().unwrap()) as usize;
        if len > self.max_frame {
            return Err(DecodeError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        if buf.len() < LENGTH_PREFIX + len {
            buf.reserve(LENGTH_PREFIX + len - buf.len());
            return Ok(None);
        }
        buf.advance(LENGTH_PREFIX);
        let frame = buf.split_to(len).freeze();
        Frame::decode(frame).map(Some)
    }

    /// Appends `frame` to `buf`. A frame over the limit is not written.
    pub fn encode(&self, frame: &Frame, buf: &mut BytesMut) -> Result<(), DecodeError> {
        let start = buf.len();
        buf.put_u32_le(0);
        buf.put_u8(frame.type_code());
        frame.put_payload(&mut Writer { buf });
        let len = buf.len() - start - LENGTH_PREFIX;
        if len > self.max_frame {
            buf.truncate(start);
            return Err(DecodeError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        buf[start..start + LENGTH_PREFIX].copy_from_slice(&(len as u32).to_le_bytes());
        Ok(())
    }
}
