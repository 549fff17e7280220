//! End to end through the real binary: routing by the wasm exchange
//! plugins (direct, topic, fanout, headers), the default exchange,
//! publisher confirms, mandatory returns — driven by the SDK and the CLI.

use crate::support;

use support::{Broker, bodies, drain, queue, stderr};
use switchyard_client::{ExchangeOptions, Field, Message, Value, code};

async fn exchange(channel: &switchyard_client::Channel, name: &str, kind: &str) {
    channel
        .declare_exchange(name, kind, ExchangeOptions::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_exchanges_route_like_their_types_say() {
    let broker = Broker::start();
    let (connection, ch) = broker.channel().await;
    for q in [
        "d-red", "d-blue", "t-all", "t-web", "f-1", "f-2", "h-all", "h-any",
    ] {
        queue(&ch, q).await;
    }
    exchange(&ch, "dx", "direct").await;
    exchange(&ch, "tx", "topic").await;
    exchange(&ch, "fx", "fanout").await;
    exchange(&ch, "hx", "headers").await;
    ch.bind("d-red", "dx", "red", vec![]).await.unwrap();
    ch.bind("d-blue", "dx", "blue", vec![]).await.unwrap();
    ch.bind("t-all", "tx", "logs.#", vec![]).await.unwrap();
    ch.bind("t-web", "tx", "logs.web.*", vec![]).await.unwrap();
    ch.bind("f-1", "fx", "", vec![]).await.unwrap();
    ch.bind("f-2", "fx", "ignored", vec![]).await.unwrap();
    let text = |s: &str| Value::Text(s.into());
    ch.bind(
        "h-all",
        "hx",
        "",
        vec![
            Field::new("x-match", text("all")),
            Field::new("format", text("pdf")),
            Field::new("size", Value::Int(42)),
        ],
    )
    .await
    .unwrap();
    ch.bind(
        "h-any",
        "hx",
        "",
        vec![
            Field::new("x-match", text("any")),
            Field::new("format", text("pdf")),
        ],
    )
    .await
    .unwrap();
    ch.confirm_select().await.unwrap();

    let publish = |x: &'static str, key: &'static str, body: &'static str| {
        let ch = ch.clone();
        async move {
            ch.publish(x, Message::new(key, body))
                .await
                .unwrap()
                .await
                .unwrap()
        }
    };
    publish("dx", "red", "r1").await;
    publish("dx", "blue", "b1").await;
    publish("dx", "green", "nobody").await;
    publish("tx", "logs.web.error", "web-error").await;
    publish("tx", "logs.db", "db").await;
    publish("tx", "logs.web.a.b", "deep").await;
    publish("fx", "anything", "everyone").await;
    for (body, headers) in [
        (
            "both",
            vec![("format", text("pdf")), ("size", Value::Int(42))],
        ),
        ("format-only", vec![("format", text("pdf"))]),
        (
            "wrong-type",
            vec![("format", text("pdf")), ("size", text("42"))],
        ),
    ] {
        let mut m = Message::new("", body);
        for (k, v) in headers {
            m = m.with_header(k, v);
        }
        ch.publish("hx", m).await.unwrap().await.unwrap();
    }

    assert_eq!(bodies(&drain(&ch, "d-red").await), ["r1"]);
    assert_eq!(bodies(&drain(&ch, "d-blue").await), ["b1"]);
    assert_eq!(
        bodies(&drain(&ch, "t-all").await),
        ["web-error", "db", "deep"]
    );
    assert_eq!(bodies(&drain(&ch, "t-web").await), ["web-error"]);
    assert_eq!(bodies(&drain(&ch, "f-1").await), ["everyone"]);
    assert_eq!(bodies(&drain(&ch, "f-2").await), ["everyone"]);
    assert_eq!(bodies(&drain(&ch, "h-all").await), ["both"]);
    assert_eq!(
        bodies(&drain(&ch, "h-any").await),
        ["both", "format-only", "wrong-type"]
    );
    ch.close().await.unwrap();
    connection.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_exchange_routes_by_queue_name_and_messages_keep_their_metadata() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    queue(&ch, "inbox").await;
    ch.confirm_select().await.unwrap();
    let mut message = Message::new("inbox", "hi")
        .persistent()
        .with_header("n", Value::Int(7))
        .with_header("tags", Value::TextList(vec!["a".into(), "b".into()]));
    message.properties.message_id = Some("m-1".into());
    message.properties.content_type = Some("text/plain".into());
    ch.publish("", message.clone())
        .await
        .unwrap()
        .await
        .unwrap();
    let got = drain(&ch, "inbox").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].exchange, "");
    assert!(!got[0].redelivered);
    assert_eq!(got[0].message, message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_cover_every_publish_single_and_batched() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    queue(&ch, "bulk").await;
    ch.confirm_select().await.unwrap();
    let mut confirmations = Vec::new();
    for i in 0..5_000 {
        confirmations.push(
            ch.publish("", Message::new("bulk", format!("{i}")))
                .await
                .unwrap(),
        );
    }
    for batch in 0..50 {
        let messages = (0..100)
            .map(|i| Message::new("bulk", format!("b{batch}-{i}")))
            .collect();
        confirmations.push(ch.publish_batch("", messages).await.unwrap());
    }
    for confirmation in confirmations {
        confirmation.await.unwrap();
    }
    let info = ch
        .declare_queue(
            "bulk",
            switchyard_client::QueueOptions {
                passive: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(info.messages, 10_000);
    let got = drain(&ch, "bulk").await;
    assert_eq!(got[0].message.body, "0");
    assert_eq!(got[4_999].message.body, "4999");
    assert_eq!(got[5_000].message.body, "b0-0");
    assert_eq!(got.len(), 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_mandatory_messages_come_back_before_their_confirm() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    exchange(&ch, "lonely", "direct").await;
    let mut returns = ch.returns();
    ch.confirm_select().await.unwrap();
    ch.publish("lonely", Message::new("nowhere", "lost?").mandatory())
        .await
        .unwrap()
        .await
        .unwrap();
    // The return precedes the confirm on the stream, so it is already here.
    let returned = returns
        .try_recv()
        .expect("a mandatory unroutable message is returned");
    assert_eq!(returned.code, code::NO_ROUTE);
    assert_eq!(returned.message.body, "lost?");
    assert!(returned.reason.contains("lonely"), "{}", returned.reason);
    // Without mandatory it is dropped silently (and still confirmed).
    ch.publish("lonely", Message::new("nowhere", "dropped"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(returns.try_recv().is_err());
}

#[test]
fn the_cli_declares_binds_publishes_and_consumes() {
    let broker = Broker::start();
    broker.cli_ok(&[
        "declare",
        "exchange",
        "events",
        "--type",
        "topic",
        "--durable",
    ]);
    assert_eq!(
        broker
            .cli_ok(&["declare", "queue", "audit", "--durable"])
            .trim(),
        "audit"
    );
    broker.cli_ok(&["bind", "audit", "events", "--key", "user.*"]);
    broker.cli_ok(&[
        "publish",
        "--exchange",
        "events",
        "--routing-key",
        "user.login",
        "--confirm",
        "--persistent",
        "--header",
        "source=web",
        "alice logged in",
    ]);
    broker.cli_ok(&[
        "publish",
        "--exchange",
        "events",
        "--routing-key",
        "user.logout",
        "--count",
        "20",
        "--size",
        "64",
        "--confirm",
    ]);
    broker.cli_ok(&[
        "publish",
        "--exchange",
        "events",
        "--routing-key",
        "order.new",
        "--confirm",
        "ignored",
    ]);

    let queues = broker.cli_ok(&["list", "queues"]);
    let audit = queues
        .lines()
        .find(|l| l.starts_with("audit"))
        .expect(&queues);
    assert_eq!(audit.split_whitespace().nth(1), Some("21"), "{queues}");
    let bindings = broker.cli_ok(&["list", "bindings", "--json"]);
    assert!(bindings.contains(r#""key":"user.*""#), "{bindings}");
    let plugins = broker.cli_ok(&["list", "plugins"]);
    for name in ["direct", "topic", "fanout", "headers"] {
        assert!(plugins.lines().any(|l| l.starts_with(name)), "{plugins}");
    }

    let first = broker.cli_ok(&[
        "consume", "--queue", "audit", "--count", "1", "--format", "json",
    ]);
    let json: serde_json::Value = serde_json::from_str(first.trim()).unwrap();
    assert_eq!(json["body"], "alice logged in");
    assert_eq!(json["routing_key"], "user.login");
    assert_eq!(json["exchange"], "events");
    assert_eq!(json["headers"]["source"], "web");
    let rest = broker.cli_ok(&["consume", "--queue", "audit", "--count", "20"]);
    assert_eq!(rest.lines().count(), 20);
    assert!(rest.lines().all(|l| l.len() == 64));
    let get = broker.cli(&["get", "--queue", "audit"]);
    assert!(get.status.success());
    assert!(
        stderr(&get).contains("queue 'audit' is empty"),
        "{}",
        stderr(&get)
    );
}

#[test]
fn the_cli_reports_unroutable_mandatory_messages_and_bad_input_in_one_line() {
    let broker = Broker::start();
    broker.cli_ok(&["declare", "exchange", "x", "--type", "direct"]);
    let out = broker.cli(&[
        "publish",
        "--exchange",
        "x",
        "--routing-key",
        "none",
        "--mandatory",
        "hello",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("returned unroutable"),
        "{}",
        stderr(&out)
    );

    let out = broker.cli(&["declare", "exchange", "y", "--type", "no-such-plugin"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("exchange type 'no-such-plugin' is not a loaded plugin"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let out = broker.cli(&["declare", "queue", "q", "--arg", "flush=sometimes"]);
    assert!(
        stderr(&out).contains("'flush' must be 'async' or 'sync'"),
        "{}",
        stderr(&out)
    );
    let out = broker.cli(&[
        "publish",
        "--exchange",
        "missing",
        "--routing-key",
        "k",
        "--confirm",
        "x",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no exchange 'missing'"),
        "{}",
        stderr(&out)
    );
}
