//! The timers of pending delayed messages, on disk: a hashed timer wheel
//! (RocketMQ 5's timer wheel + timer log). The wheel is one file of slot
//! heads, one slot per second, 2^20 slots (about 12 days a revolution);
//! the timer log is a file of 24-byte entries (due time, delay-queue
//! offset, next entry of the same slot), chained per slot. Both are
//! memory-mapped files: pending timers cost disk and page cache, not heap.
//! Only timers due within the current second are held in memory (`near`),
//! in due order.
//!
//! The wheel is scratch: the delay queue's index is the truth (each entry
//! holds its message's due time), and `store/delays.rs` rebuilds the wheel
//! from it at every open and whenever the timer log has grown well past
//! what is pending. Nothing here is ever flushed.
//!
//! Invariant: a timer due before `cursor` seconds is in `near`; any other
//! is chained in the slot of its due second (modulo the wheel), and is
//! moved to `near` when the cursor passes that second in its revolution.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use super::error::StorageError;

const SLOT_MS: u64 = 1000;
const SLOTS: u64 = 1 << 20;
const ENTRY_LEN: u64 = 24;
/// Timer-log entries the file grows by.
const GROW_ENTRIES: u64 = 1 << 16;

/// A timer: a delayed message's due time and its offset in the delay queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timer {
    pub due_ms: u64,
    pub offset: u64,
}

pub struct TimerWheel {
    dir: PathBuf,
    /// Slot heads: entry index + 1 of the slot's newest timer (0: empty).
    slots: MmapMut,
    log_file: File,
    log: MmapMut,
    /// Entries written to the timer log (live or not).
    written: u64,
    /// Timers chained in the wheel (not in `near`).
    chained: u64,
    /// Every timer due before this second is in `near`.
    cursor: u64,
    near: BinaryHeap<Reverse<Timer>>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |e| StorageError::io(path, e)
}

fn map(file: &File, path: &Path) -> Result<MmapMut, StorageError> {
    // SAFETY: the files are private to this store (its own directory,
    // recreated at every open) and only this process maps them.
    unsafe { MmapMut::map_mut(file) }.map_err(io(path))
}

