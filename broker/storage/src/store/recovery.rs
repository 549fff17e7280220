//! Opening a store: verify each queue's index up to the checkpoint, replay
//! the commit log after it (re-deriving index entries, cutting a torn or
//! corrupt tail), replay the consumption events it holds, and requeue what
//! was in flight. docs/STORAGE.md, "Checkpoint and recovery".

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, RwLock};

use super::super::consumption::Consumption;
use super::super::consumption_log;
use super::super::disk_space::DiskSpace;
use super::super::index::{IndexEntry, QueueIndex};
use super::super::layout::settle_layout;
use super::super::log::{CommitLog, Scanned};
use super::super::metadata::Metadata;
use super::super::record::FLAG_CONSUMPTION;
use super::super::record::QueueId;
use super::delays::{DELAY_QUEUE, DELAY_QUEUE_FLUSH, Delays};
use super::halves::{HALF_QUEUE, HALF_QUEUE_FLUSH};
use super::{
    CONSUMPTION_TREE, Checkpoint, Durability, Inner, MessageStore, QUEUES_TREE, Queue, QueueMeta,
    RecoveryReport, StorageError, StoreConfig, Writer, new_queue, queue_dir,
};

/// Sled's page cache for the store's metadata.
const META_CACHE_BYTES: u64 = 16 << 20;

/// Opens the metadata database. Sled's background threads may hold its
/// file lock for a moment after the store that used it was dropped (a
/// store reopened in the same process, as tests and restarts do): a lock
/// held elsewhere is waited for, up to a few seconds, before it is an error.
fn open_metadata(path: &std::path::Path) -> Result<sled::Db, StorageError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(META_CACHE_BYTES)
            .open();
        match opened {
            // Sled reports a held lock as an `Other` error with this text.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other.map_err(StorageError::metadata),
        }
    }
}

