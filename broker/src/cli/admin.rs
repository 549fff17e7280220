//! `switchyard user …` and `switchyard vhost …` (administrators only).

use clap::Subcommand;
use switchyard_client::Frame;

use super::client::{ClientArgs, block_on, finish};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Add {
        name: String,
        #[arg(long, env = "SWITCHYARD_NEW_PASSWORD")]
        password: String,
        /// A tag such as `administrator` (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change a user's password.
    Passwd {
        name: String,
        #[arg(long, env = "SWITCHYARD_NEW_PASSWORD")]
        password: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a user.
    Delete {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Set a user's permissions on a vhost: regular expressions over the
    /// names of exchanges and queues.
    Permit {
        name: String,
        #[arg(long, default_value = "/")]
        vhost: String,
        /// Declare and delete.
        #[arg(long, default_value = ".*")]
        configure: String,
        /// Publish to exchanges, bind queues.
        #[arg(long, default_value = ".*")]
        write: String,
        /// Consume, get and purge queues; bind from exchanges.
        #[arg(long, default_value = ".*")]
        read: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
pub enum VhostCommand {
    Add {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    Delete {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

async fn admin(
    client: &ClientArgs,
    make: impl FnOnce(u32) -> Frame,
    done: String,
) -> anyhow::Result<()> {
    let (connection, channel) = client.connect().await?;
    channel.admin(make).await?;
    eprintln!("{done}");
    finish(connection, channel).await;
    Ok(())
}

pub fn user(command: UserCommand) -> anyhow::Result<()> {
    block_on(async move {
        match command {
            UserCommand::Add {
                name,
                password,
                tags,
                client,
            } => {
                let done = format!("user '{name}' added");
                admin(
                    &client,
                    |req| Frame::UserAdd {
                        req,
                        name,
                        password,
                        tags,
                    },
                    done,
                )
                .await
            }
            UserCommand::Passwd {
                name,
                password,
                client,
            } => {
                let done = format!("password of user '{name}' changed");
                admin(
                    &client,
                    |req| Frame::UserPassword {
                        req,
                        name,
                        password,
                    },
                    done,
                )
                .await
            }
            UserCommand::Delete { name, client } => {
                let done = format!("user '{name}' deleted");
                admin(&client, |req| Frame::UserDelete { req, name }, done).await
            }
            UserCommand::Permit {
                name,
                vhost,
                configure,
                write,
                read,
                client,
            } => {
                let done = format!(
                    "user '{name}' may configure '{configure}', write '{write}', read '{read}' in vhost '{vhost}'"
                );
                admin(
                    &client,
                    |req| Frame::Permit {
                        req,
                        user: name,
                        vhost,
                        configure,
                        write,
                        read,
                    },
                    done,
                )
                .await
            }
        }
    })
}

#[derive(Subcommand)]
pub enum CloseCommand {
    /// Close a client connection (its id from `list connections`):
    /// administrators any, users their own.
    Connection {
        id: u64,
        /// Told to the client.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub fn close(command: CloseCommand) -> anyhow::Result<()> {
    let CloseCommand::Connection { id, reason, client } = command;
    block_on(async move {
        let done = format!("connection {id} closed");
        admin(
            &client,
            |req| Frame::CloseConnection { req, id, reason },
            done,
        )
        .await
    })
}

pub fn vhost(command: VhostCommand) -> anyhow::Result<()> {
    block_on(async move {
        match command {
            VhostCommand::Add { name, client } => {
                let done = format!("vhost '{name}' added");
                admin(&client, |req| Frame::VhostAdd { req, name }, done).await
            }
            VhostCommand::Delete { name, client } => {
                let done = format!("vhost '{name}' deleted");
                admin(&client, |req| Frame::VhostDelete { req, name }, done).await
            }
        }
    })
}
