//! `switchyard cells …`: the SET table of a running broker (docs/SET.md).
//! Every change reads the table in force, edits it and writes it back with
//! its version: a concurrent change makes the write fail instead of being
//! overwritten. `list cells` shows the table, `list links` the links.

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::Subcommand;
use switchyard_core::{CellTable, ForwardConfirm, Peer, SlotRange};
use switchyard_protocol::cells::slot_of;
use switchyard_protocol::{Field, Query};

use super::client::{ClientArgs, block_on, finish, value_text};

#[derive(Subcommand)]
pub enum CellsCommand {
    /// Set this broker's cell (a SET id, or CENTER).
    Local {
        cell: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// When a publisher of a message for another cell is confirmed:
    /// `stored` (once stored here, store and forward) or `remote` (once the
    /// other cell confirmed it, end to end).
    Confirm {
        #[arg(value_parser = ["stored", "remote"])]
        mode: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Give slots LOW-HIGH (inclusive, of 0-9999) to SET: parts of other
    /// ranges inside it move to SET.
    Range {
        set: String,
        slots: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Pin a routing variable to a cell whatever its slot.
    Pin {
        value: String,
        cell: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove a pin.
    Unpin {
        value: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Where another cell's broker is: switchyard://user:password@host:port
    /// (a user tagged cell-peer there), and the CA its certificate chains to.
    Peer {
        cell: String,
        url: String,
        /// The CA (PEM) the peer's certificate chains to [default: this
        /// broker's development CA].
        #[arg(long)]
        peer_ca: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Forget another cell's broker (its messages wait here).
    RemovePeer {
        cell: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Replace the whole table with a TOML file (the `[cells]` keys).
    Load {
        file: PathBuf,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The slot of a routing variable and the cell the table gives it.
    Slot {
        variable: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// The table back from `list cells` rows.
fn table_from_rows(rows: &[Vec<Field>]) -> anyhow::Result<CellTable> {
    let mut table = CellTable::default();
    for row in rows {
        let get = |name: &str| {
            row.iter()
                .find(|f| f.name == name)
                .map(|f| value_text(&f.value))
                .unwrap_or_default()
        };
        table.version = get("version").parse().context("the table's version")?;
        table.local = get("local");
        table.confirm = match get("confirm").as_str() {
            "remote" => ForwardConfirm::Remote,
            _ => ForwardConfirm::Stored,
        };
        let (cell, what, detail) = (get("cell"), get("what"), get("detail"));
        match get("entry").as_str() {
            "range" => {
                let (low, high) = parse_slots(&what)?;
                table.ranges.push(SlotRange {
                    set: cell,
                    low,
                    high,
                });
            }
            "pin" => {
                table.pins.insert(what, cell);
            }
            "peer" => {
                let ca = (!detail.is_empty()).then(|| PathBuf::from(detail));
                table.peers.insert(cell, Peer { url: what, ca });
            }
            _ => {}
        }
    }
    Ok(table)
}

fn parse_slots(text: &str) -> anyhow::Result<(u32, u32)> {
    let (low, high) = text
        .split_once('-')
        .ok_or_else(|| anyhow!("slots '{text}': expected LOW-HIGH, e.g. 0-4999"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<u32>()
            .with_context(|| format!("slots '{text}': '{s}' is not a slot number"))
    };
    Ok((parse(low)?, parse(high)?))
}

/// Gives `low..=high` to `set`: other ranges keep what lies outside it.
fn assign_range(table: &mut CellTable, set: &str, low: u32, high: u32) {
    let mut ranges = Vec::new();
    for range in table.ranges.drain(..) {
        if range.high < low || range.low > high {
            ranges.push(range);
            continue;
        }
        if range.low < low {
            ranges.push(SlotRange {
                set: range.set.clone(),
                low: range.low,
                high: low - 1,
            });
        }
        if range.high > high {
            ranges.push(SlotRange {
                set: range.set,
                low: high + 1,
                high: range.high,
            });
        }
    }
    ranges.push(SlotRange {
        set: set.into(),
        low,
        high,
    });
    ranges.sort_by_key(|r| r.low);
    table.ranges = ranges;
}

fn client_of(command: &CellsCommand) -> &ClientArgs {
    match command {
        CellsCommand::Local { client, .. }
        | CellsCommand::Confirm { client, .. }
        | CellsCommand::Range { client, .. }
        | CellsCommand::Pin { client, .. }
        | CellsCommand::Unpin { client, .. }
        | CellsCommand::Peer { client, .. }
        | CellsCommand::RemovePeer { client, .. }
        | CellsCommand::Load { client, .. }
        | CellsCommand::Slot { client, .. } => client,
    }
}

/// The table after `command`, from the one in force.
fn edited(command: &CellsCommand, mut table: CellTable) -> anyhow::Result<CellTable> {
    match command {
        CellsCommand::Local { cell, .. } => table.local = cell.clone(),
        CellsCommand::Confirm { mode, .. } => {
            table.confirm = match mode.as_str() {
                "remote" => ForwardConfirm::Remote,
                _ => ForwardConfirm::Stored,
            }
        }
        CellsCommand::Range { set, slots, .. } => {
            let (low, high) = parse_slots(slots)?;
            assign_range(&mut table, set, low, high);
        }
        CellsCommand::Pin { value, cell, .. } => {
            table.pins.insert(value.clone(), cell.clone());
        }
        CellsCommand::Unpin { value, .. } => {
            if table.pins.remove(value).is_none() {
                bail!("'{value}' is not pinned");
            }
        }
        CellsCommand::Peer {
            cell, url, peer_ca, ..
        } => {
            let ca = peer_ca.as_ref().map(std::path::absolute).transpose()?;
            table.peers.insert(
                cell.clone(),
                Peer {
                    url: url.clone(),
                    ca,
                },
            );
        }
        CellsCommand::RemovePeer { cell, .. } => {
            if table.peers.remove(cell).is_none() {
                bail!("no peer for cell '{cell}'");
            }
        }
        CellsCommand::Load { file, .. } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let loaded: CellTable =
                toml::from_str(&text).with_context(|| format!("{}", file.display()))?;
            return Ok(loaded);
        }
        CellsCommand::Slot { .. } => unreachable!("not a change"),
    }
    Ok(table)
}

pub fn run(command: CellsCommand) -> anyhow::Result<()> {
    block_on(async move {
        let (connection, channel) = client_of(&command).connect().await?;
        let current = table_from_rows(&channel.query(Query::Cells).await?)?;
        if let CellsCommand::Slot { variable, .. } = &command {
            let cell = current.cell_of(variable).unwrap_or("(no SET: refused)");
            println!("slot {} → {cell}", slot_of(variable));
            finish(connection, channel).await;
            return Ok(());
        }
        let version = current.version;
        let table = edited(&command, current)?;
        let json = serde_json::to_vec(&table)?;
        let new_version = channel.set_cell_table(version, json.into()).await?;
        eprintln!("SET table version {new_version} in force");
        finish(connection, channel).await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_given_to_a_set_is_carved_out_of_the_others() {
        let mut table = CellTable::default();
        assign_range(&mut table, "set-a", 0, 4999);
        assign_range(&mut table, "set-b", 5000, 9999);
        assign_range(&mut table, "set-b", 2000, 2999);
        let ranges: Vec<(&str, u32, u32)> = (table.ranges.iter())
            .map(|r| (r.set.as_str(), r.low, r.high))
            .collect();
        assert_eq!(
            ranges,
            [
                ("set-a", 0, 1999),
                ("set-b", 2000, 2999),
                ("set-a", 3000, 4999),
                ("set-b", 5000, 9999)
            ]
        );
    }
}
