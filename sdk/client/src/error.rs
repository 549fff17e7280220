//! Client errors. Each names what went wrong in words a user can act on.

use switchyard_protocol::{DecodeError, code};
use thiserror::Error;

#[derive(Debug, Clone, Error)]
pub enum Error {
    #[error("invalid broker URL {0}")]
    InvalidUrl(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    /// The broker refused the connection (credentials, vhost, permissions).
    #[error("connection refused by the broker: {reason} ({code} {})", code::name(*code))]
    Refused { code: u16, reason: String },
    /// A request failed; the channel is still usable.
    #[error("{reason} ({code} {})", code::name(*code))]
    Request { code: u16, reason: String },
    /// The broker closed the channel (or connection).
    #[error("channel closed by the broker: {reason} ({code} {})", code::name(*code))]
    Closed { code: u16, reason: String },
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    #[error("protocol error: {0}")]
    Protocol(#[from] DecodeError),
    #[error("unexpected {0} frame from the broker")]
    Unexpected(&'static str),
}

impl Error {
    /// The protocol error code, where the broker gave one.
    pub fn code(&self) -> Option<u16> {
        match self {
            Error::Refused { code, .. }
            | Error::Request { code, .. }
            | Error::Closed { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<quinn::ConnectionError> for Error {
    fn from(e: quinn::ConnectionError) -> Self {
        match e {
            quinn::ConnectionError::ApplicationClosed(close) => Error::Closed {
                code: u16::try_from(close.error_code.into_inner()).unwrap_or(code::INTERNAL_ERROR),
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            },
            quinn::ConnectionError::TimedOut => Error::ConnectionLost(
                "nothing heard from the broker within the idle timeout (the broker or the \
                 network is down)"
                    .into(),
            ),
            quinn::ConnectionError::LocallyClosed => {
                Error::ConnectionLost("the connection was closed by this client".into())
            }
            other => Error::ConnectionLost(other.to_string()),
        }
    }
}

impl From<quinn::WriteError> for Error {
    fn from(e: quinn::WriteError) -> Self {
        match e {
            quinn::WriteError::ConnectionLost(c) => c.into(),
            other => Error::ConnectionLost(other.to_string()),
        }
    }
}

impl From<quinn::ReadError> for Error {
    fn from(e: quinn::ReadError) -> Self {
        match e {
            quinn::ReadError::ConnectionLost(c) => c.into(),
            other => Error::ConnectionLost(other.to_string()),
        }
    }
}

impl From<switchyard_transport::Error> for Error {
    fn from(e: switchyard_transport::Error) -> Self {
        match e {
            switchyard_transport::Error::Protocol(e) => Error::Protocol(e),
            switchyard_transport::Error::Read(e) => e.into(),
            switchyard_transport::Error::Write(e) => e.into(),
            // The client reads without a frame budget, so without a
            // frame timeout; should it use one, a stalled frame is a
            // lost connection to it.
            e @ switchyard_transport::Error::FrameTimeout { .. } => {
                Error::ConnectionLost(e.to_string())
            }
        }
    }
}
