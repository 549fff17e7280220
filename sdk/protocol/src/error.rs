//! Decoding errors and the error codes carried by `Error` and `Close` frames.

use thiserror::Error;

/// Why bytes are not a valid frame. Decoding never panics; it returns one of these.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("frame is empty (no type byte)")]
    Empty,
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    #[error("truncated {what}: needs {needed} bytes, {available} left")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("{0} unexpected bytes after the frame's fields")]
    TrailingBytes(usize),
    #[error("string is not valid UTF-8")]
    Utf8,
    #[error("invalid {0}")]
    Invalid(String),
}

/// Error codes (AMQP 0-9-1's reply codes where one fits).
pub mod code {
    pub const NO_ROUTE: u16 = 312;
    pub const CONNECTION_FORCED: u16 = 320;
    pub const ACCESS_REFUSED: u16 = 403;
    pub const NOT_FOUND: u16 = 404;
    pub const RESOURCE_LOCKED: u16 = 405;
    pub const PRECONDITION_FAILED: u16 = 406;
    pub const FRAME_ERROR: u16 = 501;
    pub const SYNTAX_ERROR: u16 = 502;
    pub const COMMAND_INVALID: u16 = 503;
    pub const UNEXPECTED_FRAME: u16 = 505;
    pub const RESOURCE_ERROR: u16 = 506;
    pub const NOT_ALLOWED: u16 = 530;
    pub const INTERNAL_ERROR: u16 = 541;
    /// The message was refused by the exchange's plugin, or the plugin failed.
    pub const PLUGIN_ERROR: u16 = 550;
    /// The broker is out of disk (or at its configured log limit).
    pub const STORAGE_FULL: u16 = 551;
    /// A queue is at max-length with overflow = reject-publish.
    pub const QUEUE_FULL: u16 = 552;

    /// A short name for a code, for error messages.
    pub fn name(code: u16) -> &'static str {
        match code {
            NO_ROUTE => "no route",
            CONNECTION_FORCED => "connection forced",
            ACCESS_REFUSED => "access refused",
            NOT_FOUND => "not found",
            RESOURCE_LOCKED => "resource locked",
            PRECONDITION_FAILED => "precondition failed",
            FRAME_ERROR => "frame error",
            SYNTAX_ERROR => "syntax error",
            COMMAND_INVALID => "command invalid",
            UNEXPECTED_FRAME => "unexpected frame",
            RESOURCE_ERROR => "resource error",
            NOT_ALLOWED => "not allowed",
            INTERNAL_ERROR => "internal error",
            PLUGIN_ERROR => "plugin error",
            STORAGE_FULL => "storage full",
            QUEUE_FULL => "queue full",
            _ => "error",
        }
    }
}
