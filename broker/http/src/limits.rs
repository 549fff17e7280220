//! What the HTTP front door lets clients hold: connections, the time a
//! connection may take to send a request head, and the time a login may
//! wait for its turn at a password check. The server's `[http]` settings
//! set them and hold their defaults; docs/SECURITY.md ("HTTP front door")
//! lists them.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// HTTP connections open at once; one more is answered `503` and
    /// closed at once (TLS: closed). Bounds the broker's file descriptors
    /// held by HTTP clients, idle or not.
    pub max_connections: usize,
    /// A connection must send a complete request head this soon after it
    /// opens (over TLS: finish its handshake, then the head), and again
    /// after each response (keep-alive): one that is silent or trickles
    /// its headers is closed.
    pub request_head_timeout: Duration,
    /// A login waits at most this long for its turn at a password check
    /// (as many run at once as `limits.max_concurrent_password_checks`);
    /// then it is answered `503`.
    pub login_wait: Duration,
}
