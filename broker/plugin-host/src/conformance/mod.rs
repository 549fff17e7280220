//! The conformance suite: tables of cases that any implementation of a
//! plugin world can be run against, through the real host.
//!
//! Exchange tables encode the AMQP semantics of each built-in exchange type
//! (run a custom `topic` implementation against the `topic` table, say);
//! every exchange is also held to the world's contract (batch and single
//! calls agree, answers are deterministic). Dead-letter, filter and SET
//! router tables encode the built-in policies' documented behaviour.

mod dead_letter;
mod exchange;
mod filter;
mod headers;
mod key_only;
mod set_router;
mod user_cases;

pub use user_cases::UserCases;

use std::collections::BTreeMap;

use serde::Serialize;

use std::sync::Arc;

use super::registry::{LoadOptions, PluginRegistry, PluginSlot};
use super::{PluginError, PluginKind, PluginVersion};

/// The outcome of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    /// What went wrong, for a failed case.
    pub detail: String,
}

/// The outcome of a conformance run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub plugin: String,
    pub kind: String,
    /// The behaviour table the plugin was checked against, if any.
    pub semantics: Option<String>,
    pub cases: Vec<CaseResult>,
}

impl Report {
    pub fn passed(&self) -> bool {
        !self.cases.is_empty() && self.cases.iter().all(|c| c.passed)
    }

    pub fn failures(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(|c| !c.passed)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let failed = self.failures().count();
        writeln!(
            f,
            "{} ({} plugin, semantics: {}): {} cases, {} passed, {} failed",
            self.plugin,
            self.kind,
            self.semantics.as_deref().unwrap_or("contract only"),
            self.cases.len(),
            self.cases.len() - failed,
            failed
        )?;
        for case in &self.cases {
            let mark = if case.passed { "ok  " } else { "FAIL" };
            write!(f, "  {mark} {}", case.name)?;
            if !case.passed {
                write!(f, ": {}", case.detail)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Collects case results.
pub(crate) struct Cases(Vec<CaseResult>);

impl Cases {
    fn new() -> Self {
        Cases(Vec::new())
    }

    pub(crate) fn check(&mut self, name: impl Into<String>, outcome: Result<(), String>) {
        let (passed, detail) = match outcome {
            Ok(()) => (true, String::new()),
            Err(detail) => (false, detail),
        };
        self.0.push(CaseResult {
            name: name.into(),
            passed,
            detail,
        });
    }
}

/// Loads a component into `registry` under a throwaway name with `config`,
/// so one component can be checked under several configurations.
fn load_as(
    registry: &PluginRegistry,
    bytes: &[u8],
    name: &str,
    config: &[(&str, &str)],
) -> Result<Arc<PluginVersion>, PluginError> {
    let config: BTreeMap<String, String> = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    registry.load(
        bytes,
        LoadOptions {
            name: Some(name.into()),
            config,
            activate: true,
        },
    )
}

/// The component under test, as every world's runner sees it.
pub(crate) struct Subject<'a> {
    registry: &'a PluginRegistry,
    bytes: &'a [u8],
    /// The name it is registered under (loaded with no configuration).
    name: String,
    /// The behaviour table it is checked against.
    semantics: String,
}

impl Subject<'_> {
    /// Whether the run checks behaviour against the table named `table`.
    pub(crate) fn claims(&self, table: &str) -> bool {
        self.semantics == table
    }

    pub(crate) fn semantics(&self) -> &str {
        &self.semantics
    }

    pub(crate) fn slot(&self) -> Result<Arc<PluginSlot>, PluginError> {
        self.registry.get(&self.name)
    }

    /// The component loaded again under a name of its own (so with its own
    /// key/value store) and with `config`.
    pub(crate) fn variant(
        &self,
        label: &str,
        config: &[(&str, &str)],
    ) -> Result<Arc<PluginSlot>, PluginError> {
        let name = format!("{}-{label}", self.name);
        load_as(self.registry, self.bytes, &name, config)?;
        self.registry.get(&name)
    }

    pub(crate) fn drop_variant(&self, label: &str) -> Result<(), PluginError> {
        self.registry.unload(&format!("{}-{label}", self.name))
    }
}

/// Runs the conformance suite for the component `bytes`, loaded into
/// `registry` (use a scratch registry: the run loads it under test names).
/// `semantics` picks the behaviour table; by default the plugin's own name
/// when a table of that name exists.
pub fn check_component(
    registry: &PluginRegistry,
    bytes: &[u8],
    semantics: Option<&str>,
    user: Option<&UserCases>,
) -> Result<Report, PluginError> {
    // Named by content, so several components can be checked in one registry.
    let subject = format!("conformance-{}", &super::sha256_hex(bytes)[..16]);
    let probe = load_as(registry, bytes, &subject, &[])?;
    let info = probe.info().clone();
    let subject = Subject {
        registry,
        bytes,
        name: subject,
        semantics: semantics.unwrap_or(probe.reported_name()).to_string(),
    };
    let mut cases = Cases::new();
    let known = match info.kind {
        PluginKind::Exchange => {
            key_only::check(subject.slot()?, &mut cases)?;
            exchange::run(&subject, &mut cases)?
        }
        PluginKind::DeadLetter => dead_letter::run(&subject, &mut cases)?,
        PluginKind::Filter => filter::run(&subject, &mut cases)?,
        PluginKind::SetRouter => set_router::run(&subject, &mut cases)?,
    };
    if let Some(user) = user {
        let config: Vec<(&str, &str)> = user
            .config
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let variant = subject.variant("user", &config)?;
        if info.kind == PluginKind::Exchange {
            // The claim may hold only under some settings.
            key_only::check(variant.clone(), &mut cases)?;
        }
        user_cases::run(variant, user, &mut cases)?;
        subject.drop_variant("user")?;
    }
    let semantics = subject.semantics;
    Ok(Report {
        plugin: format!("{}@{}", probe.reported_name(), info.version),
        kind: info.kind.as_str().into(),
        semantics: known.then_some(semantics),
        cases: cases.0,
    })
}
