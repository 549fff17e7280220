//! Frames over one QUIC stream: a buffered reader and writer around the
//! sans-IO [`Codec`] of `switchyard-protocol`, and the QUIC flow-control
//! settings both ends use. The client and the broker's server both depend
//! on this crate; neither depends on the other.

mod endpoint;

pub use endpoint::bind_endpoint;

use bytes::BytesMut;
use switchyard_protocol::{Codec, DecodeError, Frame};

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
        .stream_receive_window(quinn::VarInt::from_u32(4 << 20))
        .receive_window(quinn::VarInt::from_u32(16 << 20))
        .send_window(64 << 20)
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(1024));
}

/// How much a writer buffers before it writes to the stream.
const WRITE_CHUNK: usize = 256 << 10;

/// A writer's buffer to begin with, and what an idle writer keeps.
const IDLE_BUFFER: usize = 64 << 10;

pub struct FrameReader {
    recv: quinn::RecvStream,
    buf: BytesMut,
    codec: Codec,
    finished: bool,
}

impl FrameReader {
    pub fn new(recv: quinn::RecvStream, max_frame: u32) -> Self {
        FrameReader {
            recv,
            buf: BytesMut::with_capacity(64 << 10),
            codec: Codec::new(max_frame),
            finished: false,
        }
    }

    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.codec = Codec::new(max_frame);
    }

    /// A frame already buffered, without waiting.
    pub fn try_next(&mut self) -> Result<Option<Frame>, DecodeError> {
        self.codec.decode(&mut self.buf)
    }

    /// The next frame; `Ok(None)` when the peer finished the stream cleanly.
    pub async fn next(&mut self) -> Result<Option<Frame>, Error> {
        loop {
            if let Some(frame) = self.try_next()? {
                return Ok(Some(frame));
            }
            if !self.fill().await? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(Error::Protocol(DecodeError::Truncated {
                        what: "frame at the end of the stream",
                        needed: switchyard_protocol::LENGTH_PREFIX,
                        available: self.buf.len(),
                    }))
                };
            }
        }
    }

    /// Reads more bytes from the stream; false at its end.
    pub async fn fill(&mut self) -> Result<bool, Error> {
        if self.finished {
            return Ok(false);
        }
        match self.recv.read_chunk(1 << 20, true).await? {
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
