//! The file sizes a store was created with. Positions in the commit log map
//! to segments by arithmetic on the segment size, so a store keeps its
//! sizes for life: they are recorded at creation, and a later configuration
//! that asks for others is overruled (with a warning) rather than allowed
//! to misread the log.
//!
//! A new store sizes its segments to the disk: at most an eighth of the
//! space available, so that on a small disk consumed segments can be
//! released (the segment being written never is) and publishing recovers
//! once consumers catch up.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::StoreConfig;
use super::disk_space::available_bytes;
use super::error::StorageError;
use super::metadata::Metadata;

/// The smallest segment a store is given, whatever the disk.
pub const MIN_SEGMENT_SIZE: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Layout {
    segment_size: usize,
    index_entries_per_file: u64,
}

/// Sets `config`'s file sizes to this store's: the recorded ones, or for a
/// new store the configured ones shrunk to fit the disk (then recorded).
pub fn settle_layout(config: &mut StoreConfig, meta: &Metadata) -> Result<(), StorageError> {
    let recorded: Option<Layout> = meta.get("store", "layout")?;
    let layout = match recorded {
        Some(layout) => layout,
        None => {
            let log_dir = config.dir.join("log");
            let is_new = std::fs::read_dir(&log_dir).map_or(true, |mut d| d.next().is_none());
            let mut layout = Layout {
                segment_size: config.segment_size,
                index_entries_per_file: config.index_entries_per_file,
            };
            if is_new {
                layout.segment_size = fitted_segment_size(config.segment_size, &config.dir);
            }
            meta.put("store", "layout", &layout)?;
            layout
        }
    };
    if layout.segment_size != config.segment_size {
        tracing::warn!(
            configured = config.segment_size,
            used = layout.segment_size,
            "this store's log segments are {} bytes: a store keeps the segment size it was \
             created with",
            layout.segment_size
        );
    }
    config.segment_size = layout.segment_size;
    config.index_entries_per_file = layout.index_entries_per_file;
    Ok(())
}

/// `wanted`, or the largest power of two at most an eighth of the space
/// available under `dir` (at least [`MIN_SEGMENT_SIZE`]) if that is less.
fn fitted_segment_size(wanted: usize, dir: &Path) -> usize {
    let Some(available) = available_bytes(dir) else {
        return wanted;
    };
    let fitting = usize::try_from(available / 8).unwrap_or(usize::MAX);
    if fitting >= wanted {
        return wanted;
    }
    let size = if fitting == 0 {
        0
    } else {
        1usize << fitting.ilog2()
    };
    let size = size.max(MIN_SEGMENT_SIZE);
    tracing::info!(
        wanted,
        size,
        available,
        "the disk is small: log segments sized to an eighth of the space available"
    );
    size
}
