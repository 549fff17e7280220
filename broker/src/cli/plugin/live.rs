//! Plugin administration on a running broker, through its admin API
//! (administrators only). Every command prints one line saying what is
//! active now.

use std::path::Path;

use anyhow::{Context, anyhow};
use switchyard_client::PluginLoadOptions;

use crate::cli::client::{ClientArgs, block_on, finish, parse_fields};

pub fn load(
    client: &ClientArgs,
    component: &Path,
    name: Option<String>,
    config: &[String],
    activate: bool,
) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(component).with_context(|| format!("reading {}", component.display()))?;
    let options = PluginLoadOptions {
        name,
        config: parse_fields(config)?,
        activate,
    };
    block_on(async move {
        let (connection, channel) = client.connect().await?;
        let loaded = channel
            .load_plugin(&bytes, options)
            .await
            .with_context(|| format!("loading {}", component.display()))?;
        finish(connection, channel).await;
        eprintln!("loaded {loaded} ({} bytes)", bytes.len());
        Ok(())
    })
}

pub fn activate(client: &ClientArgs, target: &str) -> anyhow::Result<()> {
    let (name, version) = target
        .split_once('@')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .ok_or_else(|| anyhow!("expected NAME@VERSION, got {target:?}"))?;
    block_on(async move {
        let (connection, channel) = client.connect().await?;
        let active = channel.activate_plugin(name, version).await?;
        finish(connection, channel).await;
        eprintln!("active: {active}");
        Ok(())
    })
}

pub fn rollback(client: &ClientArgs, name: &str) -> anyhow::Result<()> {
    block_on(async move {
        let (connection, channel) = client.connect().await?;
        let active = channel.rollback_plugin(name).await?;
        finish(connection, channel).await;
        eprintln!("rolled back; active: {active}");
        Ok(())
    })
}

pub fn unload(client: &ClientArgs, name: &str) -> anyhow::Result<()> {
    block_on(async move {
        let (connection, channel) = client.connect().await?;
        channel.unload_plugin(name).await?;
        finish(connection, channel).await;
        eprintln!("unloaded {name}");
        Ok(())
    })
}
