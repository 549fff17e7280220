//! What HTTP clients may hold of the broker (issue 27), through the
//! binary: plugin uploads refused before their body is read, a flood of
//! wrong passwords that holds no threads and locks no one out, idle
//! connections closed, and at most `http.max_connections` open at once.

use crate::support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

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

/// One GET with Basic credentials over a fresh connection: the status, or
/// 0 when the connection failed or closed without an answer.
async fn get_status(address: SocketAddr, path: &str, credentials: (&str, &str)) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
        return 0;
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{}\r\n",
        basic_authorization(credentials)
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    (response.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Asks for /api/overview and closes the connection at once: 0.
async fn hang_up(address: SocketAddr, credentials: (&str, &str)) -> u16 {
    use tokio::io::AsyncWriteExt;
    if let Ok(mut stream) = tokio::net::TcpStream::connect(address).await {
        let request = format!(
            "GET /api/overview HTTP/1.1\r\nHost: {address}\r\n{}\r\n",
            basic_authorization(credentials)
        );
        let _ = stream.write_all(request.as_bytes()).await;
    }
    0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_wrong_passwords_holds_no_threads_and_locks_no_one_out() {
    let broker = Broker::start();
    let address = broker.http.unwrap();
    support::add_user(&broker, "ann", "ann-secret", "/", ["", "", ".*"]);
    let idle_threads = broker.proc_status("Threads:");
    // 600 logins at once, each under a name of its own (a loopback
    // address is throttled per name only): every one costs an argon2
    // check. Every other client hangs up as soon as it has asked: its
    // check, once begun, still holds its turn.
    let flood: Vec<_> = (0..600)
        .map(|i| {
            let user = format!("flood-{i}");
            tokio::spawn(async move {
                match i % 2 {
                    0 => get_status(address, "/api/overview", (&user, "wrong")).await,
                    _ => hang_up(address, (&user, "wrong")).await,
                }
            })
        })
        .collect();
    // Ann still gets in (retrying while the broker says it is busy).
    let started = Instant::now();
    let ann = tokio::spawn(async move {
        loop {
            let status = get_status(address, "/api/overview", ("ann", "ann-secret")).await;
            if status == 200 || started.elapsed() > Duration::from_secs(120) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut most_threads = idle_threads;
    while !ann.is_finished() || flood.iter().any(|f| !f.is_finished()) {
        most_threads = most_threads.max(broker.proc_status("Threads:"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ann.await.unwrap(), 200, "ann locked out");
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for f in flood {
        *statuses.entry(f.await.unwrap()).or_default() += 1;
    }
    assert!(
        statuses.keys().all(|s| [0, 401, 503].contains(s)),
        "{statuses:?}"
    );
    // Waiting logins are futures: a thread each only while checked.
    assert!(
        most_threads < idle_threads + 64,
        "the broker went from {idle_threads} to {most_threads} threads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_that_waits_too_long_for_its_turn_is_answered_503() {
    let temp = tempfile::tempdir().unwrap();
    let broker = Broker::start_in(temp.path(), &["--set", "http.login_wait_ms=1"]);
    let address = broker.http.unwrap();
    let logins: Vec<_> = (0..64)
        .map(|i| {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
                let request = format!(
                    "GET /api/overview HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{}\r\n",
                    basic_authorization((&format!("many-{i}"), "wrong"))
                );
                stream.write_all(request.as_bytes()).await.unwrap();
                let mut response = String::new();
                stream.read_to_string(&mut response).await.unwrap();
                response
            })
        })
        .collect();
    let mut busy = None;
    for login in logins {
        let response = login.await.unwrap();
        if response.starts_with("HTTP/1.1 503") {
            busy = Some(response);
        }
    }
    let busy = busy.expect("64 logins at once, 4 checked at a time, none waited past 1 ms");
    assert!(busy.contains("http.login_wait_ms"), "{busy}");
}

/// Reads until the broker closes `stream`; fails if it has not within a
/// minute.
fn closed_by_the_broker(stream: &mut TcpStream) -> Result<Duration, String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => Ok(started.elapsed()),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(started.elapsed()),
        Err(e) => Err(format!("{e}, still open after {:?}", started.elapsed())),
    }
}

#[test]
fn idle_connections_are_closed_after_the_request_head_timeout() {
    let temp = tempfile::tempdir().unwrap();
    let broker = Broker::start_in(temp.path(), &["--set", "http.request_head_timeout_ms=300"]);
    let address = broker.http.unwrap();
    // Silent from the start.
    let mut silent = TcpStream::connect(address).unwrap();
    closed_by_the_broker(&mut silent).unwrap();
    // Kept alive after one answer, then silent.
    let mut kept = TcpStream::connect(address).unwrap();
    write!(kept, "GET /console.css HTTP/1.1\r\nHost: {address}\r\n\r\n").unwrap();
    let head = response_head(&mut kept, Duration::from_secs(20)).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    closed_by_the_broker(&mut kept).unwrap();
    // Trickling its head, a byte every 50 ms: cut off too.
    let mut slow = TcpStream::connect(address).unwrap();
    let started = Instant::now();
    let cut_off = std::thread::spawn(move || {
        for byte in b"GET / HTTP/1.1\r\nX-Slow: ".iter().cycle() {
            if slow.write_all(&[*byte]).is_err() {
                return true;
            }
            if started.elapsed() > Duration::from_secs(60) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        unreachable!()
    });
    assert!(
        cut_off.join().unwrap(),
        "a trickling head kept for a minute"
    );

    // Over TLS: a client that never starts its handshake.
    let temp = tempfile::tempdir().unwrap();
    let tls = Broker::start_in(
        temp.path(),
        &["--http-tls", "--set", "http.request_head_timeout_ms=300"],
    );
    let mut silent = TcpStream::connect(tls.http.unwrap()).unwrap();
    closed_by_the_broker(&mut silent).unwrap();
}

/// One GET with Basic credentials over a fresh connection, blocking: the
/// status, or 0 when the connection failed or closed without an answer.
fn try_get(address: SocketAddr, path: &str, credentials: (&str, &str)) -> u16 {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return 0;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{}\r\n",
        basic_authorization(credentials)
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    (response.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn connections_past_the_limit_are_refused_and_hold_no_descriptors() {
    let temp = tempfile::tempdir().unwrap();
    let broker = Broker::start_in(
        temp.path(),
        &[
            "--set",
            "http.max_connections=4",
            "--set",
            "http.request_head_timeout_ms=600000",
        ],
    );
    let address = broker.http.unwrap();
    let files = broker.open_files();
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    // Accepted in order: every further connection is told and closed.
    for _ in 0..50 {
        let mut refused = TcpStream::connect(address).unwrap();
        let head = response_head(&mut refused, Duration::from_secs(20)).unwrap();
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        closed_by_the_broker(&mut refused).unwrap();
    }
    let open = broker.open_files();
    assert!(
        open <= files + 4 + 8,
        "the broker held {files} files, then {open} with 4 HTTP connections"
    );
    // A slot freed is a slot taken.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = try_get(address, "/api/overview", ("guest", "guest"));
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no slot came free: {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(held);
}
