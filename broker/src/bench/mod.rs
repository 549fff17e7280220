//! `switchyard bench`: a load generator in the spirit of `nats bench` and
//! RabbitMQ's PerfTest. Producers and consumers are separate connections
//! in this process (so one clock serves publish→deliver latency: each body
//! starts with its send time); the broker is a separate process.
//!
//! - `stats` — latency samples, percentiles, the report.
//! - `spawn` — `--spawn`: a broker on a temporary data dir.
//! - `scrape` — `--scrape-metrics`: /metrics fetched every second during a run.
//! - `stream_lag` — broker memory while consumer groups lag far behind.
//! - `transactional` — half message + commit round trips.
//! - `suite` — the standard scenarios and the table in docs/BENCHMARKS.md.
//! - `topology` — the exchange and queues a run declares, and removes after.

mod scrape;
mod spawn;
mod stats;
pub mod stream_lag;
pub mod suite;
mod topology;
mod transactional;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_client::{
    Confirmation, ConnectOptions, Connection, ConsumeOptions, Error, Message, StreamOffset, Trust,
};

pub use spawn::SpawnedBroker;
pub use stats::{Percentiles, Report, Samples};

/// How producers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fire and forget.
    Rapid,
    /// Each publish (or batch) confirmed; at most `in_flight` messages unconfirmed.
    Confirm,
    /// Rapid batches of `batch` messages in one frame.
    Batch,
    /// Each message a half message committed at once: two round trips
    /// per message, one after the other (transactional.rs).
    Transactional,
}

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub producers: usize,
    pub consumers: usize,
    /// Body bytes (at least 8: the send time).
    pub size: usize,
    /// Messages in all (split among producers)…
    pub count: u64,
    /// …or publish for this long instead.
    pub duration: Option<Duration>,
    pub mode: Mode,
    /// Messages per publish frame.
    pub batch: usize,
    /// Confirm mode: unconfirmed messages allowed per producer.
    pub in_flight: usize,
    pub persistent: bool,
    /// Queue flush mode: "async" or "sync".
    pub flush: String,
    /// "default" (no plugin: routes by queue name), "direct", "topic" or "fanout".
    pub exchange_type: String,
    pub queues: usize,
    /// Extra bindings that match nothing (a large routing table).
    pub extra_bindings: usize,
    pub prefetch: u32,
    pub auto_ack: bool,
    /// Each consumer waits this long after every delivery (slow consumers).
    pub consumer_pause: Duration,
    /// A live progress line on stderr.
    pub progress: bool,
    /// Each message is delayed this long (`x-delay`; 0: not delayed).
    pub delay_ms: u64,
    /// Every message dies at once (queue TTL 0) and is dead-lettered to
    /// `bench-dlq<i>` by this policy (`builtin`: the queue's dead-letter
    /// exchange and the built-in policy; else a loaded policy's name);
    /// consumers read the dead-letter queues.
    pub dead_letter: Option<String>,
    /// The queues are streams (`queue-type = stream`); consumer `c` joins
    /// consumer group `bench-g<c % groups>` at the first offset, so every
    /// message is consumed once per group.
    pub stream: bool,
    pub groups: usize,
    /// Consumers attach only after the producers finished: they read a
    /// backlog (for a stream, a replay from the first offset).
    pub replay: bool,
    /// Fetch the broker's /metrics every second during the run (its HTTP
    /// address), as a Prometheus server would.
    pub scrape_metrics: Option<std::net::SocketAddr>,
    /// Headers on every message (e.g. `x-set-key` for a SET-routed run).
    pub headers: Vec<switchyard_client::Field>,
    /// Arguments of the bench exchange (e.g. `set-router`).
    pub exchange_arguments: Vec<switchyard_client::Field>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            producers: 1,
            consumers: 1,
            size: 1024,
            count: 100_000,
            duration: None,
            mode: Mode::Rapid,
            batch: 1,
            in_flight: 1000,
            persistent: false,
            flush: "async".into(),
            exchange_type: "default".into(),
            queues: 1,
            extra_bindings: 0,
            prefetch: 1000,
            auto_ack: false,
            consumer_pause: Duration::ZERO,
            progress: false,
            delay_ms: 0,
            dead_letter: None,
            stream: false,
            groups: 1,
            replay: false,
            scrape_metrics: None,
            headers: Vec::new(),
            exchange_arguments: Vec::new(),
        }
    }
}

const EXCHANGE: &str = "bench-exchange";

fn queue_name(i: usize) -> String {
    format!("bench-q{i}")
}

/// Where queue `i`'s dead letters go when the run dead-letters.
fn dead_letter_queue(i: usize) -> String {
    format!("bench-dlq{i}")
}

