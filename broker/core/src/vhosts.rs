//! Vhosts: adding one (its creator gets full permissions), deleting one
//! with everything in it and everyone's access to it.

use switchyard_plugin_host::KvScope;
use switchyard_storage::metadata::key;

use super::Broker;
use super::auth::{Permission, Principal};
use super::error::BrokerError;
use super::records::{EXCHANGES, VHOSTS, VhostRecord};
use super::topology::check_name;

impl Broker {
    /// Adds a vhost and gives its creator full permissions on it, as
    /// RabbitMQ's management interface does: an administrator can use the
    /// vhost it just made without a separate `user permit`. Others get
    /// access only through `user permit`.
    pub fn add_vhost(&self, principal: &Principal, name: &str) -> Result<(), BrokerError> {
        principal.require_administrator("adding a vhost")?;
        check_name("vhost", name)?;
        if self.vhost(name).is_ok() {
            return Err(BrokerError::precondition(format!(
                "vhost '{name}' already exists"
            )));
        }
        self.persist(VHOSTS, name, &VhostRecord { name: name.into() })?;
        self.add_vhost_runtime(name);
        self.users
            .permit(&principal.user, name, Permission::all())?;
        Ok(())
    }

    /// Deletes a vhost with everything in it, every user's permission on
    /// it, and its connections. The last vhost stays: without one no
    /// client could log in until a restart made `/` again.
    pub fn delete_vhost(&self, principal: &Principal, name: &str) -> Result<(), BrokerError> {
        principal.require_administrator("deleting a vhost")?;
        let vhost = self.vhost(name)?;
        if self.vhosts.read().unwrap().len() <= 1 {
            return Err(BrokerError::precondition(format!(
                "vhost '{name}' is the broker's last vhost: add another before deleting it"
            )));
        }
        self.users.forget_vhost(name)?;
        self.close_connections_of(name, &format!("vhost '{name}' was deleted"));
        let queues: Vec<String> = vhost.queues.read().unwrap().keys().cloned().collect();
        for queue in queues {
            self.remove_queue(&vhost, &queue)?;
        }
        let exchanges: Vec<String> = vhost.exchanges.read().unwrap().keys().cloned().collect();
        for exchange in exchanges.iter().filter(|e| !e.is_empty()) {
            self.unpersist(EXCHANGES, &key(&[name, exchange]))?;
            self.forget_plugin_state(&KvScope::exchange(name, exchange));
        }
        self.forget_plugin_state(&KvScope::vhost(name));
        self.unpersist(VHOSTS, name)?;
        self.vhosts.write().unwrap().remove(name);
        Ok(())
    }
}
