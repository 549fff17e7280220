//! A SET deployment for the end-to-end tests: three broker processes on
//! loopback (CENTER, set-a, set-b), each with a `cell-peer` user per
//! other cell (`peer-<cell>`, bound to it by its tag `cell-peer:<cell>`),
//! the same topology and SET table, and the others as peers.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Broker, eventually_async};
use switchyard_client::{Channel, Field, Message, Value};

pub const PEER_PASSWORD: &str = "peer-secret";
pub const CELLS: [&str; 3] = ["CENTER", "set-a", "set-b"];

/// The documented slot function (docs/SET.md), written out again here.
pub fn slot(variable: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in variable.as_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash % 10_000
}

pub struct Deployment {
    pub brokers: BTreeMap<&'static str, Broker>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Deployment {
    pub fn broker(&self, cell: &str) -> &Broker {
        &self.brokers[cell]
    }

    /// Points every broker at the others (their current addresses).
    pub fn configure_peers(&self) {
        for (&cell, broker) in &self.brokers {
            for (&other, peer) in &self.brokers {
                if other == cell {
                    continue;
                }
                // Logs in there as the user bound to this cell.
                let url = format!(
                    "switchyard://{}:{PEER_PASSWORD}@{}",
                    peer_user(cell),
                    peer.addr
                );
                let ca = peer.data_dir.join("tls/ca.pem");
                broker.cli_ok(&[
                    "cells",
                    "peer",
                    other,
                    &url,
                    "--peer-ca",
                    ca.to_str().unwrap(),
                ]);
            }
        }
    }
}

/// The user another cell's broker logs in as to forward for `cell`.
pub fn peer_user(cell: &str) -> String {
    format!("peer-{cell}")
}

/// Three brokers, each with a peer user per other cell, exchange
/// `orders` (direct, set-router) bound to queue `orders`, and the table
/// set-a = 0-4999, set-b = 5000-9999.
pub fn deploy() -> Deployment {
    let mut brokers = BTreeMap::new();
    let mut dirs = Vec::new();
    for cell in CELLS {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start_in(dir.path(), &[]);
        for other in CELLS.into_iter().filter(|&other| other != cell) {
            add_peer_user(&broker, other);
        }
        broker.cli_ok(&[
            "declare",
            "exchange",
            "orders",
            "--type",
            "direct",
            "--arg",
            "set-router=set-router",
            "--durable",
        ]);
        broker.cli_ok(&["declare", "queue", "orders", "--durable"]);
        broker.cli_ok(&["bind", "orders", "orders", "--key", "orders"]);
        broker.cli_ok(&["cells", "local", cell]);
        broker.cli_ok(&["cells", "range", "set-a", "0-4999"]);
        broker.cli_ok(&["cells", "range", "set-b", "5000-9999"]);
        brokers.insert(cell, broker);
        dirs.push(dir);
    }
    let deployment = Deployment {
        brokers,
        _dirs: dirs,
    };
    deployment.configure_peers();
    deployment
}

/// The user cell `other`'s broker logs in as here, bound to `other`, and
/// what it may do: publish (forwarding), and keep and read its
/// federation queues.
pub fn add_peer_user(broker: &Broker, other: &str) {
    let user = peer_user(other);
    let tag = format!("cell-peer:{other}");
    broker.cli_ok(&[
        "user",
        "add",
        &user,
        "--password",
        PEER_PASSWORD,
        "--tag",
        &tag,
    ]);
    broker.cli_ok(&[
        "user",
        "permit",
        &user,
        "--vhost",
        "/",
        "--configure",
        "federation\\..*",
        "--write",
        ".*",
        "--read",
        ".*",
    ]);
}

pub fn keyed(user: Option<&str>, body: String) -> Message {
    let mut message = Message::new("orders", body);
    if let Some(user) = user {
        message
            .headers
            .push(Field::new("x-set-key", Value::Text(user.into())));
    }
    message
}

