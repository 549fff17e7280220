//! Errors of broker operations, each carrying the protocol code sent to
//! the client and a message naming the resource involved.

use switchyard_protocol::code;

use switchyard_plugin_host::PluginError;
use switchyard_storage::StorageError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BrokerError {
    pub code: u16,
    pub message: String,
}

impl BrokerError {
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        BrokerError {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: &str, name: &str, vhost: &str) -> Self {
        Self::new(
            code::NOT_FOUND,
            format!("no {what} '{name}' in vhost '{vhost}'"),
        )
    }

    pub fn access_refused(message: impl Into<String>) -> Self {
        Self::new(code::ACCESS_REFUSED, message)
    }

    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(code::PRECONDITION_FAILED, message)
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(code::SYNTAX_ERROR, message)
    }

    /// The same refusal, saying what it was about first.
    pub fn context(self, what: &str) -> Self {
        Self::new(self.code, format!("{what}: {}", self.message))
    }
}

impl From<StorageError> for BrokerError {
    fn from(e: StorageError) -> Self {
        let code = match e {
            StorageError::Full(_) => code::STORAGE_FULL,
            _ => code::INTERNAL_ERROR,
        };
        BrokerError::new(code, e.to_string())
    }
}

impl From<PluginError> for BrokerError {
    fn from(e: PluginError) -> Self {
        BrokerError::new(code::PLUGIN_ERROR, e.to_string())
    }
}
