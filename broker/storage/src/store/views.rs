//! Streams: a stream is an ordinary queue whose messages nobody consumes
//! directly; each consumer group reads it through a *view* — a queue of
//! the store with its own consumption state (acks, in flight, redeliveries,
//! returns, lease) over the stream's index. Views are numbered from the
//! queue id space, so consumption events and checkpoints carry their
//! positions as they carry any queue's: a group's progress is as durable as
//! an ack. Views never appear in records; the stream's index is theirs.
//!
//! Retention moves the stream's own floor (its first retained offset) in
//! whole log segments — by age (every message of the segment older than
//! the limit) or by bytes (the stream holds more than the limit) — and
//! every view with it; a segment's file goes once no queue needs it.

use std::sync::Arc;

use super::super::consumption::Consumption;
use super::super::consumption_log::Change;
use super::{CONSUMPTION_TREE, Inner, MessageStore, QUEUES_TREE, Queue, QueueMeta, StorageError};
use crate::record::QueueId;

/// Where a stream's retained messages begin and end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamBounds {
    /// The first retained offset.
    pub first: u64,
    /// The offset the next message will get.
    pub end: u64,
}

impl MessageStore {
    /// The view `name` of stream `source`, created starting at `start`
    /// (clamped to what the stream retains) if there is none; its id and
    /// whether it was created.
    pub fn create_view(
        &self,
        source: QueueId,
        name: &str,
        start: u64,
    ) -> Result<(QueueId, bool), StorageError> {
        let mut writer = self.inner.writer.lock().unwrap();
        if let Some(id) = self.queue_id(name) {
            return Ok((id, false));
        }
        let stream = self.inner.queue(source)?;
        if stream.is_view() {
            return Err(StorageError::NoSuchQueue(source));
        }
        let bounds = self.stream_bounds(source)?;
        let start = start.clamp(bounds.first, bounds.end);
        let id = writer.next_queue_id;
        let meta = QueueMeta {
            id,
            name: name.into(),
            flush: stream.flush,
            view_of: Some(source),
        };
        let consumption = Consumption::starting_at(start);
        // Its start is durable before it is used: a restart resumes there.
        self.inner.meta.put(QUEUES_TREE, &id.to_string(), &meta)?;
        self.inner
            .meta
            .put(CONSUMPTION_TREE, &id.to_string(), &consumption)?;
        self.inner.meta.flush()?;
        writer.next_queue_id += 1;
        let view = Arc::new(Queue::new(
            id,
            name.into(),
            stream.flush,
            stream.index.clone(),
            consumption,
            source,
        ));
        view.recount_bytes();
        self.inner.queues.write().unwrap().insert(id, view);
        Ok((id, true))
    }

    /// Every view of `source`: id and name.
    pub fn views(&self, source: QueueId) -> Vec<(QueueId, String)> {
        self.inner
            .views_of(source)
            .iter()
            .map(|view| (view.id, view.name.clone()))
            .collect()
    }

    /// The stream's retained range.
    pub fn stream_bounds(&self, source: QueueId) -> Result<StreamBounds, StorageError> {
        let stream = self.inner.queue(source)?;
        let index = stream.index.lock().unwrap();
        let floor = stream.consumption.lock().unwrap().floor;
        Ok(StreamBounds {
            first: floor.clamp(index.start(), index.end()),
            end: index.end(),
        })
    }

    /// A view's committed position: every offset below it is acknowledged.
    pub fn committed(&self, view: QueueId) -> Result<u64, StorageError> {
        Ok(self.inner.queue(view)?.consumption.lock().unwrap().floor)
    }

    /// Moves a view to `to` (clamped to what the stream retains): refused
    /// while deliveries of it are in flight (its consumers must be gone).
    pub fn reset_view(&self, view: QueueId, to: u64) -> Result<u64, StorageError> {
        let queue = self.inner.queue(view)?;
        if !queue.is_view() {
            return Err(StorageError::NoSuchQueue(view));
        }
        let bounds = self.stream_bounds(queue.source)?;
        let to = to.clamp(bounds.first, bounds.end);
        {
            let mut consumption = queue.consumption.lock().unwrap();
            if !consumption.in_flight.is_empty() {
                return Err(StorageError::Busy(format!(
                    "{} deliveries of {} are not settled",
                    consumption.in_flight.len(),
                    queue.name
                )));
            }
            consumption.reset(to);
            self.inner
                .record(&mut consumption, view, Change::Reset { to });
        }
        queue.recount_bytes();
        Ok(to)
    }