impl BenchConfig {
    fn validate(&self) -> Result<(), String> {
        if !["default", "direct", "topic", "fanout"].contains(&self.exchange_type.as_str()) {
            return Err(format!(
                "--exchange-type must be default, direct, topic or fanout, not '{}'",
                self.exchange_type
            ));
        }
        if self.producers == 0 || self.queues == 0 || self.batch == 0 {
            return Err("--producers, --queues and --batch must be at least 1".into());
        }
        if self.size < 8 {
            return Err(
                "--size must be at least 8 bytes (the send time travels in the body)".into(),
            );
        }
        if self.stream && (self.groups == 0 || self.dead_letter.is_some() || self.delay_ms > 0) {
            return Err("--stream needs --groups ≥ 1, and no dead-lettering or delays".into());
        }
        if self.consumers > 0 && self.consumers < self.queues * self.consumer_groups() {
            return Err(format!(
                "{} consumers cannot drain {} queues: use at least one consumer per queue",
                self.consumers, self.queues
            ));
        }
        Ok(())
    }

    /// The routing key that reaches queue `i`.
    fn routing_key(&self, i: usize) -> String {
        match self.exchange_type.as_str() {
            "topic" => format!("bench.q{i}.event"),
            _ => queue_name(i),
        }
    }

    fn exchange(&self) -> &str {
        if self.exchange_type == "default" {
            ""
        } else {
            EXCHANGE
        }
    }

    /// The queue consumer `c` reads: the bench queue, or its dead-letter
    /// queue when the run dead-letters.
    fn consumed_queue(&self, c: usize) -> String {
        match self.dead_letter {
            Some(_) => dead_letter_queue(c % self.queues),
            None => queue_name(c % self.queues),
        }
    }

    /// Consumer groups each message goes to (1 for classic queues).
    fn consumer_groups(&self) -> usize {
        if self.stream { self.groups } else { 1 }
    }

    /// The consumer group consumer `c` joins (streams only).
    fn group_of(&self, c: usize) -> Option<String> {
        self.stream
            .then(|| format!("bench-g{}", (c / self.queues) % self.groups))
    }

    /// Deliveries each message makes: to each queue it reaches, once per
    /// consumer group.
    fn fan_out(&self) -> u64 {
        let queues = if self.exchange_type == "fanout" {
            self.queues as u64
        } else {
            1
        };
        queues * self.consumer_groups() as u64
    }
}

struct Shared {
    base: Instant,
    published: AtomicU64,
    refused: AtomicU64,
    consumed: AtomicU64,
    producers_done: AtomicBool,
    first_publish_ns: AtomicU64,
    last_publish_ns: AtomicU64,
    first_delivery_ns: AtomicU64,
    last_delivery_ns: AtomicU64,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// Runs one benchmark against a broker, leaving no queue or exchange of
/// its own behind, whether it succeeded or not.
pub async fn run(url: &str, trust: &Trust, config: &BenchConfig) -> Result<Report, String> {
    config.validate()?;
    let result = match topology::set_up(url, trust, config).await {
        Ok(()) => measure(url, trust, config).await,
        Err(e) => Err(format!("setting up: {e}")),
    };
    if let Err(e) = topology::tear_down(url, trust, config).await {
        tracing::warn!(error = %e, "could not delete the bench queues and exchange");
    }
    result
}

async fn measure(url: &str, trust: &Trust, config: &BenchConfig) -> Result<Report, String> {
    let shared = Arc::new(Shared {
        base: Instant::now(),
        published: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        consumed: AtomicU64::new(0),
        producers_done: AtomicBool::new(false),
        first_publish_ns: AtomicU64::new(u64::MAX),
        last_publish_ns: AtomicU64::new(0),
        first_delivery_ns: AtomicU64::new(u64::MAX),
        last_delivery_ns: AtomicU64::new(0),
    });

    let mut consumers = Vec::new();
    if !config.replay {
        consumers = start_consumers(url, trust, config, &shared).await?;
    }
    let mut producers = Vec::new();
    for p in 0..config.producers {
        let connection = Connection::connect(url, ConnectOptions::new(trust.clone()))
            .await
            .map_err(|e| format!("producer {p}: {e}"))?;
        let share = config.count / config.producers as u64
            + u64::from((p as u64) < config.count % config.producers as u64);
        producers.push(tokio::spawn(produce(
            connection,
            p,
            share,
            config.clone(),
            shared.clone(),
        )));
    }
    let progress = config
        .progress
        .then(|| tokio::spawn(report_progress(shared.clone())));
    let scraper = config
        .scrape_metrics
        .map(|address| tokio::spawn(scrape::scrape_every_second(address)));

    let mut confirm_latency = Samples::default();
    for producer in producers {
        let samples = producer
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("producer: {e}"))?;
        confirm_latency.merge(samples);
    }
    shared.producers_done.store(true, Ordering::Release);
    if config.replay {
        consumers = start_consumers(url, trust, config, &shared).await?;
    }
    let mut deliver_latency = Samples::default();
    for consumer in consumers {
        let samples = consumer
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("consumer: {e}"))?;
        deliver_latency.merge(samples);
    }
    if let Some(progress) = progress {
        progress.abort();
        eprintln!();
    }
    if let Some(scraper) = scraper {
        scraper.abort();
    }

    let published = shared.published.load(Ordering::Acquire);
    let consumed = shared.consumed.load(Ordering::Acquire);
    let seconds = |from: &AtomicU64, to: &AtomicU64| {
        let (from, to) = (from.load(Ordering::Acquire), to.load(Ordering::Acquire));
        if to > from {
            (to - from) as f64 / 1e9
        } else {
            f64::NAN
        }
    };
    let publish_s = seconds(&shared.first_publish_ns, &shared.last_publish_ns);
    let consume_s = seconds(&shared.first_delivery_ns, &shared.last_delivery_ns);
    let end_to_end_s = seconds(&shared.first_publish_ns, &shared.last_delivery_ns);
    let rate = |n: u64, s: f64| {
        if s.is_finite() && s > 0.0 {
            n as f64 / s
        } else {
            0.0
        }
    };
    let mb = |msgs_per_s: f64| msgs_per_s * config.size as f64 / 1e6;
    Ok(Report {
        published,
        consumed,
        producer_msgs_per_s: rate(published, publish_s),
        producer_mb_per_s: mb(rate(published, publish_s)),
        consumer_msgs_per_s: rate(consumed, consume_s),
        consumer_mb_per_s: mb(rate(consumed, consume_s)),
        end_to_end_msgs_per_s: rate(consumed, end_to_end_s),
        mb_per_s: mb(rate(consumed, end_to_end_s)),
        refused: shared.refused.load(Ordering::Acquire),
        publish_to_confirm: confirm_latency.percentiles(),
        publish_to_deliver: deliver_latency.percentiles(),
    })
}

