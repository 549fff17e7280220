//! SET deployments end to end: three broker processes on loopback (CENTER,
//! set-a, set-b) with the same topology and SET table. Messages published
//! to set-a land in the cell the documented hash + table gives them
//! (computed here independently), exactly once; a cell that is down loses
//! nothing; table changes route later messages anew; bad routers refuse.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{Broker, add_user, eventually_async};
use switchyard_client::{Channel, Field, Message, Value};

const PEER_PASSWORD: &str = "peer-secret";
const CELLS: [&str; 3] = ["CENTER", "set-a", "set-b"];

/// The documented slot function (docs/SET.md), written out again here.
fn slot(variable: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in variable.as_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash % 10_000
}

struct Deployment {
    brokers: BTreeMap<&'static str, Broker>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Deployment {
    fn broker(&self, cell: &str) -> &Broker {
        &self.brokers[cell]
    }

    /// Points every broker at the others (their current addresses).
    fn configure_peers(&self) {
        for (&cell, broker) in &self.brokers {
            for (&other, peer) in &self.brokers {
                if other == cell {
                    continue;
                }
                let url = format!("switchyard://peer:{PEER_PASSWORD}@{}", peer.addr);
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

/// Three brokers, each with user `peer` (tag cell-peer), exchange
/// `orders` (direct, set-router) bound to queue `orders`, and the table
/// set-a = 0-4999, set-b = 5000-9999.
fn deploy() -> Deployment {
    let mut brokers = BTreeMap::new();
    let mut dirs = Vec::new();
    for cell in CELLS {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start_in(dir.path(), &[]);
        broker.cli_ok(&[
            "user",
            "add",
            "peer",
            "--password",
            PEER_PASSWORD,
            "--tag",
            "cell-peer",
        ]);
        add_user_rights(&broker);
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

fn add_user_rights(broker: &Broker) {
    broker.cli_ok(&[
        "user",
        "permit",
        "peer",
        "--vhost",
        "/",
        "--configure",
        "",
        "--write",
        ".*",
        "--read",
        "",
    ]);
    let _ = add_user; // the peer user needs a tag, which add_user does not give
}

fn keyed(user: Option<&str>, body: String) -> Message {
    let mut message = Message::new("orders", body);
    if let Some(user) = user {
        message
            .headers
            .push(Field::new("x-set-key", Value::Text(user.into())));
    }
    message
}

async fn publish_all(channel: &Channel, messages: Vec<Message>) {
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
async fn collect(broker: &Broker, expected: usize) -> Vec<String> {
    let (_connection, channel) = broker.channel().await;
    let bodies = std::sync::Mutex::new(Vec::new());
    let arrived = eventually_async(Duration::from_secs(120), || async {
        let drained = support::drain(&channel, "orders").await;
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
    for delivery in support::drain(&channel, "orders").await {
        bodies.push(String::from_utf8_lossy(&delivery.message.body).into_owned());
    }
    bodies.sort();
    bodies
}

fn expected_cells(users: &[String]) -> BTreeMap<&'static str, Vec<String>> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_land_in_their_cells_exactly_once_and_globals_at_the_center() {
    let deployment = deploy();
    let users: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    let (_connection, channel) = deployment.broker("set-a").channel().await;
    channel.confirm_select().await.unwrap();
    let mut messages: Vec<Message> = users
        .iter()
        .map(|u| keyed(Some(u), format!("order of {u}")))
        .collect();
    messages.extend((0..10).map(|i| keyed(None, format!("global {i}"))));
    publish_all(&channel, messages).await;

    let expected = expected_cells(&users);
    for cell in ["set-a", "set-b"] {
        let got = collect(deployment.broker(cell), expected[cell].len()).await;
        assert_eq!(got, expected[cell], "cell {cell}");
    }
    let mut globals: Vec<String> = (0..10).map(|i| format!("global {i}")).collect();
    globals.sort();
    assert_eq!(collect(deployment.broker("CENTER"), 10).await, globals);

    let links = deployment
        .broker("set-a")
        .cli_ok(&["list", "links", "--json"]);
    assert!(links.contains("\"state\":\"up\""), "{links}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cell_that_is_down_loses_nothing_and_gets_nothing_twice() {
    let mut deployment = deploy();
    let users: Vec<String> = (0..10_000)
        .map(|i| format!("u{i}"))
        .filter(|u| slot(u) >= 5000)
        .take(2_000)
        .collect();
    // set-b goes away; set-a stores its messages for it.
    let set_b_dir = deployment.broker("set-b").data_dir.clone();
    deployment.brokers.get_mut("set-b").unwrap().kill();
    let (_connection, channel) = deployment.broker("set-a").channel().await;
    channel.confirm_select().await.unwrap();
    let messages: Vec<Message> = users
        .iter()
        .map(|u| keyed(Some(u), format!("order of {u}")))
        .collect();
    publish_all(&channel, messages).await;
    let links = deployment
        .broker("set-a")
        .cli_ok(&["list", "links", "--json"]);
    assert!(links.contains("\"queued\":2000"), "{links}");

    // set-b comes back on a new port; set-a is told where it is.
    let restarted = Broker::start_in(&set_b_dir, &[]);
    deployment.brokers.insert("set-b", restarted);
    deployment.configure_peers();
    let mut expected: Vec<String> = users.iter().map(|u| format!("order of {u}")).collect();
    expected.sort();
    assert_eq!(
        collect(deployment.broker("set-b"), expected.len()).await,
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_range_routes_later_messages_to_the_new_cell_and_bad_decisions_are_refused() {
    let deployment = deploy();
    let user = (0..)
        .map(|i| format!("mover-{i}"))
        .find(|u| slot(u) < 5000)
        .unwrap();
    let (_connection, channel) = deployment.broker("set-a").channel().await;
    channel.confirm_select().await.unwrap();
    publish_all(&channel, vec![keyed(Some(&user), "before".into())]).await;
    // The range holding the user's slot moves to set-b, on every broker.
    let range = format!("{}-{}", slot(&user), slot(&user));
    for cell in CELLS {
        deployment
            .broker(cell)
            .cli_ok(&["cells", "range", "set-b", &range]);
    }
    publish_all(&channel, vec![keyed(Some(&user), "after".into())]).await;
    assert_eq!(collect(deployment.broker("set-a"), 1).await, ["before"]);
    assert_eq!(collect(deployment.broker("set-b"), 1).await, ["after"]);

    // A pin to a cell the table does not know: refused with the reason.
    for cell in CELLS {
        deployment
            .broker(cell)
            .cli_ok(&["cells", "pin", "lost", "set-z"]);
    }
    let refused = channel
        .publish_batch("orders", vec![keyed(Some("lost"), "nowhere".into())])
        .await
        .unwrap()
        .await;
    let error = refused.expect_err("a pin to an unknown cell is routed nowhere");
    assert!(error.to_string().contains("set-z"), "{error}");
    // The broker keeps serving.
    publish_all(&channel, vec![keyed(Some(&user), "still".into())]).await;
    assert_eq!(collect(deployment.broker("set-b"), 1).await, ["still"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarding_broker_killed_mid_stream_resumes_without_loss_or_duplicates() {
    let mut deployment = deploy();
    let users: Vec<String> = (0..20_000)
        .map(|i| format!("k{i}"))
        .filter(|u| slot(u) >= 5000)
        .take(5_000)
        .collect();
    let set_b_dir = deployment.broker("set-b").data_dir.clone();
    deployment.brokers.get_mut("set-b").unwrap().kill();
    {
        let (_connection, channel) = deployment.broker("set-a").channel().await;
        channel.confirm_select().await.unwrap();
        let messages: Vec<Message> = users
            .iter()
            .map(|u| keyed(Some(u), format!("order of {u}")))
            .collect();
        publish_all(&channel, messages).await;
    }
    // set-b returns; set-a starts forwarding and is SIGKILLed meanwhile.
    deployment
        .brokers
        .insert("set-b", Broker::start_in(&set_b_dir, &[]));
    deployment.configure_peers();
    let set_b = deployment.broker("set-b");
    let arrived_some = eventually_async(Duration::from_secs(60), || async {
        support::queue_row(set_b, "orders").is_some_and(|row| row["ready"].as_u64() > Some(0))
    })
    .await;
    assert!(arrived_some, "forwarding started");
    let set_a_dir = deployment.broker("set-a").data_dir.clone();
    deployment.brokers.get_mut("set-a").unwrap().kill();
    deployment
        .brokers
        .insert("set-a", Broker::start_in(&set_a_dir, &[]));

    let mut expected: Vec<String> = users.iter().map(|u| format!("order of {u}")).collect();
    expected.sort();
    assert_eq!(
        collect(deployment.broker("set-b"), expected.len()).await,
        expected
    );
}
