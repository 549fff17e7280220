//! C: bindings generated in-process by wit-bindgen's C generator, compiled
//! with clang for wasm32-wasi as a reactor (only libc's malloc and string
//! functions are linked, so the module imports no WASI), then componentized.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use wit_bindgen_core::wit_parser::Resolve;

use super::Project;
use super::toolchain::{require, require_path, run_step};
use crate::offline::componentize_module;

const INSTALL: &str = "apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32";

pub fn build(project: &Project) -> anyhow::Result<Vec<u8>> {
    let clang = require("clang 19", &["clang-19".into()], INSTALL)?;
    require(
        "the wasm linker (wasm-ld 19)",
        &["wasm-ld-19".into(), "wasm-ld".into()],
        INSTALL,
    )?;
    require_path(
        "wasi-libc",
        Path::new("/usr/lib/wasm32-wasi/libc.a"),
        INSTALL,
    )?;
    let work = project.work_dir()?;
    let bindings = work.join("bindings");
    let generated = generate_bindings(project, &bindings)?;
    let sources = c_sources(&project.dir)?;
    let module = work.join(format!("{}.core.wasm", project.name));
    run_step(
        "compiling with clang-19 (wasm32-wasi, reactor)",
        Command::new(clang)
            .current_dir(&project.dir)
            .args(["--target=wasm32-wasi", "-O2", "-mexec-model=reactor"])
            .arg("-I")
            .arg(&bindings)
            .args(&sources)
            .args(&generated)
            .arg("-o")
            .arg(&module),
    )?;
    let bytes = std::fs::read(&module).with_context(|| format!("reading {}", module.display()))?;
    eprintln!("==> componentizing {}", module.display());
    componentize_module(&bytes)
}

/// Writes the C bindings of the project's world into `dir`; returns the
/// files to compile and link (the `.c` and the component-type object).
fn generate_bindings(project: &Project, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    eprintln!("==> generating C bindings for {}", project.world());
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_dir(project.wit_dir())
        .context("parsing the project's wit/")?;
    let world = resolve.select_world(&[package], Some(&project.world()))?;
    let mut files = wit_bindgen_core::Files::default();
    // Borrowed `bodies` handles are dropped by the generated glue, so plugin
    // code that never reads a body need not know they exist.
    wit_bindgen_c::Opts {
        autodrop_borrows: wit_bindgen_c::Enabled::Yes,
        ..Default::default()
    }
    .build()
    .generate(&mut resolve, world, &mut files)
    .context("generating C bindings")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut linked = Vec::new();
    for (name, contents) in files.iter() {
        let path = dir.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        if name.ends_with(".c") || name.ends_with(".o") {
            linked.push(path);
        }
    }
    Ok(linked)
}

/// The project's own `.c` files (not the generated ones).
fn c_sources(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut sources: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    sources.sort();
    anyhow::ensure!(!sources.is_empty(), "no .c files in {}", dir.display());
    Ok(sources)
}
