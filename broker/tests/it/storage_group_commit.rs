//! Group commit through the public API: hundreds of sync appenders, some
//! blocking threads (`wait_durable`) and some async tasks (`durable`), all
//! sharing flushes; each returns once its record is on disk, none is left
//! waiting, and every confirmed record survives a crash-like stop.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use switchyard::storage::{FlushMode, MessageStore, StoreConfig, StoredMessage};

const THREADS: u64 = 64;
const TASKS: u64 = 192;
const EACH: u64 = 40;

fn message(appender: u64, n: u64) -> StoredMessage {
    StoredMessage {
        flags: 1,
        routing_key: Bytes::from(format!("{appender}.{n}")),
        body: Bytes::from(vec![n as u8; 700]),
        ..StoredMessage::default()
    }
}

fn open(dir: &std::path::Path) -> MessageStore {
    let config = StoreConfig {
        checkpoint_interval: Duration::from_secs(3600),
        ..StoreConfig::small(dir)
    };
    MessageStore::open(config).unwrap().0
}

#[test]
fn threads_and_tasks_waiting_for_group_commit_all_return_and_nothing_confirmed_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let q = store.create_queue("q", FlushMode::Sync).unwrap();
    // A wait that is never woken hangs: run the appenders aside and give up
    // on them after a generous while instead of hanging the test run.
    let (done, finished) = mpsc::channel();
    let appenders = {
        let store = store.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap();
            let tasks: Vec<_> = (0..TASKS)
                .map(|t| {
                    let store = store.clone();
                    runtime.spawn(async move {
                        for n in 0..EACH {
                            let appended = store.append(&message(t, n), &[q]).unwrap();
                            store.durable(appended.end).await.unwrap();
                        }
                    })
                })
                .collect();
            std::thread::scope(|scope| {
                for t in TASKS..TASKS + THREADS {
                    let store = &store;
                    scope.spawn(move || {
                        for n in 0..EACH {
                            let appended = store.append_confirmed(&message(t, n), &[q]).unwrap();
                            assert!(appended.needs_sync);
                        }
                    });
                }
            });
            runtime.block_on(async {
                for task in tasks {
                    task.await.unwrap();
                }
            });
            done.send(()).unwrap();
        })
    };
    finished
        .recv_timeout(Duration::from_secs(300))
        .expect("every sync appender returns");
    appenders.join().unwrap();
    let confirmed = (THREADS + TASKS) * EACH;
    let stats = store.storage_stats();
    assert_eq!(stats.appends, confirmed);
    assert!(stats.flushes >= 1);

    Arc::into_inner(store).unwrap().abandon();
    let store = open(dir.path());
    let q = store.queue_id("q").unwrap();
    assert_eq!(store.stats(q).unwrap().ready, confirmed);
    let mut keys: Vec<Bytes> = (0..confirmed)
        .map(|offset| store.read(q, offset).unwrap().routing_key)
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len() as u64, confirmed, "each confirmed record once");
}

#[test]
fn an_async_wait_for_what_is_already_durable_is_ready_at_once_and_one_dropped_early_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let q = store.create_queue("q", FlushMode::Sync).unwrap();
    let first = store.append_confirmed(&message(0, 0), &[q]).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Already on disk: no flush needed.
        store.durable(first.end).await.unwrap();
        // Polled once (registered), then dropped before its flush.
        let second = store.append(&message(0, 1), &[q]).unwrap();
        let mut abandoned = Box::pin(store.durable(second.end));
        let _ = futures::poll!(abandoned.as_mut());
        drop(abandoned);
        let third = store.append(&message(0, 2), &[q]).unwrap();
        store.durable(third.end).await.unwrap();
    });
    store.close().unwrap();
}
