//! `examples/set-deployment/run.sh` works as documented: it starts CENTER
//! and two SETs with certificates from one CA, and checks that users'
//! messages land in their cells and global ones reach every SET.

use std::process::Command;

#[test]
fn the_set_deployment_example_runs() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/set-deployment/run.sh"
    );
    let output = Command::new("bash")
        .arg(script)
        .arg(crate::support::BIN)
        .output()
        .expect("running the example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("set-b: 5 announcements"), "{stdout}");
}