type ConsumerTask = tokio::task::JoinHandle<Result<Samples, Error>>;

async fn start_consumers(
    url: &str,
    trust: &Trust,
    config: &BenchConfig,
    shared: &Arc<Shared>,
) -> Result<Vec<ConsumerTask>, String> {
    let mut consumers = Vec::new();
    for c in 0..config.consumers {
        let connection = Connection::connect(url, ConnectOptions::new(trust.clone()))
            .await
            .map_err(|e| format!("consumer {c}: {e}"))?;
        let options = ConsumeOptions {
            prefetch: config.prefetch,
            auto_ack: config.auto_ack,
            group: config.group_of(c),
            offset: config.stream.then_some(StreamOffset::First),
            ..ConsumeOptions::default()
        };
        consumers.push(tokio::spawn(consume(
            connection,
            config.consumed_queue(c),
            options,
            config.clone(),
            shared.clone(),
        )));
    }
    Ok(consumers)
}

/// The next message a producer sends: to the queue `route` names (then
/// the next one), its body stamped with the send time.
fn next_message(config: &BenchConfig, route: &mut usize, shared: &Shared) -> Message {
    let mut message = Message::new(
        config.routing_key(*route % config.queues),
        body(config.size, shared),
    );
    *route += 1;
    message.headers.extend(config.headers.iter().cloned());
    if config.persistent {
        message = message.persistent();
    }
    if config.delay_ms > 0 {
        message = message.delayed(Duration::from_millis(config.delay_ms));
    }
    message
}

fn body(size: usize, shared: &Shared) -> Bytes {
    let mut body = vec![0u8; size];
    body[..8].copy_from_slice(&shared.now_ns().to_le_bytes());
    body.into()
}

