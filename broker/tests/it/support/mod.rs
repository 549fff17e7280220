//! Shared set-up for the end-to-end tests: the real `switchyard` binary
//! started on a free loopback port with a temporary data dir, driven by the
//! CLI (as a child process) and by the client SDK.

#![allow(dead_code)]

pub mod cells;
pub mod raw;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use switchyard_client::{
    Channel, ConnectOptions, Connection, Delivery, Error, QueueOptions, Trust,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// A broker process; killed when dropped.
pub struct Broker {
    child: Child,
    pub addr: SocketAddr,
    /// The HTTP listener's address (a free port), unless turned off.
    pub http: Option<SocketAddr>,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Broker {
    /// Starts a broker on a fresh temporary data dir.
    pub fn start() -> Broker {
        let temp = tempfile::tempdir().unwrap();
        let mut broker = Broker::start_in(temp.path(), &[]);
        broker._temp = Some(temp);
        broker
    }

    /// Starts a broker on `data_dir` with extra `serve` arguments.
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Broker {
        Broker::start_logging(data_dir, extra, None)
    }

    /// Like `start_in`; the broker's log (stderr) goes to `log` if given.
    pub fn start_logging(data_dir: &Path, extra: &[&str], log: Option<&Path>) -> Broker {
        Broker::spawn(data_dir, extra, log, None)
    }

    /// Like `start_in`, in a process that may open at most `files` files
    /// (soft and hard `RLIMIT_NOFILE`).
    pub fn start_with_file_limit(data_dir: &Path, extra: &[&str], files: u64) -> Broker {
        Broker::spawn(data_dir, extra, None, Some(files))
    }

    fn spawn(data_dir: &Path, extra: &[&str], log: Option<&Path>, files: Option<u64>) -> Broker {
        use std::os::unix::process::CommandExt;
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let mut command = Command::new(BIN);
        if let Some(files) = files {
            let limit = libc::rlimit {
                rlim_cur: files,
                rlim_max: files,
            };
            // SAFETY: setrlimit is async-signal-safe; nothing else runs
            // between fork and exec.
            unsafe {
                command.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                });
            }
        }
        let mut child = command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--idle-timeout-ms",
                "5000",
                // Brokers of tests run side by side: no fixed HTTP port.
                "--http-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(extra)
            .env("SWITCHYARD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting switchyard serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = switchyard::server::listening_address(&line)
            .unwrap_or_else(|| panic!("unexpected first line from serve: {line:?}"))
            .parse()
            .unwrap();
        let http = switchyard::server::http_address(&line).and_then(|a| a.parse().ok());
        Broker {
            child,
            addr,
            http,
            data_dir: data_dir.to_path_buf(),
            _temp: None,
        }
    }

    pub fn url(&self, user: &str, password: &str, vhost: &str) -> String {
        let vhost = if vhost == "/" {
            String::new()
        } else {
            vhost.to_string()
        };
        format!("switchyard://{user}:{password}@{}/{vhost}", self.addr)
    }

    pub fn guest_url(&self) -> String {
        self.url("guest", "guest", "/")
    }

    pub fn trust(&self) -> Trust {
        Trust::ca_file(&self.data_dir.join("tls/ca.pem")).unwrap()
    }

    pub async fn connect_as(&self, url: &str) -> Result<Connection, Error> {
        Connection::connect(url, ConnectOptions::new(self.trust())).await
    }

    /// A guest connection and a channel on it.
    pub async fn channel(&self) -> (Connection, Channel) {
        let connection = self.connect_as(&self.guest_url()).await.unwrap();
        let channel = connection.channel().await.unwrap();
        (connection, channel)
    }

    /// Runs a CLI command against this broker as guest.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_as(&self.guest_url(), args)
    }

    pub fn cli_as(&self, url: &str, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("SWITCHYARD_URL", url)
            .env("SWITCHYARD_DATA_DIR", &self.data_dir)
            .output()
            .expect("running the switchyard CLI")
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "switchyard {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The broker's anonymous (heap) resident memory, in KiB.
    pub fn rss_anon_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("RssAnon in /proc/PID/status")
    }

    /// A field of the broker's /proc/PID/status, as a number (`Threads:`).
    pub fn proc_status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
    }

    /// File descriptors the broker holds open now.
    pub fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }

    /// SIGKILL: no shutdown, no final checkpoint.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Adds user `name` and gives it, on `vhost`, the configure, write and
/// read patterns given (through the CLI, as the broker's guest).
pub fn add_user(broker: &Broker, name: &str, password: &str, vhost: &str, rights: [&str; 3]) {
    broker.cli_ok(&["user", "add", name, "--password", password]);
    let [configure, write, read] = rights;
    broker.cli_ok(&[
        "user",
        "permit",
        name,
        "--vhost",
        vhost,
        "--configure",
        configure,
        "--write",
        write,
        "--read",
        read,
    ]);
}

