//! Who recently logged in over HTTP: a Prometheus server scrapes every few
//! seconds and the console polls every second, each request with its
//! credentials; checking them with argon2 each time would cost a core's
//! worth of hashing. A successful login is remembered for a short while
//! (as RabbitMQ's auth cache does), keyed by a hash of the credentials,
//! the vhost and whether the peer is on loopback — so a password change or
//! a revoked permission takes effect within `TTL`. Failures are never
//! cached: they go through the broker's throttle every time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use switchyard_core::Principal;

/// How long a successful login is remembered.
pub const TTL: Duration = Duration::from_secs(15);
/// At most this many remembered logins (the oldest are dropped first).
const MAX_ENTRIES: usize = 1024;

#[derive(Default)]
pub struct LoginCache {
    entries: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

pub fn key(user: &str, password: &str, vhost: &str, loopback: bool) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [user, password, vhost] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hash.update([u8::from(loopback)]);
    hash.finalize().into()
}

impl LoginCache {
    pub fn get(&self, key: &[u8; 32]) -> Option<Principal> {
        let entries = self.entries.lock().unwrap();
        let (principal, at) = entries.get(key)?;
        (at.elapsed() < TTL).then(|| principal.clone())
    }

    pub fn put(&self, key: [u8; 32], principal: Principal) {
        let mut entries = self.entries.lock().unwrap();
        entries.retain(|_, (_, at)| at.elapsed() < TTL);
        if entries.len() >= MAX_ENTRIES
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| *k)
        {
            entries.remove(&oldest);
        }
        entries.insert(key, (principal, Instant::now()));
    }
}
