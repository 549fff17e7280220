//! `switchyard bench`: load against a running broker (or `--spawn`), or
//! the standard suite (`--suite`).

use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, ValueEnum};

use super::client::{ClientArgs, block_on};
use crate::bench::{BenchConfig, Mode, SpawnedBroker, run, stream_lag, suite};

#[derive(Clone, Copy, ValueEnum)]
pub enum SendMode {
    Rapid,
    Confirm,
    Batch,
    /// Half message + commit per message (two round trips).
    Transactional,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Start a broker of this binary on a temporary data dir.
    #[arg(long)]
    spawn: bool,
    #[arg(long, default_value_t = 1)]
    producers: usize,
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Body bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Messages in all.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Publish for this many seconds instead of --count.
    #[arg(long)]
    duration: Option<f64>,
    #[arg(long, value_enum, default_value_t = SendMode::Rapid)]
    mode: SendMode,
    /// Messages per publish frame [default: 100 in batch mode, else 1].
    #[arg(long)]
    batch: Option<usize>,
    /// Confirm mode: unconfirmed messages allowed per producer.
    #[arg(long, default_value_t = 1000)]
    in_flight: usize,
    #[arg(long)]
    persistent: bool,
    /// Queue flush mode.
    #[arg(long, default_value = "async", value_parser = ["async", "sync"])]
    flush: String,
    /// default (routes by queue name, no plugin), direct, topic or fanout.
    #[arg(long, default_value = "default")]
    exchange_type: String,
    /// An argument of the bench exchange, key=value (repeatable), e.g.
    /// `set-router=set-router`.
    #[arg(long = "exchange-arg", value_name = "KEY=VALUE")]
    exchange_arguments: Vec<String>,
    /// A header on every message, key=value (repeatable), e.g.
    /// `x-set-key=user-1` to route a run to that user's cell.
    #[arg(long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    #[arg(long, default_value_t = 1)]
    queues: usize,
    /// Extra, never-matching bindings on the exchange.
    #[arg(long, default_value_t = 0)]
    bindings: usize,
    #[arg(long, default_value_t = 1000)]
    prefetch: u32,
    /// Consumers auto-acknowledge.
    #[arg(long)]
    auto_ack: bool,
    /// Slow consumers: each waits this many milliseconds after every
    /// delivery (for memory under consumers that fall behind).
    #[arg(long, default_value_t = 0)]
    consumer_pause_ms: u64,
    /// Delay every message this many milliseconds (x-delay).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Every message dies at once (queue TTL 0) and is dead-lettered by this
    /// policy (`builtin`, or a loaded dead-letter plugin) to bench-dlq<i>,
    /// which the consumers read: the rate is deaths per second.
    #[arg(long)]
    dead_letter_policy: Option<String>,
    /// The queues are streams; consumers join consumer groups at the first
    /// offset (see --groups).
    #[arg(long)]
    stream: bool,
    /// With --spawn: fetch the broker's /metrics every second during the
    /// run, as a Prometheus server would (what metrics cost).
    #[arg(long, requires = "spawn")]
    scrape_metrics: bool,
    /// With --stream: consumer groups (consumers are spread over them; each
    /// group receives every message).
    #[arg(long, default_value_t = 1)]
    groups: usize,
    /// Consumers attach after the producers finished (a replay of the
    /// backlog; for a stream, from its first offset).
    #[arg(long)]
    replay: bool,
    /// Measure the broker's memory while this many consumer groups lag
    /// behind a stream of --count messages (with --spawn).
    #[arg(long, default_value_t = 0, requires = "spawn")]
    lagging_groups: usize,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Run the standard scenarios (each on a spawned broker) and print the Markdown table.
    #[arg(long)]
    suite: bool,
    /// Suite: runs per scenario (the table shows medians).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Suite: multiply message counts.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Suite: only scenarios whose name contains this (alternatives: a|b).
    #[arg(long)]
    only: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    if args.suite {
        return block_on(async move {
            let results = suite::run_suite(args.scale, args.runs.max(1), args.only.as_deref())
                .await
                .map_err(|e| anyhow!(e))?;
            print!("{}", suite::table(&results));
            if args
                .only
                .as_deref()
                .is_none_or(|f| "stream lag".contains(f))
            {
                let messages = ((1_000_000.0 * args.scale) as u64).max(1000);
                let broker = SpawnedBroker::start().map_err(|e| anyhow!(e))?;
                let lag = stream_lag::measure(&broker, messages, 10)
                    .await
                    .map_err(|e| anyhow!(e))?;
                print!("\n{lag}");
            }
            Ok(())
        });
    }
    let mode = match args.mode {
        SendMode::Rapid => Mode::Rapid,
        SendMode::Confirm => Mode::Confirm,
        SendMode::Batch => Mode::Batch,
        SendMode::Transactional => Mode::Transactional,
    };
    let config = BenchConfig {
        producers: args.producers,
        consumers: args.consumers,
        size: args.size,
        count: args.count,
        duration: args.duration.map(Duration::from_secs_f64),
        mode,
        batch: args
            .batch
            .unwrap_or(if mode == Mode::Batch { 100 } else { 1 }),
        in_flight: args.in_flight,
        persistent: args.persistent,
        flush: args.flush,
        exchange_type: args.exchange_type,
        queues: args.queues,
        extra_bindings: args.bindings,
        prefetch: args.prefetch,
        auto_ack: args.auto_ack,
        consumer_pause: Duration::from_millis(args.consumer_pause_ms),
        progress: !args.json,
        delay_ms: args.delay_ms,
        dead_letter: args.dead_letter_policy,
        stream: args.stream,
        groups: args.groups,
        replay: args.replay,
        scrape_metrics: None,
        headers: super::client::parse_fields(&args.headers)?,
        exchange_arguments: super::client::parse_fields(&args.exchange_arguments)?,
    };
    if args.lagging_groups > 0 {
        return block_on(async move {
            let broker = SpawnedBroker::start().map_err(|e| anyhow!(e))?;
            let report = stream_lag::measure(&broker, args.count, args.lagging_groups)
                .await
                .map_err(|e| anyhow!(e))?;
            match args.json {
                true => println!("{}", serde_json::to_string(&report)?),
                false => print!("{report}"),
            }
            Ok(())
        });
    }
    block_on(async move {
        let spawned = if args.spawn {
            Some(SpawnedBroker::start().map_err(|e| anyhow!(e))?)
        } else {
            None
        };
        let (url, trust) = match &spawned {
            Some(broker) => (broker.url.clone(), broker.trust.clone()),
            None => (args.client.server.clone(), args.client.trust()?),
        };
        let mut config = config;
        if args.scrape_metrics {
            config.scrape_metrics = spawned.as_ref().and_then(|b| b.http);
        }
        let report = run(&url, &trust, &config).await.map_err(|e| anyhow!(e))?;
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{report}");
        }
        Ok(())
    })
}
