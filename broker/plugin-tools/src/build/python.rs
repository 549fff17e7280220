//! Python: componentize-py bundles CPython and the project's modules
//! (`app.py`, plus a module per exported interface with resources) into a
//! component; `--stub-wasi` keeps it free of WASI imports, which the
//! broker does not grant.

use std::process::Command;

use anyhow::Context;

use super::Project;
use super::toolchain::{require, run_step};

const INSTALL: &str =
    "python3 -m venv .venv && .venv/bin/pip install componentize-py==0.25.1   (in the project)";

pub fn build(project: &Project) -> anyhow::Result<Vec<u8>> {
    let tool = require(
        "componentize-py",
        &[
            project.dir.join(".venv/bin/componentize-py"),
            "componentize-py".into(),
        ],
        INSTALL,
    )?;
    let output = project.work_dir()?.join(format!("{}.wasm", project.name));
    run_step(
        "componentizing app.py with componentize-py",
        Command::new(tool)
            .current_dir(&project.dir)
            .args([
                "-d",
                "wit",
                "-w",
                &project.world(),
                "componentize",
                "app",
                "-p",
                ".",
            ])
            .arg("-o")
            .arg(&output)
            .arg("--stub-wasi"),
    )?;
    std::fs::read(&output).with_context(|| format!("reading {}", output.display()))
}
