//! The per-plugin persistent key/value store behind the `kv` import, kept in
//! a sled tree of its own per plugin name. Entries carry an optional expiry;
//! expired entries read as absent and are removed lazily or by [`PluginKv::sweep`].

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Stored value layout: 8 bytes big-endian expiry in ms (0 = never), then
/// the value.
#[derive(Clone)]
pub struct PluginKv {
    tree: sled::Tree,
}

fn encode(value: &[u8], ttl_ms: Option<u64>) -> Vec<u8> {
    let expiry = ttl_ms.map_or(0, |ttl| now_ms().saturating_add(ttl).max(1));
    let mut stored = Vec::with_capacity(8 + value.len());
    stored.extend_from_slice(&expiry.to_be_bytes());
    stored.extend_from_slice(value);
    stored
}

fn live(stored: &[u8], now: u64) -> Option<&[u8]> {
    let (expiry, value) = stored.split_at_checked(8)?;
    let expiry = u64::from_be_bytes(expiry.try_into().ok()?);
    (expiry == 0 || expiry > now).then_some(value)
}

impl PluginKv {
    pub(crate) fn new(tree: sled::Tree) -> Self {
        PluginKv { tree }
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let stored = self.tree.get(key).ok().flatten()?;
        match live(&stored, now_ms()) {
            Some(value) => Some(value.to_vec()),
            None => {
                // Only remove what we read, in case another caller just
                // replaced it.
                let _ = self
                    .tree
                    .compare_and_swap(key, Some(stored), None as Option<&[u8]>);
                None
            }
        }
    }

    pub fn set(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) {
        if let Err(error) = self.tree.insert(key, encode(value, ttl_ms)) {
            tracing::error!(%error, "plugin kv write failed");
        }
    }

    /// Stores only if the key is absent or expired; atomic against other
    /// instances of the same plugin.
    pub fn set_if_absent(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> bool {
        let fresh = encode(value, ttl_ms);
        loop {
            let current = match self.tree.get(key) {
                Ok(current) => current,
                Err(error) => {
                    tracing::error!(%error, "plugin kv read failed");
                    return false;
                }
            };
            if let Some(stored) = &current
                && live(stored, now_ms()).is_some()
            {
                return false;
            }
            match self
                .tree
                .compare_and_swap(key, current, Some(fresh.clone()))
            {
                Ok(Ok(())) => return true,
                Ok(Err(_)) => continue,
                Err(error) => {
                    tracing::error!(%error, "plugin kv write failed");
                    return false;
                }
            }
        }
    }

    pub fn delete(&self, key: &str) {
        let _ = self.tree.remove(key);
    }

    /// Removes every expired entry; returns how many.
    pub fn sweep(&self) -> usize {
        let now = now_ms();
        let mut removed = 0;
        for (key, stored) in self.tree.iter().flatten() {
            if live(&stored, now).is_none()
                && matches!(
                    self.tree
                        .compare_and_swap(&key, Some(&stored), None as Option<&[u8]>),
                    Ok(Ok(()))
                )
            {
                removed += 1;
            }
        }
        removed
    }
}
