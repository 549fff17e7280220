//! A fixed-size file, memory-mapped whole. Segments back both the commit
//! log and the queue indexes.
//!
//! The file is created sparse at its full size and disk space is reserved
//! ahead of the writer, [`RESERVE_CHUNK`] at a time, with `posix_fallocate`
//! ([`Segment::reserve`]): a full disk shows up as an error before a record
//! is written, never as a SIGBUS when a mapped page is first written, and a
//! small disk is not refused by a large segment size (a 128 MiB segment on a
//! 64 MiB disk takes what it uses).
//!
//! Concurrency: one writer (the owner serialises appends) writes only past
//! the published end; readers only read below it. Bytes handed out keep the
//! mapping alive through an `Arc`, so a segment deleted from disk stays
//! readable until the last view is dropped.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use memmap2::MmapRaw;

use super::error::StorageError;
use super::prefault;

/// Disk space is reserved this much at a time, ahead of the writer.
pub const RESERVE_CHUNK: usize = 1 << 20;

/// How far ahead of the commit log's writer space is reserved and pages
/// faulted in: at ~400 MB/s the writer needs 10 ms to cross it, the
/// background thread a few ms at most to fault it in.
pub const RESERVE_AHEAD: usize = 4 * RESERVE_CHUNK;

pub struct Segment {
    path: PathBuf,
    file: File,
    map: MmapRaw,
    len: usize,
    /// Bytes from the start known to be backed by disk space. Only the
    /// segment's single writer moves it.
    reserved: AtomicUsize,
    /// Where the file's data ends: every byte past it is a hole and reads
    /// as zero. Reads past it must not go through the map: on tmpfs even a
    /// read allocates the page, and on a full disk that is a SIGBUS — a
    /// broker that could not restart after filling its disk.
    data_end: AtomicUsize,
}

/// A zero-copy view into a segment, the owner behind a `Bytes`.
struct View {
    segment: Arc<Segment>,
    offset: usize,
    len: usize,
}

impl AsRef<[u8]> for View {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the range was checked against the mapping's length when the
        // view was made, the mapping lives as long as `segment`, and bytes
        // below the published end are never written again (see module docs).
        unsafe { std::slice::from_raw_parts(self.segment.map.as_ptr().add(self.offset), self.len) }
    }
}

