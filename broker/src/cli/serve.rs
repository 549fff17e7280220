//! `switchyard serve`: runs the broker until SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Args;

use crate::server::{DEV_CA, LISTENING_LINE, Server, ServerConfig};

#[derive(Args)]
pub struct ServeArgs {
    /// TOML configuration file (flags and environment variables override it).
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    config: Option<PathBuf>,
    /// Where messages, metadata, plugins and the development CA are kept [default: ./data].
    #[arg(long, env = "SWITCHYARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// UDP address to listen on (port 0 picks a free one) [default: 127.0.0.1:5673].
    #[arg(long, env = "SWITCHYARD_LISTEN")]
    listen: Option<SocketAddr>,
    /// Close connections silent this long, in milliseconds.
    #[arg(long, env = "SWITCHYARD_IDLE_TIMEOUT_MS")]
    idle_timeout_ms: Option<u64>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => ServerConfig::load(path).map_err(|e| anyhow!(e))?,
        None => ServerConfig::default(),
    };
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(ms) = args.idle_timeout_ms {
        config.idle_timeout_ms = ms;
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(&config).await.map_err(|e| anyhow!(e))?;
        let mut stdout = std::io::stdout();
        writeln!(
            stdout,
            "{LISTENING_LINE}{} (data dir {}, CA {})",
            server.local_addr(),
            config.data_dir.display(),
            config.data_dir.join(DEV_CA).display()
        )?;
        stdout.flush()?;
        server.run(shutdown_signal()).await;
        Ok(())
    })
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}
