//! The broker core without sockets: a message whose bytes were damaged on
//! disk (before the checkpoint, so found only when read) is reported,
//! counted, dead-lettered as a `corrupt` notice and skipped; consumers go on
//! with the next message and it never comes back.

use crate::core;

use core::*;
use switchyard_protocol::Value;

/// Flips one byte of the first occurrence of `needle` in the log.
fn damage_on_disk(dir: &std::path::Path, needle: &[u8]) {
    for entry in std::fs::read_dir(dir.join("store/log")).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            bytes[at + 3] ^= 0x5a;
            std::fs::write(&path, bytes).unwrap();
            return;
        }
    }
    panic!("{needle:?} is not in the log");
}

#[test]
fn a_corrupt_message_is_skipped_reported_and_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        declare_queue(&broker, "dead", &[]);
        declare_fanout(&broker, "dlx", "dead");
        declare_queue(&broker, "q", &[("dead-letter-exchange", "dlx")]);
        for body in ["first", "poisoned-by-a-bad-disk", "third"] {
            publish(&broker, "q", body);
        }
        // A clean close checkpoints past the records: recovery does not
        // scan them, the damage is met when the message is read.
    }
    damage_on_disk(dir.path(), b"poisoned-by-a-bad-disk");

    let broker = open(dir.path());
    assert_eq!(drain(&broker, "q"), ["first", "third"]);
    let q = vhost(&broker).queue("q").unwrap();
    assert_eq!(q.corrupt_skipped(), 1);
    let s = stats(&broker, "q");
    assert_eq!((s.ready, s.unacked), (0, 0), "nothing left stuck in flight");

    let notice = deliver(&broker, "dead").expect("a corrupt notice");
    let header = |name: &str| switchyard_protocol::find(&notice.message.headers, name).cloned();
    assert_eq!(
        header("x-death-reason"),
        Some(Value::Text("corrupt".into()))
    );
    assert_eq!(header("x-death-queue"), Some(Value::Text("q".into())));
    assert!(
        matches!(header("x-corrupt-location"), Some(Value::Text(t)) if t.contains("checksum")),
        "{:?}",
        header("x-corrupt-location")
    );
    drop(broker);

    // Settled for good: it does not come back after a restart.
    let broker = open(dir.path());
    assert!(deliver(&broker, "q").is_none());
}
