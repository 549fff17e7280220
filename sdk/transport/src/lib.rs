//! Frames over one QUIC stream: a buffered reader and writer around the
//! sans-IO [`Codec`] of `switchyard-protocol`, and the QUIC flow-control
//! settings both ends use. The client and the broker's server both depend
//! on this crate; neither depends on the other.

mod budget;
mod endpoint;

pub use budget::{FrameBudget, Reservation, SharedBudget, UNRESERVED_FRAME};
pub use endpoint::bind_endpoint;

use std::time::Duration;

use bytes::BytesMut;
use switchyard_protocol::{Codec, DecodeError, Frame, LENGTH_PREFIX};

/// Why reading or writing frames failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The peer sent bytes that are not a valid frame (or the stream
    /// ended inside one), or a frame to send is over the limit.
    #[error("protocol error: {0}")]
    Protocol(#[from] DecodeError),
    #[error(transparent)]
    Read(#[from] quinn::ReadError),
    #[error(transparent)]
    Write(#[from] quinn::WriteError),
    /// A frame under a [`FrameBudget`] was not finished in time.
    #[error(
        "frame not finished in time ({received} of {} bytes received after {timeout:?} of waiting)",
        len.map_or_else(|| "?".to_string(), |len| len.to_string())
    )]
    FrameTimeout {
        timeout: Duration,
        received: usize,
        /// The frame's size with its prefix, if the prefix had arrived.
        len: Option<usize>,
    },
}

/// Flow-control windows large enough for a full pipeline of 1 KiB messages
/// on a fast link (QUIC's defaults are sized for the internet), and no
/// larger: what a peer sends faster than the application reads waits in
/// memory up to the window. A 16 MiB connection window covers 1 GB/s at a
/// 16 ms round trip; at 64 MiB the broker held 57 MiB of heap under a
/// fast publisher against 29 MiB at 16 (scripts/bench-memory.sh), at
/// the same throughput.
pub fn tune_transport(transport: &mut quinn::TransportConfig) {
    transport
        .stream_receive_window(quinn::VarInt::from_u32(STREAM_WINDOW))
        .receive_window(quinn::VarInt::from_u32(CONNECTION_WINDOW))
        .send_window(64 << 20)
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(MAX_STREAMS));
}

/// Bytes a peer may send on one stream ahead of the reader.
pub const STREAM_WINDOW: u32 = 4 << 20;
/// Bytes a peer may send on all streams of a connection ahead of the
/// readers.
pub const CONNECTION_WINDOW: u32 = 16 << 20;
/// Streams a peer may have open at once on a connection.
pub const MAX_STREAMS: u32 = 1024;

/// The most a reader takes from the stream at once.
const READ_CHUNK: usize = 1 << 20;

/// How much a writer buffers before it writes to the stream.
const WRITE_CHUNK: usize = 256 << 10;

/// A writer's buffer to begin with, and what an idle writer keeps.
const IDLE_BUFFER: usize = 64 << 10;

pub struct FrameReader {
    recv: quinn::RecvStream,
    buf: BytesMut,
    codec: Codec,
    finished: bool,
    /// Without one the reader buffers any frame up to the limit as it
    /// arrives (the client: its peer is the broker it chose).
    budget: Option<FrameBudget>,
    /// The reservation of the large frame at the front of `buf`.
    held: Option<Reservation>,
    /// How long the reader has waited for the frame at the front of `buf`.
    waited: Duration,
}

impl FrameReader {
    pub fn new(recv: quinn::RecvStream, max_frame: u32) -> Self {
        FrameReader {
            recv,
            buf: BytesMut::with_capacity(64 << 10),
            codec: Codec::new(max_frame),
            finished: false,
            budget: None,
            held: None,
            waited: Duration::ZERO,
        }
    }

    /// Reserves large frames from `budget` before reading them, and gives
    /// up on a frame not finished within its timeout
    /// ([`Error::FrameTimeout`]).
    pub fn with_budget(mut self, budget: FrameBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.codec = Codec::new(max_frame);
    }

    /// A frame already buffered, without waiting.
    pub fn try_next(&mut self) -> Result<Option<Frame>, DecodeError> {
        // The codec makes room for the whole of a partial frame; a large
        // one is reserved first.
        if self.unreserved_frame().is_some() {
            return Ok(None);
        }
        let frame = self.codec.decode(&mut self.buf)?;
        if frame.is_some() {
            self.held = None;
            self.waited = Duration::ZERO;
        }
        Ok(frame)
    }

