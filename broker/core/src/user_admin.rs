//! Administering users: who may add, delete and change users and
//! permissions. The rules live here, so every front door applies the same.

use super::Broker;
use super::auth::{Permission, Principal};
use super::error::BrokerError;

impl Broker {
    /// Adds a user (administrators only). Hashes the password: blocking.
    pub fn add_user(
        &self,
        principal: &Principal,
        name: &str,
        password: &str,
        tags: Vec<String>,
    ) -> Result<(), BrokerError> {
        principal.require_administrator("adding a user")?;
        self.users.add(name, password, tags)
    }

    /// Sets a user's password: one's own, or anyone's as an administrator.
    /// Hashes the password: blocking.
    pub fn set_password(
        &self,
        principal: &Principal,
        name: &str,
        password: &str,
    ) -> Result<(), BrokerError> {
        if name != principal.user {
            principal.require_administrator("changing another user's password")?;
        }
        self.users.set_password(name, password)
    }

    /// Deletes a user (administrators only).
    pub fn delete_user(&self, principal: &Principal, name: &str) -> Result<(), BrokerError> {
        principal.require_administrator("deleting a user")?;
        self.users.delete(name)
    }

    /// Sets what `user` may do on `vhost`, which must exist
    /// (administrators only).
    pub fn permit(
        &self,
        principal: &Principal,
        user: &str,
        vhost: &str,
        permission: Permission,
    ) -> Result<(), BrokerError> {
        principal.require_administrator("setting permissions")?;
        self.vhost(vhost)?;
        self.users.permit(user, vhost, permission)
    }
}
