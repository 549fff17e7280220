//! Plugin tooling that needs no broker: componentize, inspect, test, and
//! the manifest of a dist directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use switchyard_plugin_host::conformance::{self, UserCases};
use switchyard_plugin_host::manifest::{Manifest, ManifestEntry, source_dir, source_hash};
use switchyard_plugin_host::{
    LoadOptions, PluginEngine, PluginRegistry, SandboxLimits, sha256_hex,
};

pub fn parse_pair(text: &str) -> Result<(String, String), String> {
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

pub fn inspect(component: &Path, config: Vec<(String, String)>) -> anyhow::Result<()> {
    let registry = scratch_registry()?;
    let bytes =
        std::fs::read(component).with_context(|| format!("reading {}", component.display()))?;
    let version = registry.load(
        &bytes,
        LoadOptions {
            config: config.into_iter().collect(),
            ..LoadOptions::default()
        },
    )?;
    let info = version.info();
    println!(
        "{}@{} ({} plugin, key-only routing: {}, language: {})\n{}",
        info.name,
        info.version,
        info.kind,
        info.key_only_routing,
        version.language().unwrap_or("unknown"),
        info.description
    );
    Ok(())
}

pub fn test(
    components: &[PathBuf],
    semantics: Option<&str>,
    cases: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    let registry = scratch_registry()?;
    let user_cases = match cases {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?
                .parse::<UserCases>()
                .with_context(|| format!("in {}", path.display()))?,
        ),
        None => None,
    };
    let mut failed = Vec::new();
    for path in components {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let report =
            conformance::check_component(&registry, &bytes, semantics, user_cases.as_ref())
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

pub fn componentize(module: &Path, output: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(module).with_context(|| format!("reading {}", module.display()))?;
    let component = componentize_module(&bytes)
        .with_context(|| format!("componentizing {}", module.display()))?;
    std::fs::write(output, component).with_context(|| format!("writing {}", output.display()))?;
    Ok(())
}

/// Turns a core module carrying its WIT (a `component-type` custom section,
/// as wit-bindgen's generators emit) into a component.
pub fn componentize_module(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(module)
        .context("not a core module with embedded WIT")?
        .validate(true)
        .encode()
}

pub fn print_manifest(repo: &Path, dist: &Path, toolchain: String) -> anyhow::Result<()> {
    let manifest = manifest(repo, dist, toolchain)?;
    println!("{}", serde_json::to_string_pretty(&manifest)?);
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
