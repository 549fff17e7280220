//! The SET table: which cell serves a routing variable, and where the
//! other cells' brokers are. Versioned as a whole: every change replaces
//! it atomically with the next version (docs/SET.md).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use switchyard_protocol::cells::{CENTER, SLOTS, slot_of};

/// A cell's table, as configured (`[cells]` in the TOML file) or set at
/// run time (`switchyard cells …`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CellTable {
    /// Grows by one with every change. A configured table replaces the
    /// one in force at start only if its version is greater.
    pub version: u64,
    /// This broker's cell: a SET id or `CENTER`; empty when the broker is
    /// not part of a SET deployment.
    pub local: String,
    /// Slot ranges (inclusive) of `slot(routing variable)` and their SET.
    pub ranges: Vec<SlotRange>,
    /// Routing variables pinned to a cell whatever their slot.
    pub pins: BTreeMap<String, String>,
    /// The other cells' brokers.
    pub peers: BTreeMap<String, Peer>,
    /// When this broker confirms a message it stores for another cell.
    pub confirm: ForwardConfirm,
}

/// When a publisher of a message for another cell is confirmed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardConfirm {
    /// Once stored here, in the cell's outbox (store and forward).
    #[default]
    Stored,
    /// Once the other cell's broker confirmed it (end to end).
    Remote,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotRange {
    pub set: String,
    pub low: u32,
    pub high: u32,
}

/// Another cell's broker: where to forward its messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// `switchyard://user:password@host:port/vhost-less`: the user this
    /// broker logs in as there (tag `cell-peer`).
    pub url: String,
    /// The CA that signed the peer's certificate (PEM); the development
    /// CA of this broker's data dir when absent.
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

/// A cell name is a SET id or CENTER: short, printable, no separators.
fn check_cell_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    match ok {
        true => Ok(()),
        false => Err(format!(
            "{what} '{name}' is not a cell name (1-64 letters, digits, '-', '_', '.')"
        )),
    }
}

impl CellTable {
    /// Whether this broker is part of a SET deployment.
    pub fn is_deployed(&self) -> bool {
        !self.local.is_empty()
    }

    /// The cell of `variable`: its pin, else the SET whose range holds its
    /// slot; `None` when no range does.
    pub fn cell_of(&self, variable: &str) -> Option<&str> {
        if let Some(cell) = self.pins.get(variable) {
            return Some(cell);
        }
        let slot = slot_of(variable);
        self.ranges
            .iter()
            .find(|r| (r.low..=r.high).contains(&slot))
            .map(|r| r.set.as_str())
    }

    /// Refuses tables that cannot route: ranges out of bounds or
    /// overlapping, bad names, peers without a `switchyard://` URL.
    pub fn validate(&self) -> Result<(), String> {
        if !self.local.is_empty() {
            check_cell_name("local cell", &self.local)?;
        }
        let mut ranges: Vec<&SlotRange> = self.ranges.iter().collect();
        ranges.sort_by_key(|r| r.low);
        for range in &ranges {
            check_cell_name("SET", &range.set)?;
            if range.set == CENTER {
                return Err(format!(
                    "slot ranges name SETs; {CENTER} serves global traffic, not a range"
                ));
            }
            if range.low > range.high || range.high >= SLOTS {
                return Err(format!(
                    "range {}-{} of SET '{}' is not within 0-{} (low ≤ high)",
                    range.low,
                    range.high,
                    range.set,
                    SLOTS - 1
                ));
            }
        }
        for pair in ranges.windows(2) {
            if pair[1].low <= pair[0].high {
                return Err(format!(
                    "ranges {}-{} (SET '{}') and {}-{} (SET '{}') overlap",
                    pair[0].low, pair[0].high, pair[0].set, pair[1].low, pair[1].high, pair[1].set
                ));
            }
        }
        for (value, cell) in &self.pins {
            if value.is_empty() {
                return Err("a pin needs a routing variable".into());
            }
            check_cell_name(&format!("the cell of pin '{value}'"), cell)?;
        }
        for (cell, peer) in &self.peers {
            check_cell_name("peer", cell)?;
            if *cell == self.local {
                return Err(format!("peer '{cell}' is this broker's own cell"));
            }
            if !peer.url.starts_with("switchyard://") {
                return Err(format!(
                    "peer '{cell}': url must be switchyard://user:password@host:port, not '{}'",
                    peer.url
                ));
            }
        }
        Ok(())
    }

    /// A peer URL given as `list cells` shows it (password masked) keeps
    /// the password of the table in force: a table read, edited and
    /// written back loses no secret.
    pub fn keep_secrets_of(&mut self, current: &CellTable) {
        for (cell, peer) in &mut self.peers {
            if let Some(old) = current.peers.get(cell)
                && peer.url == mask_password(&old.url)
            {
                peer.url = old.url.clone();
            }
        }
    }

    /// The table as `list cells` shows it (peer passwords masked).
    pub fn without_secrets(&self) -> CellTable {
        let mut table = self.clone();
        for peer in table.peers.values_mut() {
            peer.url = mask_password(&peer.url);
        }
        table
    }
}

/// `switchyard://user:secret@host` → `switchyard://user:***@host`.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.into();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> CellTable {
        CellTable {
            version: 1,
            local: "set-a".into(),
            ranges: vec![
                SlotRange {
                    set: "set-a".into(),
                    low: 0,
                    high: 4999,
                },
                SlotRange {
                    set: "set-b".into(),
                    low: 5000,
                    high: 9999,
                },
            ],
            pins: [("vip".to_string(), "set-b".to_string())].into(),
            peers: BTreeMap::new(),
            confirm: ForwardConfirm::Stored,
        }
    }

    #[test]
    fn pins_win_over_ranges() {
        let table = table();
        assert_eq!(table.cell_of("vip"), Some("set-b"));
        let expected = if slot_of("u1") < 5000 {
            "set-a"
        } else {
            "set-b"
        };
        assert_eq!(table.cell_of("u1"), Some(expected));
    }

    #[test]
    fn overlapping_or_out_of_range_tables_are_refused() {
        let mut bad = table();
        bad.ranges[1].low = 4000;
        assert!(bad.validate().unwrap_err().contains("overlap"));
        let mut bad = table();
        bad.ranges[1].high = 10_000;
        assert!(bad.validate().unwrap_err().contains("0-9999"));
        assert!(table().validate().is_ok());
    }

    #[test]
    fn listed_urls_hide_passwords() {
        assert_eq!(
            mask_password("switchyard://peer:s3cret@127.0.0.1:5673"),
            "switchyard://peer:***@127.0.0.1:5673"
        );
    }
}
