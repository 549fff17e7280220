//! The host-side decision cache for exchanges whose plugin declares that its
//! routing depends only on the routing key. Entries are stamped with the
//! plugin version and binding generation they were computed for; a new
//! version or a binding change makes every older entry unreachable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Binding indices a message follows, shared between cache and callers.
pub type Targets = Arc<[u32]>;

/// (plugin version id, binding generation).
pub(crate) type Stamp = (u64, u64);

/// Bounded: when full it starts over, which keeps memory flat under a flood
/// of distinct keys while hot keys are re-learnt at once.
const MAX_ENTRIES: usize = 1 << 16;

/// One cache hit in this many is recomputed by the plugin and compared: a
/// plugin that claims key-only routing but reads more would otherwise have
/// its first decision for a key applied to every later message silently.
pub(crate) const VERIFY_ONE_IN: u64 = 64;

#[derive(Default)]
pub(crate) struct DecisionCache {
    inner: RwLock<Entries>,
    hits: AtomicU64,
}

#[derive(Default)]
struct Entries {
    stamp: Stamp,
    by_key: HashMap<String, Targets>,
}

impl DecisionCache {
    pub(crate) fn get(&self, stamp: Stamp, routing_key: &str) -> Option<Targets> {
        let entries = self.inner.read().unwrap();
        if entries.stamp != stamp {
            return None;
        }
        entries.by_key.get(routing_key).cloned()
    }

    pub(crate) fn insert_all<'a>(
        &self,
        stamp: Stamp,
        decisions: impl Iterator<Item = (&'a str, &'a Targets)>,
    ) {
        let mut entries = self.inner.write().unwrap();
        if entries.stamp != stamp {
            entries.stamp = stamp;
            entries.by_key.clear();
        }
        for (key, targets) in decisions {
            if entries.by_key.len() >= MAX_ENTRIES {
                entries.by_key.clear();
            }
            entries.by_key.insert(key.to_string(), targets.clone());
        }
    }

    /// Counts a hit; true when this one is to be verified. Which hits are
    /// chosen is scrambled (splitmix64 of the count): every 64th would alias
    /// with periodic traffic — alternating headers would always be sampled
    /// on the same phase and never disagree.
    pub(crate) fn verify_this_hit(&self) -> bool {
        let mut z = self
            .hits
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)).is_multiple_of(VERIFY_ONE_IN)
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.read().unwrap().by_key.len()
    }
}
