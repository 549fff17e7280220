//! `switchyard consume` and `switchyard get`: one line per message on stdout.

use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use switchyard_client::{Channel, ConsumeOptions, Delivery, GroupMode};

use super::client::{ClientArgs, block_on, value_json};
use super::group::parse_offset;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AckMode {
    /// The broker forgets a message when it sends it (with --count: when
    /// the CLI receives it, so that nothing beyond the count is taken).
    Auto,
    /// Each message is acknowledged after it is printed.
    Manual,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The body.
    Text,
    /// A JSON object: routing key, exchange, redelivered, headers, properties, body.
    Json,
}

#[derive(Args)]
pub struct ConsumeArgs {
    #[arg(long)]
    pub queue: String,
    /// Stop after this many messages; no message beyond them is taken
    /// off the queue (they stay ready, not marked redelivered).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Unacknowledged messages in flight (0: unlimited); never more than --count.
    #[arg(long, default_value_t = 100)]
    pub prefetch: u32,
    #[arg(long, value_enum, default_value_t = AckMode::Manual)]
    pub ack: AckMode,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Stop when no message arrived for this many seconds.
    #[arg(long)]
    pub idle_exit: Option<u64>,
    /// Stream queues: join this consumer group (the broker keeps its
    /// position; members share it, or with --broadcast each has its own).
    #[arg(long)]
    pub group: Option<String>,
    /// The group is a broadcasting one: every member receives every message.
    #[arg(long, requires = "group")]
    pub broadcast: bool,
    /// A broadcasting group's member name (default: the consumer tag).
    #[arg(long, requires = "broadcast")]
    pub member: Option<String>,
    /// Stream queues: where a new position starts — first, last, next
    /// (default), an offset, an RFC 3339 time, @<ms>, or -<age> (-10m).
    #[arg(long, allow_hyphen_values = true)]
    pub offset: Option<String>,
    /// Consumer tag (default: one the broker makes up).
    #[arg(long)]
    pub tag: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn line(delivery: &Delivery, format: Format) -> String {
    let message = &delivery.message;
    match format {
        Format::Text => String::from_utf8_lossy(&message.body).replace('\n', "\\n"),
        Format::Json => {
            let headers: serde_json::Map<String, serde_json::Value> = message
                .headers
                .iter()
                .map(|f| (f.name.clone(), value_json(&f.value)))
                .collect();
            let p = &message.properties;
            let mut object = serde_json::json!({
                "exchange": delivery.exchange,
                "routing_key": message.routing_key,
                "redelivered": delivery.redelivered,
                "delivery_tag": delivery.delivery_tag,
                "persistent": message.is_persistent(),
                "headers": headers,
                "properties": {
                    "message_id": p.message_id, "correlation_id": p.correlation_id,
                    "content_type": p.content_type, "expiration": p.expiration,
                    "timestamp": p.timestamp, "priority": p.priority,
                },
            });
            match std::str::from_utf8(&message.body) {
                Ok(text) => object["body"] = text.into(),
                Err(_) => object["body_hex"] = hex::encode(&message.body).into(),
            }
            object.to_string()
        }
    }
}

/// When acknowledgements go out. The broker delivers at most `prefetch`
/// messages beyond those acknowledged, so with a count the last `prefetch`
/// acks wait until the consumer is cancelled: otherwise each ack would
/// pull in a message the CLI will never show, and it would come back
/// flagged redelivered.
struct AckPlan {
    /// Acknowledge on receipt (auto) rather than after printing (manual).
    before_printing: bool,
    prefetch: u64,
    count: Option<u64>,
    acked: u64,
    /// The newest delivery whose ack waits for the cancel.
    held: Option<u64>,
}

impl AckPlan {
    async fn settle(&mut self, delivery: &Delivery) -> anyhow::Result<()> {
        if self
            .count
            .is_none_or(|count| self.acked + 1 + self.prefetch <= count)
        {
            delivery.ack().await?;
            self.acked += 1;
        } else {
            self.held = Some(delivery.delivery_tag);
        }
        Ok(())
    }

