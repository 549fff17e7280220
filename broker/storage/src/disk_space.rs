//! The free-space floor the commit log keeps on its filesystem.
//!
//! The log stops taking messages while the space left would fall below
//! `disk_free_limit` (RabbitMQ's disk alarm, by another name): the rest is
//! headroom for what must still be written when the disk is "full" —
//! checkpoints and consumption state (so consumed segments can be
//! released and publishing resume), topology changes, plugin state, and
//! the databases a broker writes while it opens after a crash. Without it,
//! a broker killed on a full disk could not start again.

use std::path::{Path, PathBuf};

use super::error::StorageError;

/// The automatic floor: a sixteenth of the filesystem, at most this.
const MAX_AUTOMATIC_LIMIT: u64 = 50 << 20;

#[derive(Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    free_limit: u64,
}

impl DiskSpace {
    /// The floor for the filesystem of `dir`: `configured`, or a sixteenth
    /// of the filesystem's size up to 50 MiB.
    pub fn new(dir: &Path, configured: Option<u64>) -> DiskSpace {
        let free_limit = configured
            .unwrap_or_else(|| statvfs(dir).map_or(0, |s| (s.total / 16).min(MAX_AUTOMATIC_LIMIT)));
        DiskSpace {
            dir: dir.to_path_buf(),
            free_limit,
        }
    }

    pub fn free_limit(&self) -> u64 {
        self.free_limit
    }

    /// Refuses (`StorageError::Full`, naming the limit) if taking `bytes`
    /// more would leave less than the floor free.
    pub fn check_room_for(&self, bytes: u64) -> Result<(), StorageError> {
        let Some(space) = statvfs(&self.dir) else {
            return Ok(());
        };
        if space.available.saturating_sub(bytes) < self.free_limit {
            return Err(StorageError::Full(format!(
                "{} bytes free on the disk of {}, and the log keeps at least {} free \
                 (storage.disk_free_limit_bytes)",
                space.available,
                self.dir.display(),
                self.free_limit
            )));
        }
        Ok(())
    }
}

/// Bytes an unprivileged writer may still use on the filesystem of `dir`.
pub fn available_bytes(dir: &Path) -> Option<u64> {
    statvfs(dir).map(|s| s.available)
}

struct Space {
    total: u64,
    available: u64,
}

fn statvfs(dir: &Path) -> Option<Space> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `stat` is plain data the call fills; `path` is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    let block = stat.f_frsize as u64;
    (rc == 0).then(|| Space {
        total: (stat.f_blocks as u64).saturating_mul(block),
        available: (stat.f_bavail as u64).saturating_mul(block),
    })
}