impl Segment {
    /// Creates (or re-sizes) the file at `path`, `len` bytes long, sparse
    /// but for the first [`RESERVE_CHUNK`], which is reserved on disk.
    pub fn create(path: &Path, len: usize) -> Result<Arc<Self>, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StorageError::io(path, e))?;
        let reserved = fallocate(&file, path, 0, RESERVE_CHUNK.min(len)).and_then(|()| {
            file.set_len(len as u64)
                .map_err(|e| StorageError::io(path, e))
        });
        if let Err(error) = reserved {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(error);
        }
        let segment = Self::map(path, file, len)?;
        segment.populate(0, RESERVE_CHUNK.min(len));
        segment.backed_up_to(RESERVE_CHUNK.min(len));
        Ok(segment)
    }

    /// Makes sure the first `upto` bytes are backed by disk space, growing
    /// the reservation a chunk at a time; `StorageError::Full` when the disk
    /// has no room (nothing is written then). Space is also reserved up to
    /// `ahead` bytes further when the disk allows (the commit log uses
    /// [`RESERVE_AHEAD`]; index files, which grow slowly, none), and what is
    /// newly reserved is faulted into memory in the background, so the
    /// writer finds its pages ready.
    pub fn reserve(self: &Arc<Self>, upto: usize, ahead: usize) -> Result<(), StorageError> {
        if !self.needs_reserve(upto, ahead) {
            return Ok(());
        }
        let reserved = self.reserved.load(Ordering::Relaxed);
        let chunk_end = |at: usize| {
            at.div_ceil(RESERVE_CHUNK)
                .saturating_mul(RESERVE_CHUNK)
                .min(self.len)
        };
        let needed = chunk_end(upto).max(reserved);
        fallocate(&self.file, &self.path, reserved, needed - reserved)?;
        let ahead = chunk_end(upto.saturating_add(ahead)).max(needed);
        let end = match fallocate(&self.file, &self.path, needed, ahead - needed) {
            Ok(()) => ahead,
            // Only an optimisation: the writer reserves again when it
            // gets there, and then a full disk is an error.
            Err(_) => needed,
        };
        self.backed_up_to(end);
        prefault::later(self, reserved, end - reserved);
        Ok(())
    }

    /// Whether [`Segment::reserve`] for `upto` and `ahead` would reserve
    /// more space (the writer is within `ahead` of the reservation's end).
    pub fn needs_reserve(&self, upto: usize, ahead: usize) -> bool {
        let reserved = self.reserved.load(Ordering::Relaxed);
        reserved < self.len && upto.saturating_add(ahead) > reserved
    }

    /// Faults `len` bytes at `offset` into memory in one call (the kernel
    /// zeroes the pages in bulk) rather than one page fault per 4 KiB page
    /// as the writer first touches them. Only a hint: on failure the
    /// writer's own faults do the same work.
    pub(crate) fn populate(&self, offset: usize, len: usize) {
        // SAFETY: the range lies inside the mapping and is backed by disk
        // space (just reserved); MADV_POPULATE_WRITE only faults pages in.
        unsafe {
            libc::madvise(
                self.map.as_mut_ptr().add(offset).cast(),
                len,
                libc::MADV_POPULATE_WRITE,
            );
        }
    }

    /// Records that `[0, upto)` is backed by disk space.
    fn backed_up_to(&self, upto: usize) {
        self.reserved.fetch_max(upto, Ordering::Release);
        self.data_end.fetch_max(upto, Ordering::Release);
    }

    /// How far reads may go: the end of the file's data (see `data_end`).
    pub fn readable_len(&self) -> usize {
        self.data_end.load(Ordering::Acquire).min(self.len)
    }

    /// Opens an existing segment file; its size is its length.
    pub fn open(path: &Path) -> Result<Arc<Self>, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StorageError::io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(path, e))?
            .len() as usize;
        Self::map(path, file, len)
    }

    fn map(path: &Path, file: File, len: usize) -> Result<Arc<Self>, StorageError> {
        let map = MmapRaw::map_raw(&file).map_err(|e| StorageError::io(path, e))?;
        let extents = DataExtents::of(&file, len);
        Ok(Arc::new(Segment {
            path: path.to_path_buf(),
            file,
            map,
            len,
            // For a file opened from disk, what it already holds; the first
            // `reserve` covers the rest up to the writer (already-backed
            // ranges cost nothing).
            reserved: AtomicUsize::new(extents.first_hole),
            data_end: AtomicUsize::new(extents.data_end),
        }))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Copies `data` to `offset`.
    ///
    /// The caller must be the segment's only writer and `offset..` must not
    /// yet be visible to readers.
    pub fn write(&self, offset: usize, data: &[u8]) {
        assert!(
            offset + data.len() <= self.len,
            "write past the end of {}",
            self.path.display()
        );
        // SAFETY: in bounds (checked above); the single-writer, unpublished
        // region rule of the module docs means no reader sees these bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.map.as_mut_ptr().add(offset),
                data.len(),
            );
        }
    }

    /// Lends `len` bytes at `offset` as a mutable slice to `fill` (same
    /// rules as [`Segment::write`]); saves a copy when encoding in place.
    pub fn fill(&self, offset: usize, len: usize, fill: impl FnOnce(&mut [u8])) {
        assert!(
            offset + len <= self.len,
            "write past the end of {}",
            self.path.display()
        );
        // SAFETY: as in `write`.
        let slice =
            unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(offset), len) };
        fill(slice)
    }

    /// Zero-copy bytes at `offset..offset+len`.
    pub fn bytes(self: &Arc<Self>, offset: usize, len: usize) -> Bytes {
        assert!(
            offset + len <= self.len,
            "read past the end of {}",
            self.path.display()
        );
        Bytes::from_owner(View {
            segment: self.clone(),
            offset,
            len,
        })
    }

    /// Bytes from `offset` to the end of the segment's data (the rest
    /// reads as zeroes).
    pub fn tail(self: &Arc<Self>, offset: usize) -> Bytes {
        self.bytes(offset, self.readable_len().saturating_sub(offset))
    }

    /// Writes `offset..offset+len` to disk (msync).
    pub fn flush_range(&self, offset: usize, len: usize) -> Result<(), StorageError> {
        if len == 0 {
            return Ok(());
        }
        self.map
            .flush_range(offset, len)
            .map_err(|e| StorageError::io(&self.path, e))
    }

    /// Zeroes everything from `offset` to the end and flushes it: used to cut
    /// a torn or corrupt tail so it can never be mistaken for data again.
    ///
    /// Only pages holding non-zero bytes are written: they are backed by
    /// disk already, while touching a page of a sparse hole would allocate
    /// it — and on a full disk, fault (SIGBUS) instead of failing cleanly.
    /// Holes past the data's end are not even read (see `data_end`).
    pub fn zero_from(&self, offset: usize) -> Result<(), StorageError> {
        let end = self.readable_len();
        if offset >= end {
            return Ok(());
        }
        const PAGE: usize = 4096;
        let zeroes = [0u8; PAGE];
        let mut at = offset;
        while at < end {
            // Up to the next page boundary, so every write stays in a page.
            let n = (PAGE - at % PAGE).min(end - at);
            // SAFETY: in bounds; called during recovery or truncation, when
            // no reader can see these bytes.
            let current = unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(at), n) };
            if current.iter().any(|&b| b != 0) {
                self.write(at, &zeroes[..n]);
            }
            at += n;
        }
        self.flush_range(offset, end - offset)
    }

    /// fsyncs the file's metadata (after creation or truncation).
    pub fn sync_file(&self) -> Result<(), StorageError> {
        self.file
            .sync_all()
            .map_err(|e| StorageError::io(&self.path, e))
    }
}

