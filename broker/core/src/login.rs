//! Throttling failed logins, per user name and per source address.
//!
//! Each user name and each address has a token bucket of failures
//! (`ratelimit::TokenBucket`): a burst is allowed, then one more failure per
//! refill interval. While a bucket is empty, logins for that name or from
//! that address are refused at once — before any password is checked, so a
//! throttled guesser costs the broker no argon2 work — with the time to
//! wait. A successful login refills its user's bucket (not its address's:
//! one good account must not buy unlimited guesses at others).
//!
//! Loopback addresses are not throttled by address: every client on the
//! broker's machine shares them, and one local process guessing must not
//! lock out the others; per-user throttling still applies to them.
//!
//! Unknown user names are throttled exactly like known ones, so the
//! throttle tells nothing about which names exist. The tables are bounded:
//! a bucket that has refilled remembers nothing and is dropped when room
//! is needed.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::BrokerError;
use super::limits::Limits;
use switchyard_base::ratelimit::TokenBucket;

/// Most names (and, separately, addresses) remembered at once.
const MAX_TRACKED: usize = 65_536;

pub struct LoginThrottle {
    users: Mutex<Buckets<String>>,
    addresses: Mutex<Buckets<IpAddr>>,
    per_user: u32,
    per_address: u32,
    per_second: f64,
}

struct Buckets<K>(HashMap<K, TokenBucket>);

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn check(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        match self.0.get_mut(key) {
            Some(bucket) => bucket.check(now),
            None => Ok(()),
        }
    }

    fn charge(&mut self, key: &K, capacity: u32, per_second: f64, now: Instant) {
        if !self.0.contains_key(key) && self.0.len() >= MAX_TRACKED {
            self.0.retain(|_, bucket| !bucket.is_full(now));
            if self.0.len() >= MAX_TRACKED {
                // Every entry is a live throttle: keep them rather than
                // forget one to make room for a newcomer.
                return;
            }
        }
        self.0
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::new(capacity, per_second, now))
            .charge(now);
    }
}

impl LoginThrottle {
    pub fn new(limits: &Limits) -> Self {
        LoginThrottle {
            users: Mutex::new(Buckets(HashMap::new())),
            addresses: Mutex::new(Buckets(HashMap::new())),
            per_user: limits.login_failures_per_user,
            per_address: limits.login_failures_per_address,
            per_second: 1000.0 / limits.login_failure_refill_ms.max(1) as f64,
        }
    }

    /// Fails if `user` or `address` has used up its failures.
    pub fn admit(&self, user: &str, address: IpAddr, now: Instant) -> Result<(), BrokerError> {
        if !address.is_loopback()
            && let Err(wait) = self.addresses.lock().unwrap().check(&address, now)
        {
            return Err(too_many(&format!("from {address}"), wait));
        }
        if let Err(wait) = self.users.lock().unwrap().check(&user.to_string(), now) {
            return Err(too_many(&format!("for user '{user}'"), wait));
        }
        Ok(())
    }

    pub fn failed(&self, user: &str, address: IpAddr, now: Instant) {
        if !address.is_loopback() {
            self.addresses
                .lock()
                .unwrap()
                .charge(&address, self.per_address, self.per_second, now);
        }
        self.users
            .lock()
            .unwrap()
            .charge(&user.to_string(), self.per_user, self.per_second, now);
    }

    pub fn succeeded(&self, user: &str) {
        self.users.lock().unwrap().0.remove(user);
    }
}

fn too_many(whom: &str, wait: Duration) -> BrokerError {
    // Whole seconds, rounded up: "retry in 0 s" would invite a retry that
    // fails again.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    BrokerError::access_refused(format!(
        "too many failed logins {whom}; retry in {seconds} s"
    ))
}
