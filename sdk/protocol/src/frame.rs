//! Every frame of the protocol. A frame on the wire is
//! `length: u32 LE` (of what follows) · `type: u8` · payload, the payload
//! being the variant's fields in declaration order (docs/PROTOCOL.md).

use bytes::Bytes;

use crate::delivery::BatchedDelivery;
use crate::error::DecodeError;
use crate::stream::{GroupMode, StreamOffset};
use crate::transaction::TxOutcome;
use crate::types::{Field, Message};
use crate::wire::{Reader, Wire, Writer};

macro_rules! frames {
    ($( $(#[$doc:meta])* $code:literal => $name:ident { $( $field:ident : $ty:ty ),* $(,)? } ),* $(,)?) => {
        /// One protocol frame.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Frame {
            $( $(#[$doc])* $name { $( $field: $ty ),* } ),*
        }

        impl Frame {
            /// The type byte of this frame.
            pub fn type_code(&self) -> u8 {
                match self { $( Frame::$name { .. } => $code ),* }
            }

            /// The frame's name, for error messages.
            pub fn name(&self) -> &'static str {
                match self { $( Frame::$name { .. } => stringify!($name) ),* }
            }

            pub(crate) fn put_payload(&self, w: &mut Writer<'_>) {
                match self {
                    $( Frame::$name { $( $field ),* } => { $( Wire::put($field, w); )* } ),*
                }
            }

            pub(crate) fn get_payload(code: u8, r: &mut Reader) -> Result<Frame, DecodeError> {
                match code {
                    $( $code => Ok(Frame::$name { $( $field: <$ty as Wire>::get(r)? ),* }), )*
                    other => Err(DecodeError::UnknownType(other)),
                }
            }
        }
    };
}

frames! {
    // Connection (the first stream a client opens).
    /// Client → broker, first frame of a connection.
    0x01 => Hello { version: u16, user: String, password: String, vhost: String, max_frame: u32, client_name: String },
    /// Broker → client: authenticated; limits in force.
    0x02 => Welcome { version: u16, max_frame: u32, server_name: String, connection_id: u64 },
    /// Either way: the sender closes this channel (or, on the connection
    /// stream, the connection) with a code and a reason.
    0x03 => Close { code: u16, reason: String },

    // Topology and administration: requests carry a `req` id echoed by `Ok` / `Error`.
    0x10 => DeclareExchange { req: u32, name: String, kind: String, durable: bool, auto_delete: bool, passive: bool, arguments: Vec<Field> },
    0x11 => DeleteExchange { req: u32, name: String, if_unused: bool },
    0x12 => DeclareQueue { req: u32, name: String, durable: bool, exclusive: bool, auto_delete: bool, passive: bool, arguments: Vec<Field> },
    0x13 => DeleteQueue { req: u32, name: String, if_unused: bool, if_empty: bool },
    0x14 => PurgeQueue { req: u32, name: String },
    0x15 => Bind { req: u32, queue: String, exchange: String, key: String, arguments: Vec<Field> },
    0x16 => Unbind { req: u32, queue: String, exchange: String, key: String, arguments: Vec<Field> },
    /// What to list: see [`crate::Query`].
    0x17 => Query { req: u32, what: u8 },
    0x18 => QueryReply { req: u32, rows: Vec<Vec<Field>> },
    /// Success. `name`: the queue or consumer tag (generated ones included);
    /// `messages` / `consumers`: counts where the request has them.
    0x19 => Ok { req: u32, name: String, messages: u64, consumers: u32 },
    /// The request failed; the channel stays open.
    0x1a => Error { req: u32, code: u16, message: String },
    0x1b => UserAdd { req: u32, name: String, password: String, tags: Vec<String> },
    0x1c => UserPassword { req: u32, name: String, password: String },
    0x1d => UserDelete { req: u32, name: String },
    /// Sets a user's permissions on a vhost: regular expressions over
    /// resource names for configure, write and read.
    0x1e => Permit { req: u32, user: String, vhost: String, configure: String, write: String, read: String },
    0x1f => VhostAdd { req: u32, name: String },
    0x20 => VhostDelete { req: u32, name: String },
    /// A piece of a plugin component being uploaded on this channel; the
    /// pieces are joined in order and used by the next `PluginLoad`.
    0x21 => PluginChunk { data: Bytes },
    /// Loads the uploaded component as a plugin (`name` empty: the name it
    /// reports) with its settings; `Ok.name` answers `name@version`.
    0x22 => PluginLoad { req: u32, name: String, config: Vec<Field>, activate: bool },
    0x23 => PluginActivate { req: u32, name: String, version: String },
    /// Re-activates the version that was active before the current one.
    0x24 => PluginRollback { req: u32, name: String },
    /// Removes a plugin; refused while an exchange uses it.
    0x25 => PluginUnload { req: u32, name: String },

    // Publishing.
    /// Turns on publisher confirms for this channel.
    0x30 => ConfirmSelect { req: u32 },
    /// `seq`: the channel's publish sequence number, 1, 2, 3… in order.
    0x31 => Publish { seq: u64, exchange: String, message: Message },
    /// Messages take sequence numbers `first_seq`, `first_seq + 1`, …
    0x32 => PublishBatch { first_seq: u64, exchange: String, messages: Vec<Message> },
    /// Publishes confirmed (inclusive ranges of sequence numbers).
    0x33 => Confirm { ranges: Vec<(u64, u64)> },
    /// Publishes refused, with why.
    0x34 => Refuse { ranges: Vec<(u64, u64)>, code: u16, reason: String },
    /// A mandatory message no queue received, sent before its confirm.
    0x35 => Return { seq: u64, code: u16, reason: String, exchange: String, message: Message },
    /// Publishes the exchange's filter dropped as duplicates of messages
    /// already published: settled like `Confirm` (nothing was lost), but
    /// not stored again.
    0x36 => Duplicate { ranges: Vec<(u64, u64)> },

    // Consuming.
    /// `prefetch`: unacknowledged deliveries allowed (0 = unlimited);
    /// an empty `tag` asks the broker for one.
    0x40 => Consume { req: u32, queue: String, tag: String, prefetch: u32, auto_ack: bool, exclusive: bool },
    0x41 => Deliver { tag: String, delivery_tag: u64, redelivered: bool, exchange: String, message: Message },
    /// Several deliveries to consumer `tag`, in order, with delivery tags
    /// `first_delivery_tag`, `first_delivery_tag + 1`, …: what the broker
    /// sends when more than one message is ready and the consumer has
    /// credit for them.
    0x4C => DeliverBatch { tag: String, first_delivery_tag: u64, deliveries: Vec<BatchedDelivery> },
    0x42 => Ack { delivery_tag: u64, multiple: bool },
    0x43 => Nack { delivery_tag: u64, multiple: bool, requeue: bool },
    0x44 => Reject { delivery_tag: u64, requeue: bool },
    0x45 => Get { req: u32, queue: String, auto_ack: bool },
    0x46 => GetOk { req: u32, delivery_tag: u64, redelivered: bool, remaining: u64, exchange: String, message: Message },
    0x47 => GetEmpty { req: u32 },
    0x48 => Cancel { req: u32, tag: String },
    /// Broker → client: the consumer ended (its queue was deleted).
    0x49 => Cancelled { tag: String, reason: String },
    /// A `Get` that waits up to `wait_ms` for a message (long polling):
    /// answered `GetOk` as soon as one is ready, `GetEmpty` when the wait
    /// is over.
    0x4A => GetWait { req: u32, queue: String, auto_ack: bool, wait_ms: u64 },
    /// Consumes a stream queue: as a member of consumer `group` (shared
    /// or, broadcasting, per-`member` durable positions; an empty `member`
    /// is the tag), or without a group (empty: a position of its own,
    /// forgotten when it ends). `offset` says where a new position starts.
    0x4B => ConsumeStream { req: u32, queue: String, tag: String, prefetch: u32, auto_ack: bool, group: String, mode: GroupMode, member: String, offset: StreamOffset },
    /// Closes client connection `id` (administrators, or the connection's
    /// own user): its channels end, its deliveries go back to their queues.
    0x27 => CloseConnection { req: u32, id: u64, reason: String },
    /// Asks for the broker's definitions (administrators): answered by
    /// `Definitions`.
    0x28 => DefinitionsExport { req: u32 },
    /// The definitions document (JSON, docs/HTTP-API.md).
    0x29 => Definitions { req: u32, json: Bytes },
    /// Applies a definitions document (administrators): checked whole
    /// first; `Ok.messages` = what it created or changed.
    0x2A => DefinitionsImport { req: u32, json: Bytes },
    /// Replaces the SET (cell) table (administrators): `json` is the whole
    /// table (docs/SET.md); refused unless the table in force has version
    /// `expect_version` (0: whatever it is). Answered `Ok` with the new
    /// version as `messages`.
    0x2B => CellsSet { req: u32, expect_version: u64, json: Bytes },
    /// Moves a consumer group's position (a broadcasting group's member's
    /// with `member`; all of its members' without); the group must have
    /// no member consuming. Answered `Ok` with the position as `messages`.
    0x26 => ResetGroup { req: u32, queue: String, group: String, member: String, offset: StreamOffset },

    // Transactional (half) messages.
    /// Joins producer group `group` on this channel: the broker may ask it
    /// about the group's pending transactions (`TxCheck`). `arguments`:
    /// `check-timeout` (ms), `check-interval` (ms), `max-checks`,
    /// `give-up` (`discard` or a queue name to park them in).
    0x50 => TxSelect { req: u32, group: String, arguments: Vec<Field> },
    /// A half message: routed and stored, not visible. Answered `Ok` with
    /// its transaction id as `messages` once stored (durably, for sync
    /// queues).
    0x51 => TxPublish { req: u32, exchange: String, message: Message },
    /// Ends transaction `id` (or answers a check about it). Answered `Ok` (a commit
    /// once its messages are durable as their queues want).
    0x52 => TxEnd { req: u32, id: u64, outcome: TxOutcome },
    /// Broker → a member of the producer group: what became of
    /// transaction `id`? Answered with `TxEnd`.
    0x53 => TxCheck { id: u64, group: String, exchange: String, message: Message },
}

/// What a `Query` frame lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Query {
    Exchanges = 1,
    Queues = 2,
    Bindings = 3,
    Plugins = 4,
    Connections = 5,
    Users = 6,
    Vhosts = 7,
    /// Consumer groups of stream queues: members, position, lag.
    Groups = 8,
    /// Producer groups' pending transactions.
    Transactions = 9,
    /// The SET (cell) table: this broker's cell, ranges, pins, peers.
    Cells = 10,
    /// Forwarding links to other cells: state, messages waiting, last error.
    Links = 11,
    /// Federated exchanges: upstream, state, lag, last error.
    Federation = 12,
}

impl Query {
    pub const ALL: [Query; 12] = [
        Query::Exchanges,
        Query::Queues,
        Query::Bindings,
        Query::Plugins,
        Query::Connections,
        Query::Users,
        Query::Vhosts,
        Query::Groups,
        Query::Transactions,
        Query::Cells,
        Query::Links,
        Query::Federation,
    ];

    pub fn from_code(code: u8) -> Option<Query> {
        Query::ALL.into_iter().find(|q| *q as u8 == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            Query::Exchanges => "exchanges",
            Query::Queues => "queues",
            Query::Bindings => "bindings",
            Query::Plugins => "plugins",
            Query::Connections => "connections",
            Query::Users => "users",
            Query::Vhosts => "vhosts",
            Query::Groups => "groups",
            Query::Transactions => "transactions",
            Query::Cells => "cells",
            Query::Links => "links",
            Query::Federation => "federation",
        }
    }
}

impl Frame {
    /// Decodes one frame from its type byte and payload.
    pub fn decode(frame: Bytes) -> Result<Frame, DecodeError> {
        let Some(&code) = frame.first() else {
            return Err(DecodeError::Empty);
        };
        let mut reader = Reader::new(frame.slice(1..));
        let decoded = Frame::get_payload(code, &mut reader)?;
        reader.finish()?;
        Ok(decoded)
    }

    /// The `Deliver` frames a `DeliverBatch` stands for, in order (`None`
    /// for any other frame): for a writer whose batch came out larger than
    /// the frame limit.
    pub fn unbatched(&self) -> Option<Vec<Frame>> {
        let Frame::DeliverBatch {
            tag,
            first_delivery_tag,
            deliveries,
        } = self
        else {
            return None;
        };
        Some(
            (*first_delivery_tag..)
                .zip(deliveries)
                .map(|(delivery_tag, d)| Frame::Deliver {
                    tag: tag.clone(),
                    delivery_tag,
                    redelivered: d.redelivered,
                    exchange: d.exchange.clone(),
                    message: d.message.clone(),
                })
                .collect(),
        )
    }

    /// The request id of a request or response frame.
    pub fn request_id(&self) -> Option<u32> {
        Some(match self {
            Frame::DeclareExchange { req, .. }
            | Frame::DeleteExchange { req, .. }
            | Frame::DeclareQueue { req, .. }
            | Frame::DeleteQueue { req, .. }
            | Frame::PurgeQueue { req, .. }
            | Frame::Bind { req, .. }
            | Frame::Unbind { req, .. }
            | Frame::Query { req, .. }
            | Frame::QueryReply { req, .. }
            | Frame::Ok { req, .. }
            | Frame::Error { req, .. }
            | Frame::UserAdd { req, .. }
            | Frame::UserPassword { req, .. }
            | Frame::UserDelete { req, .. }
            | Frame::Permit { req, .. }
            | Frame::VhostAdd { req, .. }
            | Frame::VhostDelete { req, .. }
            | Frame::PluginLoad { req, .. }
            | Frame::PluginActivate { req, .. }
            | Frame::PluginRollback { req, .. }
            | Frame::PluginUnload { req, .. }
            | Frame::ConfirmSelect { req }
            | Frame::Consume { req, .. }
            | Frame::Get { req, .. }
            | Frame::GetWait { req, .. }
            | Frame::GetOk { req, .. }
            | Frame::GetEmpty { req }
            | Frame::Cancel { req, .. }
            | Frame::ConsumeStream { req, .. }
            | Frame::ResetGroup { req, .. }
            | Frame::CloseConnection { req, .. }
            | Frame::DefinitionsExport { req, .. }
            | Frame::Definitions { req, .. }
            | Frame::DefinitionsImport { req, .. }
            | Frame::CellsSet { req, .. }
            | Frame::TxSelect { req, .. }
            | Frame::TxPublish { req, .. }
            | Frame::TxEnd { req, .. } => *req,
            _ => return None,
        })
    }
}
