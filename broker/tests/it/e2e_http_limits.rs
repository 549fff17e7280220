//! What HTTP clients may hold of the broker (issue 27), through the
//! binary: plugin uploads refused before their body is read.

use crate::support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::{Broker, basic_authorization};

/// Starts a plugin upload of `length` bytes and sends only `sent` of them.
fn start_upload(
    address: SocketAddr,
    credentials: (&str, &str),
    length: usize,
    sent: &[u8],
) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let head = format!(
        "POST /api/plugins HTTP/1.1\r\nHost: {address}\r\n{}\
         Content-Type: application/wasm\r\nContent-Length: {length}\r\n\r\n",
        basic_authorization(credentials)
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The broker may refuse, and close, before all of it is written.
    let _ = stream.write_all(sent);
    stream
}

/// The response (head and body), if it comes within `limit`; else what
/// came.
fn response_head(stream: &mut TcpStream, limit: Duration) -> Result<String, String> {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = (head.lines())
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")?
                        .trim()
                        .parse()
                        .ok()
                })
                .unwrap_or(0);
            if body.len() >= length {
                return Ok(text);
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) => return Err(format!("closed after {text:?}")),
            Ok(n) => got.extend_from_slice(&buffer[..n]),
            Err(e) => return Err(format!("{e} after {text:?}")),
        }
    }
}

#[test]
fn a_non_administrators_upload_is_refused_before_its_body_is_read() {
    let broker = Broker::start();
    let address = broker.http.unwrap();
    support::add_user(&broker, "eve", "eve-secret", "/", [".*", ".*", ".*"]);
    let eve = ("eve", "eve-secret");

    // 64 MiB announced, 8 bytes sent: the refusal comes at once.
    let mut upload = start_upload(address, eve, 64 << 20, b"\0asm\x0d\0\x01\0");
    let head = response_head(&mut upload, Duration::from_secs(20)).unwrap();
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");

    // 24 unfinished uploads of 16 MiB each sent: the broker buffers none.
    let before = broker.rss_anon_kib();
    let piece = vec![7u8; 16 << 20];
    let uploads: Vec<TcpStream> = (0..24)
        .map(|_| start_upload(address, eve, 64 << 20, &piece))
        .collect();
    let after = broker.rss_anon_kib();
    assert!(
        after < before + 64 * 1024,
        "24 refused uploads grew the broker's heap from {before} to {after} KiB"
    );
    drop(uploads);
}

#[test]
fn an_upload_past_the_budget_or_the_size_limit_is_refused_before_its_body() {
    let temp = tempfile::tempdir().unwrap();
    let broker = Broker::start_in(temp.path(), &["--set", "limits.max_upload_bytes=1048576"]);
    let address = broker.http.unwrap();
    let guest = ("guest", "guest");
    let mut upload = start_upload(address, guest, 2 << 20, b"\0asm");
    let answer = response_head(&mut upload, Duration::from_secs(20)).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("limits.max_upload_bytes"),
        "{answer}"
    );

    let mut upload = start_upload(address, guest, (64 << 20) + 1, b"\0asm");
    let head = response_head(&mut upload, Duration::from_secs(20)).unwrap();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
}
