//! The plugin registry: plugins by name, each with its loaded versions and
//! one active version. Activating a version is an atomic pointer swap —
//! calls already running finish on the version they started with — and the
//! previous version is remembered for rollback. Components and records
//! persist in sled, so the registry survives restarts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::bindings::PluginKind;
use super::engine::{PluginEngine, sha256_hex};
use super::error::PluginError;
use super::kv::{KvStore, KvUsage, Sweeper};
use super::plugin_limits::CallLimits;
use super::stats::StatsSnapshot;
use super::version::PluginVersion;

/// How to load a component.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Registers the plugin under this name instead of the one it reports.
    pub name: Option<String>,
    /// The plugin's settings (its `config` import).
    pub config: BTreeMap<String, String>,
    /// Make the new version active at once (a new plugin always is).
    pub activate: bool,
}

/// All versions of one named plugin.
pub struct PluginSlot {
    name: String,
    kind: PluginKind,
    active: ArcSwap<PluginVersion>,
    state: Mutex<SlotState>,
}

struct SlotState {
    versions: BTreeMap<String, Arc<PluginVersion>>,
    /// Previously active versions, most recent last.
    history: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct SlotRecord {
    kind: String,
    active: String,
    history: Vec<String>,
    versions: Vec<VersionRecord>,
}

#[derive(Serialize, Deserialize)]
struct VersionRecord {
    version: String,
    sha256: String,
    config: BTreeMap<String, String>,
}

/// What `plugin list` shows for one plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginSummary {
    pub name: String,
    pub kind: String,
    pub active: String,
    pub versions: Vec<String>,
    /// The active version's source language, when known.
    pub language: Option<String>,
    pub description: String,
    pub quarantined: bool,
    pub stats: StatsSnapshot,
    /// The plugin's kv holdings (all versions share them).
    #[serde(default)]
    pub kv: KvUsage,
    /// The sandbox limits of the active version.
    #[serde(default)]
    pub limits: CallLimits,
}

impl PluginSlot {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    /// The version calls use now.
    pub fn active(&self) -> Arc<PluginVersion> {
        self.active.load_full()
    }

    pub fn versions(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .versions
            .keys()
            .cloned()
            .collect()
    }

    fn record(&self) -> SlotRecord {
        let state = self.state.lock().unwrap();
        SlotRecord {
            kind: self.kind.as_str().into(),
            active: self.active().version().into(),
            history: state.history.clone(),
            versions: state
                .versions
                .values()
                .map(|v| VersionRecord {
                    version: v.version().into(),
                    sha256: v.sha256().into(),
                    config: v.config().clone(),
                })
                .collect(),
        }
    }

    fn summary(&self) -> PluginSummary {
        let active = self.active();
        PluginSummary {
            name: self.name.clone(),
            kind: self.kind.as_str().into(),
            active: active.version().into(),
            versions: self.versions(),
            language: active.language().map(str::to_string),
            description: active.info().description.clone(),
            quarantined: active.is_quarantined(),
            stats: active.stats(),
            kv: active.kv().map(|kv| kv.usage()).unwrap_or_default(),
            limits: active.limits(),
        }
    }
}

pub struct PluginRegistry {
    engine: PluginEngine,
    db: sled::Db,
    records: sled::Tree,
    blobs: sled::Tree,
    /// Plugin state: a database of its own, swept in the background.
    kv: KvStore,
    _sweeper: Sweeper,
    slots: RwLock<BTreeMap<String, Arc<PluginSlot>>>,
    /// Built-ins that failed to load at start, with the reason: asking for
    /// one says why it is missing rather than that it does not exist.
    unavailable: RwLock<BTreeMap<String, String>>,
    /// Serialises changes so that memory and sled agree.
    changes: Mutex<()>,
}

