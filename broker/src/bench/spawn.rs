//! `--spawn`: a broker of this same binary on a temporary data dir and a
//! free loopback port, stopped (and its data removed) when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use switchyard_client::Trust;

pub struct SpawnedBroker {
    child: Child,
    /// Its HTTP listener (metrics), on a free port.
    pub http: Option<std::net::SocketAddr>,
    pub url: String,
    pub trust: Trust,
    _dir: tempfile::TempDir,
}

impl SpawnedBroker {
    pub fn start() -> Result<SpawnedBroker, String> {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-bench-")
            .tempdir()
            .map_err(|e| format!("creating a temporary data dir: {e}"))?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting a broker: {e}"))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let addr = crate::server::listening_address(&line)
            .ok_or_else(|| format!("the spawned broker did not start: {line:?}"))?
            .to_string();
        let http = crate::server::http_address(&line).and_then(|a| a.parse().ok());
        let trust =
            Trust::ca_file(&dir.path().join(crate::server::DEV_CA)).map_err(|e| e.to_string())?;
        Ok(SpawnedBroker {
            child,
            http,
            url: format!("switchyard://guest:guest@{addr}/"),
            trust,
            _dir: dir,
        })
    }
}

impl SpawnedBroker {
    /// A memory figure of the broker from /proc/<pid>/status, KiB:
    /// `VmRSS`, `RssAnon` (its own memory) or `RssFile` (mapped log and
    /// index pages, which the kernel reclaims under pressure).
    pub fn memory_kib(&self, field: &str) -> Result<u64, String> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("{path}: no {field} line"))
    }
}

impl Drop for SpawnedBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