async fn produce(
    connection: Connection,
    id: usize,
    count: u64,
    config: BenchConfig,
    shared: Arc<Shared>,
) -> Result<Samples, Error> {
    let ch = connection.channel().await?;
    if config.mode == Mode::Transactional {
        return transactional::produce(connection, ch, id, count, config, shared).await;
    }
    let confirm = config.mode == Mode::Confirm;
    if confirm {
        ch.confirm_select().await?;
    }
    let deadline = config.duration.map(|d| Instant::now() + d);
    let mut latency = Samples::default();
    let mut in_flight: VecDeque<(u64, u64, Confirmation)> = VecDeque::new();
    let mut unconfirmed = 0usize;
    let mut sent = 0u64;
    let mut route = id;
    shared
        .first_publish_ns
        .fetch_min(shared.now_ns(), Ordering::AcqRel);
    while deadline.map_or(sent < count, |d| Instant::now() < d) {
        let n = if deadline.is_some() {
            config.batch as u64
        } else {
            (count - sent).min(config.batch as u64)
        };
        let mut messages = Vec::with_capacity(n as usize);
        for _ in 0..n {
            messages.push(next_message(&config, &mut route, &shared));
        }
        let started = shared.now_ns();
        let confirmation = if n == 1 {
            ch.publish(config.exchange(), messages.pop().unwrap())
                .await?
        } else {
            ch.publish_batch(config.exchange(), messages).await?
        };
        sent += n;
        shared.published.fetch_add(n, Ordering::AcqRel);
        if confirm {
            in_flight.push_back((started, n, confirmation));
            unconfirmed += n as usize;
            while unconfirmed > config.in_flight.saturating_sub(n as usize) {
                let Some((started, n, confirmation)) = in_flight.pop_front() else {
                    break;
                };
                settle(confirmation.await, started, &shared, &mut latency, n);
                unconfirmed -= n as usize;
            }
        }
    }
    for (started, n, confirmation) in in_flight {
        settle(confirmation.await, started, &shared, &mut latency, n);
    }
    shared
        .last_publish_ns
        .fetch_max(shared.now_ns(), Ordering::AcqRel);
    ch.close().await?;
    connection.close().await;
    Ok(latency)
}

fn settle(result: Result<(), Error>, started: u64, shared: &Shared, latency: &mut Samples, n: u64) {
    match result {
        Ok(()) => latency.record((shared.now_ns() - started) / 1000),
        Err(Error::Request { .. }) => {
            shared.refused.fetch_add(n, Ordering::AcqRel);
        }
        Err(e) => tracing::warn!(error = %e, "confirm failed"),
    }
}

/// Idle time after the producers finished before consumers give up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

async fn consume(
    connection: Connection,
    queue: String,
    options: ConsumeOptions,
    config: BenchConfig,
    shared: Arc<Shared>,
) -> Result<Samples, Error> {
    let ch = connection.channel().await?;
    let mut consumer = ch.consume(&queue, options).await?;
    let mut latency = Samples::default();
    let ack_every = (config.prefetch as u64 / 2).max(1);
    let mut unacked = 0u64;
    let mut last_tag = 0;
    let mut check = tokio::time::interval(Duration::from_millis(100));
    loop {
        let expected = shared
            .published
            .load(Ordering::Acquire)
            .saturating_sub(shared.refused.load(Ordering::Acquire))
            * config.fan_out();
        if shared.producers_done.load(Ordering::Acquire)
            && shared.consumed.load(Ordering::Acquire) >= expected
        {
            break;
        }
        // One timer for the whole run: a timeout per message would cost
        // more than the delivery itself.
        let delivery = tokio::select! {
            next = consumer.next() => match next {
                Some(delivery) => delivery,
                None => break,
            },
            _ = check.tick() => {
                let idle_since = shared
                    .last_delivery_ns
                    .load(Ordering::Acquire)
                    .max(shared.last_publish_ns.load(Ordering::Acquire));
                if shared.producers_done.load(Ordering::Acquire)
                    && shared.now_ns().saturating_sub(idle_since) > DRAIN_TIMEOUT.as_nanos() as u64
                {
                    tracing::warn!(%queue, "consumer gave up waiting for the rest of the messages");
                    break;
                }
                continue;
            }
        };
        let now = shared.now_ns();
        shared.first_delivery_ns.fetch_min(now, Ordering::AcqRel);
        shared.last_delivery_ns.fetch_max(now, Ordering::AcqRel);
        shared.consumed.fetch_add(1, Ordering::AcqRel);
        if let Some(sent) = delivery.message.body.get(..8) {
            let sent = u64::from_le_bytes(sent.try_into().unwrap());
            latency.record(now.saturating_sub(sent) / 1000);
        }
        if !config.consumer_pause.is_zero() {
            tokio::time::sleep(config.consumer_pause).await;
        }
        if !config.auto_ack {
            unacked += 1;
            last_tag = delivery.delivery_tag;
            if unacked >= ack_every {
                ch.ack(last_tag, true).await?;
                unacked = 0;
            }
        }
    }
    if unacked > 0 {
        ch.ack(last_tag, true).await?;
    }
    ch.close().await?;
    connection.close().await;
    Ok(latency)
}

async fn report_progress(shared: Arc<Shared>) {
    let mut last = (0, 0, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (published, consumed) = (
            shared.published.load(Ordering::Acquire),
            shared.consumed.load(Ordering::Acquire),
        );
        let elapsed = last.2.elapsed().as_secs_f64();
        eprint!(
            "\rpublished {published} ({:.0}/s)  consumed {consumed} ({:.0}/s)      ",
            (published - last.0) as f64 / elapsed,
            (consumed - last.1) as f64 / elapsed
        );
        last = (published, consumed, Instant::now());
    }
}
