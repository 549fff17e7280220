//! End to end through the real binary (issue 27, item 5): logged-in
//! channels that each send a large frame one byte short cannot pin the
//! broker's memory, and such a frame ends its channel when it stalls.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::{Broker, eventually};
use switchyard_protocol::{DEFAULT_MAX_FRAME, Frame, VERSION, code};
use switchyard_transport::FrameReader;

const MIB: u64 = 1024;

/// Small budgets and a short frame timeout, so the test is quick; the
/// defaults are 512 MiB, 64 MiB and 60 s.
const CONFIG: &str = "[limits]\n\
    max_unfinished_frame_bytes = 33554432\n\
    max_unfinished_frame_bytes_per_connection = 8388608\n\
    frame_timeout_ms = 3000\n";

/// Starts a broker whose config file holds `config`.
fn broker_with(config: &str) -> (Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, config).unwrap();
    let broker = Broker::start_in(
        &dir.path().join("data"),
        &["--config", path.to_str().unwrap()],
    );
    (broker, dir)
}

/// On a new channel: the prefix of a `max_frame` frame and all of it but
/// its last byte. Returns the broker's answer on the channel.
async fn stall_a_frame(connection: quinn::Connection, written: Arc<AtomicUsize>) -> Option<Frame> {
    let (mut send, recv) = connection.open_bi().await.unwrap();
    let writer = tokio::spawn(async move {
        let len = DEFAULT_MAX_FRAME as usize;
        send.write_all(&(len as u32).to_le_bytes()).await?;
        let piece = vec![0x5a; 64 << 10];
        let mut left = len - 1;
        while left > 0 {
            let n = left.min(piece.len());
            send.write_all(&piece[..n]).await?;
            written.fetch_add(n, Ordering::Relaxed);
            left -= n;
        }
        // Kept open: the frame is neither finished nor abandoned.
        Ok::<_, quinn::WriteError>(send)
    });
    let answer = FrameReader::new(recv, 1 << 20).next().await.ok().flatten();
    writer.abort();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_frames_one_byte_short_cannot_pin_memory_and_time_out() {
    const CONNECTIONS: usize = 2;
    const CHANNELS: usize = 32;
    const BOUND_KIB: u64 = 256 * MIB;
    let (broker, _dir) = broker_with(CONFIG);
    {
        let (_c, ch) = broker.channel().await;
        support::queue(&ch, "work").await;
    }
    let idle = broker.rss_anon_kib();
    let mut peak = idle;
    let mut sample = |broker: &Broker| {
        peak = peak.max(broker.rss_anon_kib());
        // Fail as soon as the bound is crossed: the old broker kept every
        // frame (512 MiB here).
        assert!(
            peak - idle < BOUND_KIB,
            "RssAnon went from {} MiB to {} MiB under {} stalled frames",
            idle / MIB,
            peak / MIB,
            CONNECTIONS * CHANNELS
        );
    };

    let written = Arc::new(AtomicUsize::new(0));
    let mut raws = Vec::new();
    let mut stalled = Vec::new();
    for _ in 0..CONNECTIONS {
        let raw = support::raw::connect(&broker, VERSION, DEFAULT_MAX_FRAME).await;
        for _ in 0..CHANNELS {
            stalled.push(tokio::spawn(stall_a_frame(
                raw.connection.clone(),
                written.clone(),
            )));
        }
        raws.push(raw);
    }
    // The attack is under way: more written than the broker's budgets
    // alone take (the rest waits in QUIC's windows and send buffers).
    assert!(
        eventually(Duration::from_secs(60), || {
            sample(&broker);
            written.load(Ordering::Relaxed) >= 40 << 20
        })
        .await,
        "the attackers did not get going"
    );

    // Meanwhile a real client publishes and consumes.
    support::a_real_client_is_served(&broker, || sample(&broker)).await;

    // Every stalled frame's channel is closed, naming the limit.
    let all_closed = eventually(Duration::from_secs(120), || {
        sample(&broker);
        stalled.iter().all(|s| s.is_finished())
    })
    .await;
    println!(
        "{} channels with a frame one byte short: RssAnon {} MiB idle, peak {} MiB \
         (+{} MiB, bound +{} MiB)",
        CONNECTIONS * CHANNELS,
        idle / MIB,
        peak / MIB,
        (peak - idle) / MIB,
        BOUND_KIB / MIB
    );
    assert!(all_closed, "stalled frames kept their channels open");
    for channel in stalled {
        match channel.await.unwrap() {
            Some(Frame::Close { code: c, reason }) => {
                assert_eq!(c, code::FRAME_ERROR, "{reason}");
                assert!(reason.contains("limits.frame_timeout_ms"), "{reason}");
            }
            other => panic!("expected Close, got {other:?}"),
        }
    }
}
