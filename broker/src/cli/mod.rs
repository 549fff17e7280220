//! The `switchyard` command line. Each subcommand lives in its own file; this
//! file parses arguments, sets up logging and turns errors into one line on
//! stderr and a non-zero exit code.

mod admin;
mod bench;
mod cells;
mod client;
mod consume;
mod definitions;
mod group;
mod plugin;
mod publish;
mod serve;
mod tls;
mod topology;
mod transactional;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A message broker with programmable routing"
)]
struct Cli {
    /// Log lines as text, or as one JSON object each (for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SWITCHYARD_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    Serve(serve::ServeArgs),
    /// Declare an exchange or a queue.
    #[command(subcommand)]
    Declare(topology::DeclareCommand),
    /// Bind a queue to an exchange.
    Bind(topology::BindArgs),
    /// Remove a binding.
    Unbind(topology::BindArgs),
    /// Publish messages.
    Publish(publish::PublishArgs),
    /// Consume messages from a queue, one line each on stdout.
    Consume(consume::ConsumeArgs),
    /// Fetch one message from a queue.
    Get(consume::GetArgs),
    /// List exchanges, queues, bindings, plugins, connections, users, vhosts
    /// or consumer groups.
    List(topology::ListArgs),
    /// Drop a queue's ready messages.
    Purge(topology::PurgeArgs),
    /// Delete a queue or an exchange.
    Delete(topology::DeleteArgs),
    /// Manage stream consumer groups.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Manage users and their permissions.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manage vhosts.
    #[command(subcommand)]
    Vhost(admin::VhostCommand),
    /// Close a client connection.
    #[command(subcommand)]
    Close(admin::CloseCommand),
    /// Export or import vhosts, users, permissions, exchanges, queues and bindings.
    #[command(subcommand)]
    Definitions(definitions::DefinitionsCommand),
    /// The SET (cell) table: this broker's cell, ranges, pins, peers.
    #[command(subcommand)]
    Cells(cells::CellsCommand),
    /// Measure throughput and latency against a broker (or --spawn one).
    Bench(bench::BenchArgs),
    /// Build, inspect and test plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Create a CA and broker certificates for a multi-broker deployment.
    #[command(subcommand)]
    Tls(tls::TlsCommand),
}

/// Colour codes only help a person reading a terminal; in a log file or a
/// pipe they are noise. `NO_COLOR` (https://no-color.org) turns them off
/// on a terminal too.
fn log_in_colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| "warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(log_in_colour()).init(),
        LogFormat::Json => logs.json().init(),
    }
    if !matches!(cli.command, Command::Serve(_)) {
        // Like other command-line tools, end quietly when the reader of our
        // output goes away (`switchyard list queues | head -1`) instead of
        // panicking on the failed write. The broker keeps ignoring SIGPIPE.
        // SAFETY: setting a signal disposition before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Declare(command) => topology::declare(command),
        Command::Bind(args) => topology::bind(args, false),
        Command::Unbind(args) => topology::bind(args, true),
        Command::Publish(args) => publish::run(args),
        Command::Consume(args) => consume::consume(args),
        Command::Get(args) => consume::get(args),
        Command::List(args) => topology::list(args),
        Command::Purge(args) => topology::purge(args),
        Command::Delete(args) => topology::delete(args),
        Command::Group(command) => group::run(command),
        Command::User(command) => admin::user(command),
        Command::Vhost(command) => admin::vhost(command),
        Command::Close(command) => admin::close(command),
        Command::Definitions(command) => definitions::run(command),
        Command::Cells(command) => cells::run(command),
        Command::Bench(args) => bench::run_bench(args),
        Command::Plugin(command) => plugin::run(command),
        Command::Tls(command) => tls::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
