//! `switchyard publish`: one message, or `--count` of them, with optional
//! confirms; prints progress for long runs and a rate summary.

use std::collections::VecDeque;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use clap::Args;
use switchyard_client::{Field, Message, Properties, Value};

use super::client::{ClientArgs, block_on, parse_fields};

/// Confirms awaited at most this far behind the newest publish.
const MAX_IN_FLIGHT: usize = 1000;

#[derive(Args)]
pub struct PublishArgs {
    /// The exchange (default: the default exchange, which routes to the
    /// queue named by the routing key).
    #[arg(long, default_value = "")]
    pub exchange: String,
    #[arg(long)]
    pub routing_key: String,
    /// The body; `-` reads stdin. Without a body, --file or --size the
    /// body is read from stdin if it is piped in (not a terminal); an empty
    /// one is refused (use --size 0 for empty bodies).
    pub body: Option<String>,
    /// Read the body from a file.
    #[arg(long, conflicts_with = "body")]
    pub file: Option<PathBuf>,
    /// Publish this many messages, each with an `x-seq` header (0, 1, …).
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Generate bodies of this many bytes.
    #[arg(long, conflicts_with_all = ["body", "file"])]
    pub size: Option<usize>,
    /// Wait for the broker to confirm every message. Without it the CLI
    /// hears only of refusals that close the channel (no such exchange, no
    /// permission, a malformed message); a full queue, a filter's rejection
    /// or a delay past the maximum refuse single messages, which only a
    /// confirm reports.
    #[arg(long)]
    pub confirm: bool,
    /// Mark messages persistent.
    #[arg(long)]
    pub persistent: bool,
    /// Have unroutable messages returned (reported as an error).
    #[arg(long)]
    pub mandatory: bool,
    /// Header key=value (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// The message id. With --count above 1 each message gets
    /// `ID-SEQ` (SEQ as in its x-seq header), so the ids stay unique.
    #[arg(long)]
    pub message_id: Option<String>,
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// Time to live in milliseconds: an unconsumed message is dropped (or
    /// dead-lettered) after this (a queue's message-ttl may be shorter).
    #[arg(long, value_name = "MS")]
    pub expiration: Option<u64>,
    /// Deliver after this long (500ms, 5s, 2h, 30days): stored and
    /// confirmed now, visible in its queue when due (header x-delay).
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "deliver_at")]
    pub delay: Option<Duration>,
    /// Deliver at this time, RFC 3339 (2026-12-01T08:00:00Z; header
    /// x-deliver-at).
    #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
    pub deliver_at: Option<std::time::SystemTime>,
    /// The ordering key (header x-ordering-key): an `ordered` exchange
    /// keeps each key's messages on one partition, in order.
    #[arg(long)]
    pub ordering_key: Option<String>,
    /// Priority, 0–255: carried to consumers and plugins (queues still
    /// deliver in order).
    #[arg(long)]
    pub priority: Option<u8>,
    #[command(flatten)]
    pub transaction: super::transactional::TransactionArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn body(args: &PublishArgs) -> anyhow::Result<Bytes> {
    if let Some(size) = args.size {
        return Ok((0..size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>()
            .into());
    }
    if let Some(path) = &args.file {
        return Ok(std::fs::read(path)
            .with_context(|| format!("reading {}", path.display()))?
            .into());
    }
    match args.body.as_deref() {
        Some("-") => read_stdin(),
        Some(text) => Ok(Bytes::copy_from_slice(text.as_bytes())),
        None => piped_body(),
    }
}

fn read_stdin() -> anyhow::Result<Bytes> {
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .context("reading the body from stdin")?;
    Ok(body.into())
}

/// No body was named: take one piped in on stdin, but never wait on a
/// terminal or publish empty messages nobody asked for.
fn piped_body() -> anyhow::Result<Bytes> {
    const MISSING: &str = "no message body: give it as an argument, `-` to read stdin, \
                           --file FILE, or --size N for generated bodies (--size 0: empty)";
    if std::io::stdin().is_terminal() {
        bail!("{MISSING}");
    }
    let body = read_stdin()?;
    if body.is_empty() {
        bail!("{MISSING}; stdin was empty");
    }
    Ok(body)
}

/// The properties every message of this run shares.
fn properties(args: &PublishArgs) -> Properties {
    Properties {
        message_id: args.message_id.clone(),
        correlation_id: args.correlation_id.clone(),
        expiration: args.expiration,
        priority: args.priority,
        ..Properties::default()
    }
}

/// Message `seq` of this run (0-based).
fn build_message(
    args: &PublishArgs,
    body: &Bytes,
    headers: &[Field],
    properties: &Properties,
    seq: u64,
) -> Message {
    let mut message = Message::new(args.routing_key.clone(), body.clone());
    message.headers = headers.to_vec();
    message.properties = properties.clone();
    if args.count > 1 {
        message
            .headers
            .push(Field::new("x-seq", Value::Int(seq as i64)));
        if let Some(id) = &args.message_id {
            message.properties.message_id = Some(format!("{id}-{seq}"));
        }
    }
    if let Some(key) = &args.ordering_key {
        message = message.ordering_key(key.clone());
    }
    if let Some(delay) = args.delay {
        message = message.delayed(delay);
    }
    if let Some(at) = args.deliver_at {
        message = message.deliver_at(at);
    }
    if args.persistent {
        message = message.persistent();
    }
    if args.mandatory {
        message = message.mandatory();
    }
    message
}

pub fn run(args: PublishArgs) -> anyhow::Result<()> {
    let body = body(&args)?;
    let headers = parse_fields(&args.headers)?;
    let properties = properties(&args);
    if args.transaction.transactional {
        let messages = (0..args.count)
            .map(|i| build_message(&args, &body, &headers, &properties, i))
            .collect();
        return super::transactional::run(
            &args.client,
            &args.transaction,
            &args.exchange,
            messages,
        );
    }
    block_on(async move {
        let (connection, channel) = args.client.connect().await?;
        let mut returns = channel.returns();
        if args.confirm {
            channel.confirm_select().await?;
        }
        let started = Instant::now();
        let mut last_report = started;
        let mut in_flight = VecDeque::new();
        let mut duplicates = 0;
        for i in 0..args.count {
            let message = build_message(&args, &body, &headers, &properties, i);
            let confirmation = channel.publish(&args.exchange, message).await?;
            if args.confirm {
                in_flight.push_back(confirmation);
                if in_flight.len() >= MAX_IN_FLIGHT {
                    let confirmed = in_flight.pop_front().unwrap().outcome().await?;
                    duplicates += confirmed.duplicates().len();
                }
            }
            if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                let rate = (i + 1) as f64 / started.elapsed().as_secs_f64();
                eprintln!("published {} of {} ({rate:.0} msg/s)", i + 1, args.count);
            }
        }
        for confirmation in in_flight {
            duplicates += confirmation.outcome().await?.duplicates().len();
        }
        if !args.confirm {
            // Without confirms, one round trip after the last message: the
            // broker has then seen everything, so a return has arrived and
            // a refusal that closed the channel (no such exchange, no
            // permission) is heard of instead of exiting 0 in silence.
            if let Err(e) = channel.query(switchyard_client::Query::Vhosts).await {
                let why = channel.closed_error().unwrap_or(e);
                return Err(anyhow!("the broker refused the publish: {why}"));
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let mut returned = Vec::new();
        while let Ok(r) = returns.try_recv() {
            returned.push(r);
        }
        super::client::finish(connection, channel).await;
        if let Some(first) = returned.first() {
            return Err(anyhow!(
                "{} of {} messages returned unroutable: {}",
                returned.len(),
                args.count,
                first.reason
            ));
        }
        if args.count > 1 {
            let rate = args.count as f64 / elapsed;
            eprintln!(
                "published {} messages in {elapsed:.2} s ({rate:.0} msg/s, {:.1} MB/s){}",
                args.count,
                rate * body.len() as f64 / 1e6,
                if args.confirm { ", all confirmed" } else { "" }
            );
        } else if args.confirm {
            eprintln!("published and confirmed");
        }
        if duplicates > 0 {
            eprintln!(
                "{duplicates} of {} dropped by the exchange's filter as duplicates (confirmed, \
                 not stored again)",
                args.count
            );
        }
        Ok(())
    })
}
