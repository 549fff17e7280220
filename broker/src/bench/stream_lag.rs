//! `--lagging-groups N`: the broker's memory while N consumer groups lag
//! far behind a stream. A lagging group costs its position (a few
//! integers) and at most its members' prefetch in flight: the backlog stays
//! on disk, so resident memory must not grow with the lag.

use std::time::Duration;

use switchyard_client::{
    ConnectOptions, Connection, ConsumeOptions, Field, Message, QueueOptions, StreamOffset, Value,
};

use super::SpawnedBroker;

const STREAM: &str = "bench-lag";
const PREFETCH: u32 = 1000;

#[derive(Debug, Clone, serde::Serialize)]
pub struct LagReport {
    pub messages: u64,
    pub groups: usize,
    /// The broker's own memory (RssAnon) once the stream holds every
    /// message…
    pub anon_published_kib: u64,
    /// …and with every group attached at the first offset, each holding a
    /// full prefetch and lagging by the rest.
    pub anon_lagging_kib: u64,
    /// Mapped log and index pages resident then (RssFile: page cache the
    /// kernel reclaims under pressure).
    pub file_lagging_kib: u64,
}

impl std::fmt::Display for LagReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |kib: u64| kib as f64 / 1024.0;
        writeln!(
            f,
            "stream of {} messages (1 KiB), {} groups lagging by {} each: broker memory \
             (RssAnon) {:.1} MiB, {:.1} MiB before the groups attached; mapped log pages \
             resident (RssFile) {:.1} MiB",
            self.messages,
            self.groups,
            self.messages.saturating_sub(u64::from(PREFETCH)),
            mib(self.anon_lagging_kib),
            mib(self.anon_published_kib),
            mib(self.file_lagging_kib)
        )
    }
}

pub async fn measure(
    broker: &SpawnedBroker,
    messages: u64,
    groups: usize,
) -> Result<LagReport, String> {
    let connect = || Connection::connect(&broker.url, ConnectOptions::new(broker.trust.clone()));
    let connection = connect().await.map_err(|e| e.to_string())?;
    let ch = connection.channel().await.map_err(|e| e.to_string())?;
    let options = QueueOptions {
        durable: true,
        arguments: vec![Field::new("queue-type", Value::Text("stream".into()))],
        ..QueueOptions::default()
    };
    ch.declare_queue(STREAM, options)
        .await
        .map_err(|e| e.to_string())?;
    ch.confirm_select().await.map_err(|e| e.to_string())?;
    let mut pending = std::collections::VecDeque::new();
    let mut sent = 0;
    while sent < messages {
        let n = (messages - sent).min(1000);
        let batch = (0..n)
            .map(|_| Message::new(STREAM, vec![0u8; 1024]))
            .collect();
        pending.push_back(
            ch.publish_batch("", batch)
                .await
                .map_err(|e| e.to_string())?,
        );
        if pending.len() > 10 {
            pending
                .pop_front()
                .unwrap()
                .await
                .map_err(|e| e.to_string())?;
        }
        sent += n;
    }
    for confirmation in pending {
        confirmation.await.map_err(|e| e.to_string())?;
    }
    let anon_published_kib = broker.memory_kib("RssAnon")?;
    let mut members = Vec::new();
    for g in 0..groups {
        let connection = connect().await.map_err(|e| e.to_string())?;
        let ch = connection.channel().await.map_err(|e| e.to_string())?;
        let options = ConsumeOptions {
            prefetch: PREFETCH,
            group: Some(format!("lagging-{g}")),
            offset: Some(StreamOffset::First),
            ..ConsumeOptions::default()
        };
        let mut consumer = ch
            .consume(STREAM, options)
            .await
            .map_err(|e| e.to_string())?;
        // Its prefetch fills; nothing is acknowledged.
        for _ in 0..PREFETCH.min(messages as u32) {
            tokio::time::timeout(Duration::from_secs(60), consumer.next())
                .await
                .map_err(|_| format!("group {g}: no delivery within 60 s"))?
                .ok_or_else(|| format!("group {g}: the consumer ended"))?;
        }
        members.push((connection, ch, consumer));
    }
    let anon_lagging_kib = broker.memory_kib("RssAnon")?;
    let file_lagging_kib = broker.memory_kib("RssFile")?;
    drop(members);
    connection.close().await;
    Ok(LagReport {
        messages,
        groups,
        anon_published_kib,
        anon_lagging_kib,
        file_lagging_kib,
    })
}
