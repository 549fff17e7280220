//! The sandbox limits of one plugin version: the operator's defaults
//! (`[sandbox]`), or what the plugin's load-time settings ask for within
//! the operator's maxima.
//!
//! A plugin asks through reserved keys of its configuration, so they travel
//! with `plugin load --config`, persist with the version and are part of
//! its identity (a version names one component + configuration):
//! `sandbox.deadline-ms`, `sandbox.load-deadline-ms`, `sandbox.memory-bytes`,
//! `sandbox.fuel`. The plugin's own `config` import never sees them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::PluginError;
use super::sandbox::SandboxLimits;

const PREFIX: &str = "sandbox.";
const KNOWN: &str =
    "sandbox.deadline-ms, sandbox.load-deadline-ms, sandbox.memory-bytes, sandbox.fuel";

/// What one version's calls run under (shown in `plugin list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct CallLimits {
    pub deadline_ms: u64,
    pub load_deadline_ms: u64,
    pub memory_bytes: u64,
    /// `None`: fuel metering is off.
    pub fuel: Option<u64>,
}

impl CallLimits {
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    pub fn load_deadline(&self) -> Duration {
        Duration::from_millis(self.load_deadline_ms)
    }
}

/// The settings the plugin itself sees: its configuration without the
/// reserved `sandbox.*` keys.
pub(crate) fn plugin_config(config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    config
        .iter()
        .filter(|(k, _)| !k.starts_with(PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The limits for a version loaded with `config`, refusing unknown keys,
/// malformed numbers and anything above the operator's maxima by name.
pub(crate) fn resolve(
    operator: &SandboxLimits,
    config: &BTreeMap<String, String>,
) -> Result<CallLimits, PluginError> {
    let mut limits = CallLimits {
        deadline_ms: operator.deadline.as_millis() as u64,
        load_deadline_ms: operator.load_deadline.as_millis() as u64,
        memory_bytes: operator.memory_bytes as u64,
        fuel: operator.fuel,
    };
    for (key, value) in config.iter().filter(|(k, _)| k.starts_with(PREFIX)) {
        let number: u64 = value
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                PluginError::invalid(format!("{key} = {value:?} is not a positive whole number"))
            })?;
        let (slot, maximum, unit, setting) = match key.as_str() {
            "sandbox.deadline-ms" => (
                &mut limits.deadline_ms,
                operator.max_deadline.as_millis() as u64,
                "ms",
                "sandbox.max_deadline",
            ),
            "sandbox.load-deadline-ms" => (
                &mut limits.load_deadline_ms,
                operator.max_load_deadline.as_millis() as u64,
                "ms",
                "sandbox.max_load_deadline",
            ),
            "sandbox.memory-bytes" => (
                &mut limits.memory_bytes,
                operator.max_memory_bytes as u64,
                "bytes",
                "sandbox.max_memory_bytes",
            ),
            "sandbox.fuel" => {
                let Some(maximum) = operator.fuel else {
                    return Err(PluginError::invalid(
                        "sandbox.fuel: fuel metering is off on this broker (the operator sets \
                         sandbox.fuel to turn it on, and a plugin may then ask for less)",
                    ));
                };
                if number > maximum {
                    return Err(above(key, number, maximum, "units", "sandbox.fuel"));
                }
                limits.fuel = Some(number);
                continue;
            }
            _ => {
                return Err(PluginError::invalid(format!(
                    "unknown sandbox setting {key} (known: {KNOWN})"
                )));
            }
        };
        if number > maximum {
            return Err(above(key, number, maximum, unit, setting));
        }
        *slot = number;
    }
    if limits.load_deadline_ms < limits.deadline_ms {
        limits.load_deadline_ms = limits.deadline_ms;
    }
    Ok(limits)
}

fn above(key: &str, asked: u64, maximum: u64, unit: &str, setting: &str) -> PluginError {
    PluginError::invalid(format!(
        "{key} = {asked} is above the operator's maximum of {maximum} {unit} ({setting})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_plugin_may_ask_for_limits_within_the_maxima_only() {
        let operator = SandboxLimits::default();
        let limits = resolve(
            &operator,
            &config(&[
                ("sandbox.deadline-ms", "50"),
                ("sandbox.memory-bytes", "1048576"),
                ("x", "1"),
            ]),
        )
        .unwrap();
        assert_eq!((limits.deadline_ms, limits.memory_bytes), (50, 1 << 20));
        assert_eq!(
            plugin_config(&config(&[("sandbox.fuel", "1"), ("x", "1")])),
            config(&[("x", "1")])
        );
        for (bad, says) in [
            (
                ("sandbox.deadline-ms", "100000"),
                "above the operator's maximum of 1000 ms",
            ),
            (
                ("sandbox.deadline-ms", "soon"),
                "not a positive whole number",
            ),
            (
                ("sandbox.dedline-ms", "5"),
                "unknown sandbox setting sandbox.dedline-ms",
            ),
            (("sandbox.fuel", "5"), "fuel metering is off"),
        ] {
            let error = resolve(&operator, &config(&[bad])).unwrap_err().to_string();
            assert!(error.contains(says), "{error}");
        }
    }
}