/// Publishes `count` messages to `queue` (bodies 0, 1, …), confirmed.
pub async fn publish_confirmed(channel: &Channel, queue: &str, count: usize) {
    channel.confirm_select().await.unwrap();
    let batch = (0..count)
        .map(|i| switchyard_client::Message::new(queue, i.to_string()))
        .collect();
    channel
        .publish_batch("", batch)
        .await
        .unwrap()
        .await
        .unwrap();
}

/// Declares a plain transient queue.
pub async fn queue(channel: &Channel, name: &str) {
    channel
        .declare_queue(name, QueueOptions::default())
        .await
        .unwrap();
}

/// Options of a durable queue.
pub fn durable() -> QueueOptions {
    QueueOptions {
        durable: true,
        ..QueueOptions::default()
    }
}

/// Fetches every ready message of a queue (acknowledging them).
pub async fn drain(channel: &Channel, queue: &str) -> Vec<Delivery> {
    let mut got = Vec::new();
    while let Some((delivery, _)) = channel.get(queue, false).await.unwrap() {
        delivery.ack().await.unwrap();
        got.push(delivery);
    }
    got
}

/// A consumer that dies holding its unacknowledged deliveries: the acks it
/// sent are processed first (a round trip after them on its channel), then
/// its connection goes away without a word.
pub async fn vanish<T>(connection: Connection, channel: Channel, consumer: T) {
    channel
        .query(switchyard_client::Query::Vhosts)
        .await
        .unwrap();
    drop((consumer, channel, connection));
}

/// An HTTP/1.1 request to the broker's HTTP listener (Basic credentials
/// if given): status and body.
pub fn http(
    broker: &Broker,
    method: &str,
    path: &str,
    credentials: Option<(&str, &str)>,
) -> (u16, String) {
    http_send(broker, method, path, credentials, "application/json", b"")
}

/// Like [`http`], with a body of `content_type`.
pub fn http_send(
    broker: &Broker,
    method: &str,
    path: &str,
    credentials: Option<(&str, &str)>,
    content_type: &str,
    body: &[u8],
) -> (u16, String) {
    let content_type = format!("Content-Type: {content_type}");
    let (status, _, body) = http_raw(broker, method, path, credentials, &[&content_type], body);
    (status, body)
}

/// An HTTP/1.1 request with the extra header lines given
/// (`"Origin: …"`): status, the response's head and its body.
pub fn http_raw(
    broker: &Broker,
    method: &str,
    path: &str,
    credentials: Option<(&str, &str)>,
    headers: &[&str],
    body: &[u8],
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let address = broker.http.expect("the broker's HTTP listener is on");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    if let Some(credentials) = credentials {
        request.push_str(&basic_authorization(credentials));
    }
    for header in headers {
        request.push_str(&format!("{header}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // axum answers small bodies with Content-Length, never chunked.
    (status, head.to_string(), body.to_string())
}

/// The `Authorization: Basic …` header line (with its CRLF) of
/// `(user, password)`.
pub fn basic_authorization((user, password): (&str, &str)) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {token}\r\n")
}

/// `queue`'s row of `list queues --json`, if it exists.
pub fn queue_row(broker: &Broker, queue: &str) -> Option<serde_json::Value> {
    broker
        .cli_ok(&["list", "queues", "--json"])
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|row| row["name"] == queue)
}

/// Bodies as strings.
pub fn bodies(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| String::from_utf8_lossy(&d.message.body).into_owned())
        .collect()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub const SHORT: Duration = Duration::from_millis(300);

/// Like [`eventually`], for a condition that has to await (a request to
/// the broker): polled every 100 ms until it holds or `limit` passes.
pub async fn eventually_async<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        if condition().await {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `condition` (every 100 ms) until it holds or `limit` passes;
/// whether it held.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    condition()
}

/// A real client connects (waiting up to a minute), publishes to queue
/// `work` and gets its message back, while `meanwhile` runs every few
/// milliseconds (an attack test samples the broker's memory with it).
pub async fn a_real_client_is_served(broker: &Broker, mut meanwhile: impl FnMut()) {
    let url = broker.guest_url();
    let trust = broker.trust();
    let client = tokio::spawn(async move {
        let mut options = ConnectOptions::new(trust);
        options.connect_timeout = Duration::from_secs(60);
        let connection = Connection::connect(&url, options).await.unwrap();
        let ch = connection.channel().await.unwrap();
        ch.confirm_select().await.unwrap();
        ch.publish("", switchyard_client::Message::new("work", "still served"))
            .await
            .unwrap()
            .await
            .unwrap();
        let got = drain(&ch, "work").await;
        connection.close().await;
        bodies(&got)
    });
    while !client.is_finished() {
        meanwhile();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(client.await.unwrap(), ["still served"]);
}
