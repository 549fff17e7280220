//! The languages `plugin new` / `plugin build` support, the plugin kinds,
//! and the project manifest (`switchyard-plugin.toml`) that ties a
//! directory to both.

use std::path::Path;

use anyhow::{Context, bail};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use switchyard_plugin_host::PluginKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Rust,
    C,
    Python,
    #[value(alias = "javascript")]
    Js,
    #[value(alias = "as")]
    Assemblyscript,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::C => "c",
            Language::Python => "python",
            Language::Js => "javascript",
            Language::Assemblyscript => "assemblyscript",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Exchange,
    DeadLetter,
    Filter,
    SetRouter,
}

impl Kind {
    /// The plugin host's kind: the one definition of kinds and their names
    /// (this type only adds command-line and manifest parsing).
    pub fn plugin_kind(self) -> PluginKind {
        match self {
            Kind::Exchange => PluginKind::Exchange,
            Kind::DeadLetter => PluginKind::DeadLetter,
            Kind::Filter => PluginKind::Filter,
            Kind::SetRouter => PluginKind::SetRouter,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.plugin_kind().as_str()
    }

    /// The WIT world a plugin of this kind implements.
    pub fn world(self) -> String {
        format!("{}-plugin", self.as_str())
    }
}

/// `switchyard-plugin.toml`: what a plugin project is.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectManifest {
    pub name: String,
    pub kind: Kind,
    /// Detected from the project's files when absent.
    pub language: Option<Language>,
}

pub const MANIFEST_FILE: &str = "switchyard-plugin.toml";

impl ProjectManifest {
    pub fn read(dir: &Path) -> anyhow::Result<ProjectManifest> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{} is not a plugin project: {} is missing (create one with `switchyard plugin new`)",
                dir.display(),
                path.display()
            )
        })?;
        toml::from_str(&text).with_context(|| format!("in {}", path.display()))
    }

    /// The project's language: as declared, or from the files present.
    pub fn language(&self, dir: &Path) -> anyhow::Result<Language> {
        if let Some(language) = self.language {
            return Ok(language);
        }
        let has = |file: &str| dir.join(file).exists();
        let package = std::fs::read_to_string(dir.join("package.json")).unwrap_or_default();
        Ok(if has("Cargo.toml") {
            Language::Rust
        } else if package.contains("assemblyscript") {
            Language::Assemblyscript
        } else if !package.is_empty() {
            Language::Js
        } else if has("app.py") {
            Language::Python
        } else if std::fs::read_dir(dir)?
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "c"))
        {
            Language::C
        } else {
            bail!(
                "cannot tell the language of {}: no Cargo.toml, package.json, app.py or .c file; \
                 set `language` in {MANIFEST_FILE}",
                dir.display()
            )
        })
    }
}
