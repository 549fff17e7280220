//! Federation of a global exchange: CENTER's `global` exchange is followed
//! by `global` on set-a and set-b. 10,000 messages published on CENTER
//! reach both SETs exactly once and in order, across a restart of set-b
//! mid-stream and a restart of CENTER.

use crate::support;

use std::time::Duration;

use support::cells::{collect_in_order, deploy};
use support::{Broker, eventually};
use switchyard_client::Message;

const MESSAGES: usize = 10_000;

async fn publish_range(center: &Broker, range: std::ops::Range<usize>) {
    let (_connection, channel) = center.channel().await;
    channel.confirm_select().await.unwrap();
    let bodies: Vec<usize> = range.collect();
    for chunk in bodies.chunks(100) {
        let batch = chunk
            .iter()
            .map(|i| Message::new("", format!("g{i:05}")))
            .collect();
        channel
            .publish_batch("global", batch)
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// Waits until `cell`'s federation queue on CENTER exists and is bound.
async fn wait_for_federation_queue(center: &Broker, cell: &str) {
    let queue = format!("federation.{cell}.global");
    let bound = eventually(Duration::from_secs(60), || {
        center
            .cli_ok(&["list", "bindings", "--json"])
            .lines()
            .any(|line| line.contains(&format!("\"queue\":\"{queue}\"")))
    })
    .await;
    assert!(bound, "{queue} is bound on CENTER");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_exchange_reaches_every_set_exactly_once_in_order_across_restarts() {
    let mut deployment = deploy();
    deployment.broker("CENTER").cli_ok(&[
        "declare",
        "exchange",
        "global",
        "--type",
        "fanout",
        "--durable",
    ]);
    for cell in ["set-a", "set-b"] {
        let broker = deployment.broker(cell);
        broker.cli_ok(&[
            "declare",
            "exchange",
            "global",
            "--type",
            "fanout",
            "--durable",
            "--arg",
            "federation-upstream=CENTER",
        ]);
        broker.cli_ok(&["declare", "queue", "global-in", "--durable"]);
        broker.cli_ok(&["bind", "global-in", "global"]);
        wait_for_federation_queue(deployment.broker("CENTER"), cell).await;
    }

    publish_range(deployment.broker("CENTER"), 0..3_000).await;
    // set-b restarts while messages flow.
    let set_b_dir = deployment.kill("set-b");
    publish_range(deployment.broker("CENTER"), 3_000..6_000).await;
    deployment.restart("set-b", &set_b_dir);
    // CENTER restarts (new port: the SETs are told).
    let center_dir = deployment.kill("CENTER");
    deployment.restart("CENTER", &center_dir);
    publish_range(deployment.broker("CENTER"), 6_000..MESSAGES).await;

    let expected: Vec<String> = (0..MESSAGES).map(|i| format!("g{i:05}")).collect();
    for cell in ["set-a", "set-b"] {
        let got = collect_in_order(deployment.broker(cell), "global-in", MESSAGES).await;
        assert_eq!(got.len(), MESSAGES, "{cell}: exactly once");
        assert!(got == expected, "{cell}: in order");
        let status = deployment
            .broker(cell)
            .cli_ok(&["list", "federation", "--json"]);
        assert!(status.contains("\"upstream\":\"CENTER\""), "{status}");
        let (_, metrics) = support::http(
            deployment.broker(cell),
            "GET",
            "/metrics",
            Some(("guest", "guest")),
        );
        let federated = "switchyard_federation_messages_total\
            {vhost=\"/\",exchange=\"global\",upstream=\"CENTER\"}";
        assert!(metrics.contains(federated), "{federated} in\n{metrics}");
    }
}
