//! The command line end to end (issue 10): `consume --count` takes only
//! what it shows, listings are readable (times, queue arguments), `publish`
//! sets message properties and refuses a missing body, `declare queue
//! --exclusive`, and logs written to a file carry no colour codes.

use crate::support;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{BIN, Broker, bodies, drain, queue, queue_row, stderr};
use switchyard_client::{Channel, Message};

/// Publishes `{queue}-0` … `{queue}-{n-1}` to `queue`, confirmed.
async fn fill(ch: &Channel, queue: &str, n: usize) {
    ch.confirm_select().await.unwrap();
    let messages = (0..n)
        .map(|i| Message::new(queue, format!("{queue}-{i}")))
        .collect();
    ch.publish_batch("", messages).await.unwrap().await.unwrap();
}

fn expected_bodies(queue: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{queue}-{i}")).collect()
}

/// Consumes the rest of `queue` and checks that none of it was handed out
/// before: the CLI took exactly what it printed.
async fn assert_rest_untouched(
    broker: &Broker,
    ch: &Channel,
    queue: &str,
    rest: std::ops::Range<usize>,
) {
    let row = queue_row(broker, queue).unwrap();
    let rest_deliveries = drain(ch, queue).await;
    assert_eq!(
        bodies(&rest_deliveries),
        expected_bodies(queue, rest.clone())
    );
    let redelivered: Vec<_> = rest_deliveries
        .iter()
        .filter(|d| d.redelivered)
        .map(|d| String::from_utf8_lossy(&d.message.body).into_owned())
        .collect();
    assert!(
        redelivered.is_empty(),
        "flagged redelivered: {redelivered:?}"
    );
    // A wrong figure here (with the messages above right) would be the
    // storage `ready` double count, which is fixed separately.
    assert_eq!(row["ready"], rest.len(), "{row}");
    assert_eq!(row["unacked"], 0, "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_with_a_count_takes_only_the_messages_it_prints() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    queue(&ch, "orders").await;
    fill(&ch, "orders", 10).await;

    let shown = broker.cli_ok(&["consume", "--queue", "orders", "--count", "3"]);
    assert_eq!(
        shown.lines().collect::<Vec<_>>(),
        expected_bodies("orders", 0..3)
    );
    // A prefetch below the count: the early acks must not pull in extras either.
    let shown = broker.cli_ok(&[
        "consume",
        "--queue",
        "orders",
        "--count",
        "3",
        "--prefetch",
        "2",
    ]);
    assert_eq!(
        shown.lines().collect::<Vec<_>>(),
        expected_bodies("orders", 3..6)
    );
    assert_rest_untouched(&broker, &ch, "orders", 6..10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_with_a_count_and_auto_ack_loses_nothing_it_did_not_print() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    queue(&ch, "events").await;
    fill(&ch, "events", 10).await;

    let shown = broker.cli_ok(&[
        "consume", "--queue", "events", "--count", "3", "--ack", "auto",
    ]);
    assert_eq!(
        shown.lines().collect::<Vec<_>>(),
        expected_bodies("events", 0..3)
    );
    assert_rest_untouched(&broker, &ch, "events", 3..10).await;
}

/// `2026-11-29T22:57:33Z`
fn is_utc_time(text: &str) -> bool {
    let shape = "dddd-dd-ddTdd:dd:ddZ";
    text.len() == shape.len()
        && text.chars().zip(shape.chars()).all(|(c, s)| match s {
            'd' => c.is_ascii_digit(),
            s => c == s,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_connections_shows_when_each_opened_in_utc() {
    let broker = Broker::start();
    let (_connection, _ch) = broker.channel().await;
    let table = broker.cli_ok(&["list", "connections"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let since = header.iter().position(|h| *h == "since").expect(&table);
    let rows: Vec<&str> = lines.collect();
    assert!(
        rows.len() >= 2,
        "the SDK's connection and the CLI's own: {table}"
    );
    for row in rows {
        // The client name ("switchyard-cli list") has a space: count from the end.
        let cells: Vec<&str> = row.split_whitespace().collect();
        let cell = cells[cells.len() - (header.len() - since)];
        assert!(is_utc_time(cell), "since = {cell:?} in {table}");
    }
    // Scripts keep the number.
    let json = broker.cli_ok(&["list", "connections", "--json"]);
    let row: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert!(row["since"].is_u64(), "{row}");
}

#[test]
fn list_queues_shows_each_queues_arguments() {
    let broker = Broker::start();
    broker.cli_ok(&[
        "declare",
        "queue",
        "limited",
        "--arg",
        "message-ttl=60000",
        "--arg",
        "max-length=5",
        "--arg",
        "overflow=reject-publish",
        "--arg",
        "dead-letter-exchange=dlx",
    ]);
    broker.cli_ok(&["declare", "queue", "plain"]);
    let row = queue_row(&broker, "limited").unwrap();
    assert_eq!(
        row["arguments"],
        "message-ttl=60000,max-length=5,overflow=reject-publish,dead-letter-exchange=dlx",
        "{row}"
    );
    assert_eq!(queue_row(&broker, "plain").unwrap()["arguments"], "");
    let table = broker.cli_ok(&["list", "queues"]);
    assert!(
        table.lines().next().unwrap().contains("arguments"),
        "{table}"
    );
    assert!(table.contains("max-length=5"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_sets_message_properties() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    queue(&ch, "props").await;
    broker.cli_ok(&[
        "publish",
        "--routing-key",
        "props",
        "--message-id",
        "order-7",
        "--correlation-id",
        "request-1",
        "--expiration",
        "600000",
        "--priority",
        "5",
        "--header",
        "tenant=acme",
        "one",
    ]);
    let got = drain(&ch, "props").await;
    assert_eq!(bodies(&got), ["one"]);
    let p = &got[0].message.properties;
    assert_eq!(p.message_id.as_deref(), Some("order-7"));
    assert_eq!(p.correlation_id.as_deref(), Some("request-1"));
    assert_eq!(p.expiration, Some(600_000));
    assert_eq!(p.priority, Some(5));
    assert_eq!(got[0].message.headers[0].name, "tenant");

    // Several messages get distinct ids, numbered like their x-seq header.
    broker.cli_ok(&[
        "publish",
        "--routing-key",
        "props",
        "--message-id",
        "batch",
        "--count",
        "3",
        "--size",
        "8",
    ]);
    let ids: Vec<_> = drain(&ch, "props")
        .await
        .into_iter()
        .map(|d| d.message.properties.message_id.unwrap_or_default())
        .collect();
    assert_eq!(ids, ["batch-0", "batch-1", "batch-2"]);
}

#[test]
fn publish_without_a_body_is_refused_not_sent_empty() {
    let broker = Broker::start();
    broker.cli_ok(&["declare", "queue", "bodies"]);
    // The CLI's stdin is empty (not a terminal) here.
    let out = broker.cli(&["publish", "--routing-key", "bodies", "--count", "3"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no message body"), "{err}");
    assert!(err.contains("--size"), "names the ways to give one: {err}");
    assert_eq!(queue_row(&broker, "bodies").unwrap()["ready"], 0);
    // Empty bodies on purpose are still possible.
    broker.cli_ok(&[
        "publish",
        "--routing-key",
        "bodies",
        "--count",
        "2",
        "--size",
        "0",
    ]);
    assert_eq!(queue_row(&broker, "bodies").unwrap()["ready"], 2);
}

#[test]
fn declare_queue_exclusive_lives_as_long_as_the_cli_connection() {
    let broker = Broker::start();
    let out = broker.cli(&["declare", "queue", "scratch", "--exclusive"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("exclusive"), "{}", stderr(&out));
    // The broker deletes it when the CLI's connection ends, which it
    // learns just after the command exits.
    let deadline = Instant::now() + Duration::from_secs(10);
    while queue_row(&broker, "scratch").is_some() {
        assert!(
            Instant::now() < deadline,
            "the exclusive queue outlived its connection"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `switchyard serve` with stderr going to a file; killed when dropped.
struct ServeToFile(Child);

impl Drop for ServeToFile {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn logs_written_to_a_file_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let mut serve = ServeToFile(
        Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http-listen",
                "off",
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .env("SWITCHYARD_LOG", "info")
            .env_remove("NO_COLOR")
            .stdout(Stdio::piped())
            .stderr(File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    // Its first start logs the development CA it generates, before it
    // announces the address on stdout.
    let mut line = String::new();
    BufReader::new(serve.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("switchyard listening on"), "{line:?}");
    drop(serve);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("development CA"), "{log}");
    assert!(!log.contains("\x1b["), "{log:?}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let mut serve = ServeToFile(
        Command::new(BIN)
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .args(["--http-listen", "off", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("SWITCHYARD_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(serve.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    drop(serve);
    let log = std::fs::read_to_string(&log_path).unwrap();
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(
        records
            .iter()
            .any(|r| r["level"] == "INFO" && r["fields"]["message"] == "storage recovered"),
        "{log}"
    );
}

#[test]
fn print_config_shows_the_effective_settings_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        "idle_timeout_ms = 4321\n[storage]\nsegment_bytes = 2097152\n",
    )
    .unwrap();
    let print = |extra: &[&str]| {
        let out = Command::new(BIN)
            .args(["serve", "--print-config", "--config"])
            .arg(&config)
            .args(extra)
            .env("SWITCHYARD_HTTP_LISTEN", "127.0.0.1:9999")
            .env("SWITCHYARD__LIMITS__MAX_CONNECTIONS", "77")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    // The file, a flag and an environment variable, all applied.
    let printed = print(&[
        "--listen",
        "127.0.0.1:7777",
        "--set",
        "storage.flush_interval_ms=150",
    ]);
    for expected in [
        "max_connections = 77",
        "flush_interval_ms = 150",
        "idle_timeout_ms = 4321",
        "segment_bytes = 2097152",
        "listen = \"127.0.0.1:7777\"",
        "listen = \"127.0.0.1:9999\"",
    ] {
        assert!(printed.contains(expected), "{expected} in {printed}");
    }
    // What it prints is a config file the broker reads as the same.
    std::fs::write(&config, &printed).unwrap();
    assert_eq!(print(&[]), printed);
    // Unknown keys are errors naming the key.
    std::fs::write(&config, "idle_timout_ms = 1\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--print-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("idle_timout_ms"), "{}", stderr(&out));
}

#[test]
fn an_unconfirmed_publish_the_broker_refuses_fails_with_its_reason() {
    let broker = Broker::start();
    let out = broker.cli(&[
        "publish",
        "--exchange",
        "nowhere",
        "--routing-key",
        "k",
        "x",
    ]);
    assert!(!out.status.success(), "exited 0: {}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("refused") && said.contains("'nowhere'"),
        "{said}"
    );
    // What the broker accepts still exits 0.
    broker.cli_ok(&["declare", "queue", "kept"]);
    broker.cli_ok(&["publish", "--routing-key", "kept", "x"]);
}

#[test]
fn the_readmes_relative_offsets_and_times_run_as_written() {
    let broker = Broker::start();
    broker.cli_ok(&[
        "declare",
        "queue",
        "events",
        "--durable",
        "--arg",
        "queue-type=stream",
    ]);
    broker.cli_ok(&["publish", "--routing-key", "events", "--confirm", "e1"]);
    // `-10m` is a value of --offset, not a flag.
    let out = broker.cli_ok(&[
        "consume", "--queue", "events", "--offset", "-10m", "--count", "1",
    ]);
    assert!(out.contains("e1"), "{out}");
    broker.cli_ok(&["declare", "queue", "errors", "--durable"]);
    let tomorrow = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + Duration::from_secs(86_400),
    )
    .to_string();
    broker.cli_ok(&[
        "publish",
        "--routing-key",
        "errors",
        "--deliver-at",
        &tomorrow,
        "at a given time",
    ]);
}
