//! File handles: each queue's index files stay open (mapped) while the
//! queue lives, so with no bound one tenant's queues could take every
//! handle the process may open and the commit log could not open its next
//! segment — every tenant's publishes then failed. A queue's next index
//! file is opened only while `file_handle_reserve` handles stay free; the
//! log's own segments are never refused by it.

use super::error::StorageError;

/// Fails unless opening one more file leaves `reserve` handles free under
/// the process's limit (`RLIMIT_NOFILE`). Counted from `/proc/self/fd`
/// when asked (declaring a queue is rare next to publishing); where that
/// cannot be read, nothing is refused.
pub fn file_handles_left(reserve: u32) -> Result<(), StorageError> {
    let Some((open, limit)) = file_handles() else {
        return Ok(());
    };
    if open + 1 + u64::from(reserve) > limit {
        return Err(StorageError::Full(format!(
            "no file handle for another queue file: the broker has {open} of its {limit} open \
             and keeps {reserve} for its commit log and connections \
             (limits.file_handle_reserve; raise `ulimit -n`, or delete queues)"
        )));
    }
    Ok(())
}

/// Open file handles and the soft limit on them.
fn file_handles() -> Option<(u64, u64)> {
    let open = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some((open, limit.rlim_cur))
}

/// Raises the soft limit on open files to the hard limit (as most servers
/// do at start: the soft default of 1,024 is a relic of `select`). Returns
/// the limit now in force.
pub fn raise_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}
