//! Memory comes back after busy clients die (issue 11, item 7): 20 client
//! processes — publishers and unlimited-prefetch consumers moving 16 KiB
//! messages — are SIGKILLed mid-flight; once the broker has dropped their
//! connections and nothing is queued, its anonymous memory falls back near
//! where it started. It once stayed at ~640 MiB: freed memory kept in the
//! allocator's arenas, never returned.

use crate::support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{BIN, Broker, eventually};

const MIB: u64 = 1024;
const PAIRS: usize = 10;

/// A CLI client of `broker` running in the background; its output is
/// discarded.
fn client(broker: &Broker, args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .env("SWITCHYARD_URL", broker.guest_url())
        .env("SWITCHYARD_DATA_DIR", &broker.data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting a switchyard CLI client")
}

/// Kills the clients when dropped, whatever the test's outcome.
struct Clients(Vec<Child>);

impl Drop for Clients {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `list queues --json`: one object per queue.
fn queues(broker: &Broker) -> Vec<serde_json::Value> {
    broker
        .cli_ok(&["list", "queues", "--json"])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Connections other than this test's own and the listing's.
fn client_connections(broker: &Broker) -> usize {
    broker
        .cli_ok(&["list", "connections", "--json"])
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|c| {
            let client = c["client"].as_str().unwrap_or("");
            client.starts_with("switchyard-cli ") && client != "switchyard-cli list"
        })
        .count()
}

fn publisher(broker: &Broker, queue: &str, count: &str) -> Child {
    client(
        broker,
        &[
            "publish",
            "--routing-key",
            queue,
            "--count",
            count,
            "--size",
            "16384",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_comes_back_after_killed_clients() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    for i in 0..PAIRS {
        support::queue(&ch, &format!("churn-{i}")).await;
    }
    let idle = broker.rss_anon_kib();

    // Round one: publishers of 2,000 x 16 KiB each, and consumers taking
    // everything they can (no prefetch limit); the consumers are killed
    // once the publishers are done, with deliveries in flight.
    let names: Vec<String> = (0..PAIRS).map(|i| format!("churn-{i}")).collect();
    let mut consumers = Clients(Vec::new());
    let mut publishers = Clients(Vec::new());
    for queue in &names {
        consumers.0.push(client(
            &broker,
            &["consume", "--queue", queue, "--prefetch", "0"],
        ));
        publishers.0.push(publisher(&broker, queue, "2000"));
    }
    let mut peak = 0;
    let published = eventually(Duration::from_secs(300), || {
        peak = peak.max(broker.rss_anon_kib());
        publishers
            .0
            .iter_mut()
            .all(|p| p.try_wait().unwrap().is_some())
    })
    .await;
    assert!(published, "the publishers did not finish within 300 s");
    drop(consumers);

    // Round two: publishers that never stop, killed once every queue holds
    // a backlog of theirs.
    let mut publishers = Clients(Vec::new());
    for queue in &names {
        publishers.0.push(publisher(&broker, queue, "100000000"));
    }
    let backlog = eventually(Duration::from_secs(120), || {
        peak = peak.max(broker.rss_anon_kib());
        let queues = queues(&broker);
        queues.len() == PAIRS && queues.iter().all(|q| q["ready"].as_u64() > Some(100))
    })
    .await;
    assert!(
        backlog,
        "the second publishers built no backlog within 120 s"
    );
    drop(publishers);

    // The broker notices the dead connections (idle timeout), their
    // unacknowledged messages return; then nothing stays queued.
    let gone = eventually(Duration::from_secs(60), || client_connections(&broker) == 0).await;
    assert!(
        gone,
        "the killed clients' connections were never dropped:\n{}",
        broker.cli_ok(&["list", "connections"])
    );
    for queue in &names {
        ch.purge_queue(queue).await.unwrap();
    }

    let bound = idle + 64 * MIB;
    let fell_back = eventually(Duration::from_secs(60), || broker.rss_anon_kib() <= bound).await;
    let after = broker.rss_anon_kib();
    println!(
        "{} killed clients: broker RssAnon {} MiB idle, {} MiB busy, {} MiB after (bound {} MiB)",
        2 * PAIRS,
        idle / MIB,
        peak / MIB,
        after / MIB,
        bound / MIB
    );
    assert!(
        fell_back,
        "RssAnon stayed at {} MiB after the clients died and the queues were emptied \
         (idle {} MiB, bound {} MiB)",
        after / MIB,
        idle / MIB,
        bound / MIB
    );
}
