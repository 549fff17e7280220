//! Hostile and wrong SET routers: a router that traps, spins, names a cell
//! the table does not know, or answers a batch with too few decisions gets
//! every message refused with the reason — nothing is misrouted, nothing
//! is silently dropped — and the broker keeps serving.

use crate::support;

use support::Broker;
use switchyard_client::{Field, Message, Value};

const PROBE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../plugins/dist/testing/set-router-probe.wasm"
);

fn keyed(user: &str) -> Message {
    let mut message = Message::new("k", format!("order of {user}"));
    message
        .headers
        .push(Field::new("x-set-key", Value::Text(user.into())));
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_set_routers_refuse_with_the_reason_and_the_broker_keeps_serving() {
    let broker = Broker::start();
    broker.cli_ok(&["cells", "local", "set-a"]);
    broker.cli_ok(&["cells", "range", "set-a", "0-9999"]);
    broker.cli_ok(&["declare", "queue", "q"]);
    let routers = [
        ("trapper", "mode=trap", "trap"),
        ("spinner", "mode=spin", "deadline"),
        ("stranger", "mode=set:set-q", "set-q"),
        ("short", "mode=short", "decisions for"),
    ];
    for (name, mode, _) in routers {
        broker.cli_ok(&["plugin", "load", PROBE, "--name", name, "--config", mode]);
        let exchange = format!("x-{name}");
        let argument = format!("set-router={name}");
        broker.cli_ok(&[
            "declare", "exchange", &exchange, "--type", "direct", "--arg", &argument,
        ]);
        broker.cli_ok(&["bind", "q", &exchange, "--key", "k"]);
    }
    let (_connection, channel) = broker.channel().await;
    channel.confirm_select().await.unwrap();
    for (name, _, reason) in routers {
        let refused = channel
            .publish_batch(&format!("x-{name}"), vec![keyed("u1"), keyed("u2")])
            .await
            .unwrap()
            .await
            .expect_err("a bad router's messages are refused");
        let text = refused.to_string();
        assert!(
            text.contains(name) && text.to_lowercase().contains(reason),
            "{name}: {text}"
        );
    }
    // Nothing reached the queue, nothing waits for another cell.
    assert_eq!(support::queue_row(&broker, "q").unwrap()["ready"], 0);
    let links = broker.cli_ok(&["list", "links", "--json"]);
    assert!(!links.contains("set-q"), "{links}");

    // The broker keeps serving, through a good router too.
    broker.cli_ok(&[
        "declare",
        "exchange",
        "good",
        "--type",
        "direct",
        "--arg",
        "set-router=set-router",
    ]);
    broker.cli_ok(&["bind", "q", "good", "--key", "k"]);
    channel
        .publish_batch("good", vec![keyed("u3")])
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(support::queue_row(&broker, "q").unwrap()["ready"], 1);
}
