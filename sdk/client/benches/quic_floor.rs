//! The floor under any Switchyard broker on this machine: messages
//! published in batches over QUIC to a relay that does nothing but decode
//! each `PublishBatch` and send its messages on as a `DeliverBatch` to each
//! consumer, with the same transport as the broker and the client
//! (quinn, TLS 1.3 with AES-GCM, the tuned windows and UDP buffers, the
//! frame reader and writer). No storage, no routing, no acks, no confirms:
//! what end-to-end rate the two QUIC hops alone allow when the relay's two
//! worker threads and the clients' share the machine, as `switchyard bench`
//! and the broker do. docs/BENCHMARKS.md compares it with the broker.
//!
//! `cargo bench -p switchyard-client --bench quic_floor`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchyard_protocol::{BatchedDelivery, Frame, Message};
use switchyard_transport::{FrameReader, FrameWriter, bind_endpoint, tune_transport};

/// One way of loading the relay, after a scenario of `switchyard bench --suite`.
struct Workload {
    name: &'static str,
    size: usize,
    batch: usize,
    messages: u64,
    /// Each receives every message (fan-out).
    consumers: u8,
    /// [`FRAMES`] or [`BYTES`] (one consumer only).
    mode: u8,
}

const WORKLOADS: [Workload; 5] = [
    Workload {
        name: "1KiB-batch100",
        size: 1024,
        batch: 100,
        messages: 200_000,
        consumers: 1,
        mode: FRAMES,
    },
    Workload {
        name: "1KiB-batch100-bytes-only",
        size: 1024,
        batch: 100,
        messages: 200_000,
        consumers: 1,
        mode: BYTES,
    },
    Workload {
        name: "64B-batch100",
        size: 64,
        batch: 100,
        messages: 1_000_000,
        consumers: 1,
        mode: FRAMES,
    },
    Workload {
        name: "16KiB-batch10",
        size: 16 << 10,
        batch: 10,
        messages: 20_000,
        consumers: 1,
        mode: FRAMES,
    },
    Workload {
        name: "1KiB-batch100-fanout-to-10",
        size: 1024,
        batch: 100,
        messages: 50_000,
        consumers: 10,
        mode: FRAMES,
    },
];

const MAX_FRAME: u32 = 16 << 20;
/// What the relay does with the stream (the publisher's first byte says;
/// its second, how many consumers connect).
const FRAMES: u8 = 0;
const BYTES: u8 = 1;

fn transport() -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    tune_transport(&mut transport);
    Arc::new(transport)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The relay (the broker's stand-in): its own runtime, its own endpoint.
struct Relay {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    /// Its self-signed certificate, which the clients trust.
    ca_pem: String,
}

impl Relay {
    fn start() -> Relay {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ca = certified.cert.der().clone();
        let ca_pem = certified.cert.pem();
        let key =
            rustls_pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ca], key)
            .unwrap();
        tls.alpn_protocols = vec![switchyard_protocol::ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
        server.transport_config(transport());
        let runtime = runtime();
        let endpoint = runtime
            .block_on(async { bind_endpoint("127.0.0.1:0".parse().unwrap(), Some(server)) })
            .unwrap();
        let addr = endpoint.local_addr().unwrap();
        runtime.spawn(relay(endpoint));
        Relay {
            runtime,
            addr,
            ca_pem,
        }
    }
}

/// Takes connections as they come: a publisher (whose preamble says how
/// many consumers follow), then its consumers; relays each group.
async fn relay(endpoint: quinn::Endpoint) {
    loop {
        let Some(publisher) = endpoint.accept().await else {
            return;
        };
        let publisher = publisher.await.unwrap();
        let (_, mut recv) = publisher.accept_bi().await.unwrap();
        let mut preamble = [0; 2];
        recv.read_exact(&mut preamble).await.unwrap();
        let [mode, consumers] = preamble;
        let mut connections = Vec::new();
        let mut sends = Vec::new();
        for _ in 0..consumers {
            let consumer = endpoint.accept().await.unwrap().await.unwrap();
            let (send, mut hello) = consumer.accept_bi().await.unwrap();
            hello.read_exact(&mut [0]).await.unwrap();
            connections.push(consumer);
            sends.push(send);
        }
        tokio::spawn(async move {
            match mode {
                FRAMES => relay_frames(recv, sends).await,
                _ => relay_bytes(recv, sends.pop().unwrap()).await,
            }
            // Dropping a connection would discard what is still unsent:
            // each consumer closes its own once it has everything.
            for consumer in connections {
                consumer.closed().await;
            }
            drop(publisher);
        });
    }
}

/// Decodes every frame and sends its messages on in a new frame to each
/// consumer, as the broker does (but for storing and routing them).
async fn relay_frames(recv: quinn::RecvStream, sends: Vec<quinn::SendStream>) {
    let mut reader = FrameReader::new(recv, MAX_FRAME);
    let mut writers: Vec<_> = sends
        .into_iter()
        .map(|send| FrameWriter::new(send, MAX_FRAME))
        .collect();
    let mut delivery_tag = 1;
    while let Ok(Some(frame)) = reader.next().await {
        relay_one(frame, &mut writers, &mut delivery_tag);
        // Whatever else has arrived goes out in the same write.
        while !writers[0].is_full() {
            match reader.try_next() {
                Ok(Some(frame)) => relay_one(frame, &mut writers, &mut delivery_tag),
                _ => break,
            }
        }
        for writer in &mut writers {
            writer.flush().await.unwrap();
        }
    }
    for mut writer in writers {
        writer.finish().await.unwrap();
    }
}

