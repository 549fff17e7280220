//! Finding the tools a language needs, and saying exactly how to install
//! the ones that are missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

/// The first of `candidates` that exists: a path, or a program on PATH.
pub fn find(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates.iter().find_map(|candidate| {
        if candidate.components().count() > 1 {
            candidate.is_file().then(|| candidate.clone())
        } else {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(candidate))
                    .find(|p| p.is_file())
            })
        }
    })
}

/// `find`, or an error naming what is missing and the command that installs it.
pub fn require(what: &str, candidates: &[PathBuf], install: &str) -> anyhow::Result<PathBuf> {
    find(candidates).ok_or_else(|| {
        anyhow::anyhow!(
            "{what} is not installed (looked for {}); install it with:\n    {install}",
            candidates
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Checks that a file or directory a toolchain needs is present.
pub fn require_path(what: &str, path: &Path, install: &str) -> anyhow::Result<()> {
    if !path.exists() {
        bail!(
            "{what} is not installed ({} is missing); install it with:\n    {install}",
            path.display()
        );
    }
    Ok(())
}

/// Runs one build step with its output on the terminal, naming the step
/// and how long it took.
pub fn run_step(step: &str, command: &mut Command) -> anyhow::Result<()> {
    eprintln!("==> {step}");
    let started = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    eprintln!("    done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