    /// The first offset of `source` published at or after `ms` (its end if
    /// none): binary search over the retained records' publish times.
    pub fn offset_at_time(&self, source: QueueId, ms: u64) -> Result<u64, StorageError> {
        let bounds = self.stream_bounds(source)?;
        let (mut low, mut high) = (bounds.first, bounds.end);
        while low < high {
            let middle = low + (high - low) / 2;
            let published = match self.read(source, middle) {
                Ok(message) => message.publish_ms,
                // An unreadable record does not stop the search: it counts
                // as published before `ms`.
                Err(StorageError::Corrupt { .. }) => 0,
                Err(error) => return Err(error),
            };
            if published < ms {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }

    /// Applies retention to stream `source`: moves its first offset past
    /// whole log segments while it holds more than `max_bytes` or a
    /// segment's newest message is older than `max_age_ms` (the segment
    /// being written is never cut). Every view moves with it; deliveries in
    /// flight stay their consumers' to settle. Returns messages cut.
    pub fn apply_retention(
        &self,
        source: QueueId,
        max_age_ms: Option<u64>,
        max_bytes: Option<u64>,
        now_ms: u64,
    ) -> Result<u64, StorageError> {
        if max_age_ms.is_none() && max_bytes.is_none() {
            return Ok(0);
        }
        let Some(cut_to) = self.retention_cut(source, max_age_ms, max_bytes, now_ms)? else {
            return Ok(0);
        };
        let stream = self.inner.queue(source)?;
        let cut = self.inner.drop_ready_below(&stream, cut_to);
        for view in self.inner.views_of(source) {
            self.inner.drop_ready_below(&view, cut_to);
        }
        Ok(cut)
    }

    /// Where retention would move the stream's first offset, if anywhere.
    fn retention_cut(
        &self,
        source: QueueId,
        max_age_ms: Option<u64>,
        max_bytes: Option<u64>,
        now_ms: u64,
    ) -> Result<Option<u64>, StorageError> {
        let segment = self.inner.config.segment_size as u64;
        let log_end = self.inner.writer.lock().unwrap().position;
        let active = log_end - log_end % segment;
        let stream = self.inner.queue(source)?;
        let mut held = stream.ready_bytes();
        let bounds = self.stream_bounds(source)?;
        let mut first = bounds.first;
        let index = stream.index.lock().unwrap();
        let position = |offset: u64| index.get(offset).map(|e| e.position);
        while first < bounds.end {
            let base = position(first)? / segment * segment;
            if base + segment > active {
                break;
            }
            // The first offset in a later segment (positions grow with offsets).
            let (mut low, mut high) = (first + 1, bounds.end);
            while low < high {
                let middle = low + (high - low) / 2;
                if position(middle)? < base + segment {
                    low = middle + 1;
                } else {
                    high = middle;
                }
            }
            let next = low;
            let over_bytes = max_bytes.is_some_and(|max| held > max);
            let too_old = match max_age_ms {
                Some(age) => {
                    let newest = self.inner.log.read(position(next - 1)?)?;
                    newest.message.publish_ms.saturating_add(age) < now_ms
                }
                None => false,
            };
            if !over_bytes && !too_old {
                break;
            }
            let cut_bytes: u64 = (first..next)
                .map(|o| index.get(o).map_or(0, |e| u64::from(e.len)))
                .sum();
            held = held.saturating_sub(cut_bytes);
            first = next;
        }
        Ok((first > bounds.first).then_some(first))
    }
}

impl Inner {
    /// The views reading `source`'s index.
    pub(super) fn views_of(&self, source: QueueId) -> Vec<Arc<Queue>> {
        self.queues
            .read()
            .unwrap()
            .values()
            .filter(|q| q.is_view() && q.source == source)
            .cloned()
            .collect()
    }

    /// Drops every ready message of `queue` below `end` (a purge, or a
    /// stream's retention); deliveries in flight stay. Returns how many.
    pub(super) fn drop_ready_below(&self, queue: &Queue, end: u64) -> u64 {
        let mut consumption = queue.consumption.lock().unwrap();
        let dropped = consumption.purge(end);
        self.record(&mut consumption, queue.id, Change::Purged { end });
        let kept: Vec<u64> = consumption.in_flight.range(..end).copied().collect();
        for offset in kept {
            self.record(&mut consumption, queue.id, Change::Kept { offset });
        }
        drop(consumption);
        queue.recount_bytes();
        dropped
    }
}
