//! `switchyard serve`: runs the broker until SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args;

use crate::server::{DEV_CA, LISTENING_LINE, Server, ServerConfig, https_config};

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
    /// TCP address of the HTTP API and /metrics, or `off` [default: 127.0.0.1:15673].
    #[arg(long, env = "SWITCHYARD_HTTP_LISTEN")]
    http_listen: Option<String>,
    /// Serve the HTTP API, metrics and console over TLS, with the broker's
    /// certificate (the configured one or the development CA's).
    #[arg(long, env = "SWITCHYARD_HTTP_TLS")]
    http_tls: bool,
    /// Any setting of the config file, as key=value (repeatable):
    /// `--set storage.segment_bytes=1048576`. The environment does the same
    /// with `SWITCHYARD__STORAGE__SEGMENT_BYTES=1048576`; flags win.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = crate::server::parse_override)]
    overrides: Vec<(String, String)>,
    /// Print the effective configuration (file, flags and environment
    /// applied) as TOML, and exit.
    #[arg(long)]
    print_config: bool,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut overrides = crate::server::from_environment(std::env::vars());
    overrides.extend(args.overrides.iter().cloned());
    let mut config =
        ServerConfig::load_with(args.config.as_deref(), &overrides).map_err(|e| anyhow!(e))?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(ms) = args.idle_timeout_ms {
        config.idle_timeout_ms = ms;
    }
    match args.http_listen.as_deref() {
        None => {}
        Some("off") => config.http.enabled = false,
        Some(address) => {
            config.http.enabled = true;
            config.http.listen = address.parse().map_err(|e| {
                anyhow!("--http-listen '{address}': {e} (an address like 127.0.0.1:15673, or off)")
            })?;
        }
    }
    if args.http_tls {
        config.http.tls = true;
    }
    config.validate().map_err(|e| anyhow!(e))?;
    if args.print_config {
        print!("{}", toml::to_string_pretty(&config)?);
        return Ok(());
    }
    // Each queue holds an open file: start with all the handles allowed.
    if let Some(limit) = switchyard_core::raise_file_limit() {
        tracing::debug!(limit, "open file limit");
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(&config).await.map_err(|e| anyhow!(e))?;
        let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
        let http = match config.http.enabled {
            false => "http off".to_string(),
            true => {
                let tls = match config.http.tls {
                    true => Some(https_config(&config).map_err(|e| anyhow!(e))?),
                    false => None,
                };
                let scheme = if tls.is_some() { "https" } else { "http" };
                let listener = tokio::net::TcpListener::bind(config.http.listen)
                    .await
                    .with_context(|| format!("cannot listen for HTTP on {}", config.http.listen))?;
                let address = listener.local_addr()?.to_string();
                let mut stopped = http_stopped;
                let shutdown = async move {
                    let _ = stopped.changed().await;
                };
                let broker = server.broker().clone();
                let limits = switchyard_http::Limits {
                    max_connections: config.http.max_connections as usize,
                    request_head_timeout: Duration::from_millis(
                        config.http.request_head_timeout_ms,
                    ),
                    login_wait: Duration::from_millis(config.http.login_wait_ms),
                };
                tokio::spawn(async move {
                    let served = switchyard_http::serve(broker, listener, tls, limits, shutdown);
                    if let Err(e) = served.await {
                        tracing::error!(error = %e, "the HTTP listener stopped");
                    }
                });
                format!("{scheme} {address}")
            }
        };
        let links = switchyard_links::start(server.broker().clone(), stop_http.subscribe());
        let mut stdout = std::io::stdout();
        writeln!(
            stdout,
            "{LISTENING_LINE}{} ({http}, data dir {}, CA {})",
            server.local_addr(),
            config.data_dir.display(),
            config.data_dir.join(DEV_CA).display()
        )?;
        stdout.flush()?;
        server.run(shutdown_signal()).await;
        let _ = stop_http.send(true);
        let _ = links.await;
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
