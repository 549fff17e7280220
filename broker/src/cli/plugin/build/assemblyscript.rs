//! AssemblyScript: not yet.
use super::Project;

pub fn build(_project: &Project) -> anyhow::Result<Vec<u8>> {
    anyhow::bail!("AssemblyScript builds are not implemented yet")
}
