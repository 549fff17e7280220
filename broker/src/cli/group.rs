//! `switchyard group reset`: moves a stream consumer group's position.

use clap::{Args, Subcommand};
use switchyard_client::StreamOffset;

use super::client::{ClientArgs, block_on};

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Move a consumer group's position (its members must have stopped).
    Reset(ResetArgs),
}

#[derive(Args)]
pub struct ResetArgs {
    /// The stream queue.
    pub queue: String,
    /// The consumer group.
    pub group: String,
    /// Where to: first, last, next, an offset, an RFC 3339 time,
    /// @<ms since the epoch>, or -<age> (-10m).
    #[arg(long)]
    pub to: String,
    /// Only this member of a broadcasting group (default: every member).
    #[arg(long)]
    pub member: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run(command: GroupCommand) -> anyhow::Result<()> {
    let GroupCommand::Reset(args) = command;
    let offset = parse_offset(&args.to)?;
    block_on(async move {
        let (connection, channel) = args.client.connect().await?;
        let position = channel
            .reset_group(&args.queue, &args.group, args.member.as_deref(), offset)
            .await?;
        eprintln!(
            "consumer group '{}' of queue '{}' now at offset {position}",
            args.group, args.queue
        );
        super::client::finish(connection, channel).await;
        Ok(())
    })
}

/// An offset as the command line writes it, times relative to now.
pub fn parse_offset(text: &str) -> anyhow::Result<StreamOffset> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    StreamOffset::parse(text, now_ms).map_err(anyhow::Error::msg)
}
