//! What every link to another cell's broker shares: the peer from the SET
//! table, a session per vhost on it (QUIC + TLS verified against the
//! peer's CA, as the peer's `cell-peer` user), and the loop that waits for
//! a peer, runs the link and backs off after failures.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use switchyard_client::{BrokerAddress, Channel, ConnectOptions, Connection, Trust};
use switchyard_core::{Broker, CellTable, Peer};
use tokio::sync::watch;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why a link stopped running.
pub(crate) enum Stopped {
    /// The table changed the peer: connect again at once.
    PeerChanged,
    /// The broker is shutting down, or the link has no more work.
    Done,
    Failed(String),
}

/// A link's state, reported as it changes.
pub(crate) enum State {
    NoPeer,
    Connecting,
    Down(String),
}

/// Runs `attempt` with the peer of `cell` until it is done or the broker
/// shuts down: waits while the table names no peer, tries again after a
/// failure with a pause doubling from 100 ms to 5 s. `report` hears the
/// state before every attempt and every wait (nothing runs meanwhile).
pub(crate) async fn keep_running<F, Fut>(
    broker: &Arc<Broker>,
    cell: &str,
    mut shutdown: watch::Receiver<bool>,
    mut report: impl FnMut(State),
    mut attempt: F,
) where
    F: FnMut(Peer, watch::Receiver<Arc<CellTable>>) -> Fut,
    Fut: Future<Output = Stopped>,
{
    let mut table = broker.watch_cell_table();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let peer = table.borrow_and_update().peers.get(cell).cloned();
        let Some(peer) = peer else {
            report(State::NoPeer);
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = table.changed() => continue,
            }
        };
        report(State::Connecting);
        let stopped = tokio::select! {
            _ = shutdown.changed() => Stopped::Done,
            stopped = attempt(peer, table.clone()) => stopped,
        };
        match stopped {
            Stopped::Done => return,
            Stopped::PeerChanged => backoff = FIRST_BACKOFF,
            Stopped::Failed(error) => {
                tracing::warn!(%cell, %error, ?backoff, "link to cell failed; trying again");
                report(State::Down(error));
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Whether the table still names `peer` for `cell`.
pub(crate) fn peer_unchanged(
    table: &mut watch::Receiver<Arc<CellTable>>,
    cell: &str,
    peer: &Peer,
) -> bool {
    table.borrow_and_update().peers.get(cell) == Some(peer)
}

/// A session (connection + channel in confirm mode) per vhost on a peer.
pub(crate) struct Sessions {
    peer: Peer,
    /// What the peer's `list connections` shows for these sessions.
    client_name: String,
    trust: Trust,
    open: BTreeMap<String, (Connection, Channel)>,
}

impl Sessions {
    pub(crate) fn new(
        broker: &Broker,
        cell: &str,
        peer: &Peer,
        client_name: String,
    ) -> Result<Sessions, String> {
        let ca = (peer.ca.clone()).unwrap_or_else(|| broker.data_dir().join("tls/ca.pem"));
        let trust = Trust::ca_file(&ca)
            .map_err(|e| format!("the CA of cell {cell} ({}): {e}", ca.display()))?;
        Ok(Sessions {
            peer: peer.clone(),
            client_name,
            trust,
            open: BTreeMap::new(),
        })
    }

    pub(crate) async fn channel(&mut self, vhost: &str) -> Result<&Channel, String> {
        if !self.open.contains_key(vhost) {
            let mut address = BrokerAddress::parse(&self.peer.url).map_err(|e| e.to_string())?;
            address.vhost = vhost.to_string();
            let mut options = ConnectOptions::new(self.trust.clone());
            options.client_name = self.client_name.clone();
            let connection = Connection::open(&address, options)
                .await
                .map_err(|e| format!("connecting to {}:{}: {e}", address.host, address.port))?;
            let channel = connection.channel().await.map_err(|e| e.to_string())?;
            channel.confirm_select().await.map_err(|e| e.to_string())?;
            self.open.insert(vhost.to_string(), (connection, channel));
        }
        Ok(&self.open[vhost].1)
    }

    /// This session's connection id on the peer.
    pub(crate) fn connection_id(&self, vhost: &str) -> Option<u64> {
        self.open
            .get(vhost)
            .map(|(connection, _)| connection.connection_id())
    }
}
