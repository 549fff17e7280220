//! The persistent key/value store behind the `kv` import.
//!
//! It lives in a sled database of its own ([`KvStore`], `<data_dir>/plugin-kv`
//! for a broker), never in the metadata database: a plugin that fills its
//! store must not be able to stop the broker from recording topology.
//!
//! Each plugin name has a tree; inside it every entry belongs to a
//! [`KvScope`] (a vhost, or one exchange of a vhost) that the host chooses
//! per call, so tenants never see — or collide with — each other's keys.
//! Each (plugin, scope) has quotas on keys and bytes, and each plugin one on
//! its total bytes ([`KvLimits`]); a write past them is refused with
//! [`KvRefused`]. Entries carry an optional expiry: expired entries read as
//! absent and are removed by [`KvStore::sweep`], which a background thread
//! runs ([`KvStore::spawn_sweeper`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::Duration;

use switchyard_base::clock::system_now_ms;

use super::error::PluginError;
use super::kv_disk::{KvDisk, open_compacted};
pub use super::kv_limits::{KvLimits, KvRefused, KvUsage};
use super::kv_limits::{Usage, entry_bytes};

/// Whose state a call reads and writes. The host sets it before each call;
/// a plugin cannot name another scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KvScope(Arc<str>);

impl KvScope {
    /// Everything of one vhost.
    pub fn vhost(vhost: &str) -> Self {
        KvScope(format!("vhost {vhost:?}").into())
    }

    /// One exchange of a vhost (its router, or its filter).
    pub fn exchange(vhost: &str, exchange: &str) -> Self {
        KvScope(format!("vhost {vhost:?} exchange {exchange:?}").into())
    }

