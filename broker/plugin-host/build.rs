//! Embeds the built-in plugins from `plugins/dist/`. A missing component is
//! embedded as empty bytes with a build warning (so the tools that build the
//! plugins can themselves be built first); loading it then fails with a
//! message saying how to rebuild.

use std::path::Path;

const BUILTINS: [&str; 8] = [
    "direct",
    "topic",
    "fanout",
    "headers",
    "consistent-hash",
    "dead-letter",
    "idempotency",
    "set-router",
];

fn main() {
    // Read at run time, not baked in with env!: a compiled build script may
    // be reused for a checkout at another path (a shared target dir).
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let dist = Path::new(&manifest_dir).join("../../plugins/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut code = String::from("pub const BUILTIN_PLUGINS: [(&str, &[u8]); 8] = [\n");
    for name in BUILTINS {
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
