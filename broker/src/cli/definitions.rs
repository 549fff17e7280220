//! `switchyard definitions export` / `import FILE`: a broker's vhosts,
//! users (with password hashes), permissions, exchanges, queues, bindings
//! and the plugins they use, as one JSON document.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::client::{ClientArgs, block_on, finish};

#[derive(Subcommand)]
pub enum DefinitionsCommand {
    /// Print the broker's definitions (JSON) on stdout.
    Export {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Apply a definitions file: checked whole first (a missing plugin or a
    /// conflicting exchange or queue refuses it, changing nothing), then
    /// what is missing is created. Running it again changes nothing.
    Import {
        file: PathBuf,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub fn run(command: DefinitionsCommand) -> anyhow::Result<()> {
    block_on(async move {
        match command {
            DefinitionsCommand::Export { client } => {
                let (connection, channel) = client.connect().await?;
                let json = channel.export_definitions().await?;
                println!("{}", String::from_utf8_lossy(&json));
                finish(connection, channel).await;
            }
            DefinitionsCommand::Import { file, client } => {
                let json =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                let (connection, channel) = client.connect().await?;
                let changed = channel.import_definitions(json.into()).await?;
                eprintln!("definitions imported: {changed} created or changed");
                finish(connection, channel).await;
            }
        }
        Ok(())
    })
}
