//! A channel's administration requests: users, permissions, vhosts and
//! plugins. Who may do what is the core's to decide.

use switchyard_core::{BrokerError, Permission, PluginUpload};
use switchyard_protocol::{Frame, code};

use super::{ChannelSession, Failure, blocking, unexpected};

impl ChannelSession {
    /// Users, permissions and vhosts.
    pub(super) async fn administration(&mut self, frame: Frame) -> Result<(), Failure> {
        let p = self.principal.clone();
        let broker = self.broker.clone();
        match frame {
            Frame::UserAdd {
                req,
                name,
                password,
                tags,
            } => {
                blocking(move || broker.add_user(&p, &name, &password, tags)).await?;
                self.ok(req, String::new(), 0, 0).await;
            }
            Frame::UserPassword {
                req,
                name,
                password,
            } => {
                blocking(move || broker.set_password(&p, &name, &password)).await?;
                self.ok(req, String::new(), 0, 0).await;
            }
            Frame::UserDelete { req, name } => {
                broker.delete_user(&p, &name)?;
                self.ok(req, name, 0, 0).await;
            }
            Frame::Permit {
                req,
                user,
                vhost,
                configure,
                write,
                read,
            } => {
                let permission = Permission {
                    configure,
                    write,
                    read,
                };
                broker.permit(&p, &user, &vhost, permission)?;
                self.ok(req, user, 0, 0).await;
            }
            Frame::VhostAdd { req, name } => {
                broker.add_vhost(&p, &name)?;
                self.ok(req, name, 0, 0).await;
            }
            Frame::VhostDelete { req, name } => {
                broker.delete_vhost(&p, &name)?;
                self.ok(req, name, 0, 0).await;
            }
            Frame::DefinitionsExport { req } => {
                let definitions = broker.export_definitions(&p)?;
                let json = serde_json::to_vec_pretty(&definitions)
                    .map_err(|e| BrokerError::new(code::INTERNAL_ERROR, e.to_string()))?;
                self.reply(Frame::Definitions {
                    req,
                    json: json.into(),
                })
                .await;
            }
            Frame::DefinitionsImport { req, json } => {
                let definitions: switchyard_core::Definitions = serde_json::from_slice(&json)
                    .map_err(|e| BrokerError::invalid_argument(format!("definitions file: {e}")))?;
                let changed = broker.import_definitions(&p, &definitions)?;
                self.ok(req, String::new(), changed, 0).await;
            }
            Frame::CellsSet {
                req,
                expect_version,
                json,
            } => {
                let table: switchyard_core::CellTable = serde_json::from_slice(&json)
                    .map_err(|e| BrokerError::invalid_argument(format!("SET table: {e}")))?;
                let version = broker.set_cell_table(&p, expect_version, table)?;
                self.ok(req, String::new(), version, 0).await;
            }
            Frame::CloseConnection { req, id, reason } => {
                broker.close_connection(&p, id, &reason)?;
                self.ok(req, String::new(), 0, 0).await;
            }
            other => return Err(unexpected(&other)),
        }
        Ok(())
    }

    /// Plugin upload, load, activate, roll back, unload.
    pub(super) async fn plugin_administration(&mut self, frame: Frame) -> Result<(), Failure> {
        let p = self.principal.clone();
        let broker = self.broker.clone();
        match frame {
            Frame::PluginChunk { data } => self.upload.add(&broker, &p, &data),
            Frame::PluginLoad {
                req,
                name,
                config,
                activate,
            } => {
                let upload = std::mem::take(&mut self.upload);
                if let Some(refused) = upload.refused {
                    return Err(refused.into());
                }
                let loaded = blocking(move || {
                    broker.load_plugin(
                        &p,
                        PluginUpload {
                            component: &upload.bytes,
                            name: Some(name.as_str()).filter(|n| !n.is_empty()),
                            config: &config,
                            activate,
                        },
                    )
                })
                .await?;
                self.ok(req, loaded.label().to_string(), 0, 0).await;
            }
            Frame::PluginActivate { req, name, version } => {
                let active = broker.activate_plugin(&p, &name, &version)?;
                self.ok(req, active.label().to_string(), 0, 0).await;
            }
            Frame::PluginRollback { req, name } => {
                let active = broker.rollback_plugin(&p, &name)?;
                self.ok(req, active.label().to_string(), 0, 0).await;
            }
            Frame::PluginUnload { req, name } => {
                broker.unload_plugin(&p, &name)?;
                self.ok(req, name, 0, 0).await;
            }
            other => return Err(unexpected(&other)),
        }
        Ok(())
    }
}