impl PluginRegistry {
    /// Opens the registry stored in `db` with plugin state in a temporary
    /// kv database (tests, offline tools).
    pub fn open(engine: PluginEngine, db: sled::Db) -> Result<Self, PluginError> {
        let kv = KvStore::temporary(engine.limits().kv.clone())?;
        Self::open_with_kv(engine, db, kv)
    }

    /// Opens the registry stored in `db`, reloading every persisted version.
    /// A version that no longer loads is skipped with an error in the log.
    /// Plugin state lives in `kv`, which the registry sweeps while it lives.
    pub fn open_with_kv(
        engine: PluginEngine,
        db: sled::Db,
        kv: KvStore,
    ) -> Result<Self, PluginError> {
        drop_legacy_kv(&db);
        let records = db.open_tree("plugins").map_err(PluginError::storage)?;
        let blobs = db.open_tree("plugin-blobs").map_err(PluginError::storage)?;
        let _sweeper = kv.spawn_sweeper(kv.limits().sweep_interval)?;
        let registry = PluginRegistry {
            engine,
            db,
            records,
            blobs,
            kv,
            _sweeper,
            slots: RwLock::new(BTreeMap::new()),
            unavailable: RwLock::new(BTreeMap::new()),
            changes: Mutex::new(()),
        };
        for entry in registry.records.iter() {
            let (name, record) = entry.map_err(PluginError::storage)?;
            let name = String::from_utf8_lossy(&name).into_owned();
            match serde_json::from_slice::<SlotRecord>(&record) {
                Ok(record) => registry.restore(&name, record),
                Err(error) => {
                    tracing::error!(plugin = %name, %error, "unreadable plugin record skipped")
                }
            }
        }
        Ok(registry)
    }

    fn restore(&self, name: &str, record: SlotRecord) {
        let mut versions = BTreeMap::new();
        for v in record.versions {
            let loaded = self
                .blobs
                .get(&v.sha256)
                .map_err(PluginError::storage)
                .and_then(|bytes| {
                    bytes.ok_or_else(|| PluginError::storage("component bytes missing"))
                })
                .and_then(|bytes| self.load_version(&bytes, v.config, Some(name)));
            match loaded {
                Ok(version) => {
                    versions.insert(version.version().to_string(), version);
                }
                Err(error) => {
                    tracing::error!(plugin = %name, version = %v.version, %error, "plugin version not restored")
                }
            }
        }
        let Some(active) = versions
            .get(&record.active)
            .or_else(|| versions.values().next_back())
            .cloned()
        else {
            return;
        };
        let history = record
            .history
            .into_iter()
            .filter(|v| versions.contains_key(v))
            .collect();
        let slot = PluginSlot {
            name: name.into(),
            kind: active.kind(),
            active: ArcSwap::new(active),
            state: Mutex::new(SlotState { versions, history }),
        };
        self.slots
            .write()
            .unwrap()
            .insert(name.into(), Arc::new(slot));
    }

    fn load_version(
        &self,
        bytes: &[u8],
        config: BTreeMap<String, String>,
        name: Option<&str>,
    ) -> Result<Arc<PluginVersion>, PluginError> {
        PluginVersion::load(&self.engine, bytes, config, name, |name| {
            self.kv.plugin(name)
        })
    }

    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// The plugin state database.
    pub fn kv(&self) -> &KvStore {
        &self.kv
    }

