#![allow(clippy::expect_used, clippy::unwrap_used)]
//! The Kubernetes manifests under `deploy/kubernetes/`: every one valid against the Kubernetes
//! API schemas (`kubernetes-validate`, pinned in `tests/kubernetes/requirements.txt`, installed
//! from PyPI into `target/kubernetes-venv` on first run; it carries the schemas and works
//! offline), strictly (no unknown field), for the oldest and the newest version supported; a
//! broken manifest is refused (the check can fail); and the numbers that must agree do: the
//! gateway's termination grace period covers its preStop, drain grace, drain timeout and
//! actix-web's close, as docker-compose.yml's stop grace period does; Redis keeps an AOF.

use std::path::{Path, PathBuf};
use std::process::Command;

const VERSIONS: [&str; 2] = ["1.28.0", "1.37.0"];

fn manifests() -> Vec<PathBuf> {
    let dir = to11_tests::repo_root().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "manifests: {files:?}");
    files
}

/// `kubernetes-validate --strict` on `files`: whether all passed, and what it said.
fn validate(bin: &Path, version: &str, files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(bin.join("kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", version])
        .args(files)
        .output()
        .expect("kubernetes-validate runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_manifest_is_valid_and_a_broken_one_is_refused() {
    let bin = to11_tests::venv("kubernetes-venv", "tests/kubernetes/requirements.txt");
    let files = manifests();
    for version in VERSIONS {
        let (ok, text) = validate(&bin, version, &files);
        assert!(ok, "invalid against {version}:\n{text}");
        for f in &files {
            assert!(
                text.contains(&*f.to_string_lossy()),
                "{} not checked:\n{text}",
                f.display()
            );
        }
    }
    // The check can fail: a gateway whose grace period is not a number, or with a field the
    // schema does not know, is refused.
    let gateway =
        std::fs::read_to_string(to11_tests::repo_root().join("deploy/kubernetes/gateway.yaml"))
            .expect("gateway.yaml");
    let dir = std::env::temp_dir().join(format!("to11-k8s-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (name, broken) in [
        (
            "type.yaml",
            gateway.replace(
                "terminationGracePeriodSeconds: 75",
                "terminationGracePeriodSeconds: 75s",
            ),
        ),
        (
            "unknown.yaml",
            gateway.replace(
                "terminationGracePeriodSeconds: 75",
                "terminationGracePeriodSeconds: 75\n      drainSeconds: 60",
            ),
        ),
    ] {
        assert_ne!(broken, gateway);
        let path = dir.join(name);
        std::fs::write(&path, broken).expect("write");
        let (ok, text) = validate(&bin, VERSIONS[1], &[path]);
        assert!(!ok, "{name} passed:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The number after `key` (e.g. `TO11_DRAIN_GRACE_MS, value: "`) in `text`.
fn number_after(text: &str, key: &str) -> u64 {
    let rest = &text[text.find(key).unwrap_or_else(|| panic!("no {key}")) + key.len()..];
    rest.chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {key}"))
}

#[test]
fn the_drain_fits_the_grace_periods_and_redis_is_durable() {
    let root = to11_tests::repo_root();
    let gateway =
        std::fs::read_to_string(root.join("deploy/kubernetes/gateway.yaml")).expect("gateway");
    let grace_ms = number_after(&gateway, "name: TO11_DRAIN_GRACE_MS");
    let drain_ms = number_after(&gateway, "name: TO11_DRAIN_TIMEOUT_MS");
    let pre_stop = number_after(&gateway, r#"command: ["sleep", ""#);
    let period = number_after(&gateway, "terminationGracePeriodSeconds:");
    let close = to11_data_plane::drain::SHUTDOWN_MARGIN.as_secs();
    assert!(
        pre_stop * 1000 + grace_ms + drain_ms + close * 1000 <= period * 1000,
        "preStop {pre_stop} s + grace {grace_ms} ms + drain {drain_ms} ms + close {close} s > terminationGracePeriodSeconds {period}"
    );
    for probe in ["path: /readyz", "path: /healthz"] {
        assert!(gateway.contains(probe), "gateway probes {probe}");
    }
    let compose = std::fs::read_to_string(root.join("docker-compose.yml")).expect("compose");
    let c_grace = number_after(&compose, "TO11_DRAIN_GRACE_MS:");
    let c_drain = number_after(&compose, "TO11_DRAIN_TIMEOUT_MS:");
    let c_stop = number_after(&compose, "stop_grace_period:");
    assert_eq!(
        (c_grace, c_drain),
        (grace_ms, drain_ms),
        "compose drains as Kubernetes does"
    );
    assert!(
        c_grace + c_drain + close * 1000 <= c_stop * 1000,
        "compose's stop_grace_period"
    );
    let redis = std::fs::read_to_string(root.join("deploy/kubernetes/redis.yaml")).expect("redis");
    assert!(redis.contains(r#""--appendonly", "yes""#), "AOF on");
    assert!(
        redis.contains(r#""--appendfsync", "everysec""#),
        "fsync policy"
    );
    assert!(
        redis.contains("volumeClaimTemplates"),
        "on a persistent volume"
    );
}
