//! `switchyard plugin …`: the life of a plugin from an empty directory to a
//! running broker.
//!
//! - `new` / `build` (project scaffolding and one-command builds in every
//!   supported language) — [`scaffold`], [`build`];
//! - `test` / `inspect` / `componentize` / `manifest` (no broker needed) —
//!   [`offline`];
//! - `load` / `list` / `activate` / `rollback` / `unload` on a running
//!   broker through its admin API — [`live`].

mod live;

use std::path::PathBuf;

use clap::Subcommand;

use super::client::ClientArgs;

pub use switchyard_plugin_tools::{Kind, Language};
use switchyard_plugin_tools::{build, offline, scaffold};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Create a plugin project that builds as generated.
    New {
        name: String,
        #[arg(long, value_enum)]
        lang: Language,
        #[arg(long, value_enum, default_value = "exchange")]
        kind: Kind,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build a plugin project into a component, whatever its language.
    Build {
        /// The project directory (default: the current directory).
        dir: Option<PathBuf>,
        /// Where to write the component (default: DIR/dist/NAME.wasm).
        #[arg(long, short)]
        output: Option<PathBuf>,
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
        /// Your own cases (TOML, see docs/PLUGINS.md), run after the suite.
        #[arg(long)]
        cases: Option<PathBuf>,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Upload a component to a running broker and load it (administrators).
    Load {
        component: PathBuf,
        /// Register under this name instead of the one the plugin reports.
        #[arg(long)]
        name: Option<String>,
        /// Plugin settings, `name=value` (repeatable).
        #[arg(long = "config")]
        config: Vec<String>,
        /// Make this version active even if the plugin already has one.
        #[arg(long)]
        activate: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the broker's plugins: versions, active version, kind, language,
    /// calls, errors and p99 call time.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Make a loaded version active: `NAME@VERSION`.
    Activate {
        target: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Re-activate the version that was active before the current one.
    Rollback {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove a plugin and its versions (refused while an exchange uses it).
    Unload {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Load a component in a scratch host and print what it is.
    Inspect {
        component: PathBuf,
        /// Plugin settings, `name=value`.
        #[arg(long = "config", value_parser = offline::parse_pair)]
        config: Vec<(String, String)>,
    },
    /// Turn a core wasm module with embedded WIT (as wit-bindgen emits) into
    /// a component.
    Componentize { module: PathBuf, output: PathBuf },
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
        PluginCommand::New {
            name,
            lang,
            kind,
            dir,
        } => scaffold::new_project(&name, lang, kind, dir),
        PluginCommand::Build { dir, output } => build::build(dir, output).map(drop),
        PluginCommand::Test {
            components,
            semantics,
            cases,
            json,
        } => offline::test(&components, semantics.as_deref(), cases.as_deref(), json),
        PluginCommand::Load {
            component,
            name,
            config,
            activate,
            client,
        } => live::load(&client, &component, name, &config, activate),
        PluginCommand::List { json, client } => {
            super::topology::list_query(&client, switchyard_client::Query::Plugins, json)
        }
        PluginCommand::Activate { target, client } => live::activate(&client, &target),
        PluginCommand::Rollback { name, client } => live::rollback(&client, &name),
        PluginCommand::Unload { name, client } => live::unload(&client, &name),
        PluginCommand::Inspect { component, config } => offline::inspect(&component, config),
        PluginCommand::Componentize { module, output } => offline::componentize(&module, &output),
        PluginCommand::Manifest {
            repo,
            dist,
            toolchain,
        } => offline::print_manifest(&repo, &dist, toolchain),
    }
}
