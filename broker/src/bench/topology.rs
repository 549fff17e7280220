//! What a run declares — the exchange (unless it uses the default one),
//! `bench-q<i>` and their bindings, and `bench-dlq<i>` when the run
//! dead-letters — and its removal afterwards: the
//! queues are durable (so `--persistent` measures the disk), so left
//! behind they would survive restarts and keep any unconsumed messages.

use switchyard_client::{
    ConnectOptions, Connection, Error, ExchangeOptions, Field, QueueOptions, Trust, Value, code,
};

use super::{BenchConfig, EXCHANGE, dead_letter_queue, queue_name};

/// Creates the exchange, queues and bindings; empties the queues.
pub async fn set_up(url: &str, trust: &Trust, config: &BenchConfig) -> Result<(), Error> {
    let connection = Connection::connect(url, ConnectOptions::new(trust.clone())).await?;
    let ch = connection.channel().await?;
    if config.exchange_type != "default" {
        let _ = ch.delete_exchange(EXCHANGE, false).await;
        let options = ExchangeOptions {
            arguments: config.exchange_arguments.clone(),
            ..ExchangeOptions::default()
        };
        ch.declare_exchange(EXCHANGE, &config.exchange_type, options)
            .await?;
    }
    for i in 0..config.queues {
        let name = queue_name(i);
        let _ = ch.delete_queue(&name, false, false).await;
        let text = |name: &str, value: &str| Field::new(name, Value::Text(value.into()));
        let mut arguments = vec![text("flush", &config.flush)];
        if config.stream {
            arguments.push(text("queue-type", "stream"));
        }
        if let Some(policy) = &config.dead_letter {
            let dead_letters = dead_letter_queue(i);
            let _ = ch.delete_queue(&dead_letters, false, false).await;
            let options = QueueOptions {
                durable: true,
                arguments: arguments.clone(),
                ..QueueOptions::default()
            };
            ch.declare_queue(&dead_letters, options).await?;
            arguments.extend([
                text("message-ttl", "0"),
                text("dead-letter-exchange", ""),
                text("dead-letter-routing-key", &dead_letters),
            ]);
            if policy != "builtin" {
                arguments.push(text("dead-letter-policy", policy));
            }
        }
        ch.declare_queue(
            &name,
            QueueOptions {
                durable: true,
                arguments,
                ..QueueOptions::default()
            },
        )
        .await?;
        if config.exchange_type != "default" {
            let key = match config.exchange_type.as_str() {
                "topic" => format!("bench.q{i}.*"),
                _ => config.routing_key(i),
            };
            ch.bind(&name, EXCHANGE, &key, vec![]).await?;
        }
    }
    if config.exchange_type != "default" {
        for j in 0..config.extra_bindings {
            let key = match config.exchange_type.as_str() {
                "topic" => format!("other.k{j}.*"),
                _ => format!("other-k{j}"),
            };
            ch.bind(&queue_name(j % config.queues), EXCHANGE, &key, vec![])
                .await?;
        }
    }
    ch.close().await?;
    connection.close().await;
    Ok(())
}

/// Deletes what `set_up` declared (whatever part of it exists).
pub async fn tear_down(url: &str, trust: &Trust, config: &BenchConfig) -> Result<(), Error> {
    let connection = Connection::connect(url, ConnectOptions::new(trust.clone())).await?;
    let ch = connection.channel().await?;
    let absent_is_fine = |result: Result<(), Error>| match result {
        Err(e) if e.code() == Some(code::NOT_FOUND) => Ok(()),
        other => other,
    };
    for i in 0..config.queues {
        absent_is_fine(
            ch.delete_queue(&queue_name(i), false, false)
                .await
                .map(drop),
        )?;
        if config.dead_letter.is_some() {
            absent_is_fine(
                ch.delete_queue(&dead_letter_queue(i), false, false)
                    .await
                    .map(drop),
            )?;
        }
    }
    if config.exchange_type != "default" {
        absent_is_fine(ch.delete_exchange(EXCHANGE, false).await)?;
    }
    ch.close().await?;
    connection.close().await;
    Ok(())
}
