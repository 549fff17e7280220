//! `switchyard publish --transactional`: half messages of a producer
//! group, then committed, rolled back, or held pending (the broker then
//! asks the group about them: a demonstration of check-back).

use clap::Args;
use switchyard_client::{Message, ProducerGroupOptions};

use super::client::{ClientArgs, block_on};

#[derive(Args)]
#[group(id = "transaction")]
pub struct TransactionArgs {
    /// Send transactional (half) messages: stored, invisible until
    /// committed. Prints each transaction id.
    #[arg(long)]
    pub transactional: bool,
    /// The producer group the messages belong to.
    #[arg(long, default_value = "switchyard-cli", requires = "transactional")]
    pub producer_group: String,
    /// Commit each message after sending it (the default).
    #[arg(long, requires = "transactional", conflicts_with_all = ["rollback", "hold"])]
    pub commit: bool,
    /// Roll each message back: it is never delivered.
    #[arg(long, requires = "transactional", conflicts_with = "hold")]
    pub rollback: bool,
    /// Leave the transactions pending and exit: the broker checks the
    /// producer group about them (and gives up after its max checks).
    #[arg(long, requires = "transactional")]
    pub hold: bool,
}

pub fn run(
    client: &ClientArgs,
    args: &TransactionArgs,
    exchange: &str,
    messages: Vec<Message>,
) -> anyhow::Result<()> {
    block_on(async move {
        let (connection, channel) = client.connect().await?;
        let _checks = channel
            .join_producer_group(&args.producer_group, ProducerGroupOptions::default())
            .await?;
        for message in messages {
            let id = channel.send_half(exchange, message).await?;
            let what = if args.hold {
                "pending"
            } else if args.rollback {
                channel.rollback(id).await?;
                "rolled back"
            } else {
                channel.commit(id).await?;
                "committed"
            };
            println!("{id}");
            eprintln!("transaction {id} {what}");
        }
        super::client::finish(connection, channel).await;
        Ok(())
    })
}
