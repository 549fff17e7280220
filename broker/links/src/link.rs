//! One cell's link: connect to its broker, forward what waits in order,
//! settle what it confirmed; on any failure release what was taken (it is
//! taken again, first) and try again after a pause. Order per routing variable holds because a cell's
//! messages leave one outbox in order, over one channel per vhost, and a
//! batch is confirmed before the next is taken. Waiting for a peer and
//! backing off are `peer.rs`'s.

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::{Broker, CellTable, Forward, LinkState, Peer};
use tokio::sync::watch;

use super::peer::{Sessions, State, Stopped, keep_running, peer_unchanged};

/// Messages per forwarded batch.
const BATCH: usize = 256;
/// Checked for work this often even without a wake-up (a release by a
/// crashed run, a message rerouted here).
const IDLE_POLL: Duration = Duration::from_secs(1);

pub(crate) async fn run(broker: Arc<Broker>, cell: String, shutdown: watch::Receiver<bool>) {
    // Before each attempt (the link takes nothing meanwhile): messages a
    // changed table no longer puts in this cell move now, not only once
    // the cell is reachable again.
    let mut rerouted_under = None;
    let report = |state: State| {
        let version = broker.cell_table().version;
        if rerouted_under != Some(version) {
            rerouted_under = Some(version);
            match broker.outbox_reroute(&cell) {
                Ok(0) => {}
                Ok(moved) => {
                    tracing::info!(%cell, moved, version, "messages rerouted by a changed SET table")
                }
                Err(e) => tracing::warn!(%cell, error = %e, "could not reroute waiting messages"),
            }
        }
        match state {
            State::NoPeer => broker.set_link_status(&cell, LinkState::NoPeer, None),
            State::Connecting => broker.set_link_status(&cell, LinkState::Connecting, None),
            State::Down(error) => broker.set_link_status(&cell, LinkState::Down, Some(error)),
        }
    };
    keep_running(&broker, &cell, shutdown, report, |peer, table| {
        forward(&broker, &cell, peer, table)
    })
    .await;
}

async fn forward(
    broker: &Arc<Broker>,
    cell: &str,
    peer: Peer,
    mut table: watch::Receiver<Arc<CellTable>>,
) -> Stopped {
    let mut sessions = match Sessions::new(broker, cell, &peer, "switchyard-link".into()) {
        Ok(sessions) => sessions,
        Err(e) => return Stopped::Failed(e),
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
                    if changed.is_err() || !peer_unchanged(&mut table, cell, &peer) {
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
async fn publish(sessions: &mut Sessions, batch: Vec<Forward>) -> Result<(), String> {
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