    /// Validates and registers a component. Nothing changes unless it is a
    /// valid plugin; reloading identical bytes is a no-op; a version number
    /// already used by different bytes is refused.
    pub fn load(
        &self,
        bytes: &[u8],
        options: LoadOptions,
    ) -> Result<Arc<PluginVersion>, PluginError> {
        let version = self.load_version(bytes, options.config, options.name.as_deref())?;
        let _changes = self.changes.lock().unwrap();
        let name = version.name().to_string();
        let existing = self.slots.read().unwrap().get(&name).cloned();
        let slot = match existing {
            None => {
                let slot = Arc::new(PluginSlot {
                    name: name.clone(),
                    kind: version.kind(),
                    active: ArcSwap::new(version.clone()),
                    state: Mutex::new(SlotState {
                        versions: BTreeMap::from([(
                            version.version().to_string(),
                            version.clone(),
                        )]),
                        history: Vec::new(),
                    }),
                });
                self.persist_blob(bytes, &version)?;
                self.persist(&slot)?;
                self.slots.write().unwrap().insert(name, slot);
                return Ok(version);
            }
            Some(slot) => slot,
        };
        if slot.kind != version.kind() {
            return Err(PluginError::Conflict {
                name,
                reason: format!(
                    "is {}; a new version cannot be {}",
                    slot.kind.a_plugin(),
                    version.kind().a_plugin()
                ),
            });
        }
        let known = slot
            .state
            .lock()
            .unwrap()
            .versions
            .get(version.version())
            .cloned();
        let version = match known {
            Some(known)
                if known.sha256() == version.sha256() && known.config() == version.config() =>
            {
                known
            }
            Some(_) => {
                return Err(PluginError::Conflict {
                    name,
                    reason: format!(
                        "version {} is already loaded with different content or configuration; \
                         versions are immutable, give the new build a new version",
                        version.version()
                    ),
                });
            }
            None => {
                self.persist_blob(bytes, &version)?;
                slot.state
                    .lock()
                    .unwrap()
                    .versions
                    .insert(version.version().to_string(), version.clone());
                version
            }
        };
        if options.activate {
            Self::swap(&slot, version.clone());
        }
        self.persist(&slot)?;
        Ok(version)
    }

    /// Makes `version` the active version of `name`.
    pub fn activate(&self, name: &str, version: &str) -> Result<Arc<PluginVersion>, PluginError> {
        let _changes = self.changes.lock().unwrap();
        let slot = self.get(name)?;
        let target = slot
            .state
            .lock()
            .unwrap()
            .versions
            .get(version)
            .cloned()
            .ok_or_else(|| PluginError::NotFound {
                name: name.into(),
                version: Some(version.into()),
            })?;
        Self::swap(&slot, target.clone());
        self.persist(&slot)?;
        Ok(target)
    }

    /// Re-activates the version that was active before the current one.
    pub fn rollback(&self, name: &str) -> Result<Arc<PluginVersion>, PluginError> {
        let _changes = self.changes.lock().unwrap();
        let slot = self.get(name)?;
        let previous = {
            let mut state = slot.state.lock().unwrap();
            let previous = state.history.pop().ok_or_else(|| PluginError::Conflict {
                name: name.into(),
                reason: "has no previous version to roll back to".into(),
            })?;
            state.versions[&previous].clone()
        };
        slot.active.store(previous.clone());
        self.persist(&slot)?;
        tracing::info!(plugin = %previous.label(), "plugin rolled back");
        Ok(previous)
    }

    /// Puts this binary's build of a built-in in place of a stored version
    /// of the same number with other bytes (a data dir from an earlier
    /// binary): built-ins belong to the binary, so its build wins, and the
    /// slot's active version moves to it if that number was active.
    /// Returns false (nothing changed) unless the stored version differs.
    pub(crate) fn replace_builtin(&self, bytes: &[u8]) -> Result<bool, PluginError> {
        let version = self.load_version(bytes, BTreeMap::new(), None)?;
        let _changes = self.changes.lock().unwrap();
        let Some(slot) = self.slots.read().unwrap().get(version.name()).cloned() else {
            return Ok(false);
        };
        let mut state = slot.state.lock().unwrap();
        let Some(stored) = state.versions.get(version.version()) else {
            return Ok(false);
        };
        if stored.sha256() == version.sha256() || slot.kind != version.kind() {
            return Ok(false);
        }
        self.persist_blob(bytes, &version)?;
        state
            .versions
            .insert(version.version().to_string(), version.clone());
        if slot.active().version() == version.version() {
            slot.active.store(version.clone());
        }
        drop(state);
        self.persist(&slot)?;
        tracing::info!(plugin = %version.label(), "built-in plugin updated to this binary's build");
        Ok(true)
    }

