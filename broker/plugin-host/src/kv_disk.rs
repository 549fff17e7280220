//! What plugin state takes on disk. sled's files grow well past the data
//! they hold (a plugin overwriting its keys took 3.1 GB for what the
//! logical quotas counted as 256 MiB, and 5.6 GB after a second round) and
//! never shrink on their own. So the database's size on disk has its own
//! cap (`sandbox.kv.max_disk_bytes`): past it, writes that grow state are
//! refused like any quota; and at start a database much larger than what
//! it holds is rewritten compactly (export into a fresh database, then
//! swapped in by two renames that a crash at any moment leaves
//! recoverable).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The size on disk is measured again (it reads file sizes) after this
/// long, or after this many bytes were written since: sled writes hundreds
/// of megabytes a second, so time alone would let a burst run far past
/// the cap.
const MEASURE_EVERY_MS: u64 = 1_000;
const MEASURE_EVERY_BYTES: u64 = 4 << 20;

/// A database is rewritten at start when its files take more than this
/// many times what it holds…
const BLOAT_FACTOR: u64 = 4;
/// …and more than this in all (small databases are left as they are).
const BLOAT_FLOOR: u64 = 16 << 20;

/// The database's size on disk, measured at most once a second.
pub(crate) struct KvDisk {
    db: sled::Db,
    bytes: AtomicU64,
    measured_ms: AtomicU64,
    /// Bytes written since the last measurement.
    written: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl KvDisk {
    pub(crate) fn new(db: sled::Db) -> Self {
        let bytes = db.size_on_disk().unwrap_or(0);
        KvDisk {
            db,
            bytes: AtomicU64::new(bytes),
            measured_ms: AtomicU64::new(now_ms()),
            written: AtomicU64::new(0),
        }
    }

    /// Bytes on disk, as last measured (at most a second or
    /// [`MEASURE_EVERY_BYTES`] of writes ago).
    fn bytes(&self) -> u64 {
        let now = now_ms();
        let measured = self.measured_ms.load(Ordering::Relaxed);
        let due = now.saturating_sub(measured) >= MEASURE_EVERY_MS
            || self.written.load(Ordering::Relaxed) >= MEASURE_EVERY_BYTES;
        if due
            && self
                .measured_ms
                .compare_exchange(measured, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            && let Ok(bytes) = self.db.size_on_disk()
        {
            self.written.store(0, Ordering::Relaxed);
            self.bytes.store(bytes, Ordering::Relaxed);
        }
        self.bytes.load(Ordering::Relaxed)
    }

    /// Why a write of `size` bytes is refused, if the files are past
    /// `limit`.
    pub(crate) fn exceeded(&self, size: u64, limit: u64) -> Option<String> {
        self.written.fetch_add(size, Ordering::Relaxed);
        let bytes = self.bytes();
        (bytes > limit).then(|| {
            format!(
                "the plugin kv database takes {bytes} bytes on disk \
                 (limit {limit}, sandbox.kv.max_disk_bytes)"
            )
        })
    }
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

/// Finishes a rewrite a crash interrupted: the new database was complete
/// before the first rename, so once the old one is set aside the new one
/// is taken; before that, the unfinished new one is thrown away.
fn finish_interrupted(dir: &Path) -> std::io::Result<()> {
    let (fresh, old) = (sibling(dir, ".compacting"), sibling(dir, ".old"));
    if !dir.exists() && fresh.exists() {
        std::fs::rename(&fresh, dir)?;
    }
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh)?;
    }
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// What the database holds (keys and values of every tree).
fn logical_bytes(db: &sled::Db) -> u64 {
    db.tree_names()
        .iter()
        .filter_map(|name| db.open_tree(name).ok())
        .flat_map(|tree| tree.iter().flatten().collect::<Vec<_>>())
        .map(|(k, v)| (k.len() + v.len()) as u64)
        .sum()
}

/// Opens the database in `dir` with `config`, rewritten first if its
/// files are bloated. Returns it and, if it was rewritten, the sizes on
/// disk before and after.
pub(crate) fn open_compacted(
    dir: &Path,
    config: impl Fn(&Path) -> sled::Config,
) -> Result<(sled::Db, Option<(u64, u64)>), String> {
    open_compacted_past(dir, config, BLOAT_FLOOR)
}

fn open_compacted_past(
    dir: &Path,
    config: impl Fn(&Path) -> sled::Config,
    floor: u64,
) -> Result<(sled::Db, Option<(u64, u64)>), String> {
    finish_interrupted(dir)
        .map_err(|e| format!("finishing a rewrite of {}: {e}", dir.display()))?;
    let db = config(dir).open().map_err(|e| e.to_string())?;
    let on_disk = db.size_on_disk().unwrap_or(0);
    if on_disk <= floor || on_disk <= BLOAT_FACTOR.saturating_mul(logical_bytes(&db)) {
        return Ok((db, None));
    }
    let fresh_dir = sibling(dir, ".compacting");
    let fresh = config(&fresh_dir).open().map_err(|e| e.to_string())?;
    fresh.import(db.export());
    fresh.flush().map_err(|e| e.to_string())?;
    drop((fresh, db));
    let old = sibling(dir, ".old");
    std::fs::rename(dir, &old)
        .and_then(|()| std::fs::rename(&fresh_dir, dir))
        .and_then(|()| std::fs::remove_dir_all(&old))
        .map_err(|e| format!("swapping in the rewritten {}: {e}", dir.display()))?;
    let db = config(dir).open().map_err(|e| e.to_string())?;
    let after = db.size_on_disk().unwrap_or(0);
    Ok((db, Some((on_disk, after))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bloated_database_is_rewritten_with_what_it_holds() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("kv");
        let config = |path: &Path| sled::Config::new().path(path);
        {
            let db = config(&dir).open().unwrap();
            let tree = db.open_tree("plugin/p").unwrap();
            for i in 0..256u32 {
                tree.insert(i.to_be_bytes(), vec![7u8; 16 << 10]).unwrap();
            }
            for i in 1..256u32 {
                tree.remove(i.to_be_bytes()).unwrap();
            }
            db.flush().unwrap();
        }
        let (db, rewritten) = open_compacted_past(&dir, config, 0).unwrap();
        let (before, after) = rewritten.expect("4 MiB written, 16 KiB held: rewritten");
        assert!(after < before, "{before} → {after}");
        let tree = db.open_tree("plugin/p").unwrap();
        assert_eq!(tree.len(), 1);
        assert_eq!(
            tree.get(0u32.to_be_bytes()).unwrap().unwrap().len(),
            16 << 10
        );
        assert!(!sibling(&dir, ".old").exists() && !sibling(&dir, ".compacting").exists());
    }

    #[test]
    fn a_rewrite_cut_short_by_a_crash_is_finished_or_dropped() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("kv");
        let (fresh, old) = (sibling(&dir, ".compacting"), sibling(&dir, ".old"));
        // Crashed while writing the new database: it is dropped.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&fresh).unwrap();
        finish_interrupted(&dir).unwrap();
        assert!(dir.exists() && !fresh.exists());
        // Crashed between the two renames: the complete new one is taken.
        std::fs::rename(&dir, &old).unwrap();
        std::fs::create_dir_all(&fresh).unwrap();
        std::fs::write(fresh.join("marker"), b"new").unwrap();
        finish_interrupted(&dir).unwrap();
        assert!(dir.join("marker").exists() && !old.exists() && !fresh.exists());
    }
}
