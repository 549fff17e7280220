//! `declare`, `bind`, `unbind`, `purge`, `delete` and `list`.

use clap::{Args, Subcommand, ValueEnum};
use switchyard_client::{ExchangeOptions, Query, QueueOptions};

use super::client::{ClientArgs, block_on, parse_fields, print_rows};

/// What declaring an exchange and a queue share.
#[derive(Args)]
pub struct DeclareCommon {
    /// Survive a broker restart.
    #[arg(long)]
    durable: bool,
    /// Delete when the last binding (exchange) or consumer (queue) goes.
    #[arg(long)]
    auto_delete: bool,
    /// Argument key=value (repeatable).
    #[arg(long = "arg")]
    args: Vec<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
pub enum DeclareCommand {
    /// Declare an exchange whose type is a plugin (direct, topic, fanout,
    /// headers, consistent-hash, or one loaded at run time).
    Exchange {
        name: String,
        /// The exchange type: a plugin name, or `ordered` with
        /// `--arg partitions=N` (a consistent-hash exchange over the
        /// ordering key and N single-active-consumer queues NAME.0 …).
        #[arg(long = "type")]
        kind: String,
        #[command(flatten)]
        common: DeclareCommon,
    },
    /// Declare a queue. Arguments: flush=async|sync, message-ttl=MS,
    /// max-length=N, max-length-bytes=N,
    /// overflow=drop-head|reject-publish|reject-publish-dlx,
    /// dead-letter-exchange=X, dead-letter-routing-key=K,
    /// dead-letter-policy=PLUGIN, dead-letter-fallback=Q, delivery-limit=N,
    /// single-active-consumer=true, expires=MS.
    Queue {
        name: String,
        /// Only the declaring connection may use the queue, and the queue
        /// is deleted when that connection closes: for this command, as
        /// soon as it exits. Useful to check that a name is free or to
        /// see the broker's answer; a long-lived exclusive queue belongs
        /// in the program that consumes from it.
        #[arg(long)]
        exclusive: bool,
        #[command(flatten)]
        common: DeclareCommon,
    },
}

pub fn declare(command: DeclareCommand) -> anyhow::Result<()> {
    block_on(async move {
        match command {
            DeclareCommand::Exchange { name, kind, common } => {
                let (connection, channel) = common.client.connect().await?;
                let options = ExchangeOptions {
                    durable: common.durable,
                    auto_delete: common.auto_delete,
                    passive: false,
                    arguments: parse_fields(&common.args)?,
                };
                channel.declare_exchange(&name, &kind, options).await?;
                eprintln!("exchange '{name}' ({kind}) declared");
                super::client::finish(connection, channel).await;
            }
            DeclareCommand::Queue {
                name,
                exclusive,
                common,
            } => {
                let (connection, channel) = common.client.connect().await?;
                let options = QueueOptions {
                    durable: common.durable,
                    exclusive,
                    auto_delete: common.auto_delete,
                    arguments: parse_fields(&common.args)?,
                    ..QueueOptions::default()
                };
                let info = channel.declare_queue(&name, options).await?;
                eprintln!(
                    "queue '{}' declared ({} messages, {} consumers){}",
                    info.name,
                    info.messages,
                    info.consumers,
                    if exclusive {
                        "; exclusive, so deleted as this command exits"
                    } else {
                        ""
                    }
                );
                println!("{}", info.name);
                super::client::finish(connection, channel).await;
            }
        }
        Ok(())
    })
}

#[derive(Args)]
pub struct BindArgs {
    pub queue: String,
    pub exchange: String,
    /// The binding key (meaning depends on the exchange type).
    #[arg(long, default_value = "")]
    pub key: String,
    /// Binding argument key=value (repeatable), e.g. x-match=all for headers.
    #[arg(long = "arg")]
    pub args: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn bind(args: BindArgs, unbind: bool) -> anyhow::Result<()> {
    block_on(async move {
        let (connection, channel) = args.client.connect().await?;
        let fields = parse_fields(&args.args)?;
        if unbind {
            channel
                .unbind(&args.queue, &args.exchange, &args.key, fields)
                .await?;
            eprintln!(
                "queue '{}' unbound from exchange '{}' (key '{}')",
                args.queue, args.exchange, args.key
            );
        } else {
            channel
                .bind(&args.queue, &args.exchange, &args.key, fields)
                .await?;
            eprintln!(
                "queue '{}' bound to exchange '{}' (key '{}')",
                args.queue, args.exchange, args.key
            );
        }
        super::client::finish(connection, channel).await;
        Ok(())
    })
}

#[derive(Args)]
pub struct PurgeArgs {
    pub queue: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn purge(args: PurgeArgs) -> anyhow::Result<()> {
    block_on(async move {
        let (connection, channel) = args.client.connect().await?;
        let purged = channel.purge_queue(&args.queue).await?;
        eprintln!("purged {purged} messages from queue '{}'", args.queue);
        super::client::finish(connection, channel).await;
        Ok(())
    })
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Deletable {
    Queue,
    Exchange,
}

#[derive(Args)]
pub struct DeleteArgs {
    pub what: Deletable,
    pub name: String,
    /// Only if it has no consumers (queue) or bindings (exchange).
    #[arg(long)]
    pub if_unused: bool,
    /// Only if it holds no messages (queue).
    #[arg(long)]
    pub if_empty: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    block_on(async move {
        let (connection, channel) = args.client.connect().await?;
        match args.what {
            Deletable::Queue => {
                let messages = channel
                    .delete_queue(&args.name, args.if_unused, args.if_empty)
                    .await?;
                eprintln!("queue '{}' deleted ({messages} messages)", args.name);
            }
            Deletable::Exchange => {
                channel.delete_exchange(&args.name, args.if_unused).await?;
                eprintln!("exchange '{}' deleted", args.name);
            }
        }
        super::client::finish(connection, channel).await;
        Ok(())
    })
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Listable {
    Exchanges,
    Queues,
    Bindings,
    Plugins,
    Connections,
    Users,
    Vhosts,
    /// Consumer groups of stream queues: members, position, lag.
    Groups,
    /// Producer groups: pending transactions, oldest age, checks sent.
    Transactions,
    /// The SET table: this broker's cell, ranges, pins, peers.
    Cells,
    /// Links to other cells: state, messages queued, forwarded, last error.
    Links,
    /// Federated exchanges: upstream, state, lag in messages, last error.
    Federation,
}

#[derive(Args)]
pub struct ListArgs {
    pub what: Listable,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn list(args: ListArgs) -> anyhow::Result<()> {
    let query = match args.what {
        Listable::Exchanges => Query::Exchanges,
        Listable::Queues => Query::Queues,
        Listable::Bindings => Query::Bindings,
        Listable::Plugins => Query::Plugins,
        Listable::Connections => Query::Connections,
        Listable::Users => Query::Users,
        Listable::Vhosts => Query::Vhosts,
        Listable::Groups => Query::Groups,
        Listable::Transactions => Query::Transactions,
        Listable::Cells => Query::Cells,
        Listable::Links => Query::Links,
        Listable::Federation => Query::Federation,
    };
    list_query(&args.client, query, args.json)
}

/// Prints what the broker lists for `query`, as a table or JSON.
pub fn list_query(client: &ClientArgs, query: Query, json: bool) -> anyhow::Result<()> {
    block_on(async move {
        let (connection, channel) = client.connect().await?;
        let rows = channel.query(query).await?;
        print_rows(&rows, json);
        super::client::finish(connection, channel).await;
        Ok(())
    })
}
