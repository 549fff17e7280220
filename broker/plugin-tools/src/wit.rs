//! The plugin contract (`wit/`) embedded in the binary, so a plugin project
//! anywhere gets the exact WIT this broker runs.

use std::path::Path;

use anyhow::Context;

/// (file name, contents) of every WIT file.
pub const WIT_FILES: [(&str, &str); 3] = [
    ("host.wit", include_str!("../../../wit/host.wit")),
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
];

/// Writes the WIT into `dir` (replacing what is there).
pub fn write_wit(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in WIT_FILES {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}
