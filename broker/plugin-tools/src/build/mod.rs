//! `switchyard plugin build [DIR]`: one command from a plugin project to a
//! validated component, whatever the language. Each language's recipe is
//! its own file; this one reads the project, refreshes its WIT, runs the
//! recipe, stamps the language into the component and loads the result in
//! a scratch host to check it implements the world the project claims.

mod assemblyscript;
mod c;
mod javascript;
mod python;
mod rust;
mod toolchain;

pub use assemblyscript::write_assemblyscript_glue;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};

use super::language::{Kind, Language, ProjectManifest};
use super::offline::scratch_registry;
use super::wit::write_wit;
use switchyard_plugin_host::WIT_PACKAGE;
use switchyard_plugin_host::{LANGUAGE_SECTION, LoadOptions};

/// A plugin project being built.
pub struct Project {
    pub dir: PathBuf,
    pub name: String,
    pub kind: Kind,
}

impl Project {
    /// The world's fully qualified name, e.g. `switchyard:plugin/exchange-plugin`.
    pub fn world(&self) -> String {
        let package = WIT_PACKAGE;
        format!("{package}/{}", self.kind.world())
    }

    /// Where intermediate files go.
    pub fn work_dir(&self) -> anyhow::Result<PathBuf> {
        let dir = self.dir.join("build");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    pub fn wit_dir(&self) -> PathBuf {
        self.dir.join("wit")
    }
}

/// Builds the project in `dir` (default: the current directory); returns
/// the path of the component.
pub fn build(dir: Option<PathBuf>, output: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("."));
    // Tools run inside the project: every path they get must be absolute.
    let dir = dir
        .canonicalize()
        .with_context(|| format!("no plugin project at {}", dir.display()))?;
    let manifest = ProjectManifest::read(&dir)?;
    let language = manifest.language(&dir)?;
    let project = Project {
        dir: dir.clone(),
        name: manifest.name.clone(),
        kind: manifest.kind,
    };
    eprintln!(
        "building {} ({} {} plugin) in {}",
        project.name,
        language.as_str(),
        project.kind.as_str(),
        dir.display()
    );
    let started = Instant::now();
    write_wit(&project.wit_dir())?;
    let component = match language {
        Language::Rust => rust::build(&project)?,
        Language::C => c::build(&project)?,
        Language::Python => python::build(&project)?,
        Language::Js => javascript::build(&project)?,
        Language::Assemblyscript => assemblyscript::build(&project)?,
    };
    let component = with_language_section(component, language);

    eprintln!("==> validating against {}", project.world());
    let registry = scratch_registry()?;
    let version = registry
        .load(&component, LoadOptions::default())
        .context("the build produced a component the broker would refuse")?;
    if version.kind() != project.kind.plugin_kind() {
        bail!(
            "the project ({}) is for the {} world, but the component implements the {} world",
            super::language::MANIFEST_FILE,
            project.kind.as_str(),
            version.kind()
        );
    }
    let output = output.unwrap_or_else(|| dir.join("dist").join(format!("{}.wasm", project.name)));
    write_output(&output, &component)?;
    eprintln!(
        "built {} ({}, {} plugin, {} KiB) in {:.1} s\nnext: switchyard plugin test {} --cases {}",
        output.display(),
        version.label(),
        version.kind(),
        component.len().div_ceil(1024),
        started.elapsed().as_secs_f64(),
        output.display(),
        dir.join("cases.toml").display()
    );
    Ok(output)
}

fn write_output(output: &Path, component: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(output, component).with_context(|| format!("writing {}", output.display()))
}

/// Appends a custom section naming the source language, which `plugin
/// list` shows (custom sections may follow any section of a component).
fn with_language_section(mut component: Vec<u8>, language: Language) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = LANGUAGE_SECTION.as_bytes();
    let data = language.as_str().as_bytes();
    let mut payload = Vec::new();
    leb128(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(data);
    component.push(0); // custom section id
    leb128(payload.len(), &mut component);
    component.extend_from_slice(&payload);
    component
}
