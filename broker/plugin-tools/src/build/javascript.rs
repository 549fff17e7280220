//! JavaScript: componentize-js (from the project's node_modules, pinned in
//! its package.json) embeds a JS engine and `src/index.js`; every WASI
//! feature is disabled so the component imports only the host capabilities.

use std::process::Command;

use anyhow::Context;

use super::Project;
use super::toolchain::{require, run_step};

pub fn build(project: &Project) -> anyhow::Result<Vec<u8>> {
    require("Node.js", &["node".into()], "apt-get install nodejs npm")?;
    let tool = require(
        "componentize-js",
        &[project.dir.join("node_modules/.bin/componentize-js")],
        "npm install   (in the project: package.json pins componentize-js 0.23.0 and preview2-shim 0.25.0)",
    )?;
    let output = project.work_dir()?.join(format!("{}.wasm", project.name));
    run_step(
        "componentizing src/index.js with componentize-js",
        Command::new(tool)
            .current_dir(&project.dir)
            .args(["--wit", "wit", "--world-name", &project.world()])
            .args(["-d", "stdio", "random", "clocks", "http", "fetch-event"])
            .arg("-o")
            .arg(&output)
            .arg("src/index.js"),
    )?;
    std::fs::read(&output).with_context(|| format!("reading {}", output.display()))
}