impl MessageStore {
    /// Opens the store in `config.dir`, recovering from the last checkpoint.
    pub fn open(mut config: StoreConfig) -> Result<(Self, RecoveryReport), StorageError> {
        let db = open_metadata(&config.dir.join("meta"))?;
        let meta = Metadata::open(db)?;
        settle_layout(&mut config, &meta)?;
        let log = CommitLog::open(&config.dir.join("log"), config.segment_size)?;
        let checkpoint: Checkpoint = meta.get("store", "checkpoint")?.unwrap_or_default();
        let mut report = RecoveryReport::default();

        let mut queues = HashMap::new();
        let mut replay_from = HashMap::new();
        let mut next_queue_id = 0;
        let mut views = Vec::new();
        for (_, q) in meta.scan::<QueueMeta>(QUEUES_TREE, "")? {
            next_queue_id = next_queue_id.max(q.id + 1);
            if q.view_of.is_some() {
                views.push(q);
                continue;
            }
            let mut index =
                QueueIndex::open(&queue_dir(&config, q.id), config.index_entries_per_file)?;
            let consumption: Option<Consumption> = meta.get(CONSUMPTION_TREE, &q.id.to_string())?;
            let checkpoint_end = checkpoint.queue_ends.get(&q.id).copied().unwrap_or(0);
            let (good_end, resume_at) = verify_index(
                &mut index,
                &q,
                checkpoint_end,
                &checkpoint,
                consumption.as_ref(),
                &mut report,
            );
            index.truncate(good_end)?;
            replay_from.insert(q.id, resume_at);
            let consumption =
                consumption.unwrap_or_else(|| Consumption::starting_at(index.start()));
            queues.insert(
                q.id,
                Arc::new(Queue::new(
                    q.id,
                    q.name,
                    q.flush,
                    Arc::new(Mutex::new(index)),
                    consumption,
                    q.id,
                )),
            );
        }
        attach_views(&meta, &mut queues, views)?;

        // Replay the log from the checkpoint (or from where a damaged index
        // needs it), re-deriving index entries for records after it.
        let first_base = log.bases().first().copied().unwrap_or(0);
        let scan_from = replay_from
            .values()
            .copied()
            .chain([checkpoint.log_position])
            .min()
            .unwrap_or(0)
            .max(first_base);
        let mut replay_error = None;
        let mut events = Vec::new();
        // Delay-queue offsets whose promotion the log holds.
        let mut promoted = Vec::new();
        let (end, damage) = log.scan(scan_from, |position, scanned| {
            let record = match scanned {
                Scanned::Record(record) => record,
                Scanned::Skipped {
                    resume,
                    damage,
                    claimed_queues,
                } => {
                    let base = position - position % config.segment_size as u64;
                    let owners = claimed_queues
                        .filter(|claimed| claimed.iter().all(|id| queues.contains_key(id)))
                        .unwrap_or_default();
                    report.damage.push(format!(
                        "commit log segment {base:020}.seg offset {}: {damage}; {} bytes \
                         skipped, the log resumes at offset {}; the record there is lost{}",
                        position - base,
                        resume - position,
                        resume - base,
                        if owners.is_empty() {
                            String::new()
                        } else {
                            format!(" (it claims queues {owners:?}; it stays in their order and is skipped when reached)")
                        }
                    ));
                    // The lost record keeps its place in each queue that
                    // claims it, so later offsets (and the consumption
                    // events naming them) stay right; reading it fails its
                    // checksum, and delivery skips it.
                    for queue_id in &owners {
                        let (Some(queue), Some(&from)) =
                            (queues.get(queue_id), replay_from.get(queue_id))
                        else {
                            continue;
                        };
                        if position < from {
                            continue;
                        }
                        let mut index = queue.index.lock().unwrap();
                        match index.reserve_next() {
                            Ok(()) => {
                                index.append(IndexEntry {
                                    position,
                                    len: (resume - position) as u32,
                                    expiry_ms: 0,
                                });
                            }
                            Err(error) => {
                                replay_error.get_or_insert(error);
                            }
                        }
                    }
                    return;
                }
            };
            report.records_replayed += 1;
            if let Some(offset) = record.moved_from {
                promoted.push((record.moved_from_queue, offset));
            }
            if record.message.flags & FLAG_CONSUMPTION != 0 {
                match consumption_log::from_body(&record.message.body) {
                    Ok(found) => events.extend(found),
                    Err(reason) => report.damage.push(format!(
                        "consumption record at log position {position}: {reason}; skipped"
                    )),
                }
                return;
            }
            // A delayed (half) record is indexed by the delay (half) queue alone.
            let indexed = match record.message.indexed_by_first_only() {
                false => &record.queues[..],
                true => &record.queues[..record.queues.len().min(1)],
            };
            for queue_id in indexed {
                let (Some(queue), Some(&from)) = (queues.get(queue_id), replay_from.get(queue_id))
                else {
                    continue;
                };
                if position < from {
                    continue;
                }
                let mut index = queue.index.lock().unwrap();
                if let Err(error) = index.reserve_next() {
                    replay_error.get_or_insert(error);
                    continue;
                }
                index.append(IndexEntry {
                    position,
                    len: record.len as u32,
                    expiry_ms: record.message.index_time(),
                });
            }
        });
        if let Some(error) = replay_error {
            return Err(error);
        }
        if let Some((at, reason)) = damage {
            let base = at - at % config.segment_size as u64;
            report.damage.push(format!(
                "commit log segment {base:020}.seg offset {}: {reason}; log truncated there",
                at - base
            ));
            for removed in log.truncate(at)? {
                report.damage.push(format!(
                    "commit log segment {} removed (after the damage)",
                    removed.display()
                ));
            }
        }
        report.scanned_from = scan_from;
        report.scanned_bytes = end.saturating_sub(scan_from);
        // What consumers did after the checkpoint, in the order they did it.
        for event in &events {
            if let Some(queue) = queues.get(&event.queue) {
                queue.consumption.lock().unwrap().replay(event);
            }
        }
        // The store's hidden queues, created on first open.
        let mut hidden = |name: &str, flush| -> Result<QueueId, StorageError> {
            if let Some(queue) = queues.values().find(|q| q.name == name) {
                return Ok(queue.id);
            }
            let id = next_queue_id;
            next_queue_id += 1;
            queues.insert(id, new_queue(&config, &meta, id, name, flush)?);
            Ok(id)
        };
        let delay_queue = hidden(DELAY_QUEUE, DELAY_QUEUE_FLUSH)?;
        let half_queue = hidden(HALF_QUEUE, HALF_QUEUE_FLUSH)?;
        // A promotion (a commit) in the log ends its delay (half message),
        // whatever the events say.
        for (from, offset) in promoted {
            if let Some(queue) = queues.get(&from.unwrap_or(delay_queue)) {
                queue.consumption.lock().unwrap().settle(offset);
            }
        }
        for queue in queues.values() {
            let index = queue.index.lock().unwrap();
            let mut consumption = queue.consumption.lock().unwrap();
            if !checkpoint.clean {
                consumption.crashed(index.end());
            }
            consumption.restart(index.end());
        }
        for queue in queues.values() {
            queue.recount_bytes();
        }
        for line in &report.damage {
            tracing::warn!("recovery: {line}");
        }

        let disk_space = DiskSpace::new(&config.dir, config.disk_free_limit);
        tracing::debug!(
            bytes = disk_space.free_limit(),
            "messages are refused while less than this would stay free on the disk"
        );
        let delays = Delays::open(&config.dir, &queues[&delay_queue], &log)?;
        // Timers were once kept in sled: that tree is no longer read.
        let _ = meta.db().drop_tree("store-delay-timers");
        let inner = Arc::new(Inner {
            disk_space,
            config,
            log,
            meta,
            writer: Mutex::new(Writer {
                position: end,
                next_queue_id,
            }),
            queues: RwLock::new(queues),
            delays: Mutex::new(delays),
            half_queue,
            half_ends: Mutex::new(()),
            flush_stats: Default::default(),
            events: Mutex::new(Vec::new()),
            events_writer: Mutex::new(()),
            durability: Mutex::new(Durability {
                written: end,
                flushed: end,
                ..Durability::default()
            }),
            flusher_cv: Condvar::new(),
        });
        inner.checkpoint(false)?;
        let flusher_inner = inner.clone();
        let flusher = std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn(move || flusher_inner.flusher_loop())
            .map_err(|e| StorageError::io(&inner.config.dir, e))?;
        Ok((
            MessageStore {
                inner,
                flusher: Some(flusher),
            },
            report,
        ))
    }
}

