//! Message bodies, read on demand.

use alloc::vec::Vec;

use crate::bindings::base::switchyard::plugin::types::Bodies;

/// The body of one message. Reading it asks the host for bytes; routing that
/// never reads the body never copies it into the plugin.
pub struct Body<'a> {
    source: Source<'a>,
    len: u64,
}

enum Source<'a> {
    Host { bodies: &'a Bodies, index: u32 },
    Bytes(&'a [u8]),
}

impl<'a> Body<'a> {
    pub(crate) fn from_host(bodies: &'a Bodies, index: u32, len: u64) -> Self {
        Body {
            source: Source::Host { bodies, index },
            len,
        }
    }

    /// A body backed by bytes in the plugin's own memory (tests, host target).
    pub fn from_bytes(bytes: &'a [u8]) -> Self {
        Body {
            source: Source::Bytes(bytes),
            len: bytes.len() as u64,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Up to `len` bytes starting at `offset`; shorter at the end of the body.
    pub fn read(&self, offset: u64, len: u32) -> Vec<u8> {
        match self.source {
            Source::Host { bodies, index } => bodies.read(index, offset, len),
            Source::Bytes(bytes) => {
                let start = usize::try_from(offset).map_or(bytes.len(), |o| o.min(bytes.len()));
                let end = start.saturating_add(len as usize).min(bytes.len());
                bytes[start..end].to_vec()
            }
        }
    }

    /// Calls `f` with successive chunks of the body until the host has no
    /// more; the body never sits whole in plugin memory.
    pub fn for_each_chunk(&self, mut f: impl FnMut(&[u8])) {
        const CHUNK: u32 = 64 * 1024;
        let mut offset = 0u64;
        loop {
            let chunk = self.read(offset, CHUNK);
            if chunk.is_empty() {
                break;
            }
            f(&chunk);
            offset += chunk.len() as u64;
        }
    }

    /// The whole body. Prefer [`Body::for_each_chunk`] for large bodies.
    pub fn read_all(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len as usize);
        self.for_each_chunk(|chunk| out.extend_from_slice(chunk));
        out
    }
}
