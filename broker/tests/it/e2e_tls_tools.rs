//! `switchyard tls ca` and `tls cert`: a broker serving a certificate
//! issued by an operator's CA is verified by clients trusting that CA, and
//! refused by clients trusting another; existing files are never
//! overwritten.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use support::Broker;

fn switchyard(args: &[&str]) -> Output {
    Command::new(support::BIN)
        .args(args)
        .output()
        .expect("running the switchyard CLI")
}

/// Runs `switchyard args` that must succeed; its stdout.
fn switchyard_ok(args: &[&str]) -> String {
    let out = switchyard(args);
    assert!(
        out.status.success(),
        "switchyard {args:?} failed: {}",
        support::stderr(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_broker_certificate_from_tls_cert_is_verified_with_its_ca_and_no_other() {
    let temp = tempfile::tempdir().unwrap();
    let (ca_dir, cert_dir) = (temp.path().join("ca"), temp.path().join("certs"));
    let other_ca_dir = temp.path().join("other-ca");
    let data_dir = temp.path().join("data");

    let out = switchyard_ok(&["tls", "ca", "--out", text(&ca_dir)]);
    let (ca_pem, ca_key) = (ca_dir.join("ca.pem"), ca_dir.join("ca.key"));
    assert!(
        out.contains(text(&ca_pem)) && out.contains(text(&ca_key)),
        "{out}"
    );
    assert_eq!(mode(&ca_key), 0o600);

    let out = switchyard_ok(&[
        "tls",
        "cert",
        "broker-a",
        "--ca",
        text(&ca_dir),
        "--host",
        "127.0.0.1",
        "--host",
        "localhost",
        "--out",
        text(&cert_dir),
    ]);
    let (cert, key) = (cert_dir.join("broker-a.pem"), cert_dir.join("broker-a.key"));
    assert_eq!(mode(&key), 0o600);
    let hint = format!(
        "--set tls.cert={} --set tls.key={}",
        text(&cert),
        text(&key)
    );
    assert!(out.contains(&hint), "{out}");
    assert!(out.contains(&format!("--ca {}", text(&ca_pem))), "{out}");

    let broker = Broker::start_in(
        &data_dir,
        &[
            "--set",
            &format!("tls.cert={}", text(&cert)),
            "--set",
            &format!("tls.key={}", text(&key)),
        ],
    );
    // The configured certificate is served: no development CA is made.
    assert!(!data_dir.join("tls/ca.pem").exists());

    let url = broker.guest_url();
    let trusted = |args: &[&str]| {
        let args = [args, &["--ca", text(&ca_pem)]].concat();
        let out = broker.cli_as(&url, &args);
        assert!(
            out.status.success(),
            "switchyard {args:?} failed: {}",
            support::stderr(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    trusted(&["declare", "queue", "q"]);
    let queues = trusted(&["list", "queues"]);
    assert!(
        queues
            .lines()
            .any(|l| l.split_whitespace().next() == Some("q")),
        "{queues}"
    );

    // A client trusting another CA stops at the handshake.
    switchyard_ok(&["tls", "ca", "--out", text(&other_ca_dir)]);
    let other_ca = other_ca_dir.join("ca.pem");
    let out = broker.cli_as(&url, &["list", "queues", "--ca", text(&other_ca)]);
    assert!(!out.status.success());
    let stderr = support::stderr(&out);
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
}

#[test]
fn tls_ca_and_tls_cert_refuse_to_overwrite_and_name_what_is_wrong() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let existing_key = dir.join("ca.key");
    std::fs::write(&existing_key, "an operator's key\n").unwrap();

    let out = switchyard(&["tls", "ca", "--out", text(dir)]);
    assert!(!out.status.success());
    let stderr = support::stderr(&out);
    assert!(stderr.contains(text(&existing_key)), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&existing_key).unwrap(),
        "an operator's key\n"
    );
    assert!(!dir.join("ca.pem").exists());

    // No CA in the --ca directory: the missing file is named.
    let certs = dir.join("certs");
    let cert = |name: &str, ca: &Path| {
        switchyard(&[
            "tls",
            "cert",
            name,
            "--ca",
            text(ca),
            "--host",
            "localhost",
            "--out",
            text(&certs),
        ])
    };
    let empty = dir.join("empty");
    let out = cert("broker-a", &empty);
    assert!(!out.status.success());
    let stderr = support::stderr(&out);
    assert!(stderr.contains(text(&empty.join("ca.pem"))), "{stderr}");

    // A second certificate of the same name is refused; the first stays.
    let ca = dir.join("ca");
    switchyard_ok(&["tls", "ca", "--out", text(&ca)]);
    assert!(cert("broker-a", &ca).status.success());
    let first = std::fs::read(certs.join("broker-a.pem")).unwrap();
    let out = cert("broker-a", &ca);
    assert!(!out.status.success());
    let stderr = support::stderr(&out);
    assert!(stderr.contains("broker-a.pem already exists"), "{stderr}");
    assert_eq!(std::fs::read(certs.join("broker-a.pem")).unwrap(), first);

    // --host is required.
    let out = switchyard(&["tls", "cert", "b", "--ca", text(&ca), "--out", text(&certs)]);
    assert!(!out.status.success());
    assert!(support::stderr(&out).contains("--host"));
}
