//! The manifest of `plugins/dist/`: for each committed component, what it is
//! (name, version, kind), its hash, and the hash of the sources it was built
//! from, so a stale artifact is detected without a wasm toolchain.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The compiler that built the components.
    pub toolchain: String,
    pub plugins: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Path of the component relative to `plugins/dist/`.
    pub file: String,
    pub name: String,
    pub version: String,
    pub kind: String,
    pub component_sha256: String,
    pub source_sha256: String,
}

/// Inputs shared by every plugin build.
const SHARED_INPUTS: [&str; 5] = [
    "Cargo.toml",
    "sdk/plugin",
    "wit",
    "plugins/Cargo.toml",
    "plugins/Cargo.lock",
];

/// The source directory of a dist component: `dist/x.wasm` comes from
/// `plugins/x`, `dist/testing/x.wasm` from `plugins/testing/x`.
pub fn source_dir(repo: &Path, file: &str) -> PathBuf {
    repo.join("plugins").join(file.trim_end_matches(".wasm"))
}

/// SHA-256 over the plugin's own sources and the shared inputs: every file's
/// path (relative to the repository) and contents, in path order. Build
/// outputs (`target/`) are skipped.
pub fn source_hash(repo: &Path, plugin_dir: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    collect(plugin_dir, &mut files)?;
    for input in SHARED_INPUTS {
        collect(&repo.join(input), &mut files)?;
    }
    files.sort();
    files.dedup();
    let mut hasher = Sha256::new();
    for file in files {
        let relative = file.strip_prefix(repo).unwrap_or(&file);
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(&file)?);
        hasher.update([0]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    if !path.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_name() == "target" {
            continue;
        }
        collect(&entry.path(), out)?;
    }
    Ok(())
}
