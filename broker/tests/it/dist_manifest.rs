//! The committed plugin components are current: each matches the hash in
//! `plugins/dist/manifest.json`, and the manifest's source hashes match the
//! sources in the tree. Catches a changed plugin, SDK or WIT file whose
//! components were not rebuilt, on machines without a wasm toolchain.

use std::path::Path;

use switchyard::plugins::manifest::{Manifest, source_dir, source_hash};
use switchyard::plugins::{BUILTIN_PLUGINS, sha256_hex};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(repo().join("plugins/dist/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn committed_components_are_built_from_the_current_sources() {
    let mut stale = Vec::new();
    for entry in manifest().plugins {
        let bytes = std::fs::read(repo().join("plugins/dist").join(&entry.file)).unwrap();
        if sha256_hex(&bytes) != entry.component_sha256 {
            stale.push(format!(
                "{}: component differs from the manifest",
                entry.file
            ));
        }
        let sources = source_hash(repo(), &source_dir(repo(), &entry.file)).unwrap();
        if sources != entry.source_sha256 {
            stale.push(format!(
                "{}: sources changed since it was built",
                entry.file
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "plugins/dist is stale; run plugins/build.sh and commit plugins/dist:\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_binary_embeds_the_committed_builtins() {
    let manifest = manifest();
    for (name, bytes) in BUILTIN_PLUGINS {
        let entry = manifest
            .plugins
            .iter()
            .find(|e| e.file == format!("{name}.wasm"))
            .unwrap_or_else(|| panic!("{name} is not in the manifest"));
        assert_eq!(entry.name, name);
        assert_eq!(sha256_hex(bytes), entry.component_sha256, "{name}");
    }
}
