//! Cross-site requests through the binary (issue 27): a page of another
//! origin, riding on credentials the browser cached, may not change
//! anything — not with the `Origin` it cannot hide, not with a form's
//! content type — and no answer may be framed or sniffed.

use crate::support;

use support::{Broker, http, http_raw};

const GUEST: Option<(&str, &str)> = Some(("guest", "guest"));
const EVIL: &str = "Origin: http://evil.example";
const JSON: &str = "Content-Type: application/json";

fn queues(broker: &Broker) -> String {
    http(broker, "GET", "/api/queues", GUEST).1
}

#[test]
fn changes_from_another_origin_are_refused_and_from_the_brokers_own_accepted() {
    let broker = Broker::start();
    let own = format!("Origin: http://{}", broker.http.unwrap());

    let (status, _, body) = http_raw(
        &broker,
        "PUT",
        "/api/queues/evil",
        GUEST,
        &[EVIL, JSON],
        b"{}",
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("'http://evil.example'"), "{body}");
    assert!(!queues(&broker).contains("\"evil\""));
    // Another port of the same host is another origin; so is `null`.
    let next_port = format!(
        "Origin: http://127.0.0.1:{}",
        broker.http.unwrap().port() + 1
    );
    for origin in [next_port.as_str(), "Origin: null"] {
        let (status, _, body) = http_raw(
            &broker,
            "PUT",
            "/api/queues/evil",
            GUEST,
            &[origin, JSON],
            b"{}",
        );
        assert_eq!(status, 403, "{origin}: {body}");
    }

    // The console's own page, and a client that sends no Origin (the CLI,
    // curl): accepted.
    let (status, _, body) = http_raw(
        &broker,
        "PUT",
        "/api/queues/own",
        GUEST,
        &[own.as_str(), JSON],
        b"{}",
    );
    assert_eq!(status, 204, "{body}");
    let (status, _, body) = http_raw(&broker, "PUT", "/api/queues/plain", GUEST, &[JSON], b"{}");
    assert_eq!(status, 204, "{body}");

    // What the probes sent: purge, activate, upload as text/plain, with
    // and without the foreign Origin.
    let text = "Content-Type: text/plain";
    for (path, body) in [
        ("/api/queues/own/purge", &b""[..]),
        ("/api/plugins/fanout/activate/1.0.0", b""),
        ("/api/plugins?name=evil", b"\0asm"),
    ] {
        let (status, _, answer) = http_raw(&broker, "POST", path, GUEST, &[EVIL, text], body);
        assert_eq!(status, 403, "{path}: {answer}");
        let (status, _, answer) = http_raw(&broker, "POST", path, GUEST, &[text], body);
        assert_eq!(status, 415, "{path}: {answer}");
    }
    let form = "Content-Type: application/x-www-form-urlencoded";
    let (status, _, _) = http_raw(&broker, "DELETE", "/api/queues/own", GUEST, &[form], b"");
    assert_eq!(status, 415);
    // A JSON change takes JSON only.
    let (status, _, body) = http_raw(
        &broker,
        "PUT",
        "/api/queues/xml",
        GUEST,
        &["Content-Type: text/xml"],
        b"{}",
    );
    assert_eq!(status, 415, "{body}");
    // The console's requests: a purge with no body nor type, from its page.
    let (status, _, body) = http_raw(
        &broker,
        "POST",
        "/api/queues/own/purge",
        GUEST,
        &[own.as_str()],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    // Reads from anywhere are answered (a browser keeps them from the page).
    let (status, _, _) = http_raw(&broker, "GET", "/api/queues", GUEST, &[EVIL], b"");
    assert_eq!(status, 200);
    let listed = queues(&broker);
    assert!(
        listed.contains("\"own\"") && listed.contains("\"plain\"") && !listed.contains("\"xml\""),
        "{listed}"
    );
}

#[test]
fn every_answer_forbids_framing_sniffing_and_referrers() {
    let broker = Broker::start();
    let answers = [
        http_raw(&broker, "GET", "/", None, &[], b""),
        http_raw(&broker, "GET", "/console.js", None, &[], b""),
        http_raw(&broker, "GET", "/api/queues", None, &[], b""),
        http_raw(&broker, "GET", "/api/queues", GUEST, &[], b""),
        http_raw(&broker, "GET", "/no/such/page", None, &[], b""),
        http_raw(&broker, "PUT", "/api/queues/q", GUEST, &[EVIL, JSON], b"{}"),
    ];
    for (status, head, _) in answers {
        let head = head.to_ascii_lowercase();
        for header in [
            "x-frame-options: deny",
            "content-security-policy: frame-ancestors 'none'; default-src 'self'",
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
        ] {
            assert!(head.contains(header), "{status}: no {header} in\n{head}");
        }
    }
}
