//! A set of queue offsets kept as ranges. Acknowledgements above a held
//! message arrive mostly in order, so they form a few long runs: a range
//! set stores three million of them in a handful of ranges where a
//! `BTreeSet<u64>` took ~140 bytes each, and the checkpoint that persists
//! it stays small.

use std::ops::Range;

use rangemap::RangeSet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Persisted", into = "Persisted")]
pub struct OffsetSet {
    ranges: RangeSet<u64>,
    /// How many offsets the ranges hold (kept, not recounted).
    len: u64,
}

/// The stored form: `[start, end)` pairs. Snapshots written before ranges
/// were introduced hold single offsets and are read as well.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Persisted {
    Ranges(Vec<(u64, u64)>),
    Offsets(Vec<u64>),
}

impl From<Persisted> for OffsetSet {
    fn from(persisted: Persisted) -> Self {
        let mut set = OffsetSet::default();
        match persisted {
            Persisted::Ranges(ranges) => {
                for (start, end) in ranges {
                    set.insert_range(start..end);
                }
            }
            Persisted::Offsets(offsets) => {
                for offset in offsets {
                    set.insert(offset);
                }
            }
        }
        set
    }
}

impl From<OffsetSet> for Persisted {
    fn from(set: OffsetSet) -> Self {
        Persisted::Ranges(set.ranges.iter().map(|r| (r.start, r.end)).collect())
    }
}

impl OffsetSet {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn contains(&self, offset: u64) -> bool {
        self.ranges.contains(&offset)
    }

    /// Adds `offset`; false if it was already there.
    pub fn insert(&mut self, offset: u64) -> bool {
        if self.contains(offset) {
            return false;
        }
        self.ranges.insert(offset..offset + 1);
        self.len += 1;
        true
    }

    fn insert_range(&mut self, range: Range<u64>) {
        if range.is_empty() {
            return;
        }
        let already = self.count_in(range.clone());
        self.ranges.insert(range.clone());
        self.len += range.end - range.start - already;
    }

    /// The run of consecutive offsets that holds `offset`.
    pub fn run_containing(&self, offset: u64) -> Option<Range<u64>> {
        self.ranges.get(&offset).cloned()
    }

    /// The lowest run of consecutive offsets.
    pub fn first_range(&self) -> Option<Range<u64>> {
        self.ranges.iter().next().cloned()
    }

    /// How many offsets of `range` the set holds.
    pub fn count_in(&self, range: Range<u64>) -> u64 {
        if range.is_empty() {
            return 0;
        }
        self.ranges
            .overlapping(&range)
            .map(|r| r.end.min(range.end) - r.start.max(range.start))
            .sum()
    }

    /// Removes every offset below `offset`.
    pub fn remove_below(&mut self, offset: u64) {
        self.remove_range(0..offset);
    }

    /// Removes every offset at or above `offset`.
    pub fn remove_from(&mut self, offset: u64) {
        self.remove_range(offset..u64::MAX);
    }

    fn remove_range(&mut self, range: Range<u64>) {
        if range.is_empty() {
            return;
        }
        self.len -= self.count_in(range.clone());
        self.ranges.remove(range);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_coalesces() {
        let mut set = OffsetSet::default();
        for offset in [5, 3, 4, 10] {
            assert!(set.insert(offset));
        }
        assert!(!set.insert(4));
        assert_eq!(set.len(), 4);
        assert_eq!(set.first_range(), Some(3..6));
        assert_eq!(set.count_in(4..11), 3);
        set.remove_below(4);
        assert_eq!((set.len(), set.contains(3)), (3, false));
        set.remove_from(5);
        assert_eq!((set.len(), set.first_range()), (1, Some(4..5)));
    }

    #[test]
    fn persists_as_ranges_and_reads_the_older_form() {
        let mut set = OffsetSet::default();
        for offset in (0..1000).chain(2000..3000) {
            set.insert(offset);
        }
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, "[[0,1000],[2000,3000]]");
        assert_eq!(serde_json::from_str::<OffsetSet>(&json).unwrap(), set);
        let older: OffsetSet = serde_json::from_str("[7,8,9,20]").unwrap();
        assert_eq!((older.len(), older.first_range()), (4, Some(7..10)));
    }
}
