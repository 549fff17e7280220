//! The HTTP listener over TLS (`--http-tls`): the broker's certificate,
//! verified by a real client (curl) against the broker's CA; plain HTTP
//! and unverified clients get nothing.

use crate::support;

use std::process::Command;

use support::Broker;

/// `curl` against the broker's HTTPS listener: exit code, HTTP status
/// (0 when no response), body.
fn curl(broker: &Broker, path: &str, extra: &[&str]) -> (i32, u16, String) {
    let address = broker.http.expect("the HTTP listener is on");
    let output = Command::new("curl")
        .args([
            "--silent",
            "--max-time",
            "60",
            "--write-out",
            "\n%{http_code}",
        ])
        .args(extra)
        .arg(format!("https://{address}{path}"))
        .output()
        .expect("curl is installed (Debian: apt-get install curl)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        output.status.code().unwrap_or(-1),
        status.trim().parse().unwrap_or(0),
        body.to_string(),
    )
}

#[test]
fn https_serves_the_api_with_the_brokers_certificate_and_refuses_plain_http() {
    let temp = tempfile::tempdir().unwrap();
    let broker = Broker::start_in(temp.path(), &["--http-tls"]);
    broker.cli_ok(&["declare", "queue", "over-tls"]);
    let ca = broker.data_dir.join("tls/ca.pem");
    let ca = ca.to_str().unwrap();

    let (code, status, body) = curl(
        &broker,
        "/api/queues",
        &["--cacert", ca, "--user", "guest:guest"],
    );
    assert_eq!((code, status), (0, 200), "{body}");
    let names: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&body)
        .unwrap()
        .iter()
        .map(|row| row["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"over-tls".to_string()), "{names:?}");

    // The same authentication as plain HTTP.
    let (_, status, _) = curl(
        &broker,
        "/api/queues",
        &["--cacert", ca, "--user", "guest:wrong"],
    );
    assert_eq!(status, 401);

    // A client that does not trust the broker's CA stops at the handshake
    // (curl: 60, peer certificate cannot be authenticated).
    let (code, status, _) = curl(&broker, "/api/overview", &["--user", "guest:guest"]);
    assert_eq!((code, status), (60, 0));

    // Plain HTTP to the TLS port gets no HTTP answer.
    let address = broker.http.unwrap();
    let output = Command::new("curl")
        .args([
            "--silent",
            "--max-time",
            "60",
            "--write-out",
            "%{http_code}",
        ])
        .args(["--user", "guest:guest"])
        .arg(format!("http://{address}/api/overview"))
        .output()
        .unwrap();
    assert_ne!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "000");
}

#[test]
fn print_config_shows_the_http_tls_setting() {
    let temp = tempfile::tempdir().unwrap();
    let output = Command::new(support::BIN)
        .args(["serve", "--print-config", "--http-tls", "--data-dir"])
        .arg(temp.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    let config = String::from_utf8_lossy(&output.stdout);
    assert!(
        config.contains("[http]") && config.contains("tls = true"),
        "{config}"
    );
}
