//! Rust: Debian's rustc with the standard library rebuilt for
//! `wasm32-unknown-unknown` (rustup's toolchain here has no wasm target),
//! bindings from the `wit-bindgen` macro, then componentized in-process.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use super::Project;
use super::toolchain::{require, require_path, run_step};
use crate::offline::componentize_module;

const INSTALL: &str = "apt-get install rustc-web cargo-web rust-web-src lld-22";

pub fn build(project: &Project) -> anyhow::Result<Vec<u8>> {
    let cargo = require(
        "Cargo for wasm (Debian cargo-web)",
        &["/usr/bin/cargo".into()],
        INSTALL,
    )?;
    let rustc = require(
        "rustc for wasm (Debian rustc-web)",
        &["/usr/bin/rustc".into()],
        INSTALL,
    )?;
    require_path(
        "the Rust standard library sources (rust-web-src)",
        Path::new("/usr/lib/rustlib/src/rust/library"),
        INSTALL,
    )?;
    require(
        "the wasm linker (lld)",
        &["/usr/bin/rust-lld".into()],
        INSTALL,
    )?;
    let mut cargo = Command::new(cargo);
    cargo
        .current_dir(&project.dir)
        .env("RUSTC", rustc)
        .env("RUSTC_BOOTSTRAP", "1")
        .args([
            "build",
            "--release",
            "-Zbuild-std=std,panic_abort",
            "--target",
            "wasm32-unknown-unknown",
        ]);
    // Settings of an enclosing cargo (when run from a build script or test)
    // must not leak into the plugin's build.
    for var in [
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_ENCODED_RUSTFLAGS",
    ] {
        cargo.env_remove(var);
    }
    run_step(
        "compiling with cargo (Debian rustc, standard library rebuilt for wasm)",
        &mut cargo,
    )?;
    let module = module_path(project)?;
    let bytes = std::fs::read(&module).with_context(|| format!("reading {}", module.display()))?;
    eprintln!("==> componentizing {}", module.display());
    componentize_module(&bytes)
}

/// `target/wasm32-unknown-unknown/release/<crate>.wasm`, the crate name
/// taken from Cargo.toml.
fn module_path(project: &Project) -> anyhow::Result<PathBuf> {
    let manifest = project.dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("in {}", manifest.display()))?;
    let name = table
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .with_context(|| format!("{} has no package.name", manifest.display()))?;
    Ok(project
        .dir
        .join("target/wasm32-unknown-unknown/release")
        .join(format!("{}.wasm", name.replace('-', "_"))))
}
