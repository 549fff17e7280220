//! The commit log: one sequence of records over fixed-size, preallocated,
//! mmap'd segment files (`log/<base position:020>.seg`). A record never spans
//! segments; when the next one does not fit, the rest of the segment stays
//! zero and the log continues in a new segment at `base + segment size`.
//! Positions are global byte offsets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use super::error::StorageError;
use super::record::{self, DecodedRecord, Envelope, QueueId, RecordError, StoredMessage};
use super::segment::{Segment, numbered_name, open_numbered};

/// What a log scan found at a position.
pub enum Scanned<'a> {
    Record(&'a DecodedRecord),
    /// A damaged record, skipped: valid records resume at `resume`. The
    /// queues its header claims (unverified) keep their offsets in step.
    Skipped {
        resume: u64,
        damage: &'a RecordError,
        claimed_queues: Option<Vec<QueueId>>,
    },
}

/// How far past damage the log looks for the next valid record before it
/// calls the rest a torn tail.
const RESYNC_WINDOW: usize = 64 << 20;

pub struct CommitLog {
    dir: PathBuf,
    segment_size: usize,
    /// Readers look segments up here; the writer adds and removes them.
    segments: RwLock<BTreeMap<u64, Arc<Segment>>>,
}

impl CommitLog {
    pub fn open(dir: &Path, segment_size: usize) -> Result<Self, StorageError> {
        let segments = open_numbered(dir, "seg", segment_size)?;
        Ok(CommitLog {
            dir: dir.to_path_buf(),
            segment_size,
            segments: RwLock::new(segments),
        })
    }

    /// Base positions of the segments, oldest first.
    pub fn bases(&self) -> Vec<u64> {
        self.segments.read().unwrap().keys().copied().collect()
    }

    pub fn segment(&self, base: u64) -> Option<Arc<Segment>> {
        self.segments.read().unwrap().get(&base).cloned()
    }

    /// Bytes on disk held by segments.
    pub fn disk_bytes(&self) -> u64 {
        self.segments
            .read()
            .unwrap()
            .values()
            .map(|s| s.len() as u64)
            .sum()
    }

    fn base_of(&self, position: u64) -> u64 {
        position - position % self.segment_size as u64
    }

    /// Where a record of `len` bytes would go from `position`: the same
    /// position, or the start of the next segment when it does not fit.
    pub fn placement(&self, position: u64, len: usize) -> Result<u64, StorageError> {
        if len > self.segment_size {
            return Err(StorageError::TooLarge(len));
        }
        let base = self.base_of(position);
        let used = (position - base) as usize;
        Ok(if used + len <= self.segment_size {
            position
        } else {
            base + self.segment_size as u64
        })
    }

    /// Makes sure the segment holding `position` exists (creating and
    /// reserving it on disk if needed).
    pub fn ensure_segment(&self, position: u64) -> Result<Arc<Segment>, StorageError> {
        let base = self.base_of(position);
        if let Some(segment) = self.segment(base) {
            return Ok(segment);
        }
        let segment = Segment::create(
            &self.dir.join(numbered_name(base, "seg")),
            self.segment_size,
        )?;
        segment.sync_file()?;
        self.segments.write().unwrap().insert(base, segment.clone());
        Ok(segment)
    }

    /// Encodes the record at `position` (which `placement` chose and
    /// `ensure_segment` backs).
    pub fn write(
        &self,
        position: u64,
        message: &StoredMessage,
        envelope: Envelope<'_>,
        len: usize,
    ) {
        let base = self.base_of(position);
        let segment = self.segment(base).expect("ensure_segment before write");
        segment.fill((position - base) as usize, len, |out| {
            record::encode_into(message, envelope, out)
        });
    }

    /// Reads and verifies the record at `position`.
    pub fn read(&self, position: u64) -> Result<DecodedRecord, StorageError> {
        let base = self.base_of(position);
        let segment = self.segment(base).ok_or_else(|| StorageError::Corrupt {
            location: format!("log position {position}"),
            reason: "its segment is gone".into(),
        })?;
        let tail: Bytes = segment.tail((position - base) as usize);
        record::decode(&tail, self.segment_size).map_err(|e| StorageError::Corrupt {
            location: format!("{} offset {}", segment.path().display(), position - base),
            reason: e.to_string(),
        })
    }

