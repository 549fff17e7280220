//! The host-side decision cache for exchanges whose plugin declares that its
//! routing depends only on the routing key. Entries are stamped with the
//! plugin version and binding generation they were computed for; a new
//! version or a binding change makes every older entry unreachable.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Binding indices a message follows, shared between cache and callers.
pub type Targets = Arc<[u32]>;

/// (plugin version id, binding generation).
pub(crate) type Stamp = (u64, u64);

/// Bounded: when full it starts over, which keeps memory flat under a flood
/// of distinct keys while hot keys are re-learnt at once.
const MAX_ENTRIES: usize = 1 << 16;

#[derive(Default)]
pub(crate) struct DecisionCache {
    inner: RwLock<Entries>,
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

    pub(crate) fn len(&self) -> usize {
        self.inner.read().unwrap().by_key.len()
    }
}
