//! One cell's link: connect to its broker, forward what waits in order,
//! settle what it confirmed; on any failure release what was taken (it is
//! taken again, first) and try again after a pause that doubles up to
//! [`MAX_BACKOFF`]. Order per routing variable holds because a cell's
//! messages leave one outbox in order, over one channel per vhost, and a
//! batch is confirmed before the next is taken.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_client::{BrokerAddress, Channel, ConnectOptions, Connection, Trust};
use switchyard_core::{Broker, Forward, LinkState, Peer};

/// Messages per forwarded batch.
const BATCH: usize = 256;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Checked for work this often even without a wake-up (a release by a
/// crashed run, a message rerouted here).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Why forwarding stopped.
enum Stopped {
    /// The table changed this cell's peer: connect again at once.
    PeerChanged,
    Shutdown,
    Failed(String),
}

pub(crate) async fn run(
    broker: Arc<Broker>,
    cell: String,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut table = broker.watch_cell_table();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let peer = table.borrow_and_update().peers.get(&cell).cloned();
        let Some(peer) = peer else {
            broker.set_link_status(&cell, LinkState::NoPeer, None);
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = table.changed() => continue,
            }
        };
        broker.set_link_status(&cell, LinkState::Connecting, None);
        let stopped = tokio::select! {
            _ = shutdown.changed() => Stopped::Shutdown,
            stopped = forward(&broker, &cell, &peer, &mut table) => stopped,
        };
        match stopped {
            Stopped::Shutdown => return,
            Stopped::PeerChanged => backoff = FIRST_BACKOFF,
            Stopped::Failed(error) => {
                tracing::warn!(%cell, %error, ?backoff, "link to cell failed; trying again");
                broker.set_link_status(&cell, LinkState::Down, Some(error));
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// A channel per vhost on the peer (a connection is bound to one vhost).
struct Sessions<'a> {
    peer: &'a Peer,
    trust: Trust,
    open: BTreeMap<String, (Connection, Channel)>,
}

impl Sessions<'_> {
    async fn channel(&mut self, vhost: &str) -> Result<&Channel, String> {
        if !self.open.contains_key(vhost) {
            let mut address = BrokerAddress::parse(&self.peer.url).map_err(|e| e.to_string())?;
            address.vhost = vhost.to_string();
            let mut options = ConnectOptions::new(self.trust.clone());
            options.client_name = "switchyard-link".into();
            let connection = Connection::open(&address, options)
                .await
                .map_err(|e| format!("connecting to {}:{}: {e}", address.host, address.port))?;
            let channel = connection.channel().await.map_err(|e| e.to_string())?;
            channel.confirm_select().await.map_err(|e| e.to_string())?;
            self.open.insert(vhost.to_string(), (connection, channel));
        }
        Ok(&self.open[vhost].1)
    }
}

async fn forward(
    broker: &Arc<Broker>,
    cell: &str,
    peer: &Peer,
    table: &mut tokio::sync::watch::Receiver<Arc<switchyard_core::CellTable>>,
) -> Stopped {
    let ca = (peer.ca.clone()).unwrap_or_else(|| broker.data_dir().join("tls/ca.pem"));
    let trust = match Trust::ca_file(&ca) {
        Ok(trust) => trust,
        Err(e) => return Stopped::Failed(format!("the CA of cell {cell} ({}): {e}", ca.display())),
    };
    let mut sessions = Sessions {
        peer,
        trust,
        open: BTreeMap::new(),
    };
    // Connect before taking anything, so a peer that is down shows as such.
    if let Err(e) = sessions.channel("/").await {
        return Stopped::Failed(e);
    }
    broker.set_link_status(cell, LinkState::Up, None);
    let ready = match broker.outbox_ready(cell) {
        Ok(ready) => ready,
        Err(e) => return Stopped::Failed(e.to_string()),
    };
    loop {
        let woken = ready.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let batch = match broker.outbox_take(cell, BATCH) {
            Ok(batch) => batch,
            Err(e) => return Stopped::Failed(format!("reading the outbox: {e}")),
        };
        if batch.is_empty() {
            tokio::select! {
                _ = woken => {}
                changed = table.changed() => {
                    if changed.is_err() || table.borrow_and_update().peers.get(cell) != Some(peer) {
                        return Stopped::PeerChanged;
                    }
                }
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
            continue;
        }
        let offsets: Vec<u64> = batch.iter().map(|f| f.offset).collect();
        match publish(&mut sessions, batch).await {
            Ok(()) => {
                if let Err(e) = broker.outbox_settle(cell, &offsets) {
                    return Stopped::Failed(format!("settling forwarded messages: {e}"));
                }
            }
            Err(e) => {
                if let Err(release) = broker.outbox_release(cell, &offsets) {
                    tracing::error!(%cell, error = %release, "could not release forwarded messages");
                }
                return Stopped::Failed(e);
            }
        }
    }
}

/// Publishes a batch in order (runs of one vhost and exchange per frame)
/// and waits until the peer confirmed all of it.
async fn publish(sessions: &mut Sessions<'_>, batch: Vec<Forward>) -> Result<(), String> {
    let mut confirmations = Vec::new();
    let mut run: Vec<Forward> = Vec::new();
    let mut batch = batch.into_iter().peekable();
    while let Some(forward) = batch.next() {
        let same_run =
            |next: &Forward| next.vhost == forward.vhost && next.exchange == forward.exchange;
        let ends_run = batch.peek().is_none_or(|next| !same_run(next));
        run.push(forward);
        if ends_run {
            let first = &run[0];
            let (vhost, exchange) = (first.vhost.clone(), first.exchange.clone());
            let channel = sessions.channel(&vhost).await?;
            let messages = run.drain(..).map(|f| f.message).collect();
            let confirmation = channel
                .publish_batch(&exchange, messages)
                .await
                .map_err(|e| {
                    format!("forwarding to exchange '{exchange}' in vhost '{vhost}': {e}")
                })?;
            confirmations.push((vhost, exchange, confirmation));
        }
    }
    for (vhost, exchange, confirmation) in confirmations {
        confirmation.await.map_err(|e| {
            format!("the cell refused messages for exchange '{exchange}' in vhost '{vhost}': {e}")
        })?;
    }
    Ok(())
}