    /// The next frame; `Ok(None)` when the peer finished the stream cleanly.
    pub async fn next(&mut self) -> Result<Option<Frame>, Error> {
        loop {
            if let Some(frame) = self.try_next()? {
                return Ok(Some(frame));
            }
            // Only a frame that has begun is under its timeout.
            let timeout = (self.budget.as_ref())
                .filter(|_| !self.buf.is_empty())
                .map(FrameBudget::frame_timeout);
            let more = match timeout {
                Some(timeout) => {
                    let left = timeout.saturating_sub(self.waited);
                    let started = tokio::time::Instant::now();
                    let more = tokio::time::timeout(left, self.reserve_and_fill()).await;
                    self.waited += started.elapsed();
                    match more {
                        Ok(more) => more?,
                        Err(_) => {
                            return Err(Error::FrameTimeout {
                                timeout,
                                received: self.buf.len(),
                                len: self.declared_len().map(|len| LENGTH_PREFIX + len),
                            });
                        }
                    }
                }
                None => self.fill().await?,
            };
            if !more {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(Error::Protocol(DecodeError::Truncated {
                        what: "frame at the end of the stream",
                        needed: LENGTH_PREFIX,
                        available: self.buf.len(),
                    }))
                };
            }
        }
    }

    /// The length the frame at the front of `buf` declares, once known.
    fn declared_len(&self) -> Option<usize> {
        let prefix = self.buf.get(..LENGTH_PREFIX)?;
        Some(u32::from_le_bytes(prefix.try_into().unwrap()) as usize)
    }

    /// The length of a large frame at the front of `buf` that is neither
    /// complete nor reserved yet, under a budget: what to reserve (the
    /// prefix is not counted, so a budget of `max_frame` holds any frame).
    fn unreserved_frame(&self) -> Option<usize> {
        self.budget.as_ref()?;
        if self.held.is_some() {
            return None;
        }
        let len = self.declared_len()?;
        // Over the limit: left to the codec, which refuses it.
        if len > self.codec.max_frame() as usize {
            return None;
        }
        let bytes = LENGTH_PREFIX + len;
        (bytes > UNRESERVED_FRAME && self.buf.len() < bytes).then_some(len)
    }

    /// Under a budget: reserves the frame in progress if it is large, then
    /// reads at most what the frame still lacks (so a reservation covers
    /// all that is buffered), or a small read otherwise.
    async fn reserve_and_fill(&mut self) -> Result<bool, Error> {
        if let (Some(len), Some(budget)) = (self.unreserved_frame(), &self.budget) {
            self.held = Some(budget.reserve(len).await);
        }
        let limit = match (self.declared_len(), &self.held) {
            (Some(len), Some(_)) => (LENGTH_PREFIX + len)
                .saturating_sub(self.buf.len())
                .clamp(1, READ_CHUNK),
            _ => UNRESERVED_FRAME,
        };
        self.read(limit).await
    }

    /// Reads more bytes from the stream; false at its end.
    pub async fn fill(&mut self) -> Result<bool, Error> {
        let limit = if self.budget.is_some() {
            UNRESERVED_FRAME
        } else {
            READ_CHUNK
        };
        self.read(limit).await
    }

    async fn read(&mut self, limit: usize) -> Result<bool, Error> {
        if self.finished {
            return Ok(false);
        }
        match self.recv.read_chunk(limit, true).await? {
            Some(chunk) => {
                self.buf.extend_from_slice(&chunk.bytes);
                Ok(true)
            }
            None => {
                self.finished = true;
                Ok(false)
            }
        }
    }

    pub fn stop(&mut self, code: u16) {
        let _ = self.recv.stop(quinn::VarInt::from_u32(code as u32));
    }
}

pub struct FrameWriter {
    send: quinn::SendStream,
    buf: BytesMut,
    codec: Codec,
}

impl FrameWriter {
    pub fn new(send: quinn::SendStream, max_frame: u32) -> Self {
        FrameWriter {
            send,
            buf: BytesMut::with_capacity(IDLE_BUFFER),
            codec: Codec::new(max_frame),
        }
    }

    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.codec = Codec::new(max_frame);
    }

    /// Buffers a frame; a frame over the negotiated limit is refused, but
    /// for a `DeliverBatch`, which is sent as its single deliveries then.
    pub fn push(&mut self, frame: &Frame) -> Result<(), DecodeError> {
        match self.codec.encode(frame, &mut self.buf) {
            Err(DecodeError::TooLarge { .. }) if let Some(singles) = frame.unbatched() => singles
                .iter()
                .try_for_each(|single| self.codec.encode(single, &mut self.buf)),
            encoded => encoded,
        }
    }

    /// True when enough is buffered that it should be written now.
    pub fn is_full(&self) -> bool {
        self.buf.len() >= WRITE_CHUNK
    }

    pub async fn flush(&mut self) -> Result<(), Error> {
        if !self.buf.is_empty() {
            self.send.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }

    pub async fn send(&mut self, frame: &Frame) -> Result<(), Error> {
        self.push(frame)?;
        self.flush().await
    }

    /// Finishes the stream after what is buffered.
    pub async fn finish(&mut self) -> Result<(), Error> {
        self.flush().await?;
        let _ = self.send.finish();
        Ok(())
    }

    /// Drives frames from `frames` onto the stream until it ends, batching
    /// whatever is queued into one write.
    pub async fn pump(
        mut self,
        mut frames: tokio::sync::mpsc::Receiver<Frame>,
    ) -> Result<(), Error> {
        while let Some(frame) = frames.recv().await {
            self.push_or_report(&frame);
            while !self.is_full() {
                match frames.try_recv() {
                    Ok(frame) => self.push_or_report(&frame),
                    Err(_) => break,
                }
            }
            self.flush().await?;
            if frames.is_empty() {
                self.release_grown_buffer();
            }
        }
        self.finish().await
    }

    /// Gives back a buffer that grew past [`IDLE_BUFFER`] while the writer
    /// waits: a burst of batched deliveries grows it to 512 KiB, and a
    /// broker with 100 mostly idle consumer channels held ~15 MiB in them
    /// (scripts/bench-memory.sh).
    fn release_grown_buffer(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > IDLE_BUFFER {
            self.buf = BytesMut::with_capacity(IDLE_BUFFER);
        }
    }

    fn push_or_report(&mut self, frame: &Frame) {
        if let Err(e) = self.push(frame) {
            tracing::warn!(frame = frame.name(), error = %e, "frame not sent");
        }
    }
}
