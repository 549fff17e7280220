//! Per-queue index: fixed-size entries in preallocated, mmap'd files, so
//! entry N of a queue is found with arithmetic (file = N / per-file, slot =
//! N % per-file) and a queue's index stays small enough for the page cache.
//!
//! ```text
//! entry (24 bytes, little endian)
//!   0  8  log position of the record
//!   8  4  record length
//!  12  8  tag: expiry time in ms (0 = none)
//!  20  4  CRC32C of bytes [0, 20)
//! ```
//! An all-zero entry has never been written. Files are named by the queue
//! offset of their first entry: `00000000000000000000.idx`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::StorageError;
use super::segment::{Segment, numbered_name, open_numbered};

pub const ENTRY_LEN: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub position: u64,
    pub len: u32,
    pub expiry_ms: u64,
}

impl IndexEntry {
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0..8].copy_from_slice(&self.position.to_le_bytes());
        out[8..12].copy_from_slice(&self.len.to_le_bytes());
        out[12..20].copy_from_slice(&self.expiry_ms.to_le_bytes());
        let crc = crc32c::crc32c(&out[0..20]);
        out[20..24].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// `None` for an unwritten (all-zero) entry; `Err` for a damaged one.
    pub fn decode(bytes: &[u8]) -> Result<Option<Self>, String> {
        if bytes.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let stored = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
        let computed = crc32c::crc32c(&bytes[0..20]);
        if stored != computed {
            return Err(format!(
                "entry checksum mismatch ({stored:08x} != {computed:08x})"
            ));
        }
        Ok(Some(IndexEntry {
            position: u64::from_le_bytes(bytes[0..8].try_into().unwrap()),
            len: u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
            expiry_ms: u64::from_le_bytes(bytes[12..20].try_into().unwrap()),
        }))
    }
}

pub struct QueueIndex {
    dir: PathBuf,
    entries_per_file: u64,
    /// First offset of each file → file.
    files: BTreeMap<u64, Arc<Segment>>,
    /// Offsets below this were released (their files deleted).
    start: u64,
    /// The next offset to write; entries below it are readable.
    end: u64,
    /// Entries below this are on disk.
    flushed: u64,
}

impl QueueIndex {
    /// Opens (or creates) the index in `dir` without validating entries;
    /// the store's recovery establishes `end` (with `truncate`).
    pub fn open(dir: &Path, entries_per_file: u64) -> Result<Self, StorageError> {
        let files = open_numbered(dir, "idx", entries_per_file as usize * ENTRY_LEN)?;
        let start = files.keys().next().copied().unwrap_or(0);
        Ok(QueueIndex {
            dir: dir.to_path_buf(),
            entries_per_file,
            files,
            start,
            end: start,
            flushed: start,
        })
    }

    /// The size of its files.
    pub fn disk_bytes(&self) -> u64 {
        self.files.values().map(|f| f.len() as u64).sum()
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    fn locate(&self, offset: u64) -> Option<(&Arc<Segment>, usize)> {
        let first = offset - offset % self.entries_per_file;
        let file = self.files.get(&first)?;
        Some((file, (offset - first) as usize * ENTRY_LEN))
    }

    /// Reads entry `offset` whatever `end` says (recovery uses this).
    pub fn read_raw(&self, offset: u64) -> Result<Option<IndexEntry>, String> {
        match self.locate(offset) {
            None => Ok(None),
            Some((file, at)) => IndexEntry::decode(&file.bytes(at, ENTRY_LEN)),
        }
    }

    pub fn get(&self, offset: u64) -> Result<IndexEntry, StorageError> {
        if offset < self.start || offset >= self.end {
            return Err(StorageError::OutOfRange {
                offset,
                start: self.start,
                end: self.end,
            });
        }
        match self.read_raw(offset) {
            Ok(Some(entry)) => Ok(entry),
            Ok(None) => Err(StorageError::Corrupt {
                location: format!("{} entry {offset}", self.dir.display()),
                reason: "entry missing".into(),
            }),
            Err(reason) => Err(StorageError::Corrupt {
                location: format!("{} entry {offset}", self.dir.display()),
                reason,
            }),
        }
    }

    /// Whether the next entry needs a file not yet open.
    pub fn needs_new_file(&self) -> bool {
        let first = self.end - self.end % self.entries_per_file;
        !self.files.contains_key(&first)
    }

    /// Makes sure the file for the next entry exists, so that a following
    /// `append` cannot fail (the commit log record is written in between).
    pub fn reserve_next(&mut self) -> Result<(), StorageError> {
        let first = self.end - self.end % self.entries_per_file;
        if !self.files.contains_key(&first) {
            let path = self.dir.join(numbered_name(first, "idx"));
            let file = Segment::create(&path, self.entries_per_file as usize * ENTRY_LEN)?;
            self.files.insert(first, file);
        }
        let slot = (self.end - first) as usize * ENTRY_LEN;
        self.files[&first].reserve(slot + ENTRY_LEN, 0)
    }

    /// Appends an entry; `reserve_next` must have succeeded first.
    pub fn append(&mut self, entry: IndexEntry) -> u64 {
        let offset = self.end;
        let (file, at) = self.locate(offset).expect("reserve_next before append");
        file.write(at, &entry.encode());
        self.end += 1;
        offset
    }

    /// Writes entries in `[flushed, end)` to disk.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        let end = self.end;
        let mut at = self.flushed.max(self.start);
        while at < end {
            let first = at - at % self.entries_per_file;
            let upto = end.min(first + self.entries_per_file);
            if let Some(file) = self.files.get(&first) {
                let from = (at - first) as usize * ENTRY_LEN;
                file.flush_range(from, (upto - at) as usize * ENTRY_LEN)?;
            }
            at = upto;
        }
        self.flushed = end;
        Ok(())
    }

    /// An index whose files were all released: empty, continuing at `at`.
    pub fn reset_empty(&mut self, at: u64) {
        self.start = at;
        self.end = at;
        self.flushed = at;
    }

    /// Whether any index file exists.
    pub fn has_files(&self) -> bool {
        !self.files.is_empty()
    }

    /// Sets `end` (recovery) and zeroes every entry from it on.
    pub fn truncate(&mut self, end: u64) -> Result<(), StorageError> {
        let end = end.max(self.start);
        for (&first, file) in self.files.range(end - end % self.entries_per_file..) {
            let from = end.saturating_sub(first) as usize * ENTRY_LEN;
            file.zero_from(from.min(file.len()))?;
        }
        self.end = end;
        self.flushed = self.flushed.min(end);
        Ok(())
    }

    /// Deletes the files whose entries all lie below `offset`.
    pub fn release_before(&mut self, offset: u64) -> Result<(), StorageError> {
        let doomed: Vec<u64> = self
            .files
            .keys()
            .copied()
            .filter(|&first| first + self.entries_per_file <= offset)
            .collect();
        for first in doomed {
            if let Some(file) = self.files.remove(&first) {
                std::fs::remove_file(file.path()).map_err(|e| StorageError::io(file.path(), e))?;
            }
        }
        self.start = self
            .start
            .max(offset - offset % self.entries_per_file)
            .min(self.end);
        Ok(())
    }

    /// Deletes the whole index.
    pub fn destroy(self) -> Result<(), StorageError> {
        std::fs::remove_dir_all(&self.dir).map_err(|e| StorageError::io(&self.dir, e))
    }
}
