//! Storage engine throughput: appends of 1 KiB records (async, and sync with
//! group commit at 1, 16 and 256 concurrent appenders, as threads and as
//! tasks), reads, and recovery
//! (log replay) speed. Also prints anonymous resident memory against backlog
//! size.
//!
//! `cargo bench -p switchyard --bench storage`

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use switchyard::storage::{FlushMode, MessageStore, StoreConfig, StoredMessage};

fn record() -> StoredMessage {
    StoredMessage {
        flags: 1,
        publish_ms: 1,
        routing_key: Bytes::from_static(b"orders.eu.created"),
        attributes: Bytes::from_static(b""),
        body: Bytes::from(vec![0xab; 1024]),
        ..StoredMessage::default()
    }
}

fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        segment_size: 256 << 20,
        ..StoreConfig::new(dir)
    }
}

fn rss_anon_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

fn append_async(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage/append-1KiB");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    const BATCH: u64 = 100_000;
    group.throughput(Throughput::Elements(BATCH));
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap().0;
    let queue = store.create_queue("q", FlushMode::Async).unwrap();
    let message = record();
    let mut appended = 0u64;
    let rss_before = rss_anon_kib();
    group.bench_function("async/1-thread", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters * BATCH {
                store.append(&message, &[queue]).unwrap();
            }
            appended += iters * BATCH;
            start.elapsed()
        })
    });
    // A burst that stays within the page cache's dirty limits: the cost of
    // an append itself, without the disk's sustained bandwidth.
    group.bench_function("async/1-thread-burst", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let store = MessageStore::open(config(dir.path())).unwrap().0;
                let queue = store.create_queue("q", FlushMode::Async).unwrap();
                let start = Instant::now();
                for _ in 0..BATCH {
                    store.append(&message, &[queue]).unwrap();
                }
                total += start.elapsed();
            }
            total
        })
    });
    eprintln!(
        "RssAnon: {} KiB before, {} KiB after a backlog of {appended} records ({} MiB)",
        rss_before,
        rss_anon_kib(),
        (appended * 1100) >> 20
    );
    group.finish();
}

/// A fresh store with one sync-flush queue, and how many records each of
/// `appenders` appends per iteration.
fn sync_queue(appenders: usize) -> (tempfile::TempDir, MessageStore, u32, u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap().0;
    let queue = store.create_queue("q", FlushMode::Sync).unwrap();
    let each = (20_000 / appenders).max(200) as u64;
    (dir, store, queue, each)
}

fn append_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage/append-1KiB-sync");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for appenders in [1usize, 16, 256] {
        let (_dir, store, queue, per_thread) = sync_queue(appenders);
        group.throughput(Throughput::Elements(per_thread * appenders as u64));
        let message = record();
        group.bench_function(
            BenchmarkId::new("group-commit", format!("{appenders}-appenders")),
            |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        std::thread::scope(|scope| {
                            for _ in 0..appenders {
                                scope.spawn(|| {
                                    for _ in 0..per_thread {
                                        store.append_confirmed(&message, &[queue]).unwrap();
                                    }
                                });
                            }
                        });
                    }
                    start.elapsed()
                })
            },
        );
    }
    group.finish();
}

/// Group commit as the broker drives it: each appender is a task on a
/// two-worker runtime, and waits for its flush without holding a thread
/// ([`MessageStore::durable`]).
fn append_sync_tasks(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage/append-1KiB-sync-tasks");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    for appenders in [16usize, 256] {
        let (_dir, store, queue, per_task) = sync_queue(appenders);
        let store = std::sync::Arc::new(store);
        group.throughput(Throughput::Elements(per_task * appenders as u64));
        group.bench_function(
            BenchmarkId::new("group-commit", format!("{appenders}-appenders")),
            |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        runtime.block_on(async {
                            let tasks: Vec<_> = (0..appenders)
                                .map(|_| {
                                    let store = store.clone();
                                    tokio::spawn(async move {
                                        let message = record();
                                        for _ in 0..per_task {
                                            let appended =
                                                store.append(&message, &[queue]).unwrap();
                                            store.durable(appended.end).await.unwrap();
                                        }
                                    })
                                })
                                .collect();
                            for task in tasks {
                                task.await.unwrap();
                            }
                        });
                    }
                    start.elapsed()
                })
            },
        );
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage/read-1KiB");
    const COUNT: u64 = 200_000;
    group.throughput(Throughput::Elements(COUNT));
    group.sample_size(10);
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap().0;
    let queue = store.create_queue("q", FlushMode::Async).unwrap();
    for _ in 0..COUNT {
        store.append(&record(), &[queue]).unwrap();
    }
    group.bench_function("sequential", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for offset in 0..COUNT {
                bytes += store.read(queue, offset).unwrap().body.len();
            }
            bytes
        })
    });
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage/recovery");
    const RECORDS: u64 = 200_000;
    let bytes = RECORDS * (1024 + 48 + 4 + 17);
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(10);
    group.bench_function("replay-after-crash", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let config = StoreConfig {
                    checkpoint_interval: Duration::from_secs(3600),
                    ..config(dir.path())
                };
                let store = MessageStore::open(config.clone()).unwrap().0;
                let queue = store.create_queue("q", FlushMode::Async).unwrap();
                for _ in 0..RECORDS {
                    store.append(&record(), &[queue]).unwrap();
                }
                store.abandon();
                let start = Instant::now();
                let (store, report) = MessageStore::open(config).unwrap();
                total += start.elapsed();
                assert_eq!(report.records_replayed, RECORDS);
                drop(store);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    append_async,
    append_sync,
    append_sync_tasks,
    read,
    recovery
);
criterion_main!(benches);
