//! The HTTP front door through the binary: the broker's users and
//! permissions (Basic credentials, the same argon2 check), listings as
//! JSON, and Prometheus metrics that follow what happens.

use crate::support;

use support::{Broker, http};
use switchyard_client::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_lists_as_the_cli_does_for_the_users_it_knows() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    support::queue(&ch, "orders").await;
    ch.confirm_select().await.unwrap();
    let batch = (0..3)
        .map(|i| Message::new("orders", format!("{i}")))
        .collect();
    ch.publish_batch("", batch).await.unwrap().await.unwrap();

    let (status, body) = http(&broker, "GET", "/api/queues", None);
    assert_eq!(status, 401, "{body}");
    let (status, _) = http(&broker, "GET", "/api/queues", Some(("guest", "wrong")));
    assert_eq!(status, 401);
    let (status, body) = http(&broker, "GET", "/api/queues", Some(("guest", "guest")));
    assert_eq!(status, 200, "{body}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let orders = rows.iter().find(|r| r["name"] == "orders").unwrap();
    assert_eq!(orders["ready"], 3, "{orders}");
    let (status, body) = http(&broker, "GET", "/api/nonsense", Some(("guest", "guest")));
    assert_eq!(status, 404);
    assert!(body.contains("no listing 'nonsense'"), "{body}");
    let (status, body) = http(&broker, "GET", "/api/overview", Some(("guest", "guest")));
    assert_eq!(status, 200);
    let overview: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (overview["vhost"].as_str(), overview["ready"].as_i64()),
        (Some("/"), Some(3))
    );

    // A user without the administrator tag: its vhost's listings, not the
    // broker's metrics; another vhost not at all.
    broker.cli_ok(&["user", "add", "ann", "--password", "ann-secret"]);
    broker.cli_ok(&[
        "user",
        "permit",
        "ann",
        "--vhost",
        "/",
        "--configure",
        "",
        "--write",
        "",
        "--read",
        ".*",
    ]);
    let (status, _) = http(&broker, "GET", "/api/queues", Some(("ann", "ann-secret")));
    assert_eq!(status, 200);
    let (status, body) = http(&broker, "GET", "/metrics", Some(("ann", "ann-secret")));
    assert_eq!(status, 403, "{body}");
    broker.cli_ok(&["vhost", "add", "other"]);
    let (status, _) = http(
        &broker,
        "GET",
        "/api/queues?vhost=other",
        Some(("ann", "ann-secret")),
    );
    assert_eq!(status, 401);
    // Ann may close her own connection, not another user's.
    let ann_connection = broker
        .connect_as(&broker.url("ann", "ann-secret", "/"))
        .await
        .unwrap();
    let (_, body) = http(&broker, "GET", "/api/connections", Some(("guest", "guest")));
    let connections: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let id_of = |user: &str| {
        connections.iter().find(|c| c["user"] == user).unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let guests = format!("/api/connections/{}", id_of("guest"));
    let (status, _) = http(&broker, "DELETE", &guests, Some(("ann", "ann-secret")));
    assert_eq!(status, 404);
    let anns = format!("/api/connections/{}", id_of("ann"));
    let (status, _) = http(&broker, "DELETE", &anns, Some(("ann", "ann-secret")));
    assert_eq!(status, 204);
    drop(ann_connection);
}

/// The value of the sample `name{labels}` in a text exposition.
fn sample(exposition: &str, name_and_labels: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_publishes_deliveries_and_acks() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    support::queue(&ch, "work").await;
    ch.confirm_select().await.unwrap();
    let batch = (0..5)
        .map(|i| Message::new("work", format!("{i}")))
        .collect();
    ch.publish_batch("", batch).await.unwrap().await.unwrap();
    let (delivery, _) = ch.get("work", false).await.unwrap().unwrap();
    delivery.ack().await.unwrap();
    let (held, _) = ch.get("work", false).await.unwrap().unwrap();

    let (status, body) = http(&broker, "GET", "/metrics", Some(("guest", "guest")));
    assert_eq!(status, 200, "{body}");
    let labels = r#"{vhost="/",queue="work"}"#;
    let value = |name: &str| sample(&body, &format!("{name}{labels}"));
    assert_eq!(
        value("switchyard_queue_messages_ready"),
        Some(3.0),
        "{body}"
    );
    assert_eq!(value("switchyard_queue_messages_unacked"), Some(1.0));
    assert_eq!(
        value("switchyard_queue_messages_published_total"),
        Some(5.0)
    );
    assert_eq!(
        value("switchyard_queue_messages_delivered_total"),
        Some(2.0)
    );
    assert_eq!(value("switchyard_queue_messages_acked_total"), Some(1.0));
    assert!(sample(&body, "switchyard_connections").is_some_and(|n| n >= 1.0));
    assert!(
        body.contains("switchyard_plugin_calls_total{plugin=\"direct\""),
        "{body}"
    );
    assert!(body.contains("switchyard_log_bytes "));
    assert!(body.trim_end().ends_with("# EOF"));
    held.ack().await.unwrap();
}