    /// Calls made outside any tenant: loading, `plugin test`, tests.
    pub fn host() -> Self {
        KvScope("host".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key prefix of this scope: its length (u16 BE), then its name.
    /// Length-prefixed, so no scope's keys can run into another's.
    fn prefix(&self) -> Vec<u8> {
        let name = self.0.as_bytes();
        let mut prefix = Vec::with_capacity(2 + name.len());
        prefix.extend_from_slice(&(name.len().min(u16::MAX as usize) as u16).to_be_bytes());
        prefix.extend_from_slice(&name[..name.len().min(u16::MAX as usize)]);
        prefix
    }

    fn key(&self, key: &str) -> Vec<u8> {
        let mut full = self.prefix();
        full.extend_from_slice(key.as_bytes());
        full
    }

    /// The scope a stored key belongs to.
    fn of_stored(stored_key: &[u8]) -> Option<KvScope> {
        let (len, rest) = stored_key.split_at_checked(2)?;
        let len = u16::from_be_bytes(len.try_into().ok()?) as usize;
        let name = std::str::from_utf8(rest.get(..len)?).ok()?;
        Some(KvScope(name.into()))
    }
}

impl std::fmt::Display for KvScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Stored value layout: 8 bytes big-endian expiry in ms (0 = never), then
/// the value.
fn encode(value: &[u8], ttl_ms: Option<u64>) -> Vec<u8> {
    let expiry = ttl_ms.map_or(0, |ttl| system_now_ms().saturating_add(ttl).max(1));
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

/// The plugin kv database: one tree per plugin name.
#[derive(Clone)]
pub struct KvStore {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    db: sled::Db,
    disk: Arc<KvDisk>,
    limits: KvLimits,
    plugins: Mutex<HashMap<String, PluginKv>>,
}

impl KvStore {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path, limits: KvLimits) -> Result<Self, PluginError> {
        let config = |path: &Path| {
            sled::Config::new()
                .path(path)
                // sled's default page cache is 1 GiB; plugin state is small.
                .cache_capacity(32 << 20)
        };
        let (db, rewritten) = open_compacted(dir, config)
            .map_err(|e| PluginError::storage(format!("plugin kv at {}: {e}", dir.display())))?;
        if let Some((before, after)) = rewritten {
            tracing::info!(before, after, "plugin kv database rewritten compactly");
        }
        Ok(Self::with_db(db, limits))
    }

    /// A database that disappears with the process (tests, offline tools).
    pub fn temporary(limits: KvLimits) -> Result<Self, PluginError> {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(8 << 20)
            .open()
            .map_err(PluginError::storage)?;
        Ok(Self::with_db(db, limits))
    }

    fn with_db(db: sled::Db, limits: KvLimits) -> Self {
        KvStore {
            inner: Arc::new(StoreInner {
                disk: Arc::new(KvDisk::new(db.clone())),
                db,
                limits,
                plugins: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn limits(&self) -> &KvLimits {
        &self.inner.limits
    }

    /// The store of plugin `name`; every version of a plugin shares it (and
    /// its quota accounting).
    pub fn plugin(&self, name: &str) -> Result<PluginKv, PluginError> {
        let mut plugins = self.inner.plugins.lock().unwrap();
        if let Some(kv) = plugins.get(name) {
            return Ok(kv.clone());
        }
        let tree = self
            .inner
            .db
            .open_tree(format!("plugin/{name}"))
            .map_err(PluginError::storage)?;
        let kv = PluginKv::open(
            name,
            tree,
            self.inner.limits.clone(),
            self.inner.disk.clone(),
        );
        plugins.insert(name.into(), kv.clone());
        Ok(kv)
    }

    /// Removes every expired entry of every plugin; returns how many.
    pub fn sweep(&self) -> usize {
        let plugins: Vec<PluginKv> = self
            .inner
            .plugins
            .lock()
            .unwrap()
            .values()
            .cloned()
            .collect();
        plugins.iter().map(PluginKv::sweep).sum()
    }

    /// Drops everything every plugin holds in `scope` (its exchange or
    /// vhost was deleted: a new one of the same name starts empty, and the
    /// old state stops counting towards the plugins' quotas). Returns how
    /// many entries went.
    pub fn drop_scope(&self, scope: &KvScope) -> usize {
        let names: Vec<String> = self
            .inner
            .db
            .tree_names()
            .iter()
            .filter_map(|n| {
                std::str::from_utf8(n)
                    .ok()?
                    .strip_prefix("plugin/")
                    .map(String::from)
            })
            .collect();
        names
            .iter()
            .filter_map(|name| self.plugin(name).ok())
            .map(|kv| kv.drop_scope(scope))
            .sum()
    }

    /// Runs [`KvStore::sweep`] every `interval` on a thread of its own until
    /// the returned handle is dropped. The thread holds the store weakly, so
    /// it never keeps a closed store open.
    pub fn spawn_sweeper(&self, interval: Duration) -> Result<Sweeper, PluginError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let store: Weak<StoreInner> = Arc::downgrade(&self.inner);
        std::thread::Builder::new()
            .name("plugin-kv-sweep".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    let Some(inner) = store.upgrade() else { break };
                    let removed = KvStore { inner }.sweep();
                    if removed > 0 {
                        tracing::debug!(removed, "expired plugin kv entries removed");
                    }
                }
            })
            .map_err(PluginError::storage)?;
        Ok(Sweeper { _stop: stop })
    }
}

/// Stops the sweeper thread when dropped.
pub struct Sweeper {
    _stop: mpsc::Sender<()>,
}

/// One plugin's tree, with its quota accounting.
#[derive(Clone)]
pub struct PluginKv {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    plugin: String,
    tree: sled::Tree,
    limits: KvLimits,
    /// The whole database's files (shared by every plugin's store).
    disk: Arc<KvDisk>,
    /// Per scope, taken around every change of that scope so the counts
    /// stay exact.
    scopes: Mutex<HashMap<KvScope, Arc<Mutex<Usage>>>>,
    /// All scopes together; checked before and updated after each write.
    total_bytes: AtomicU64,
    refused: AtomicU64,
}

impl PluginKv {
    /// Counts what the tree already holds (bounded by the quotas).
    fn open(plugin: &str, tree: sled::Tree, limits: KvLimits, disk: Arc<KvDisk>) -> Self {
        let mut scopes: HashMap<KvScope, Usage> = HashMap::new();
        let mut total = 0;
        for (key, stored) in tree.iter().flatten() {
            let Some(scope) = KvScope::of_stored(&key) else {
                continue;
            };
            let bytes = entry_bytes(key.len(), stored.len());
            let usage = scopes.entry(scope).or_default();
            usage.keys += 1;
            usage.bytes += bytes;
            total += bytes;
        }
        PluginKv {
            inner: Arc::new(PluginInner {
                plugin: plugin.into(),
                tree,
                limits,
                disk,
                scopes: Mutex::new(
                    scopes
                        .into_iter()
                        .map(|(s, u)| (s, Arc::new(Mutex::new(u))))
                        .collect(),
                ),
                total_bytes: AtomicU64::new(total),
                refused: AtomicU64::new(0),
            }),
        }
    }

    fn usage_of(&self, scope: &KvScope) -> Arc<Mutex<Usage>> {
        self.inner
            .scopes
            .lock()
            .unwrap()
            .entry(scope.clone())
            .or_default()
            .clone()
    }

    pub fn get(&self, scope: &KvScope, key: &str) -> Option<Vec<u8>> {
        let full = scope.key(key);
        let stored = self.inner.tree.get(&full).ok().flatten()?;
        if let Some(value) = live(&stored, system_now_ms()) {
            return Some(value.to_vec());
        }
        let usage = self.usage_of(scope);
        let mut usage = usage.lock().unwrap();
        self.remove_if_unchanged(&mut usage, &full, &stored);
        None
    }

    pub fn set(
        &self,
        scope: &KvScope,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<(), KvRefused> {
        self.write(scope, key, value, ttl_ms, false).map(|_| ())
    }

    /// Stores only if the key is absent or expired; returns whether it
    /// stored. Atomic against other callers in the same scope.
    pub fn set_if_absent(
        &self,
        scope: &KvScope,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<bool, KvRefused> {
        self.write(scope, key, value, ttl_ms, true)
    }

    fn write(
        &self,
        scope: &KvScope,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        only_if_absent: bool,
    ) -> Result<bool, KvRefused> {
        let limits = &self.inner.limits;
        if key.len() > limits.max_key_bytes || value.len() > limits.max_value_bytes {
            return Err(self.refuse(
                scope,
                format!(
                    "a {}-byte key with a {}-byte value is over the limit \
                     ({} bytes per key, {} per value)",
                    key.len(),
                    value.len(),
                    limits.max_key_bytes,
                    limits.max_value_bytes
                ),
            ));
        }
        let full = scope.key(key);
        let fresh = encode(value, ttl_ms);
        let usage = self.usage_of(scope);
        let mut usage = usage.lock().unwrap();
        let current = self
            .inner
            .tree
            .get(&full)
            .map_err(|e| self.failed(scope, e))?;
        if only_if_absent
            && let Some(stored) = &current
            && live(stored, system_now_ms()).is_some()
        {
            return Ok(false);
        }
        let old = current
            .as_ref()
            .map_or(0, |s| entry_bytes(full.len(), s.len()));
        let new = entry_bytes(full.len(), fresh.len());
        let keys = usage.keys + u64::from(current.is_none());
        let bytes = usage.bytes - old + new;
        let total = self.inner.total_bytes.load(Ordering::Relaxed) - old + new;
        // Any write but a shrinking one grows sled's files (an overwrite of
        // the same size too): past the disk cap only those are taken.
        let disk_full =
            || (new >= old).then(|| self.inner.disk.exceeded(new, limits.max_disk_bytes));
        if let Some(reason) = limits
            .exceeded(keys, bytes, total, current.is_none(), new > old)
            .or_else(|| disk_full().flatten())
        {
            return Err(self.refuse(scope, reason));
        }
        self.inner
            .tree
            .insert(&full, fresh)
            .map_err(|e| self.failed(scope, e))?;
        usage.keys = keys;
        usage.bytes = bytes;
        self.inner.total_bytes.fetch_add(new, Ordering::Relaxed);
        self.inner.total_bytes.fetch_sub(old, Ordering::Relaxed);
        Ok(true)
    }

    pub fn delete(&self, scope: &KvScope, key: &str) {
        let full = scope.key(key);
        let usage = self.usage_of(scope);
        let mut usage = usage.lock().unwrap();
        if let Ok(Some(old)) = self.inner.tree.remove(&full) {
            self.forget(&mut usage, entry_bytes(full.len(), old.len()));
        }
    }

    /// Removes every entry of `scope`; returns how many.
    pub fn drop_scope(&self, scope: &KvScope) -> usize {
        let usage = self.usage_of(scope);
        let mut usage = usage.lock().unwrap();
        let mut removed = 0;
        for (key, stored) in self.inner.tree.scan_prefix(scope.prefix()).flatten() {
            removed += usize::from(self.remove_if_unchanged(&mut usage, &key, &stored));
        }
        removed
    }

    /// Removes every expired entry; returns how many.
    pub fn sweep(&self) -> usize {
        let now = system_now_ms();
        let mut removed = 0;
        for (key, stored) in self.inner.tree.iter().flatten() {
            if live(&stored, now).is_some() {
                continue;
            }
            let Some(scope) = KvScope::of_stored(&key) else {
                continue;
            };
            let usage = self.usage_of(&scope);
            let mut usage = usage.lock().unwrap();
            removed += usize::from(self.remove_if_unchanged(&mut usage, &key, &stored));
        }
        removed
    }

    /// Removes `key` only if it still holds `stored` (another caller may
    /// just have replaced it); the caller holds the scope's usage.
    fn remove_if_unchanged(&self, usage: &mut Usage, key: &[u8], stored: &[u8]) -> bool {
        let swapped = self
            .inner
            .tree
            .compare_and_swap(key, Some(stored), None as Option<&[u8]>);
        if matches!(swapped, Ok(Ok(()))) {
            self.forget(usage, entry_bytes(key.len(), stored.len()));
            true
        } else {
            false
        }
    }

    fn forget(&self, usage: &mut Usage, bytes: u64) {
        usage.keys = usage.keys.saturating_sub(1);
        usage.bytes = usage.bytes.saturating_sub(bytes);
        self.inner.total_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    fn refuse(&self, scope: &KvScope, reason: String) -> KvRefused {
        self.inner.refused.fetch_add(1, Ordering::Relaxed);
        KvRefused {
            plugin: self.inner.plugin.clone(),
            scope: scope.to_string(),
            reason,
        }
    }

    fn failed(&self, scope: &KvScope, error: sled::Error) -> KvRefused {
        self.refuse(scope, format!("the plugin kv database failed: {error}"))
    }

    /// What the plugin holds now, and how many writes were refused.
    pub fn usage(&self) -> KvUsage {
        let scopes = self.inner.scopes.lock().unwrap();
        KvUsage {
            keys: scopes.values().map(|u| u.lock().unwrap().keys).sum(),
            bytes: self.inner.total_bytes.load(Ordering::Relaxed),
            scopes: scopes
                .values()
                .filter(|u| u.lock().unwrap().keys > 0)
                .count() as u64,
            refused_writes: self.inner.refused.load(Ordering::Relaxed),
        }
    }

    /// One scope's usage (for tests and diagnostics).
    pub fn scope_usage(&self, scope: &KvScope) -> (u64, u64) {
        let usage = self.usage_of(scope);
        let usage = usage.lock().unwrap();
        (usage.keys, usage.bytes)
    }
}