impl TimerWheel {
    /// An empty wheel in `dir` (whatever was there is discarded), whose
    /// cursor starts at `now_ms`.
    pub fn create(dir: &Path, now_ms: u64) -> Result<TimerWheel, StorageError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let open = |name: &str, len: u64| -> Result<(File, MmapMut), StorageError> {
            let path = dir.join(name);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(io(&path))?;
            // Sparse: untouched slots and entries take no disk.
            file.set_len(len).map_err(io(&path))?;
            let mapped = map(&file, &path)?;
            Ok((file, mapped))
        };
        let (_, slots) = open("wheel", SLOTS * 8)?;
        let (log_file, log) = open("timers", GROW_ENTRIES * ENTRY_LEN)?;
        Ok(TimerWheel {
            dir: dir.to_path_buf(),
            slots,
            log_file,
            log,
            written: 0,
            chained: 0,
            cursor: now_ms / SLOT_MS,
            near: BinaryHeap::new(),
        })
    }

    /// Timers pending (chained or near).
    pub fn pending(&self) -> u64 {
        self.chained + self.near.len() as u64
    }

    /// Entries the timer log holds, live or not: when this is far above
    /// [`TimerWheel::pending`], a rebuild returns the space.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn head(&self, slot: u64) -> u64 {
        let at = (slot * 8) as usize;
        u64::from_le_bytes(self.slots[at..at + 8].try_into().unwrap())
    }

    fn set_head(&mut self, slot: u64, head: u64) {
        let at = (slot * 8) as usize;
        self.slots[at..at + 8].copy_from_slice(&head.to_le_bytes());
    }

    fn entry(&self, index: u64) -> (Timer, u64) {
        let at = (index * ENTRY_LEN) as usize;
        let word = |i: usize| u64::from_le_bytes(self.log[at + i..at + i + 8].try_into().unwrap());
        (
            Timer {
                due_ms: word(0),
                offset: word(8),
            },
            word(16),
        )
    }

    fn set_next(&mut self, index: u64, next: u64) {
        let at = (index * ENTRY_LEN + 16) as usize;
        self.log[at..at + 8].copy_from_slice(&next.to_le_bytes());
    }

    fn append_entry(&mut self, timer: Timer, next: u64) -> Result<u64, StorageError> {
        if (self.written + 1) * ENTRY_LEN > self.log.len() as u64 {
            let path = self.dir.join("timers");
            let len = self.log.len() as u64 + GROW_ENTRIES * ENTRY_LEN;
            self.log_file.set_len(len).map_err(io(&path))?;
            self.log = map(&self.log_file, &path)?;
        }
        let index = self.written;
        let at = (index * ENTRY_LEN) as usize;
        self.log[at..at + 8].copy_from_slice(&timer.due_ms.to_le_bytes());
        self.log[at + 8..at + 16].copy_from_slice(&timer.offset.to_le_bytes());
        self.log[at + 16..at + 24].copy_from_slice(&next.to_le_bytes());
        self.written += 1;
        Ok(index)
    }

    /// Adds a timer.
    pub fn insert(&mut self, timer: Timer) -> Result<(), StorageError> {
        let second = timer.due_ms / SLOT_MS;
        if second < self.cursor {
            self.near.push(Reverse(timer));
            return Ok(());
        }
        let slot = second % SLOTS;
        let index = self.append_entry(timer, self.head(slot))?;
        self.set_head(slot, index + 1);
        self.chained += 1;
        Ok(())
    }

    /// Moves every chained timer due at or before `now_ms`'s second into
    /// `near`, turning the wheel up to there (at most one revolution of
    /// slots is visited, however far `now_ms` jumped).
    fn advance(&mut self, now_ms: u64) {
        let target = now_ms / SLOT_MS;
        if target < self.cursor {
            return;
        }
        let steps = (target - self.cursor + 1).min(SLOTS);
        for step in 0..steps {
            let slot = (self.cursor + step) % SLOTS;
            let mut next = self.head(slot);
            let mut kept = 0;
            while next != 0 {
                let index = next - 1;
                let (timer, after) = self.entry(index);
                next = after;
                if timer.due_ms / SLOT_MS <= target {
                    self.near.push(Reverse(timer));
                    self.chained -= 1;
                } else {
                    // A later revolution: stays, relinked.
                    self.set_next(index, kept);
                    kept = index + 1;
                }
            }
            self.set_head(slot, kept);
        }
        self.cursor = target + 1;
    }

    /// Up to `max` timers due at `now_ms`, earliest first.
    pub fn pop_due(&mut self, now_ms: u64, max: usize) -> Vec<Timer> {
        self.advance(now_ms);
        let mut due = Vec::new();
        while due.len() < max {
            match self.near.peek() {
                Some(Reverse(timer)) if timer.due_ms <= now_ms => {
                    due.push(*timer);
                    self.near.pop();
                }
                _ => break,
            }
        }
        due
    }

    /// The earliest time a timer may be due: exact for the current second,
    /// else the start of the next second the wheel will look at.
    pub fn next_due(&self) -> Option<u64> {
        match self.near.peek() {
            Some(Reverse(timer)) => Some(timer.due_ms),
            None if self.chained > 0 => Some(self.cursor * SLOT_MS),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn timer(due_ms: u64, offset: u64) -> Timer {
        Timer { due_ms, offset }
    }

    #[test]
    fn timers_come_out_in_due_order_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let mut wheel = TimerWheel::create(dir.path(), T0).unwrap();
        // Past, this second, later seconds, a later revolution of the
        // same slot as one of them.
        let revolution = SLOTS * SLOT_MS;
        for (offset, due) in [
            (0, T0 - 5),
            (1, T0 + 2_500),
            (2, T0 + 300),
            (3, T0 + 2_400),
            (4, T0 + 2_400 + revolution),
        ] {
            wheel.insert(timer(due, offset)).unwrap();
        }
        assert_eq!(wheel.pending(), 5);
        assert_eq!(wheel.pop_due(T0 + 299, 10), vec![timer(T0 - 5, 0)]);
        assert_eq!(
            wheel.pop_due(T0 + 2_450, 10),
            vec![timer(T0 + 300, 2), timer(T0 + 2_400, 3)]
        );
        assert_eq!(wheel.next_due(), Some(T0 + 2_500));
        assert_eq!(wheel.pop_due(T0 + 10_000, 10), vec![timer(T0 + 2_500, 1)]);
        assert_eq!(wheel.pending(), 1, "the next revolution's timer waits");
        assert_eq!(wheel.pop_due(T0 + revolution, 10), vec![]);
        assert_eq!(
            wheel.pop_due(T0 + 2_400 + revolution, 10),
            vec![timer(T0 + 2_400 + revolution, 4)]
        );
        assert_eq!(wheel.pending(), 0);
        assert_eq!(wheel.next_due(), None);
    }

    #[test]
    fn the_timer_log_grows_and_max_bounds_a_pop() {
        let dir = tempfile::tempdir().unwrap();
        let mut wheel = TimerWheel::create(dir.path(), T0).unwrap();
        let count = 3 * GROW_ENTRIES;
        for offset in 0..count {
            wheel
                .insert(timer(T0 + 1_000 + (offset * 7919) % 50_000, offset))
                .unwrap();
        }
        let mut seen = Vec::new();
        loop {
            let batch = wheel.pop_due(T0 + 60_000, 1000);
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= 1000);
            seen.extend(batch);
        }
        assert_eq!(seen.len() as u64, count);
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "due order");
    }
}
