//! Plugin administration over a channel (administrators only): upload and
//! load a component, activate a version, roll back, unload.

use bytes::Bytes;
use switchyard_protocol::{Field, Frame};

use crate::channel::Channel;
use crate::error::Error;

/// Size of each upload piece: well under the smallest frame limit a broker
/// negotiates, so uploads work on any connection.
const UPLOAD_PIECE: usize = 256 << 10;

/// How to register an uploaded component.
#[derive(Debug, Clone, Default)]
pub struct PluginLoadOptions {
    /// Register under this name instead of the one the plugin reports.
    pub name: Option<String>,
    /// The plugin's settings (its `config` import).
    pub config: Vec<Field>,
    /// Make the new version active at once (a new plugin always is).
    pub activate: bool,
}

impl Channel {
    /// Uploads a component and loads it; returns `name@version`. The broker
    /// validates it completely first: a refused component changes nothing.
    pub async fn load_plugin(
        &self,
        component: &[u8],
        options: PluginLoadOptions,
    ) -> Result<String, Error> {
        let component = Bytes::copy_from_slice(component);
        for start in (0..component.len()).step_by(UPLOAD_PIECE) {
            let end = (start + UPLOAD_PIECE).min(component.len());
            self.send(Frame::PluginChunk {
                data: component.slice(start..end),
            })
            .await?;
        }
        let loaded = self
            .request_ok(|req| Frame::PluginLoad {
                req,
                name: options.name.unwrap_or_default(),
                config: options.config,
                activate: options.activate,
            })
            .await?;
        Ok(loaded.name)
    }

    /// Makes `version` the active version of plugin `name`; returns `name@version`.
    pub async fn activate_plugin(&self, name: &str, version: &str) -> Result<String, Error> {
        let active = self
            .request_ok(|req| Frame::PluginActivate {
                req,
                name: name.into(),
                version: version.into(),
            })
            .await?;
        Ok(active.name)
    }

    /// Re-activates the previously active version; returns `name@version`.
    pub async fn rollback_plugin(&self, name: &str) -> Result<String, Error> {
        let active = self
            .request_ok(|req| Frame::PluginRollback {
                req,
                name: name.into(),
            })
            .await?;
        Ok(active.name)
    }

    /// Removes a plugin; refused while an exchange uses it.
    pub async fn unload_plugin(&self, name: &str) -> Result<(), Error> {
        self.request_ok(|req| Frame::PluginUnload {
            req,
            name: name.into(),
        })
        .await
        .map(drop)
    }
}
