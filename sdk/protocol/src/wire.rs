//! Primitive encodings: little-endian integers, length-prefixed strings and
//! bytes, counted lists. Every read is bounds-checked and returns a
//! [`DecodeError`] instead of panicking; counts are checked against the bytes
//! left before anything is allocated.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::DecodeError;

/// Reads primitives from one frame payload. Byte strings are zero-copy
/// slices of the payload.
pub struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub fn new(buf: Bytes) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<Bytes, DecodeError> {
        if self.remaining() < len {
            return Err(DecodeError::Truncated {
                what,
                needed: len,
                available: self.remaining(),
            });
        }
        let bytes = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, what)?;
        let mut out = [0; N];
        out.copy_from_slice(&bytes);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>("u8")?[0])
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array("u16")?))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array("u32")?))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array("u64")?))
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError::Invalid(format!("boolean byte {other}"))),
        }
    }

    /// A string with a u16 length prefix.
    pub fn short_str(&mut self) -> Result<String, DecodeError> {
        let len = self.u16()? as usize;
        self.utf8(len)
    }

    /// A string with a u32 length prefix.
    pub fn long_str(&mut self) -> Result<String, DecodeError> {
        let len = self.u32()? as usize;
        self.utf8(len)
    }

    fn utf8(&mut self, len: usize) -> Result<String, DecodeError> {
        let bytes = self.take(len, "string")?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Utf8)
    }

    /// Bytes with a u32 length prefix (zero-copy).
    pub fn long_bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u32()? as usize;
        self.take(len, "bytes")
    }

    /// A count that promises at least `min_item_len` bytes per item.
    pub fn count(&mut self, wide: bool, min_item_len: usize) -> Result<usize, DecodeError> {
        let count = if wide {
            self.u32()? as usize
        } else {
            self.u16()? as usize
        };
        if count.saturating_mul(min_item_len.max(1)) > self.remaining() {
            return Err(DecodeError::Invalid(format!(
                "a count of {count} items does not fit in the {} bytes left",
                self.remaining()
            )));
        }
        Ok(count)
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes(extra)),
        }
    }
}

/// Writes primitives into a frame buffer.
pub struct Writer<'a> {
    pub buf: &'a mut BytesMut,
}

impl Writer<'_> {
    pub fn u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.put_u16_le(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.put_u32_le(v);
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.put_u64_le(v);
    }
    pub fn bool(&mut self, v: bool) {
        self.buf.put_u8(v as u8);
    }
    /// Strings longer than 65535 bytes are cut at a character boundary:
    /// names and reasons are bounded by design.
    pub fn short_str(&mut self, s: &str) {
        let mut end = s.len().min(u16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.u16(end as u16);
        self.buf.put_slice(&s.as_bytes()[..end]);
    }
    pub fn long_str(&mut self, s: &str) {
        self.long_bytes(s.as_bytes());
    }
    pub fn long_bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.buf.put_slice(b);
    }
}

/// A type with one wire encoding.
pub trait Wire: Sized {
    fn put(&self, w: &mut Writer<'_>);
    fn get(r: &mut Reader) -> Result<Self, DecodeError>;
}

macro_rules! wire_primitive {
    ($($ty:ty => $method:ident),*) => {$(
        impl Wire for $ty {
            fn put(&self, w: &mut Writer<'_>) {
                w.$method(*self)
            }
            fn get(r: &mut Reader) -> Result<Self, DecodeError> {
                r.$method()
            }
        }
    )*};
}

wire_primitive!(u8 => u8, u16 => u16, u32 => u32, u64 => u64, bool => bool);

/// Names, keys and reasons: u16 length prefix.
impl Wire for String {
    fn put(&self, w: &mut Writer<'_>) {
        w.short_str(self)
    }
    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        r.short_str()
    }
}

/// Bodies: u32 length prefix.
impl Wire for Bytes {
    fn put(&self, w: &mut Writer<'_>) {
        w.long_bytes(self)
    }
    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        r.long_bytes()
    }
}

/// Lists: u32 count, then the items.
impl<T: Wire> Wire for Vec<T> {
    fn put(&self, w: &mut Writer<'_>) {
        w.u32(self.len() as u32);
        for item in self {
            item.put(w);
        }
    }
    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let count = r.count(true, 1)?;
        (0..count).map(|_| T::get(r)).collect()
    }
}

/// Sequence ranges in confirms: first and last, inclusive.
impl Wire for (u64, u64) {
    fn put(&self, w: &mut Writer<'_>) {
        w.u64(self.0);
        w.u64(self.1);
    }
    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let range = (r.u64()?, r.u64()?);
        if range.0 > range.1 {
            return Err(DecodeError::Invalid(format!(
                "sequence range {}..={} is backwards",
                range.0, range.1
            )));
        }
        Ok(range)
    }
}