    /// After the cancel: acknowledges every held delivery at once.
    async fn release(self, channel: &Channel) -> anyhow::Result<()> {
        if let Some(tag) = self.held {
            channel.ack(tag, true).await?;
        }
        Ok(())
    }
}

pub fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    block_on(async move {
        let (connection, channel) = args.client.connect().await?;
        let prefetch = match args.count {
            Some(count) if args.prefetch == 0 || u64::from(args.prefetch) > count => {
                u32::try_from(count).unwrap_or(u32::MAX)
            }
            _ => args.prefetch,
        };
        // Broker-side auto-ack ignores prefetch: with a count it would push
        // (and forget) messages past the count, so acks stay ours then.
        let broker_acks = args.ack == AckMode::Auto && args.count.is_none();
        let options = ConsumeOptions {
            prefetch,
            auto_ack: broker_acks,
            tag: args.tag.clone().unwrap_or_default(),
            group: args.group.clone(),
            mode: match args.broadcast {
                true => GroupMode::Broadcasting,
                false => GroupMode::Clustering,
            },
            member: args.member.clone(),
            offset: args.offset.as_deref().map(parse_offset).transpose()?,
            ..ConsumeOptions::default()
        };
        let mut plan = (!broker_acks).then_some(AckPlan {
            before_printing: args.ack == AckMode::Auto,
            prefetch: u64::from(prefetch),
            count: args.count,
            acked: 0,
            held: None,
        });
        let mut consumer = channel.consume(&args.queue, options).await?;
        let started = Instant::now();
        let mut last_report = started;
        let mut received = 0u64;
        let mut consumer_ended = false;
        let idle = args.idle_exit.map(Duration::from_secs);
        while args.count.is_none_or(|n| received < n) {
            let next = match idle {
                Some(idle) => match tokio::time::timeout(idle, consumer.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
                None => consumer.next().await,
            };
            let Some(delivery) = next else {
                if let Some(error) = consumer.error() {
                    return Err(error.into());
                }
                consumer_ended = true;
                break;
            };
            if let Some(plan) = plan.as_mut().filter(|p| p.before_printing) {
                plan.settle(&delivery).await?;
            }
            println!("{}", line(&delivery, args.format));
            if let Some(plan) = plan.as_mut().filter(|p| !p.before_printing) {
                plan.settle(&delivery).await?;
            }
            received += 1;
            if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                eprintln!(
                    "consumed {received} ({:.0} msg/s)",
                    received as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
        // Cancel before the held acks go out, so that the credit they
        // return cannot bring another message.
        if !consumer_ended {
            consumer.cancel().await?;
        }
        if let Some(plan) = plan {
            plan.release(&channel).await?;
        }
        if received > 1 {
            let elapsed = started.elapsed().as_secs_f64();
            eprintln!(
                "consumed {received} messages in {elapsed:.2} s ({:.0} msg/s)",
                received as f64 / elapsed
            );
        }
        super::client::finish(connection, channel).await;
        Ok(())
    })
}

#[derive(Args)]
pub struct GetArgs {
    #[arg(long)]
    pub queue: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Leave the message in the queue (it is requeued when the command exits).
    #[arg(long)]
    pub requeue: bool,
    /// Wait up to this long (30s, 500ms; at most 5m) for a message to
    /// arrive; returns as soon as one does (long polling).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub wait: Option<std::time::Duration>,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn get(args: GetArgs) -> anyhow::Result<()> {
    block_on(async move {
        let (connection, channel) = args.client.connect().await?;
        let got = match args.wait {
            Some(wait) => channel.get_wait(&args.queue, false, wait).await?,
            None => channel.get(&args.queue, false).await?,
        };
        match got {
            Some((delivery, remaining)) => {
                println!("{}", line(&delivery, args.format));
                if args.requeue {
                    delivery.nack(true).await?;
                } else {
                    delivery.ack().await?;
                }
                eprintln!("{remaining} more ready in queue '{}'", args.queue);
            }
            None => eprintln!("queue '{}' is empty", args.queue),
        }
        super::client::finish(connection, channel).await;
        Ok(())
    })
}
