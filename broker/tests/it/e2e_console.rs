//! The web console in a real browser: Debian's headless Chromium driven by
//! playwright-core (broker/http/console/test/console.test.mjs) against a
//! broker of this build — log in, a queue's count and the rate chart
//! following CLI publishes, purge, plugin versions uploaded, activated and
//! rolled back from the page. CI installs Chromium and the npm package
//! (`npm ci` in that folder) before the tests.

use crate::support;

use std::path::Path;
use std::process::Command;

use support::{BIN, Broker, stderr};

#[test]
fn the_console_works_in_a_headless_browser() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("http/console/test");
    assert!(
        tests.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in {} (and install Debian's chromium) before the tests",
        tests.display()
    );
    let broker = Broker::start();
    let http = broker.http.expect("the HTTP listener is on");
    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist/testing/probe.wasm");
    let out = Command::new("node")
        .arg("console.test.mjs")
        .current_dir(&tests)
        .env("CONSOLE_URL", format!("http://{http}/"))
        .env("SWITCHYARD", BIN)
        .env("SWITCHYARD_URL", broker.guest_url())
        .env("SWITCHYARD_CA", broker.data_dir.join("tls/ca.pem"))
        .env("PROBE", probe)
        // README shows it; written where the test runs (not committed by CI).
        .env(
            "SCREENSHOT",
            std::env::temp_dir().join("switchyard-console-overview.png"),
        )
        .output()
        .expect("running node (the browser test)");
    assert!(
        out.status.success(),
        "browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("console test passed"));
}