/// The file name of the segment numbered `number`: `<number:020>.<extension>`.
pub fn numbered_name(number: u64, extension: &str) -> String {
    format!("{number:020}.{extension}")
}

/// Opens every numbered segment file in `dir` (creating `dir` if needed),
/// keyed by number. A file shorter than `len` was truncated: it is grown
/// back, and its lost tail reads as zeroes (recovery stops there).
pub fn open_numbered(
    dir: &Path,
    extension: &str,
    len: usize,
) -> Result<BTreeMap<u64, Arc<Segment>>, StorageError> {
    std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
    let suffix = format!(".{extension}");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let path = entry.map_err(|e| StorageError::io(dir, e))?.path();
        let Some(number) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(suffix.as_str()))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let segment = Segment::open(&path)?;
        let segment = if segment.len() < len {
            drop(segment);
            Segment::create(&path, len)?
        } else {
            segment
        };
        files.insert(number, segment);
    }
    Ok(files)
}

/// Where a file's data lies, as far as recovery needs it.
struct DataExtents {
    /// The first hole: `[0, first_hole)` is backed by disk space.
    first_hole: usize,
    /// The end of the last data extent: everything after it reads as zero.
    data_end: usize,
}

impl DataExtents {
    /// Asks the file system (`SEEK_DATA` / `SEEK_HOLE`). One that cannot
    /// say is taken as fully written and not reserved at all, which only
    /// costs the optimisation.
    fn of(file: &File, len: usize) -> DataExtents {
        let unknown = DataExtents {
            first_hole: 0,
            data_end: len,
        };
        let seek = |offset: usize, whence| {
            // SAFETY: plain FFI call on an open descriptor.
            let at = unsafe { libc::lseek(file.as_raw_fd(), offset as libc::off_t, whence) };
            match at {
                -1 => Err(std::io::Error::last_os_error()),
                at => Ok((at as usize).min(len)),
            }
        };
        let Ok(first_hole) = seek(0, libc::SEEK_HOLE) else {
            return unknown;
        };
        let mut data_end = first_hole;
        let mut at = first_hole;
        while at < len {
            match seek(at, libc::SEEK_DATA) {
                Ok(data) => match seek(data, libc::SEEK_HOLE) {
                    Ok(hole) if hole > data => (data_end, at) = (hole, hole),
                    _ => return unknown,
                },
                // ENXIO: no data after `at`.
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => break,
                Err(_) => return unknown,
            }
        }
        DataExtents {
            first_hole,
            data_end,
        }
    }
}

/// Reserves `[offset, offset + len)` of `file` on disk.
fn fallocate(file: &File, path: &Path, offset: usize, len: usize) -> Result<(), StorageError> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: plain FFI call on an open descriptor.
    let rc = unsafe {
        libc::posix_fallocate(file.as_raw_fd(), offset as libc::off_t, len as libc::off_t)
    };
    if rc == 0 {
        return Ok(());
    }
    let error = std::io::Error::from_raw_os_error(rc);
    Err(StorageError::Full(format!(
        "cannot reserve {len} bytes for {}: {error}",
        path.display()
    )))
}
