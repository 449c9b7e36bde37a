//! Test programs in other languages (the Python SDK checks, the dashboard's browser test): run to
//! the end off the actix thread, their output printed, and required to succeed and to say
//! `passed` (a line each program prints only when every check passed).

use std::process::Command;

/// Runs `cmd`; panics with its whole output unless it exits 0 and prints `passed`.
pub async fn run_checks(mut cmd: Command, what: &str, passed: &'static str) {
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("{what} could not run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains(passed),
        "{what} failed:\n{stdout}\n{stderr}"
    );
}
