#![allow(clippy::expect_used, clippy::unwrap_used)]
//! The `to11-control-plane` binary as operators run it: settings from `TO11_*` (or flags).

use std::process::Command;

#[test]
fn control_plane_binary_reports_every_missing_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_to11-control-plane"))
        .env_remove("TO11_ADMIN_TOKEN")
        .env("TO11_MASTER_KEY", "short")
        .env("TO11_PROBE_TIMEOUT_MS", "soon")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "TO11_ADMIN_TOKEN",
        "TO11_MASTER_KEY",
        "TO11_PROBE_TIMEOUT_MS",
    ] {
        assert!(err.contains(want), "{want} not reported in: {err}");
    }
}

#[test]
fn control_plane_binary_takes_flags_that_mirror_variables() {
    let out = Command::new(env!("CARGO_BIN_EXE_to11-control-plane"))
        .env_remove("TO11_ADMIN_TOKEN")
        .env_remove("TO11_MASTER_KEY")
        .args([
            "--admin-token",
            "a-long-enough-operator-token",
            "--probe-timeout-ms=later",
            "stray",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unexpected argument \"stray\""), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_to11-control-plane"))
        .env_remove("TO11_ADMIN_TOKEN")
        .env_remove("TO11_MASTER_KEY")
        .args([
            "--admin-token",
            "a-long-enough-operator-token",
            "--probe-timeout-ms=later",
        ])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TO11_PROBE_TIMEOUT_MS") && err.contains("TO11_MASTER_KEY"),
        "{err}"
    );
    assert!(!err.contains("TO11_ADMIN_TOKEN"), "{err}");
}
