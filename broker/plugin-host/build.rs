//! Embeds the built-in plugins from `plugins/dist/`. A missing component is
//! embedded as empty bytes with a build warning (so the tools that build the
//! plugins can themselves be built first); loading it then fails with a
//! message saying how to rebuild.

use std::path::Path;

/// The built-in plugins: the members of the plugins workspace
/// (`plugins/Cargo.toml`, the one list of them), test-only ones excepted.
fn builtins(plugins: &Path) -> Vec<String> {
    let manifest = plugins.join("Cargo.toml");
    println!("cargo:rerun-if-changed={}", manifest.display());
    let text = std::fs::read_to_string(&manifest).unwrap();
    let members = text
        .split_once("members = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .expect("plugins/Cargo.toml lists its members");
    members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty() && !m.starts_with("testing/"))
        .map(String::from)
        .collect()
}

fn main() {
    // Read at run time, not baked in with env!: a compiled build script may
    // be reused for a checkout at another path (a shared target dir).
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let plugins = Path::new(&manifest_dir).join("../../plugins");
    let dist = plugins.join("dist");
    let builtins = builtins(&plugins);
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut code = format!(
        "pub const BUILTIN_PLUGINS: [(&str, &[u8]); {}] = [\n",
        builtins.len()
    );
    for name in &builtins {
        let path = dist.join(format!("{name}.wasm"));
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_file() {
            code += &format!(
                "    ({name:?}, include_bytes!({:?})),\n",
                path.canonicalize().unwrap()
            );
        } else {
            println!(
                "cargo:warning=built-in plugin {name} is missing from plugins/dist; run plugins/build.sh"
            );
            code += &format!("    ({name:?}, &[]),\n");
        }
    }
    code += "];\n";
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("builtin_plugins.rs");
    std::fs::write(out, code).unwrap();
}
