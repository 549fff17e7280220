//! Users, argon2-hashed passwords and per-vhost permissions, in sled.
//!
//! A permission is three regular expressions over resource names (anchored
//! at both ends): *configure* (declare and delete exchanges and queues),
//! *write* (publish to an exchange — through the default exchange, to the
//! queue the routing key names —, bind a queue) and *read* (consume, get,
//! purge a queue; bind from an exchange). Users tagged `administrator` may
//! manage users and vhosts and see every connection. Users listed as
//! loopback-only (by default `guest`) are refused from any other address,
//! before their password is looked at.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;
use serde::{Deserialize, Serialize};
use switchyard_protocol::code;

use super::error::BrokerError;
use super::password::PasswordGate;
use super::records::USERS;
use switchyard_storage::Metadata;

pub const ADMINISTRATOR: &str = "administrator";
/// The tag of users other cells' brokers log in as: their forwarded
/// messages are stored here as such (docs/SET.md). `cell-peer:NAME` speaks
/// for cell NAME only; a plain `cell-peer` for the cell named like the
/// user. A peer's claim to forward for any other cell is refused.
pub const CELL_PEER: &str = "cell-peer";

/// The cell a user with these tags speaks for, if it is a cell peer.
fn peer_cell(user: &str, tags: &[String]) -> Option<String> {
    tags.iter().find_map(|tag| match tag.split_once(':') {
        Some((CELL_PEER, cell)) if !cell.is_empty() => Some(cell.to_string()),
        None if tag == CELL_PEER => Some(user.to_string()),
        _ => None,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Permission {
    pub configure: String,
    pub write: String,
    pub read: String,
}

impl Permission {
    pub fn all() -> Self {
        Permission {
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    /// A PHC string (argon2id).
    pub password_hash: String,
    pub tags: Vec<String>,
    /// vhost → permission.
    pub permissions: BTreeMap<String, Permission>,
}

/// What an operation needs on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Configure,
    Write,
    Read,
}

/// An authenticated user on one vhost.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub vhost: String,
    pub administrator: bool,
    /// Another cell's broker (tag `cell-peer`): the one cell it speaks for.
    pub cell_peer: Option<String>,
    configure: Regex,
    write: Regex,
    read: Regex,
}

impl Principal {
    /// An administrator acting with every right in `vhost`, for what the
    /// broker does on its behalf (a definitions import it already allowed).
    pub(crate) fn operator(user: &str, vhost: &str) -> Principal {
        Principal {
            user: user.into(),
            vhost: vhost.into(),
            administrator: true,
            cell_peer: None,
            configure: compile(".*").expect("a valid pattern"),
            write: compile(".*").expect("a valid pattern"),
            read: compile(".*").expect("a valid pattern"),
        }
    }

    /// Fails unless the user may do `access` on the resource called `name`.
    pub fn check(&self, access: Access, kind: &str, name: &str) -> Result<(), BrokerError> {
        let pattern = match access {
            Access::Configure => &self.configure,
            Access::Write => &self.write,
            Access::Read => &self.read,
        };
        if pattern.is_match(name) {
            return Ok(());
        }
        let verb = match access {
            Access::Configure => "configure",
            Access::Write => "write",
            Access::Read => "read",
        };
        Err(BrokerError::access_refused(format!(
            "user '{}' has no {verb} permission on {kind} '{name}' in vhost '{}'",
            self.user, self.vhost
        )))
    }

    /// Whether a listing shows `principal` the resource `name`: to
    /// administrators everything, to others what one of their patterns
    /// covers (another tenant's queues, bindings and groups stay out of
    /// sight, not only out of reach).
    pub fn sees(&self, name: &str) -> bool {
        self.administrator
            || self.configure.is_match(name)
            || self.write.is_match(name)
            || self.read.is_match(name)
    }

    pub fn require_administrator(&self, what: &str) -> Result<(), BrokerError> {
        if self.administrator {
            return Ok(());
        }
        Err(BrokerError::access_refused(format!(
            "{what} needs the '{ADMINISTRATOR}' tag, which user '{}' does not have",
            self.user
        )))
    }
}

fn compile(pattern: &str) -> Result<Regex, BrokerError> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| BrokerError::invalid_argument(format!("permission pattern '{pattern}': {e}")))
}

/// The user database.
#[derive(Clone)]
pub struct Users {
    meta: Metadata,
    loopback_only: Vec<String>,
    passwords: Arc<PasswordGate>,
}

impl Users {
    /// `max_password_checks`: argon2 computations at once (password.rs).
    pub fn new(meta: Metadata, loopback_only: Vec<String>, max_password_checks: usize) -> Self {
        Users {
            meta,
            loopback_only,
            passwords: Arc::new(PasswordGate::new(max_password_checks)),
        }
    }

    pub fn get(&self, name: &str) -> Result<Option<UserRecord>, BrokerError> {
        Ok(self.meta.get(USERS, name)?)
    }

    pub fn list(&self) -> Result<Vec<UserRecord>, BrokerError> {
        Ok(self
            .meta
            .scan(USERS, "")?
            .into_iter()
            .map(|(_, u)| u)
            .collect())
    }

    fn put(&self, user: &UserRecord) -> Result<(), BrokerError> {
        self.meta.put(USERS, &user.name, user)?;
        self.meta.flush()?;
        Ok(())
    }

    /// Creates the `guest` administrator (password `guest`, loopback only)
    /// with full rights on `/`, when there are no users at all.
    pub fn ensure_default(&self) -> Result<(), BrokerError> {
        if self.list()?.is_empty() {
            self.add("guest", "guest", vec![ADMINISTRATOR.into()])?;
            self.permit("guest", "/", Permission::all())?;
        }
        Ok(())
    }

    pub fn add(&self, name: &str, password: &str, tags: Vec<String>) -> Result<(), BrokerError> {
        if name.is_empty() || password.is_empty() {
            return Err(BrokerError::invalid_argument(
                "user name and password must not be empty",
            ));
        }
        if self.get(name)?.is_some() {
            return Err(BrokerError::precondition(format!(
                "user '{name}' already exists"
            )));
        }
        self.put(&UserRecord {
            name: name.into(),
            password_hash: self.passwords.hash(password)?,
            tags,
            permissions: BTreeMap::new(),
        })
    }

    fn existing(&self, name: &str) -> Result<UserRecord, BrokerError> {
        self.get(name)?
            .ok_or_else(|| BrokerError::new(code::NOT_FOUND, format!("no user '{name}'")))
    }

    pub fn set_password(&self, name: &str, password: &str) -> Result<(), BrokerError> {
        if password.is_empty() {
            return Err(BrokerError::invalid_argument(
                "the password must not be empty",
            ));
        }
        let mut user = self.existing(name)?;
        user.password_hash = self.passwords.hash(password)?;
        self.put(&user)
    }

    pub fn delete(&self, name: &str) -> Result<(), BrokerError> {
        self.existing(name)?;
        self.meta.remove(USERS, name)?;
        Ok(self.meta.flush()?)
    }

    pub fn permit(
        &self,
        name: &str,
        vhost: &str,
        permission: Permission,
    ) -> Result<(), BrokerError> {
        for pattern in [&permission.configure, &permission.write, &permission.read] {
            compile(pattern)?;
        }
        let mut user = self.existing(name)?;
        user.permissions.insert(vhost.into(), permission);
        self.put(&user)
    }

    /// Removes every user's permission on `vhost` (deleted): a vhost made
    /// again later under the same name starts with no one's access.
    pub fn forget_vhost(&self, vhost: &str) -> Result<(), BrokerError> {
        for mut user in self.list()? {
            if user.permissions.remove(vhost).is_some() {
                self.put(&user)?;
            }
        }
        Ok(())
    }

    /// How many passwords were verified with argon2 so far, known users
    /// or not.
    pub fn passwords_verified(&self) -> u64 {
        self.passwords.verified()
    }

    /// Fails if `name` may only connect from loopback and `from_loopback`
    /// is false. Checked before the password, so that a remote client
    /// learns nothing about a loopback-only user's password.
    pub fn check_origin(&self, name: &str, from_loopback: bool) -> Result<(), BrokerError> {
        if !from_loopback && self.loopback_only.iter().any(|u| u == name) {
            return Err(BrokerError::access_refused(format!(
                "user '{name}' may only connect from a loopback address; create another user \
                 (switchyard user add) for remote clients"
            )));
        }
        Ok(())
    }

    /// Checks credentials. Slow on purpose (argon2, bounded in number at
    /// once): call off the async runtime. An unknown user costs the same
    /// as a known one and gets the same answer as a wrong password.
    /// `admit` runs when the check's turn comes (see `PasswordGate`).
    pub fn verify(
        &self,
        name: &str,
        password: &str,
        admit: impl FnOnce() -> Result<(), BrokerError>,
    ) -> Result<UserRecord, BrokerError> {
        let user = self.get(name)?;
        // Verified whether or not the user exists (a dummy hash then).
        let hash = user.as_ref().map(|u| u.password_hash.as_str());
        let matches = self.passwords.verify(password, hash, admit)?;
        match user {
            Some(user) if matches => Ok(user),
            _ => Err(BrokerError::access_refused(format!(
                "login refused for user '{name}': unknown user or wrong password"
            ))),
        }
    }

    /// The verified user's rights on `vhost`.
    /// Stores `user` as given (a definitions import: its hash, tags and
    /// permissions), its permission patterns checked.
    pub fn replace(&self, user: &UserRecord) -> Result<(), BrokerError> {
        for permission in user.permissions.values() {
            for pattern in [&permission.configure, &permission.write, &permission.read] {
                compile(pattern)?;
            }
        }
        self.put(user)
    }

    pub fn principal(&self, user: &UserRecord, vhost: &str) -> Result<Principal, BrokerError> {
        let permission = user.permissions.get(vhost).ok_or_else(|| {
            BrokerError::access_refused(format!(
                "user '{}' has no access to vhost '{vhost}'",
                user.name
            ))
        })?;
        Ok(Principal {
            user: user.name.clone(),
            vhost: vhost.into(),
            administrator: user.tags.iter().any(|t| t == ADMINISTRATOR),
            cell_peer: peer_cell(&user.name, &user.tags),
            configure: compile(&permission.configure)?,
            write: compile(&permission.write)?,
            read: compile(&permission.read)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_peer_speaks_for_the_cell_its_tag_or_name_says() {
        let tags = |t: &[&str]| t.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert_eq!(
            super::peer_cell("p", &tags(&["cell-peer:set-a"])).as_deref(),
            Some("set-a")
        );
        assert_eq!(
            super::peer_cell("set-b", &tags(&["cell-peer"])).as_deref(),
            Some("set-b")
        );
        assert_eq!(super::peer_cell("p", &tags(&["administrator"])), None);
        assert_eq!(super::peer_cell("p", &tags(&["cell-peer:"])), None);
    }
}