/// Passes the stream's bytes on untouched, chunk by chunk, without a copy:
/// the QUIC hops and nothing else.
async fn relay_bytes(mut recv: quinn::RecvStream, mut send: quinn::SendStream) {
    while let Some(chunk) = recv.read_chunk(1 << 20, true).await.unwrap() {
        send.write_chunk(chunk.bytes).await.unwrap();
    }
    send.finish().unwrap();
}

/// Turns a `PublishBatch` into a `DeliverBatch` for each consumer (the
/// bodies are not copied: all the frames share the reader's buffer).
fn relay_one(frame: Frame, writers: &mut [FrameWriter], delivery_tag: &mut u64) {
    let Frame::PublishBatch {
        exchange, messages, ..
    } = frame
    else {
        return;
    };
    let deliver = Frame::DeliverBatch {
        tag: "c".into(),
        first_delivery_tag: *delivery_tag,
        deliveries: messages
            .iter()
            .map(|message| BatchedDelivery {
                redelivered: false,
                exchange: exchange.clone(),
                message: message.clone(),
            })
            .collect(),
    };
    for writer in writers {
        writer.push(&deliver).unwrap();
    }
    *delivery_tag += messages.len() as u64;
}

/// Publishes the workload's messages and waits until every consumer has
/// all of them; the time from the first publish to the last delivery.
async fn one_run(addr: SocketAddr, client: quinn::ClientConfig, work: &Workload) -> Duration {
    let mut endpoint = bind_endpoint("127.0.0.1:0".parse().unwrap(), None).unwrap();
    endpoint.set_default_client_config(client);
    let publisher = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
    let (mut send, _recv) = publisher.open_bi().await.unwrap();
    send.write_all(&[work.mode, work.consumers]).await.unwrap();
    let mut writer = FrameWriter::new(send, MAX_FRAME);
    let mut consumers = Vec::new();
    for _ in 0..work.consumers {
        let consumer = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
        let (mut hello, recv) = consumer.open_bi().await.unwrap();
        hello.write_all(&[0]).await.unwrap();
        consumers.push((consumer, hello, recv));
    }
    let started = Instant::now();
    let (mode, messages) = (work.mode, work.messages);
    let consuming: Vec<_> = consumers
        .into_iter()
        .map(|(consumer, hello, recv)| {
            tokio::spawn(async move {
                match mode {
                    FRAMES => {
                        let mut reader = FrameReader::new(recv, MAX_FRAME);
                        let mut received = 0;
                        while received < messages {
                            match reader.next().await.unwrap() {
                                Some(Frame::DeliverBatch { deliveries, .. }) => {
                                    received += deliveries.len() as u64
                                }
                                other => panic!("unexpected {other:?}"),
                            }
                        }
                    }
                    // The stream ends after the last message.
                    _ => {
                        let mut recv = recv;
                        while recv.read_chunk(1 << 20, true).await.unwrap().is_some() {}
                    }
                }
                drop(hello);
                consumer
            })
        })
        .collect();
    let body = Bytes::from(vec![0xab; work.size]);
    let mut seq = 1;
    while seq <= work.messages {
        let frame = Frame::PublishBatch {
            first_seq: seq,
            exchange: "x".into(),
            messages: (0..work.batch)
                .map(|_| Message::new("orders.eu", body.clone()))
                .collect(),
        };
        writer.push(&frame).unwrap();
        seq += work.batch as u64;
        if writer.is_full() {
            writer.flush().await.unwrap();
        }
    }
    writer.finish().await.unwrap();
    let mut connections = Vec::new();
    for consuming in consuming {
        connections.push(consuming.await.unwrap());
    }
    let took = started.elapsed();
    for consumer in connections {
        consumer.close(0u32.into(), b"");
    }
    publisher.close(0u32.into(), b"");
    endpoint.wait_idle().await;
    took
}

fn relayed(c: &mut Criterion) {
    let relay = Relay::start();
    // The client's own TLS configuration, trusting the relay's certificate.
    let mut client = switchyard_client::Trust::ca_pem(relay.ca_pem.as_bytes())
        .unwrap()
        .client_config()
        .unwrap();
    client.transport_config(transport());
    let clients = runtime();
    let mut group = c.benchmark_group("quic-floor");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    for work in &WORKLOADS {
        // Deliveries: every consumer receives every message.
        group.throughput(Throughput::Elements(work.messages * work.consumers as u64));
        group.bench_function(work.name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| clients.block_on(one_run(relay.addr, client.clone(), work)))
                    .sum()
            })
        });
    }
    group.finish();
    drop(relay.runtime);
}

criterion_group!(benches, relayed);
criterion_main!(benches);
