//! Client connections: authentication (in the order that leaks least and
//! costs least), the connection and channel limits, and what is released
//! when a connection ends.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::limits::Limits;
use super::{Broker, BrokerError, ConnectionInfo, Principal};

impl Broker {
    /// Authenticates a connection (slow: argon2, call off the async
    /// runtime) and registers it. In order: the loopback-only rule (before
    /// the password, so a remote client learns nothing about it), the
    /// login throttle and the global connection limit (before argon2, so
    /// refusing costs nothing), the password (throttle checked again when
    /// its turn comes), then the vhost, the permission and the per-user
    /// limit.
    pub fn connect(
        &self,
        user: &str,
        password: &str,
        vhost: &str,
        peer: SocketAddr,
        client_name: &str,
    ) -> Result<(Principal, Arc<ConnectionInfo>), BrokerError> {
        let principal = self.authenticate(user, password, vhost, peer.ip(), true)?;
        let info = Arc::new(ConnectionInfo {
            id: self
                .next_connection
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            user: user.into(),
            vhost: vhost.into(),
            peer: peer.to_string(),
            client_name: client_name.into(),
            since_ms: self.now_ms(),
            channels: AtomicU32::new(0),
            close_requested: tokio::sync::watch::Sender::new(None),
        });
        let mut connections = self.connections.lock().unwrap();
        self.check_connection_room(Some((user, &connections)))?;
        connections.insert(info.id, info.clone());
        Ok((principal, info))
    }

    /// Who `user` is in `vhost` for a front door without connections (the
    /// HTTP API): the same checks as [`Broker::connect`], in the same
    /// order, without the connection limits.
    pub fn login(
        &self,
        user: &str,
        password: &str,
        vhost: &str,
        address: IpAddr,
    ) -> Result<Principal, BrokerError> {
        self.authenticate(user, password, vhost, address, false)
    }

    fn authenticate(
        &self,
        user: &str,
        password: &str,
        vhost: &str,
        address: IpAddr,
        connecting: bool,
    ) -> Result<Principal, BrokerError> {
        self.users.check_origin(user, address.is_loopback())?;
        self.logins.admit(user, address, Instant::now())?;
        if connecting {
            self.check_connection_room(None)?;
        }
        let mut throttled = false;
        let verified = self.users.verify(user, password, || {
            let admitted = self.logins.admit(user, address, Instant::now());
            throttled = admitted.is_err();
            admitted
        });
        let record = match verified {
            Ok(record) => {
                self.logins.succeeded(user);
                record
            }
            Err(e) => {
                if !throttled && e.code == switchyard_protocol::code::ACCESS_REFUSED {
                    self.logins.failed(user, address, Instant::now());
                }
                return Err(e);
            }
        };
        self.vhost(vhost)?;
        self.users.principal(&record, vhost)
    }

    /// Fails if the broker (and, given the registry, `user`) has no room
    /// for another connection.
    fn check_connection_room(
        &self,
        user: Option<(&str, &std::collections::BTreeMap<u64, Arc<ConnectionInfo>>)>,
    ) -> Result<(), BrokerError> {
        let limits = &self.limits;
        let (total, of_user) = match user {
            Some((name, connections)) => (
                connections.len(),
                Some((
                    name,
                    connections.values().filter(|c| c.user == name).count(),
                )),
            ),
            None => (self.connections.lock().unwrap().len(), None),
        };
        if total >= limits.max_connections as usize {
            return Err(Limits::reached(
                "max_connections",
                limits.max_connections,
                "connection limit reached: the broker has as many connections as it allows",
            ));
        }
        if let Some((name, count)) = of_user
            && count >= limits.max_connections_per_user as usize
        {
            return Err(Limits::reached(
                "max_connections_per_user",
                limits.max_connections_per_user,
                &format!(
                    "connection limit reached: user '{name}' has as many connections as one user may"
                ),
            ));
        }
        Ok(())
    }

    /// Counts a new channel on `connection`, unless it has as many as a
    /// connection may; `close_channel` uncounts it.
    pub fn open_channel(&self, connection: &ConnectionInfo) -> Result<(), BrokerError> {
        let max = self.limits.max_channels_per_connection;
        connection
            .channels
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map(|_| ())
            .map_err(|_| {
                Limits::reached(
                    "max_channels_per_connection",
                    max,
                    "channel limit reached: this connection has as many channels open as one may",
                )
            })
    }

    pub fn close_channel(&self, connection: &ConnectionInfo) {
        connection.channels.fetch_sub(1, Ordering::AcqRel);
    }

    /// The operator's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    /// Asks the front door of connection `id` to close it, saying why: an
    /// administrator may close any, a user its own.
    pub fn close_connection(
        &self,
        principal: &Principal,
        id: u64,
        reason: &str,
    ) -> Result<(), BrokerError> {
        let connection = self.connections.lock().unwrap().get(&id).cloned();
        let Some(connection) = connection.filter(|c| {
            principal.administrator || (c.user == principal.user && c.vhost == principal.vhost)
        }) else {
            return Err(BrokerError::new(
                switchyard_protocol::code::NOT_FOUND,
                format!("no connection {id} that you may close"),
            ));
        };
        let why = match reason.is_empty() {
            true => format!("closed by {}", principal.user),
            false => format!("closed by {}: {reason}", principal.user),
        };
        connection.close_requested.send_replace(Some(why));
        Ok(())
    }

    /// Asks the front doors to close every connection to `vhost`.
    pub(crate) fn close_connections_of(&self, vhost: &str, why: &str) {
        for connection in self.connections.lock().unwrap().values() {
            if connection.vhost == vhost {
                connection
                    .close_requested
                    .send_replace(Some(why.to_string()));
            }
        }
    }

    /// Forgets a connection and deletes the exclusive queues it owned.
    pub fn disconnect(&self, connection: u64) {
        let Some(info) = self.connections.lock().unwrap().remove(&connection) else {
            return;
        };
        let Ok(vhost) = self.vhost(&info.vhost) else {
            return;
        };
        let owned: Vec<String> = vhost
            .queues
            .read()
            .unwrap()
            .values()
            .filter(|q| q.owner == Some(connection))
            .map(|q| q.name().to_string())
            .collect();
        for name in owned {
            if let Err(e) = self.remove_queue(&vhost, &name) {
                tracing::warn!(queue = %name, error = %e, "deleting an exclusive queue");
            }
        }
    }
}