    /// Scans from `position`, calling `visit` for each valid record, across
    /// segments, and for each damaged record that valid ones follow (which
    /// is skipped: the scan goes on after it). Returns where valid data ends
    /// and, if it ended on damage with nothing valid after it (a torn
    /// tail), what it was.
    pub fn scan(
        &self,
        mut position: u64,
        mut visit: impl FnMut(u64, Scanned<'_>),
    ) -> (u64, Option<(u64, RecordError)>) {
        loop {
            let base = self.base_of(position);
            let Some(segment) = self.segment(base) else {
                return (position, None);
            };
            let offset = (position - base) as usize;
            let next_segment = || {
                let next = base + self.segment_size as u64;
                self.segment(next).map(|_| next)
            };
            // Past the segment's data everything reads as zero: the end.
            if offset + 4 > segment.readable_len() {
                match next_segment() {
                    Some(next) => {
                        position = next;
                        continue;
                    }
                    None => return (position, None),
                }
            }
            match record::decode(&segment.tail(offset), self.segment_size) {
                Ok(record) => {
                    visit(position, Scanned::Record(&record));
                    position += record.len as u64;
                }
                Err(RecordError::End) => match next_segment() {
                    Some(next) => position = next,
                    None => return (position, None),
                },
                Err(damage) => {
                    let resume = self
                        .resync(&segment, offset)
                        .map(|o| base + o as u64)
                        .or_else(next_segment);
                    let Some(resume) = resume else {
                        return (position, Some((position, damage)));
                    };
                    let tail = segment.tail(offset);
                    let skipped = Scanned::Skipped {
                        resume,
                        damage: &damage,
                        claimed_queues: record::claimed_queues(&tail, (resume - position) as usize),
                    };
                    visit(position, skipped);
                    position = resume;
                }
            }
        }
    }

    /// Where valid records resume in `segment` after damage at `offset`:
    /// after the damaged record if its length field still leads to a valid
    /// record, else at the first later byte (within [`RESYNC_WINDOW`]) where
    /// one verifies — its CRC makes a false match a one in four billion
    /// chance. `None` if nothing valid follows: a torn tail.
    fn resync(&self, segment: &Arc<Segment>, offset: usize) -> Option<usize> {
        let tail = segment.tail(offset);
        let valid_at = |at: usize| {
            at + 4 <= tail.len() && record::decode(&tail.slice(at..), self.segment_size).is_ok()
        };
        let plausible =
            |len: u32| (record::HEADER_LEN..=self.segment_size).contains(&(len as usize));
        if let Some(len) = record::claimed_len(&tail)
            && plausible(len)
            && valid_at(len as usize)
        {
            return Some(offset + len as usize);
        }
        let bytes: &[u8] = &tail;
        let limit = bytes.len().min(RESYNC_WINDOW);
        let mut at = 1;
        while at + record::HEADER_LEN <= limit {
            if bytes[at] == 0 && bytes[at..at + 4] == [0; 4] {
                // Skip a run of zeroes (a torn tail is mostly zeroes); a
                // record may start up to 3 bytes before the next non-zero
                // byte (a length's low bytes can be zero).
                match bytes[at..limit].iter().position(|&b| b != 0) {
                    Some(n) => at = (at + n).saturating_sub(3).max(at + 1),
                    None => return None,
                }
                continue;
            }
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
            if plausible(len)
                && at + len as usize <= bytes.len()
                && bytes[at + 8] == record::FORMAT_VERSION
                && valid_at(at)
            {
                return Some(offset + at);
            }
            at += 1;
        }
        None
    }

    /// Cuts the log at `position`: zeroes the rest of its segment and
    /// deletes later segments. Returns the deleted segment paths.
    pub fn truncate(&self, position: u64) -> Result<Vec<PathBuf>, StorageError> {
        let base = self.base_of(position);
        let mut removed = Vec::new();
        let later: Vec<(u64, Arc<Segment>)> = self
            .segments
            .read()
            .unwrap()
            .range(base + 1..)
            .map(|(b, s)| (*b, s.clone()))
            .collect();
        for (later_base, segment) in later {
            self.segments.write().unwrap().remove(&later_base);
            std::fs::remove_file(segment.path())
                .map_err(|e| StorageError::io(segment.path(), e))?;
            removed.push(segment.path().to_path_buf());
        }
        if let Some(segment) = self.segment(base) {
            segment.zero_from((position - base) as usize)?;
        }
        Ok(removed)
    }

    /// Flushes `[from, to)` to disk, across segments.
    pub fn flush(&self, from: u64, to: u64) -> Result<(), StorageError> {
        let mut at = from;
        while at < to {
            let base = self.base_of(at);
            let upto = to.min(base + self.segment_size as u64);
            if let Some(segment) = self.segment(base) {
                segment.flush_range((at - base) as usize, (upto - at) as usize)?;
            }
            at = upto;
        }
        Ok(())
    }

    /// Deletes segments that end at or below `position`; returns how many.
    pub fn release_before(&self, position: u64) -> Result<usize, StorageError> {
        let doomed: Vec<(u64, Arc<Segment>)> = self
            .segments
            .read()
            .unwrap()
            .iter()
            .filter(|(base, _)| **base + self.segment_size as u64 <= position)
            .map(|(b, s)| (*b, s.clone()))
            .collect();
        for (base, segment) in &doomed {
            self.segments.write().unwrap().remove(base);
            std::fs::remove_file(segment.path())
                .map_err(|e| StorageError::io(segment.path(), e))?;
            tracing::debug!(segment = %segment.path().display(), "segment released");
        }
        Ok(doomed.len())
    }
}
