//! `switchyard plugin …`: offline plugin tooling (no broker needed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::plugins::manifest::{Manifest, ManifestEntry, source_dir, source_hash};
use crate::plugins::{LoadOptions, PluginEngine, PluginRegistry, SandboxLimits, sha256_hex};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Turn a core wasm module with embedded WIT (as wit-bindgen emits) into
    /// a component.
    Componentize { module: PathBuf, output: PathBuf },
    /// Load a component in a scratch host and print what it is.
    Inspect {
        component: PathBuf,
        /// Plugin settings, `name=value`.
        #[arg(long = "config", value_parser = parse_pair)]
        config: Vec<(String, String)>,
    },
    /// Run the conformance suite for each component's world through a
    /// scratch host (no broker needed); exits non-zero if any case fails.
    Test {
        #[arg(required = true)]
        components: Vec<PathBuf>,
        /// The behaviour table to check against (default: the plugin's name,
        /// e.g. `topic`); unknown names check the world's contract only.
        #[arg(long)]
        semantics: Option<String>,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the manifest of a dist directory as JSON.
    Manifest {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        dist: PathBuf,
        /// The compiler that built the components.
        #[arg(long, default_value = "unknown")]
        toolchain: String,
    },
}

pub fn run(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Componentize { module, output } => componentize(&module, &output),
        PluginCommand::Inspect { component, config } => {
            let registry = scratch_registry()?;
            let bytes = std::fs::read(&component)
                .with_context(|| format!("reading {}", component.display()))?;
            let version = registry.load(
                &bytes,
                LoadOptions {
                    config: config.into_iter().collect(),
                    ..LoadOptions::default()
                },
            )?;
            let info = version.info();
            println!(
                "{}@{} ({} plugin, key-only routing: {})\n{}",
                info.name, info.version, info.kind, info.key_only_routing, info.description
            );
            Ok(())
        }
        PluginCommand::Test {
            components,
            semantics,
            json,
        } => test(&components, semantics.as_deref(), json),
        PluginCommand::Manifest {
            repo,
            dist,
            toolchain,
        } => {
            let manifest = manifest(&repo, &dist, toolchain)?;
            println!("{}", serde_json::to_string_pretty(&manifest)?);
            Ok(())
        }
    }
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected name=value, got {text:?}"))
}

/// A registry in a temporary sled database, for offline tooling.
pub(crate) fn scratch_registry() -> anyhow::Result<PluginRegistry> {
    let db = sled::Config::new().temporary(true).open()?;
    let engine = PluginEngine::new(SandboxLimits::default(), None)?;
    Ok(PluginRegistry::open(engine, db)?)
}

fn test(components: &[PathBuf], semantics: Option<&str>, json: bool) -> anyhow::Result<()> {
    let registry = scratch_registry()?;
    let mut failed = Vec::new();
    for path in components {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let report = crate::plugins::conformance::check_component(&registry, &bytes, semantics)
            .with_context(|| format!("loading {}", path.display()))?;
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!("{}: {report}", path.display());
        }
        if !report.passed() {
            failed.push(path.display().to_string());
        }
    }
    if !failed.is_empty() {
        bail!("conformance failed for {}", failed.join(", "));
    }
    Ok(())
}

fn componentize(module: &Path, output: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(module).with_context(|| format!("reading {}", module.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&bytes)
        .with_context(|| format!("{} is not a module with embedded WIT", module.display()))?
        .validate(true)
        .encode()
        .with_context(|| format!("componentizing {}", module.display()))?;
    std::fs::write(output, component).with_context(|| format!("writing {}", output.display()))?;
    Ok(())
}

fn manifest(repo: &Path, dist: &Path, toolchain: String) -> anyhow::Result<Manifest> {
    let registry = scratch_registry()?;
    let mut files = Vec::new();
    for sub in ["", "testing"] {
        let dir = dist.join(sub);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "wasm") {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                files.push(if sub.is_empty() {
                    name
                } else {
                    format!("{sub}/{name}")
                });
            }
        }
    }
    files.sort();
    if files.is_empty() {
        bail!("no components in {}", dist.display());
    }
    let mut plugins = Vec::new();
    for file in files {
        let bytes = std::fs::read(dist.join(&file))?;
        let version = registry
            .load(
                &bytes,
                LoadOptions {
                    config: BTreeMap::new(),
                    ..LoadOptions::default()
                },
            )
            .with_context(|| format!("loading {file}"))?;
        plugins.push(ManifestEntry {
            name: version.name().into(),
            version: version.version().into(),
            kind: version.kind().as_str().into(),
            component_sha256: sha256_hex(&bytes),
            source_sha256: source_hash(repo, &source_dir(repo, &file))?,
            file,
        });
    }
    Ok(Manifest { toolchain, plugins })
}
