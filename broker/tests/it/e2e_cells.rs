//! SET deployments end to end: three broker processes on loopback (CENTER,
//! set-a, set-b) with the same topology and SET table. Messages published
//! to set-a land in the cell the documented hash + table gives them
//! (computed here independently), exactly once; a cell that is down loses
//! nothing; table changes route later messages anew; bad routers refuse.

use crate::support;

use std::time::Duration;

use support::cells::{
    CELLS, collect, deploy, expected_cells, keyed, order_bodies, orders, publish_all, slot,
    users_of_set_b, wait_until_some,
};
use switchyard_client::Message;

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
    // The forwarding counters say the same.
    let (status, metrics) = support::http(
        deployment.broker("set-a"),
        "GET",
        "/metrics",
        Some(("guest", "guest")),
    );
    assert_eq!(status, 200);
    for (cell, count) in [("set-b", expected["set-b"].len()), ("CENTER", 10)] {
        let line = format!("switchyard_link_messages_forwarded_total{{cell=\"{cell}\"}} {count}");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cell_that_is_down_loses_nothing_and_gets_nothing_twice() {
    let mut deployment = deploy();
    let users = users_of_set_b("u", 10_000);
    // set-b goes away; set-a stores its messages for it.
    let set_b_dir = deployment.kill("set-b");
    let (_connection, channel) = deployment.broker("set-a").channel().await;
    channel.confirm_select().await.unwrap();
    publish_all(&channel, orders(&users)).await;
    let links = deployment
        .broker("set-a")
        .cli_ok(&["list", "links", "--json"]);
    assert!(links.contains("\"queued\":10000"), "{links}");

    // set-b comes back on a new port; set-a is told where it is.
    deployment.restart("set-b", &set_b_dir);
    let expected = order_bodies(&users);
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
    let users = users_of_set_b("k", 10_000);
    let set_b_dir = deployment.kill("set-b");
    {
        let (_connection, channel) = deployment.broker("set-a").channel().await;
        channel.confirm_select().await.unwrap();
        publish_all(&channel, orders(&users)).await;
    }
    // set-b returns; set-a starts forwarding and is SIGKILLed meanwhile.
    deployment.restart("set-b", &set_b_dir);
    wait_until_some(deployment.broker("set-b"), "orders").await;
    let set_a_dir = deployment.kill("set-a");
    deployment.restart("set-a", &set_a_dir);

    let expected = order_bodies(&users);
    assert_eq!(
        collect(deployment.broker("set-b"), expected.len()).await,
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiving_cell_killed_mid_stream_stores_nothing_twice() {
    let mut deployment = deploy();
    let users = users_of_set_b("r", 5_000);
    let (_connection, channel) = deployment.broker("set-a").channel().await;
    channel.confirm_select().await.unwrap();
    publish_all(&channel, orders(&users)).await;
    // set-b is SIGKILLed while the forwarded messages arrive.
    wait_until_some(deployment.broker("set-b"), "orders").await;
    let set_b_dir = deployment.kill("set-b");
    deployment.restart("set-b", &set_b_dir);

    let expected = order_bodies(&users);
    assert_eq!(
        collect(deployment.broker("set-b"), expected.len()).await,
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_confirms_wait_for_the_other_cell() {
    let mut deployment = deploy();
    deployment
        .broker("set-a")
        .cli_ok(&["cells", "confirm", "remote"]);
    let user = (0..)
        .map(|i| format!("e2e-{i}"))
        .find(|u| slot(u) >= 5000)
        .unwrap();
    let set_b_dir = deployment.kill("set-b");
    let (_connection, channel) = deployment.broker("set-a").channel().await;
    channel.confirm_select().await.unwrap();
    let confirmation = channel
        .publish_batch(
            "orders",
            vec![keyed(Some(&user), "confirmed by set-b".into())],
        )
        .await
        .unwrap();
    // While set-b is down the confirm cannot come, however long one waits.
    let mut confirmation = Box::pin(confirmation);
    assert!(
        tokio::time::timeout(Duration::from_secs(2), &mut confirmation)
            .await
            .is_err(),
        "confirmed before set-b had it"
    );
    deployment.restart("set-b", &set_b_dir);
    tokio::time::timeout(Duration::from_secs(120), confirmation)
        .await
        .expect("confirmed once set-b has it")
        .unwrap();
    // Confirmed means stored there: it is already in set-b's queue.
    let row = support::queue_row(deployment.broker("set-b"), "orders").unwrap();
    assert_eq!(row["ready"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_waiting_for_a_cell_follow_their_range_when_it_moves() {
    let mut deployment = deploy();
    let users = users_of_set_b("w", 300);
    deployment.kill("set-b");
    let (_connection, channel) = deployment.broker("set-a").channel().await;
    channel.confirm_select().await.unwrap();
    publish_all(&channel, orders(&users)).await;
    // set-b stays down; its whole range moves to set-a.
    for cell in ["CENTER", "set-a"] {
        deployment
            .broker(cell)
            .cli_ok(&["cells", "range", "set-a", "5000-9999"]);
    }
    let expected = order_bodies(&users);
    assert_eq!(
        collect(deployment.broker("set-a"), expected.len()).await,
        expected
    );
    let links = deployment
        .broker("set-a")
        .cli_ok(&["list", "links", "--json"]);
    assert!(links.contains("\"queued\":0"), "{links}");
}