/// Gives each view its stream's index; forgets views whose stream is gone
/// (deleted while the view's removal had not reached the metadata).
fn attach_views(
    meta: &Metadata,
    queues: &mut HashMap<QueueId, Arc<Queue>>,
    views: Vec<QueueMeta>,
) -> Result<(), StorageError> {
    for view in views {
        let source = view.view_of.unwrap_or(view.id);
        let Some(stream) = queues.get(&source).filter(|q| !q.is_view()).cloned() else {
            meta.remove(QUEUES_TREE, &view.id.to_string())?;
            meta.remove(CONSUMPTION_TREE, &view.id.to_string())?;
            continue;
        };
        let consumption: Consumption = meta
            .get(CONSUMPTION_TREE, &view.id.to_string())?
            .unwrap_or_else(|| Consumption::starting_at(stream.index.lock().unwrap().start()));
        queues.insert(
            view.id,
            Arc::new(Queue::new(
                view.id,
                view.name,
                view.flush,
                stream.index.clone(),
                consumption,
                source,
            )),
        );
    }
    Ok(())
}

/// Checks a queue's index entries up to the checkpoint; returns the end of
/// the intact prefix and the log position from which replay must re-derive
/// this queue's entries.
fn verify_index(
    index: &mut QueueIndex,
    queue: &QueueMeta,
    checkpoint_end: u64,
    checkpoint: &Checkpoint,
    consumption: Option<&Consumption>,
    report: &mut RecoveryReport,
) -> (u64, u64) {
    if !index.has_files() {
        index.reset_empty(checkpoint_end);
        return (checkpoint_end, checkpoint.log_position);
    }
    let from = index.start().max(consumption.map_or(0, |c| c.low_water()));
    let mut last_good: Option<IndexEntry> = None;
    for offset in from..checkpoint_end {
        match index.read_raw(offset) {
            Ok(Some(entry)) => last_good = Some(entry),
            outcome => {
                let reason = match outcome {
                    Err(reason) => reason,
                    _ => "entry missing (file truncated?)".into(),
                };
                report.damage.push(format!(
                    "queue {} index entry {offset}: {reason}; entries from here are rebuilt from the log",
                    queue.name
                ));
                let resume = last_good.map_or(0, |e| e.position + e.len as u64);
                return (offset, resume);
            }
        }
    }
    (checkpoint_end.max(index.start()), checkpoint.log_position)
}
