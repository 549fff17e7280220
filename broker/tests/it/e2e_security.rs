//! End to end through the real binary: authentication, vhosts,
//! permissions, the loopback-only guest and certificate verification.

use crate::support;

use std::process::Command;
use std::time::Duration;

use support::{BIN, Broker, stderr};
use switchyard_client::{Error, Message, QueueOptions, Trust, code};

fn refusal(result: Result<switchyard_client::Connection, Error>) -> (u16, String) {
    match result {
        Err(Error::Refused { code, reason }) => (code, reason),
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, the connection was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_and_unknown_vhosts_are_refused_with_the_reason() {
    let broker = Broker::start();
    let (code, reason) = refusal(broker.connect_as(&broker.url("guest", "nope", "/")).await);
    assert_eq!(code, code::ACCESS_REFUSED);
    assert!(
        reason.contains("login refused for user 'guest'"),
        "{reason}"
    );
    let (_, reason) = refusal(broker.connect_as(&broker.url("mallory", "x", "/")).await);
    assert!(
        reason.contains("login refused for user 'mallory'"),
        "{reason}"
    );
    let (code, reason) = refusal(
        broker
            .connect_as(&broker.url("guest", "guest", "nowhere"))
            .await,
    );
    assert_eq!(code, code::NOT_ALLOWED);
    assert!(
        reason.contains("vhost 'nowhere' does not exist"),
        "{reason}"
    );

    let out = broker.cli_as(&broker.url("guest", "bad", "/"), &["list", "queues"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("connection refused by the broker: login refused"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_limit_what_a_user_may_configure_write_and_read() {
    let broker = Broker::start();
    broker.cli_ok(&["vhost", "add", "shop"]);
    support::add_user(
        &broker,
        "alice",
        "s3cret",
        "shop",
        ["alice\\..*", "alice\\..*", "alice\\..*"],
    );
    // No access to "/" at all.
    let (code, reason) = refusal(broker.connect_as(&broker.url("alice", "s3cret", "/")).await);
    assert_eq!(code, code::ACCESS_REFUSED);
    assert!(reason.contains("no access to vhost '/'"), "{reason}");

    let connection = broker
        .connect_as(&broker.url("alice", "s3cret", "shop"))
        .await
        .unwrap();
    let ch = connection.channel().await.unwrap();
    ch.declare_queue("alice.inbox", QueueOptions::default())
        .await
        .unwrap();
    let denied = ch
        .declare_queue("bob.inbox", QueueOptions::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Some(code::ACCESS_REFUSED));
    assert!(
        denied.to_string().contains(
            "user 'alice' has no configure permission on queue 'bob.inbox' in vhost 'shop'"
        ),
        "{denied}"
    );
    // Administration needs the administrator tag.
    let denied = ch
        .admin(|req| switchyard_client::Frame::VhostAdd {
            req,
            name: "mine".into(),
        })
        .await
        .unwrap_err();
    assert!(
        denied.to_string().contains("needs the 'administrator' tag"),
        "{denied}"
    );
    // The channel survived the refused requests.
    ch.confirm_select().await.unwrap();
    ch.publish("", Message::new("alice.inbox", "ok"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ch.get("alice.inbox", false).await.unwrap().is_some());

    // Wrong password after a change; the new one works.
    broker.cli_ok(&["user", "passwd", "alice", "--password", "n3w"]);
    refusal(
        broker
            .connect_as(&broker.url("alice", "s3cret", "shop"))
            .await,
    );
    broker
        .connect_as(&broker.url("alice", "n3w", "shop"))
        .await
        .unwrap();
    broker.cli_ok(&["user", "delete", "alice"]);
    refusal(broker.connect_as(&broker.url("alice", "n3w", "shop")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_never_accept_a_certificate_they_cannot_verify() {
    let broker = Broker::start();
    let other_ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let trust = Trust::ca_pem(other_ca.cert.pem().as_bytes()).unwrap();
    let result = switchyard_client::Connection::connect(
        &broker.guest_url(),
        switchyard_client::ConnectOptions::new(trust),
    )
    .await;
    match result {
        Err(Error::Tls(reason)) => assert!(reason.contains("not trusted"), "{reason}"),
        Err(other) => panic!("expected a TLS error, got {other}"),
        Ok(_) => panic!("connected to a broker whose certificate is not trusted"),
    }
    let out = Command::new(BIN)
        .args(["list", "queues", "--data-dir", "/nonexistent"])
        .env("SWITCHYARD_URL", broker.guest_url())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no CA certificate to verify the broker with"),
        "{}",
        stderr(&out)
    );
}

/// In a private network namespace (only a loopback device, with a second,
/// non-loopback address 10.77.0.1 on it) the broker listens on every
/// address of that namespace; guest is refused over 10.77.0.1 and accepted
/// over 127.0.0.1, and another user is accepted over both.
#[test]
fn guest_may_only_connect_from_loopback() {
    let probe = Command::new("unshare").args(["-rn", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        panic!("this test needs unprivileged user and network namespaces (unshare -rn)");
    }
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"set -u
ip link set lo up && ip addr add 10.77.0.1/32 dev lo
export SWITCHYARD_DATA_DIR={dir}
printf '[tls]\nhostnames = ["10.77.0.1"]\n' > {dir}/switchyard.toml
{bin} serve --config {dir}/switchyard.toml --listen 0.0.0.0:0 > {dir}/serve.out 2>&1 &
serve=$!
for i in $(seq 100); do grep -q listening {dir}/serve.out 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*listening on 0.0.0.0:\([0-9]*\).*/\1/p' {dir}/serve.out)
echo "loopback-guest: $({bin} list vhosts --server switchyard://guest:guest@127.0.0.1:$port/ 2>&1 | tr '\n' ' ')"
echo "remote-guest: $({bin} list vhosts --server switchyard://guest:guest@10.77.0.1:$port/ 2>&1 | tr '\n' ' ')"
{bin} user add remote --password pw --server switchyard://guest:guest@127.0.0.1:$port/ 2>/dev/null
{bin} user permit remote --server switchyard://guest:guest@127.0.0.1:$port/ 2>/dev/null
echo "remote-user: $({bin} list vhosts --server switchyard://remote:pw@10.77.0.1:$port/ 2>&1 | tr '\n' ' ')"
kill $serve; wait $serve
"#,
        dir = dir.path().display(),
        bin = BIN
    );
    // A private PID namespace too, with the shell as its init: when the
    // shell ends (or `unshare` is killed, through --kill-child) the kernel
    // kills everything the script started, whatever went wrong in it.
    let out = Command::new("unshare")
        .args([
            "-rn",
            "--pid",
            "--fork",
            "--kill-child",
            "sh",
            "-c",
            &script,
        ])
        .output()
        .unwrap();
    let survivors = processes_mentioning(dir.path());
    assert!(
        survivors.is_empty(),
        "processes outlived the test: {survivors:?}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| {
                panic!(
                    "no '{prefix}' line in {stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .to_string()
    };
    assert!(line("loopback-guest: ").starts_with("name /"), "{stdout}");
    let remote = line("remote-guest: ");
    assert!(
        remote.contains("user 'guest' may only connect from a loopback address"),
        "{remote}"
    );
    assert!(line("remote-user: ").starts_with("name /"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_where_no_broker_listens_fails_in_bounded_time() {
    let broker = Broker::start();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = switchyard_client::ConnectOptions::new(broker.trust());
    options.connect_timeout = std::time::Duration::from_millis(500);
    let url = format!("switchyard://guest:guest@127.0.0.1:{port}/");
    match switchyard_client::Connection::connect(&url, options).await {
        Err(Error::Connect { reason, .. }) => {
            assert!(reason.contains("no answer within"), "{reason}")
        }
        Err(other) => panic!("expected a connect error, got {other}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

/// The command lines of running processes that mention `path`.
fn processes_mentioning(path: &std::path::Path) -> Vec<String> {
    let needle = path.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(&needle))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_closes_a_connection_and_its_deliveries_come_back() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    support::queue(&ch, "held").await;
    ch.publish("", Message::new("held", "m")).await.unwrap();
    support::add_user(&broker, "bob", "bob-secret", "/", [".*", ".*", ".*"]);
    let bob = broker
        .connect_as(&broker.url("bob", "bob-secret", "/"))
        .await
        .unwrap();
    let bob_ch = bob.channel().await.unwrap();
    let (held, _) = bob_ch.get("held", false).await.unwrap().unwrap();
    let rows = broker.cli_ok(&["list", "connections", "--json"]);
    let bob_id = rows
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["user"] == "bob")
        .unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    // Another user may not; the broker's administrator may.
    support::add_user(&broker, "eve", "eve-secret", "/", ["", "", ""]);
    let url = broker.url("eve", "eve-secret", "/");
    let refused = broker.cli_as(&url, &["close", "connection", &bob_id]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("no connection"),
        "{}",
        stderr(&refused)
    );
    broker.cli_ok(&["close", "connection", &bob_id, "--reason", "maintenance"]);
    let ended = support::eventually_async(Duration::from_secs(60), || {
        let bob_ch = bob_ch.clone();
        async move {
            bob_ch
                .query(switchyard_client::Query::Vhosts)
                .await
                .is_err()
        }
    })
    .await;
    assert!(ended, "bob's channel ended");
    let error = bob_ch
        .query(switchyard_client::Query::Vhosts)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("maintenance"), "{error}");
    // Its unacknowledged delivery is back, flagged.
    let back = support::eventually_async(Duration::from_secs(60), || {
        let ch = ch.clone();
        async move {
            let passive = QueueOptions {
                passive: true,
                ..QueueOptions::default()
            };
            ch.declare_queue("held", passive)
                .await
                .is_ok_and(|info| info.messages == 1)
        }
    })
    .await;
    assert!(back);
    let (again, _) = ch.get("held", false).await.unwrap().unwrap();
    assert!(again.redelivered);
    drop(held);
}