    fn swap(slot: &PluginSlot, version: Arc<PluginVersion>) {
        let current = slot.active();
        if current.version() == version.version() {
            return;
        }
        slot.state
            .lock()
            .unwrap()
            .history
            .push(current.version().into());
        slot.active.store(version.clone());
        tracing::info!(plugin = %version.label(), previous = %current.label(), "plugin activated");
    }

    /// Removes a plugin and all its versions. Exchanges already using it keep
    /// their reference; callers check for users first.
    pub fn unload(&self, name: &str) -> Result<(), PluginError> {
        let _changes = self.changes.lock().unwrap();
        let slot =
            self.slots
                .write()
                .unwrap()
                .remove(name)
                .ok_or_else(|| PluginError::NotFound {
                    name: name.into(),
                    version: None,
                })?;
        self.records.remove(name).map_err(PluginError::storage)?;
        let still_used: Vec<String> = self
            .slots
            .read()
            .unwrap()
            .values()
            .flat_map(|s| s.record().versions.into_iter().map(|v| v.sha256))
            .collect();
        for version in slot.state.lock().unwrap().versions.values() {
            if !still_used.iter().any(|sha| sha == version.sha256()) {
                self.blobs
                    .remove(version.sha256())
                    .map_err(PluginError::storage)?;
            }
        }
        self.db.flush().map_err(PluginError::storage)?;
        Ok(())
    }

    pub fn get(&self, name: &str) -> Result<Arc<PluginSlot>, PluginError> {
        if let Some(slot) = self.slots.read().unwrap().get(name) {
            return Ok(slot.clone());
        }
        Err(match self.unavailable.read().unwrap().get(name) {
            Some(reason) => PluginError::Unavailable {
                name: name.into(),
                reason: reason.clone(),
            },
            None => PluginError::NotFound {
                name: name.into(),
                version: None,
            },
        })
    }

    /// Records that built-in `name` could not load (or, with `None`, that it
    /// now has).
    pub(crate) fn mark_unavailable(&self, name: &str, reason: Option<String>) {
        let mut unavailable = self.unavailable.write().unwrap();
        match reason {
            Some(reason) => unavailable.insert(name.into(), reason),
            None => unavailable.remove(name),
        };
    }

    pub fn list(&self) -> Vec<PluginSummary> {
        self.slots
            .read()
            .unwrap()
            .values()
            .map(|s| s.summary())
            .collect()
    }

    fn persist_blob(&self, bytes: &[u8], version: &PluginVersion) -> Result<(), PluginError> {
        debug_assert_eq!(sha256_hex(bytes), version.sha256());
        self.blobs
            .insert(version.sha256(), bytes)
            .map_err(PluginError::storage)?;
        Ok(())
    }

    fn persist(&self, slot: &PluginSlot) -> Result<(), PluginError> {
        let record = serde_json::to_vec(&slot.record()).map_err(PluginError::storage)?;
        self.records
            .insert(slot.name(), record)
            .map_err(PluginError::storage)?;
        self.db.flush().map_err(PluginError::storage)?;
        Ok(())
    }
}

/// Before 0.2 plugin state lived in the metadata database, unbounded
/// (`plugin-kv/<name>` trees). Its entries were short-lived idempotency
/// windows; it is dropped rather than migrated, so the metadata database
/// gives the space back.
fn drop_legacy_kv(db: &sled::Db) {
    for name in db.tree_names() {
        if name.starts_with(b"plugin-kv/") {
            match db.drop_tree(&name) {
                Ok(_) => tracing::info!(
                    tree = %String::from_utf8_lossy(&name),
                    "dropped plugin state kept in the metadata database by an older version"
                ),
                Err(error) => tracing::warn!(%error, "could not drop legacy plugin kv tree"),
            }
        }
    }
}
