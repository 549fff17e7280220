//! Settings given outside the config file: `--set key=value` flags and
//! `SWITCHYARD__SECTION__KEY=value` environment variables (double
//! underscores between the parts of a key), so that every setting of the
//! TOML file can also come from a flag or the environment. Values are TOML
//! (`10`, `true`, `"text"`, `[1, 2]`); anything that does not parse as TOML
//! is taken as text. Unknown keys are refused by name, as in the file.

use std::path::Path;

use super::config::ServerConfig;

/// The prefix of override environment variables.
pub const ENV_PREFIX: &str = "SWITCHYARD__";

/// `key=value` → (dotted key, value).
pub fn parse_override(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| {
        format!("--set '{text}': expected key=value (e.g. storage.segment_bytes=1048576)")
    })?;
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(format!("--set '{text}': '{key}' is not a setting's key"));
    }
    Ok((key.to_string(), value.to_string()))
}

/// The overrides `SWITCHYARD__…` variables of `vars` give, in a stable order.
pub fn from_environment(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut overrides: Vec<(String, String)> = vars
        .filter_map(|(name, value)| {
            let key = name.strip_prefix(ENV_PREFIX)?;
            Some((key.to_lowercase().replace("__", "."), value))
        })
        .collect();
    overrides.sort();
    overrides
}

fn value_of(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut table| table.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

impl ServerConfig {
    /// The file at `path` (if any) with `overrides` applied on top.
    pub fn load_with(path: Option<&Path>, overrides: &[(String, String)]) -> Result<Self, String> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
                toml::from_str::<toml::Table>(&text)
                    .map_err(|e| format!("config file {}: {e}", path.display()))?
            }
            None => toml::Table::new(),
        };
        for (key, value) in overrides {
            let mut parts: Vec<&str> = key.split('.').collect();
            let last = parts.pop().unwrap_or_default();
            let mut at = &mut table;
            for part in parts {
                let entry = at
                    .entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                at = entry
                    .as_table_mut()
                    .ok_or_else(|| format!("setting '{key}': '{part}' is not a section"))?;
            }
            at.insert(last.to_string(), value_of(value));
        }
        let origin = match path {
            Some(path) => format!("config file {} with overrides", path.display()),
            None => "settings".to_string(),
        };
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| format!("{origin}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_reach_nested_settings_and_unknown_keys_are_named() {
        let overrides = vec![
            ("storage.segment_bytes".to_string(), "2097152".to_string()),
            ("idle_timeout_ms".to_string(), "1234".to_string()),
            ("http.enabled".to_string(), "false".to_string()),
            ("data_dir".to_string(), "/srv/switchyard".to_string()),
        ];
        let config = ServerConfig::load_with(None, &overrides).unwrap();
        assert_eq!(config.storage.segment_bytes, 2 << 20);
        assert_eq!(config.idle_timeout_ms, 1234);
        assert!(!config.http.enabled);
        assert_eq!(config.data_dir, std::path::PathBuf::from("/srv/switchyard"));
        let bad = vec![("storage.segment_byte".to_string(), "1".to_string())];
        let e = ServerConfig::load_with(None, &bad).unwrap_err();
        assert!(e.contains("segment_byte"), "{e}");
        let env = from_environment(
            [
                (
                    "SWITCHYARD__LIMITS__MAX_CONNECTIONS".to_string(),
                    "7".to_string(),
                ),
                ("SWITCHYARD_DATA_DIR".to_string(), "x".to_string()),
            ]
            .into_iter(),
        );
        assert_eq!(
            env,
            vec![("limits.max_connections".to_string(), "7".to_string())]
        );
        assert!(parse_override("novalue").is_err());
    }
}
