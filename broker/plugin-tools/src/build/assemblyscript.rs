//! AssemblyScript: `asc` (pinned in the project's package.json) compiles
//! `assembly/abi.ts` — the template's hand-written canonical-ABI glue — to
//! a core module; its exports are renamed to the WIT names, the WIT is
//! embedded, and the module is componentized, all in-process.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use wasmparser::{Parser, Payload};

use super::Project;
use super::toolchain::{require, run_step};
use crate::language::Kind;
use crate::offline::componentize_module;
use switchyard_plugin_host::{WIT_PACKAGE, WIT_VERSION};

pub fn build(project: &Project) -> anyhow::Result<Vec<u8>> {
    if project.kind != Kind::Exchange {
        bail!(
            "AssemblyScript plugins can be exchanges only for now; use rust, c, python or js for a {} plugin",
            project.kind.as_str()
        );
    }
    require("Node.js", &["node".into()], "apt-get install nodejs npm")?;
    let asc = require(
        "the AssemblyScript compiler",
        &[project.dir.join("node_modules/.bin/asc")],
        "npm install   (in the project: package.json pins assemblyscript 0.28.20)",
    )?;
    write_assemblyscript_glue(&project.dir)?;
    let module = project
        .work_dir()?
        .join(format!("{}.core.wasm", project.name));
    run_step(
        "compiling assembly/abi.ts with asc",
        Command::new(asc)
            .current_dir(&project.dir)
            .args(["assembly/abi.ts", "--outFile"])
            .arg(&module)
            .args(["--optimizeLevel", "3", "--runtime", "incremental"])
            .args(["--use", "abort=assembly/abi/abortHandler"]),
    )?;
    let bytes = std::fs::read(&module).with_context(|| format!("reading {}", module.display()))?;
    eprintln!(
        "==> renaming exports to the WIT names and embedding {}",
        project.world()
    );
    let mut renamed = rename_exports(&bytes)?;
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_dir(project.wit_dir())
        .context("parsing the project's wit/")?;
    let world = resolve.select_world(&[package], Some(&project.world()))?;
    wit_component::embed_component_metadata(
        &mut renamed,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )?;
    componentize_module(&renamed)
}

/// The glue every AssemblyScript project compiles: typed classes for the
/// world's types and the canonical-ABI exports (AssemblyScript has no
/// bindings generator). Like `wit/`, rewritten by every build.
const GLUE: [(&str, &str); 2] = [
    (
        "assembly/abi.ts",
        include_str!("../templates/assemblyscript/abi.ts"),
    ),
    (
        "assembly/types.ts",
        include_str!("../templates/assemblyscript/types.ts"),
    ),
];

pub fn write_assemblyscript_glue(dir: &Path) -> anyhow::Result<()> {
    for (file, text) in GLUE {
        let path = dir.join(file);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

/// The WIT export name of an AssemblyScript export (`None`: not exported).
fn wit_name(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix("cabi_post_") {
        return wit_name(rest).map(|n| format!("cabi_post_{n}"));
    }
    // Core module names must spell the exact WIT version being embedded.
    let exchange = format!("{WIT_PACKAGE}/exchange@{WIT_VERSION}#");
    Some(match name {
        "memory" | "cabi_realloc" | "describe" => name.to_string(),
        "exchange_validate_binding" => format!("{exchange}validate-binding"),
        "exchange_router_constructor" => format!("{exchange}[constructor]router"),
        "exchange_router_dtor" => format!("{exchange}[dtor]router"),
        "exchange_router_route" => format!("{exchange}[method]router.route"),
        "exchange_router_route_batch" => format!("{exchange}[method]router.route-batch"),
        _ => return None,
    })
}

/// Copies the module section by section, with the export section rewritten.
fn rename_exports(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = wasm_encoder::Module::new();
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload.context("the compiled module is not valid wasm")?;
        if let Payload::ExportSection(reader) = &payload {
            let mut exports = wasm_encoder::ExportSection::new();
            for export in reader.clone() {
                let export = export?;
                let Some(name) = wit_name(export.name) else {
                    continue;
                };
                let kind = match export.kind {
                    wasmparser::ExternalKind::Func | wasmparser::ExternalKind::FuncExact => {
                        wasm_encoder::ExportKind::Func
                    }
                    wasmparser::ExternalKind::Memory => wasm_encoder::ExportKind::Memory,
                    wasmparser::ExternalKind::Global => wasm_encoder::ExportKind::Global,
                    wasmparser::ExternalKind::Table => wasm_encoder::ExportKind::Table,
                    wasmparser::ExternalKind::Tag => wasm_encoder::ExportKind::Tag,
                };
                exports.export(&name, kind, export.index);
            }
            out.section(&exports);
        } else if let Some((id, range)) = payload.as_section() {
            out.section(&wasm_encoder::RawSection {
                id,
                data: &module[range.start as usize..range.end as usize],
            });
        }
    }
    Ok(out.finish())
}