pub async fn publish_all(channel: &Channel, messages: Vec<Message>) {
    for chunk in messages.chunks(100) {
        channel
            .publish_batch("orders", chunk.to_vec())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// Every body in `queue` of `broker` once `expected` arrived (acked).
pub async fn collect(broker: &Broker, expected: usize) -> Vec<String> {
    let (_connection, channel) = broker.channel().await;
    let bodies = std::sync::Mutex::new(Vec::new());
    let arrived = eventually_async(Duration::from_secs(120), || async {
        let drained = super::drain(&channel, "orders").await;
        let mut bodies = bodies.lock().unwrap();
        for delivery in drained {
            bodies.push(String::from_utf8_lossy(&delivery.message.body).into_owned());
        }
        bodies.len() >= expected
    })
    .await;
    let mut bodies = bodies.into_inner().unwrap();
    assert!(arrived, "{} of {expected} arrived", bodies.len());
    // Nothing more comes (no duplicates still on their way).
    for delivery in super::drain(&channel, "orders").await {
        bodies.push(String::from_utf8_lossy(&delivery.message.body).into_owned());
    }
    bodies.sort();
    bodies
}

/// Every body in `queue` of `broker`, in the order delivered, once
/// `expected` arrived (acked).
pub async fn collect_in_order(broker: &Broker, queue: &str, expected: usize) -> Vec<String> {
    let (_connection, channel) = broker.channel().await;
    let bodies = std::sync::Mutex::new(Vec::new());
    let arrived = eventually_async(Duration::from_secs(180), || async {
        let drained = super::drain(&channel, queue).await;
        let mut bodies = bodies.lock().unwrap();
        bodies.extend(
            drained
                .iter()
                .map(|d| String::from_utf8_lossy(&d.message.body).into_owned()),
        );
        bodies.len() >= expected
    })
    .await;
    let mut bodies = bodies.into_inner().unwrap();
    assert!(arrived, "{queue}: {} of {expected} arrived", bodies.len());
    bodies.extend(
        super::drain(&channel, queue)
            .await
            .iter()
            .map(|d| String::from_utf8_lossy(&d.message.body).into_owned()),
    );
    bodies
}

pub fn expected_cells(users: &[String]) -> BTreeMap<&'static str, Vec<String>> {
    let mut expected: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for user in users {
        let cell = if slot(user) < 5000 { "set-a" } else { "set-b" };
        expected
            .entry(cell)
            .or_default()
            .push(format!("order of {user}"));
    }
    for bodies in expected.values_mut() {
        bodies.sort();
    }
    expected
}

/// `n` users named `PREFIX<i>` whose slot is in set-b's range (5000-9999).
pub fn users_of_set_b(prefix: &str, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|u| slot(u) >= 5000)
        .take(n)
        .collect()
}

/// One order per user (`order of USER`, keyed by the user).
pub fn orders(users: &[String]) -> Vec<Message> {
    users
        .iter()
        .map(|u| keyed(Some(u), format!("order of {u}")))
        .collect()
}

/// The bodies of [`orders`], sorted as [`collect`] returns them.
pub fn order_bodies(users: &[String]) -> Vec<String> {
    let mut bodies: Vec<String> = users.iter().map(|u| format!("order of {u}")).collect();
    bodies.sort();
    bodies
}

impl Deployment {
    /// SIGKILLs `cell`'s broker; returns its data dir.
    pub fn kill(&mut self, cell: &'static str) -> std::path::PathBuf {
        let broker = self.brokers.get_mut(cell).unwrap();
        broker.kill();
        broker.data_dir.clone()
    }

    /// Starts `cell`'s broker again on its data dir (a new port) and tells
    /// every broker where the others are.
    pub fn restart(&mut self, cell: &'static str, data_dir: &std::path::Path) {
        self.brokers.insert(cell, Broker::start_in(data_dir, &[]));
        self.configure_peers();
    }
}

/// Waits until `queue` of `broker` has a message (forwarding started).
pub async fn wait_until_some(broker: &Broker, queue: &str) {
    let arrived = eventually_async(Duration::from_secs(60), || async {
        super::queue_row(broker, queue).is_some_and(|row| row["ready"].as_u64() > Some(0))
    })
    .await;
    assert!(arrived, "nothing arrived in {queue}");
}
