//! The HTTP front door through the binary: the broker's users and
//! permissions (Basic credentials, the same argon2 check), listings as
//! JSON, and Prometheus metrics that follow what happens.

use crate::support;

use std::time::Duration;
use support::{Broker, http};

use switchyard_client::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_lists_as_the_cli_does_for_the_users_it_knows() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    support::queue(&ch, "orders").await;
    support::publish_confirmed(&ch, "orders", 3).await;

    let (status, body) = http(&broker, "GET", "/api/queues", None);
    assert_eq!(status, 401, "{body}");
    let (status, _) = http(&broker, "GET", "/api/queues", Some(("guest", "wrong")));
    assert_eq!(status, 401);
    let (status, body) = http(&broker, "GET", "/api/queues", Some(("guest", "guest")));
    assert_eq!(status, 200, "{body}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let orders = rows.iter().find(|r| r["name"] == "orders").unwrap();
    assert_eq!(orders["ready"], 3, "{orders}");
    assert_eq!(orders["published"], 3, "totals since start: {orders}");
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
    support::add_user(&broker, "ann", "ann-secret", "/", ["", "", ".*"]);
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
    support::publish_confirmed(&ch, "work", 5).await;
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
    let default_exchange = r#"{vhost="/",exchange=""}"#;
    assert_eq!(
        sample(
            &body,
            &format!("switchyard_exchange_messages_published_total{default_exchange}")
        ),
        Some(5.0),
        "{body}"
    );
    assert!(
        body.contains("switchyard_plugin_calls_total{plugin=\"direct\""),
        "{body}"
    );
    assert!(body.contains("switchyard_log_bytes "));
    // Histograms: the log's flushes and each plugin's calls.
    assert!(
        body.contains("# TYPE switchyard_storage_flush_duration_seconds histogram"),
        "{body}"
    );
    assert!(
        body.contains("switchyard_storage_flush_duration_seconds_bucket{le=\"+Inf\"}"),
        "{body}"
    );
    assert!(
        sample(&body, "switchyard_storage_appends_total").is_some_and(|n| n >= 5.0),
        "{body}"
    );
    assert!(
        body.contains("switchyard_plugin_call_duration_seconds_count{plugin=\"direct\""),
        "{body}"
    );
    assert!(
        body.contains("switchyard_plugin_traps_total{plugin=\"direct\""),
        "{body}"
    );
    // Without asking for OpenMetrics: the classic text format.
    assert!(
        body.contains("# TYPE switchyard_queue_messages_published_total counter"),
        "{body}"
    );
    assert!(!body.contains("# EOF"));
    held.ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_over_http_are_the_cores_with_the_same_permissions() {
    use support::http_send;
    let broker = Broker::start();
    let guest = Some(("guest", "guest"));
    let json = |method: &str, path: &str, credentials, body: serde_json::Value| {
        http_send(
            &broker,
            method,
            path,
            credentials,
            "application/json",
            body.to_string().as_bytes(),
        )
    };
    let queue = serde_json::json!({"durable": true, "arguments": {"max-length": 10}});
    assert_eq!(json("PUT", "/api/queues/jobs", guest, queue).0, 204);
    assert_eq!(
        json(
            "PUT",
            "/api/exchanges/logs",
            guest,
            serde_json::json!({"type": "fanout"})
        )
        .0,
        204
    );
    let binding = serde_json::json!({"queue": "jobs", "exchange": "logs"});
    assert_eq!(json("POST", "/api/bindings", guest, binding.clone()).0, 204);
    let (_, bindings) = http(&broker, "GET", "/api/bindings", guest);
    assert!(bindings.contains("\"exchange\":\"logs\""), "{bindings}");
    let (_connection, ch) = broker.channel().await;
    ch.confirm_select().await.unwrap();
    ch.publish("logs", Message::new("", "x"))
        .await
        .unwrap()
        .await
        .unwrap();
    let (status, body) = http(&broker, "POST", "/api/queues/jobs/purge", guest);
    assert_eq!((status, body.as_str()), (200, r#"{"purged":1}"#));
    assert_eq!(json("DELETE", "/api/bindings", guest, binding).0, 204);
    // An unknown type and a bad argument are refused by name.
    let (status, body) = json(
        "PUT",
        "/api/exchanges/odd",
        guest,
        serde_json::json!({"type": "nope"}),
    );
    assert!(
        status == 404 && body.contains("'nope' is not a loaded plugin"),
        "{status} {body}"
    );
    let (status, body) = json(
        "PUT",
        "/api/queues/odd",
        guest,
        serde_json::json!({"arguments": {"max-lenght": 1}}),
    );
    assert!(
        status == 400 && body.contains("max-lenght"),
        "{status} {body}"
    );

    // Users and permissions; a user without configure rights is refused.
    let dave = serde_json::json!({"password": "dave-secret", "tags": []});
    assert_eq!(json("PUT", "/api/users/dave", guest, dave).0, 204);
    let permission = serde_json::json!({"vhost": "/", "configure": "", "write": "", "read": ".*"});
    assert_eq!(
        json("PUT", "/api/permissions/dave", guest, permission).0,
        204
    );
    let daves = Some(("dave", "dave-secret"));
    assert_eq!(http(&broker, "GET", "/api/queues", daves).0, 200);
    let (status, _) = json("PUT", "/api/queues/daves", daves, serde_json::json!({}));
    assert_eq!(status, 403);
    let (status, _) = http(&broker, "POST", "/api/plugins/fanout/rollback", daves);
    assert_eq!(status, 403);

    // Plugins: upload a version, activate it, unload it.
    let component = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugins/dist/fanout.wasm"
    ))
    .unwrap();
    let (status, body) = http_send(
        &broker,
        "POST",
        "/api/plugins?name=http-fanout",
        guest,
        "application/wasm",
        &component,
    );
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("http-fanout@"), "{body}");
    let (_, plugins) = http(&broker, "GET", "/api/plugins", guest);
    assert!(plugins.contains("\"name\":\"http-fanout\""), "{plugins}");
    assert_eq!(
        http(&broker, "DELETE", "/api/plugins/http-fanout", guest).0,
        204
    );
    let (status, body) = http(&broker, "DELETE", "/api/queues/jobs", guest);
    assert_eq!((status, body.as_str()), (200, r#"{"messages":0}"#));
}

/// A free loopback TCP port (bound, then released for a child to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process stopped when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_tools_read_the_metrics_and_a_server_scrapes_them() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    support::queue(&ch, "scraped").await;
    support::publish_confirmed(&ch, "scraped", 7).await;

    // promtool lints the exposition (the classic text format it reads).
    let (status, body) = http(&broker, "GET", "/metrics", Some(("guest", "guest")));
    assert_eq!(status, 200);
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let linted = promtool.wait_with_output().unwrap();
    assert!(
        linted.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&linted.stdout),
        String::from_utf8_lossy(&linted.stderr)
    );

    // A Prometheus server on loopback scrapes it (OpenMetrics, with the
    // broker's credentials) and answers a query for the queue's ready count.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    let target = broker.http.unwrap();
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: switchyard\n    \
             basic_auth: {{username: guest, password: guest}}\n    static_configs:\n      \
             - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = Child(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian's prometheus package)"),
    );
    let query = "/api/v1/query?query=switchyard_queue_messages_ready%7Bqueue%3D%22scraped%22%7D";
    let answered = support::eventually(Duration::from_secs(120), || {
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        use std::io::Read;
        let request =
            format!("GET {query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let mut response = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut response).is_ok()
            && response.contains(r#""value":["#)
            && response.contains(r#""7"]"#)
    })
    .await;
    assert!(
        answered,
        "Prometheus answered the query with the queue's 7 ready messages"
    );
}

#[test]
fn every_change_endpoint_takes_the_right_user_and_refuses_the_wrong_one() {
    use support::http_send;
    let broker = Broker::start();
    // Eve may use the vhost but do nothing in it; she is no administrator.
    support::add_user(&broker, "eve", "eve-secret", "/", ["", "", ""]);
    let guest = Some(("guest", "guest"));
    let eve = Some(("eve", "eve-secret"));
    let probe = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugins/dist/testing/probe.wasm"
    ))
    .unwrap();
    let json = |value: serde_json::Value| value.to_string().into_bytes();
    // (method, path, body, status for the right user); in order, as each
    // needs what the ones before made. The wrong user goes first each time.
    let steps: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("PUT", "/api/vhosts/extra", vec![], 204),
        (
            "PUT",
            "/api/exchanges/ex",
            json(serde_json::json!({"type": "direct"})),
            204,
        ),
        (
            "PUT",
            "/api/queues/q",
            json(serde_json::json!({"durable": true})),
            204,
        ),
        (
            "POST",
            "/api/bindings",
            json(serde_json::json!({"queue": "q", "exchange": "ex", "key": "k"})),
            204,
        ),
        ("POST", "/api/queues/q/purge", vec![], 200),
        (
            "DELETE",
            "/api/bindings",
            json(serde_json::json!({"queue": "q", "exchange": "ex", "key": "k"})),
            204,
        ),
        (
            "PUT",
            "/api/users/frank",
            json(serde_json::json!({"password": "f"})),
            204,
        ),
        (
            "PUT",
            "/api/permissions/frank",
            json(serde_json::json!({"vhost": "/", "configure": "", "write": "", "read": ""})),
            204,
        ),
        (
            "POST",
            "/api/plugins?name=api-probe&config.version=1.0.0",
            probe.clone(),
            201,
        ),
        (
            "POST",
            "/api/plugins?name=api-probe&config.version=2.0.0",
            probe,
            201,
        ),
        ("POST", "/api/plugins/api-probe/activate/1.0.0", vec![], 200),
        ("POST", "/api/plugins/api-probe/rollback", vec![], 200),
        ("DELETE", "/api/plugins/api-probe", vec![], 204),
        ("GET", "/api/definitions", vec![], 200),
        ("GET", "/metrics", vec![], 200),
        ("DELETE", "/api/users/frank", vec![], 204),
        ("DELETE", "/api/queues/q", vec![], 200),
        ("DELETE", "/api/exchanges/ex", vec![], 204),
        ("DELETE", "/api/vhosts/extra", vec![], 204),
    ];
    for (method, path, body, right) in steps {
        let content = if path.starts_with("/api/plugins?") {
            "application/wasm"
        } else {
            "application/json"
        };
        let (status, answer) = http_send(&broker, method, path, eve, content, &body);
        assert_eq!(status, 403, "eve: {method} {path}: {answer}");
        let (status, answer) = http_send(&broker, method, path, guest, content, &body);
        assert_eq!(status, right, "guest: {method} {path}: {answer}");
    }
    // And no credentials at all: asked for them.
    assert_eq!(http(&broker, "PUT", "/api/queues/q", None).0, 401);
}
