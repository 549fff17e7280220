//! Topology and administration requests on a channel: declaring,
//! deleting, binding and purging, listing, and the administrative frames.

use switchyard_protocol::{Field, Frame, Query, StreamOffset};

use crate::channel::Channel;
use crate::error::Error;

/// Options of `declare_exchange`.
#[derive(Debug, Clone, Default)]
pub struct ExchangeOptions {
    pub durable: bool,
    pub auto_delete: bool,
    /// Only check that it exists.
    pub passive: bool,
    pub arguments: Vec<Field>,
}

/// Options of `declare_queue`. Arguments include `flush` (`async` | `sync`),
/// `message-ttl` (ms), `max-length`, `overflow` (`drop-head` |
/// `reject-publish`) and `dead-letter-exchange`.
#[derive(Debug, Clone, Default)]
pub struct QueueOptions {
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub passive: bool,
    pub arguments: Vec<Field>,
}

/// What the broker says about a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub name: String,
    pub messages: u64,
    pub consumers: u32,
}

impl Channel {
    /// Declares an exchange whose type is a plugin name (`direct`, `topic`,
    /// `fanout`, `headers`, `consistent-hash` or one loaded at run time).
    pub async fn declare_exchange(
        &self,
        name: &str,
        kind: &str,
        options: ExchangeOptions,
    ) -> Result<(), Error> {
        self.request_ok(|req| Frame::DeclareExchange {
            req,
            name: name.into(),
            kind: kind.into(),
            durable: options.durable,
            auto_delete: options.auto_delete,
            passive: options.passive,
            arguments: options.arguments,
        })
        .await
        .map(drop)
    }

    pub async fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), Error> {
        self.request_ok(|req| Frame::DeleteExchange {
            req,
            name: name.into(),
            if_unused,
        })
        .await
        .map(drop)
    }

    /// Declares a queue (an empty name asks the broker to generate one).
    pub async fn declare_queue(
        &self,
        name: &str,
        options: QueueOptions,
    ) -> Result<QueueInfo, Error> {
        self.request_ok(|req| Frame::DeclareQueue {
            req,
            name: name.into(),
            durable: options.durable,
            exclusive: options.exclusive,
            auto_delete: options.auto_delete,
            passive: options.passive,
            arguments: options.arguments,
        })
        .await
    }

    /// Deletes a queue; returns how many messages it held.
    pub async fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u64, Error> {
        self.request_ok(|req| Frame::DeleteQueue {
            req,
            name: name.into(),
            if_unused,
            if_empty,
        })
        .await
        .map(|info| info.messages)
    }

    /// Drops a queue's ready messages; returns how many.
    pub async fn purge_queue(&self, name: &str) -> Result<u64, Error> {
        self.request_ok(|req| Frame::PurgeQueue {
            req,
            name: name.into(),
        })
        .await
        .map(|info| info.messages)
    }

    /// Moves consumer group `group` of stream queue `queue` to `offset`
    /// (with `member`, one broadcasting member's position); its members
    /// must have stopped. Returns the new position.
    pub async fn reset_group(
        &self,
        queue: &str,
        group: &str,
        member: Option<&str>,
        offset: StreamOffset,
    ) -> Result<u64, Error> {
        self.request_ok(|req| Frame::ResetGroup {
            req,
            queue: queue.into(),
            group: group.into(),
            member: member.unwrap_or_default().into(),
            offset,
        })
        .await
        .map(|info| info.messages)
    }

    /// Binds a queue to an exchange with a key and arguments (their
    /// meaning is the exchange type's).
    pub async fn bind(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
        arguments: Vec<Field>,
    ) -> Result<(), Error> {
        self.binding(true, queue, exchange, key, arguments).await
    }

    /// Removes a binding made with the same queue, exchange, key and arguments.
    pub async fn unbind(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
        arguments: Vec<Field>,
    ) -> Result<(), Error> {
        self.binding(false, queue, exchange, key, arguments).await
    }

    async fn binding(
        &self,
        bind: bool,
        queue: &str,
        exchange: &str,
        key: &str,
        arguments: Vec<Field>,
    ) -> Result<(), Error> {
        let (queue, exchange, key) = (queue.to_string(), exchange.to_string(), key.to_string());
        self.request_ok(|req| {
            if bind {
                Frame::Bind {
                    req,
                    queue,
                    exchange,
                    key,
                    arguments,
                }
            } else {
                Frame::Unbind {
                    req,
                    queue,
                    exchange,
                    key,
                    arguments,
                }
            }
        })
        .await
        .map(drop)
    }

    /// Lists exchanges, queues, bindings, plugins, connections, users or
    /// vhosts: one row of named values each.
    pub async fn query(&self, what: Query) -> Result<Vec<Vec<Field>>, Error> {
        match self
            .request(|req| Frame::Query {
                req,
                what: what as u8,
            })
            .await?
        {
            Frame::QueryReply { rows, .. } => Ok(rows),
            other => Err(Error::Unexpected(other.name())),
        }
    }

    /// Sends an administrative request (`UserAdd`, `Permit`, `VhostAdd`…)
    /// built from the request id; resolves when the broker has applied it.
    /// The broker's definitions (administrators): a JSON document.
    pub async fn export_definitions(&self) -> Result<bytes::Bytes, Error> {
        match self.request(|req| Frame::DefinitionsExport { req }).await? {
            Frame::Definitions { json, .. } => Ok(json),
            other => Err(Error::Unexpected(other.name())),
        }
    }

    /// Applies a definitions document (administrators); what it created
    /// or changed.
    pub async fn import_definitions(&self, json: bytes::Bytes) -> Result<u64, Error> {
        self.request_ok(|req| Frame::DefinitionsImport { req, json })
            .await
            .map(|info| info.messages)
    }

    /// Replaces the broker's SET table (administrators) with `json` (the
    /// whole table, docs/SET.md) if its version is `expect_version` (0:
    /// any); returns the new version.
    pub async fn set_cell_table(
        &self,
        expect_version: u64,
        json: bytes::Bytes,
    ) -> Result<u64, Error> {
        self.request_ok(|req| Frame::CellsSet {
            req,
            expect_version,
            json,
        })
        .await
        .map(|info| info.messages)
    }

    pub async fn admin(&self, make: impl FnOnce(u32) -> Frame) -> Result<(), Error> {
        self.request_ok(make).await.map(drop)
    }
}
