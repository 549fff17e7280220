//! End to end through the real binary (issue 27, item 4): connections that
//! never log in hold little, and the handshake phase has bounded places.
//!
//! The attackers come from 127.0.0.2 to 127.0.0.5 and the real client from
//! 127.0.0.1, so the per-address limits are those of a few sources among
//! others, as on a real network.

use crate::support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use support::{Broker, eventually, eventually_async};
use switchyard_client::{ConnectOptions, Connection};
use switchyard_protocol::HANDSHAKE_MAX_FRAME;

const MIB: u64 = 1024;

fn source(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// Writes `budget` bytes of `bytes` over and over to `send`, or until the
/// stream fails.
async fn push(send: &mut quinn::SendStream, bytes: &[u8], mut budget: usize) {
    while budget > 0 {
        let piece = &bytes[..bytes.len().min(budget)];
        if send.write_all(piece).await.is_err() {
            return;
        }
        budget -= piece.len();
    }
}

#[derive(Default)]
struct Attack {
    stop: AtomicBool,
    /// Connections that finished TLS.
    connected: AtomicUsize,
    /// Streams past the handshake stream that the broker let open.
    extra_streams: AtomicUsize,
    /// Attackers whose connection the broker has closed at least once.
    closed_once: AtomicUsize,
    /// Why their connections ended, and how often.
    reasons: std::sync::Mutex<std::collections::BTreeMap<String, usize>>,
}

/// One attacker: connects, declares a `Hello` it never finishes on the
/// handshake stream, opens more streams and pushes on them as fast as it
/// can, until the broker closes the connection; then again.
async fn attacker(broker: Arc<Broker>, local: IpAddr, attack: Arc<Attack>) {
    let junk = vec![0x5a; 64 << 10];
    let mut closed_before = false;
    while !attack.stop.load(Ordering::Relaxed) {
        let Ok((_endpoint, connection)) = support::raw::tls_only(&broker, local).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        attack.connected.fetch_add(1, Ordering::Relaxed);
        let (mut send, _recv) = connection.open_bi().await.unwrap();
        let handshake = tokio::spawn(async move {
            // A Hello of the largest size, one byte short.
            if send
                .write_all(&HANDSHAKE_MAX_FRAME.to_le_bytes())
                .await
                .is_ok()
            {
                push(&mut send, &[0; 4096], HANDSHAKE_MAX_FRAME as usize - 1).await;
            }
            // Kept open: a finished stream would end the handshake.
            std::future::pending::<()>().await;
        });
        let mut pushers = vec![handshake];
        for _ in 0..8 {
            tokio::select! {
                opened = connection.open_bi() => {
                    let Ok((mut send, _recv)) = opened else { break };
                    attack.extra_streams.fetch_add(1, Ordering::Relaxed);
                    let junk = junk.clone();
                    pushers.push(tokio::spawn(async move {
                        let _keep = _recv;
                        push(&mut send, &junk, usize::MAX).await
                    }));
                }
                _ = connection.closed() => break,
            }
        }
        let reason = connection.closed().await.to_string();
        *attack.reasons.lock().unwrap().entry(reason).or_default() += 1;
        if !closed_before {
            closed_before = true;
            attack.closed_once.fetch_add(1, Ordering::Relaxed);
        }
        for pusher in pushers {
            pusher.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_log_in_hold_little_and_let_a_real_client_in() {
    const ATTACKERS: usize = 40;
    const BOUND_KIB: u64 = 256 * MIB;
    let broker = Arc::new(Broker::start());
    {
        let (_c, ch) = broker.channel().await;
        support::queue(&ch, "work").await;
    }
    let idle = broker.rss_anon_kib();
    let mut peak = idle;
    let mut sample = |broker: &Broker| {
        peak = peak.max(broker.rss_anon_kib());
        // Fail as soon as the bound is crossed: the old broker went on to
        // gigabytes.
        assert!(
            peak - idle < BOUND_KIB,
            "RssAnon went from {} MiB to {} MiB under {ATTACKERS} unauthenticated connections",
            idle / MIB,
            peak / MIB
        );
    };

    let attack = Arc::new(Attack::default());
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|i| {
            let local = source(2 + (i % 4) as u8);
            tokio::spawn(attacker(broker.clone(), local, attack.clone()))
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(60), || {
            sample(&broker);
            attack.connected.load(Ordering::Relaxed) >= ATTACKERS
        })
        .await,
        "the attackers did not all finish TLS"
    );

    // Meanwhile a real client connects, publishes and consumes.
    support::a_real_client_is_served(&broker, || sample(&broker)).await;

    // Until the handshake deadline has closed every attacker's connection
    // once: the attack ran its whole course.
    let all_closed = eventually(Duration::from_secs(120), || {
        sample(&broker);
        attack.closed_once.load(Ordering::Relaxed) >= ATTACKERS
    })
    .await;
    attack.stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        attacker.abort();
    }
    println!(
        "{ATTACKERS} unauthenticated connections pushing on extra streams: RssAnon {} MiB idle, \
         peak {} MiB (+{} MiB, bound +{} MiB)",
        idle / MIB,
        peak / MIB,
        (peak - idle) / MIB,
        BOUND_KIB / MIB
    );
    println!(
        "their connections ended: {:?}",
        attack.reasons.lock().unwrap()
    );
    assert!(
        all_closed,
        "the broker did not close every unauthenticated connection"
    );
    assert_eq!(
        attack.extra_streams.load(Ordering::Relaxed),
        0,
        "streams past the handshake stream opened before login"
    );
}

/// Starts a broker with `config` as its config file, logging to a file.
fn broker_logging(config: &str) -> (Broker, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("broker.log");
    let broker = Broker::start_logging(
        &dir.path().join("data"),
        &["--config", path.to_str().unwrap()],
        Some(&log),
    );
    (broker, dir, log)
}

fn refused(result: Result<(quinn::Endpoint, quinn::Connection), quinn::ConnectionError>) -> bool {
    match result {
        Err(e) => e.to_string().contains("refused"),
        Ok(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_phase_has_bounded_places_per_address_and_in_all() {
    let (broker, _dir, log) = broker_logging(
        "[limits]\n\
         max_handshakes = 3\n\
         max_handshakes_per_address = 2\n\
         max_connections_per_address = 2\n\
         handshake_timeout_ms = 120000\n",
    );
    let logged = |key: &str| {
        let key = format!("(limits.{key} in the broker's configuration)");
        let log = log.clone();
        move || std::fs::read_to_string(&log).is_ok_and(|text| text.contains(&key))
    };

    // Two places for 127.0.0.2, then it is turned away.
    let a1 = support::raw::tls_only(&broker, source(2)).await.unwrap();
    let _a2 = support::raw::tls_only(&broker, source(2)).await.unwrap();
    assert!(refused(support::raw::tls_only(&broker, source(2)).await));
    assert!(
        eventually(
            Duration::from_secs(10),
            logged("max_handshakes_per_address")
        )
        .await
    );
    // One more for 127.0.0.3: the handshake phase is full.
    let _b1 = support::raw::tls_only(&broker, source(3)).await.unwrap();
    assert!(refused(support::raw::tls_only(&broker, source(3)).await));
    assert!(eventually(Duration::from_secs(10), logged("max_handshakes")).await);
    // The real client too, until a place comes free.
    let options = || ConnectOptions::new(broker.trust());
    let url = broker.guest_url();
    let turned_away = Connection::connect(&url, options()).await;
    assert!(
        turned_away
            .as_ref()
            .is_err_and(|e| e.to_string().contains("refused")),
        "{:?}",
        turned_away.map(|_| ())
    );
    drop(a1);
    let first = Arc::new(tokio::sync::Mutex::new(None));
    assert!(
        eventually_async(Duration::from_secs(30), || {
            let attempt = Connection::connect(&url, options());
            let first = first.clone();
            async move {
                let mut first = first.lock().await;
                *first = attempt.await.ok();
                first.is_some()
            }
        })
        .await,
        "a freed place lets the real client in"
    );
    // Logged in, it has left the handshake phase but still counts against
    // its address: one more connection from 127.0.0.1, and no third.
    let _second = Connection::connect(&url, options()).await.unwrap();
    let third = Connection::connect(&url, options()).await;
    assert!(
        third
            .as_ref()
            .is_err_and(|e| e.to_string().contains("refused")),
        "{:?}",
        third.map(|_| ())
    );
    assert!(
        eventually(
            Duration::from_secs(10),
            logged("max_connections_per_address")
        )
        .await
    );
}
