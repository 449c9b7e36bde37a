#![allow(clippy::expect_used, clippy::unwrap_used)]
//! The README's settings table is the truth: every setting it lists changes the configuration of
//! each binary it says reads it, and of no other binary. Read from the README itself, so a new
//! setting must be documented (and given a sample value here) before this passes.

use to11_control_plane::ControlPlaneConfig;
use to11_data_plane::ReplicaConfig;
use to11_embedded::EmbeddedConfig;
use to11_shared::config::Source;

const BINARIES: [&str; 3] = ["to11", "to11-control-plane", "to11-data-plane"];
const KEY_A: &str = "dG8xMS10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXMhISE=";
const KEY_B: &str = "YW5vdGhlci1tYXN0ZXIta2V5LW9mLTMyLWJ5dGVzISE=";

/// A value other than the default (and than the base below) for each setting.
fn sample(var: &str) -> &'static str {
    match var {
        "TO11_DATA_DIR" => "/tmp/elsewhere",
        "TO11_GATEWAY_LISTEN" => "127.0.0.1:9100",
        "TO11_API_LISTEN" => "127.0.0.1:9101",
        "TO11_ADMIN_TOKEN" => "another-operator-token",
        "TO11_MASTER_KEY" => KEY_B,
        "TO11_REDIS_URL" => "redis://10.0.0.5:6380",
        "TO11_REDIS_PREFIX" => "other:",
        "TO11_ALLOW_PRIVATE_UPSTREAMS" | "TO11_ALLOW_PRIVATE_IMAGE_URLS" => "true",
        "TO11_CORS" | "TO11_IMAGE_URLS" | "TO11_METRICS" => "false",
        "TO11_METRICS_PROJECT_LABEL" => "true",
        "TO11_CLIENT_IP_HEADER" => "x-real-ip",
        "TO11_MAX_ATTEMPTS" | "TO11_FAILED_AUTH_PER_MINUTE" => "7",
        "TO11_RETRY_BUDGET_PERCENT" | "TO11_RETRY_BUDGET_MIN_PER_SECOND" => "7",
        "TO11_REPLICA_ID" => "gateway-7",
        "TO11_GOOGLE_TOKEN_URL" | "TO11_PUBLIC_GATEWAY_URL" => "https://example.test/x",
        "TO11_LOG" => "debug",
        "TO11_USAGE" => "false",
        "TO11_LIMITS_WHEN_STORE_DOWN" => "refuse",
        "TO11_LIMITS_DEFAULT_OUTPUT_TOKENS" => "7",
        "TO11_DATABASE_URL" => "postgres://to11@db.example/usage",
        "TO11_USAGE_BUFFER"
        | "TO11_USAGE_STREAM_MAX"
        | "TO11_USAGE_RETENTION_DAYS"
        | "TO11_USAGE_ROLLUP_RETENTION_DAYS" => "7",
        v if v.ends_with("_MS") || v.ends_with("_BYTES") => "1234",
        "TO11_MAX_UPSTREAM_CONNECTIONS" | "TO11_GATEWAY_WORKERS" | "TO11_API_WORKERS" => "7",
        "TO11_METRICS_TOKEN" => "a-metrics-scrape-token",
        "TO11_BACKUP_DIR" => "/var/lib/to11/backups",
        "TO11_RESTORE_FROM" => "/var/lib/to11/backups/to11-backup-x.json",
        "TO11_ACCEPT_EMPTY_STORE" => "true",
        "TO11_BACKUP_KEEP" => "7",
        v if v.starts_with("TO11_MAX_")
            || v == "TO11_AUTH_FREE_FAILURES"
            || v == "TO11_SESSIONS_PER_PRINCIPAL" =>
        {
            "7"
        }
        other => panic!("the README lists {other}: give it a sample value in tests/settings.rs"),
    }
}

/// What each binary needs to start at all.
fn base(binary: &str) -> Source {
    match binary {
        "to11-control-plane" => Source::from_pairs(&[
            ("TO11_ADMIN_TOKEN", "operator-token-for-tests"),
            ("TO11_MASTER_KEY", KEY_A),
        ]),
        "to11-data-plane" => Source::from_pairs(&[("TO11_MASTER_KEY", KEY_A)]),
        _ => Source::default(),
    }
}

/// The binary's whole configuration, comparable.
fn config(binary: &str, source: &Source) -> String {
    match binary {
        "to11" => format!("{:?}", EmbeddedConfig::from_source(source).expect("to11")),
        "to11-control-plane" => {
            let c = ControlPlaneConfig::from_source(source).expect("control plane");
            // Secrets do not show in Debug: compare them apart.
            format!("{c:?} {} {}", c.admin_token.expose(), c.master_key.expose())
        }
        _ => {
            let c = ReplicaConfig::from_source(source).expect("data plane");
            format!("{c:?} {}", c.master_key.expose())
        }
    }
}

fn embedded_secrets(source: &Source) -> String {
    let c = EmbeddedConfig::from_source(source).expect("to11");
    format!(
        "{:?} {:?}",
        c.admin_token.as_ref().map(|s| s.expose().to_string()),
        c.master_key.as_ref().map(|s| s.expose().to_string())
    )
}

/// (variables, binaries) of each row of the README's settings table.
fn readme_rows() -> Vec<(Vec<String>, Vec<String>)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    let table = readme
        .split("## Settings\n")
        .nth(1)
        .expect("a Settings section")
        .split("\n## ")
        .next()
        .expect("section");
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    table
        .lines()
        .filter(|l| l.starts_with("| `TO11_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').collect();
            let vars = ticked(cells[1]);
            let binaries: Vec<String> = ticked(cells[2])
                .into_iter()
                .filter(|b| BINARIES.contains(&b.as_str()))
                .collect();
            assert!(!binaries.is_empty(), "no binary named in: {l}");
            (vars, binaries)
        })
        .collect()
}

#[test]
fn every_documented_setting_changes_exactly_the_binaries_that_read_it() {
    let rows = readme_rows();
    assert!(rows.len() >= 20, "the settings table was not found whole");
    let mut checked = 0;
    for (vars, readers) in &rows {
        for var in vars {
            for binary in BINARIES {
                let before = base(binary);
                let after = base(binary).with(var, sample(var));
                let changed = if binary == "to11" {
                    config(binary, &before) != config(binary, &after)
                        || embedded_secrets(&before) != embedded_secrets(&after)
                } else {
                    config(binary, &before) != config(binary, &after)
                };
                let reads = readers.iter().any(|r| r == binary);
                assert_eq!(
                    changed,
                    reads,
                    "{var}: the README says {binary} {} it, but its configuration {}",
                    if reads { "reads" } else { "does not read" },
                    if changed { "changed" } else { "did not change" }
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 60);
}

/// The two bugs of hand-assembled configuration: `to11-control-plane` read
/// `TO11_PUBLIC_GATEWAY_URL` and `TO11_GOOGLE_TOKEN_URL` and dropped them; `to11` ignored the
/// probe timeouts.
#[test]
fn the_settings_once_dropped_reach_their_binaries() {
    let cp = ControlPlaneConfig::from_source(
        &base("to11-control-plane")
            .with("TO11_PUBLIC_GATEWAY_URL", "https://gw.example")
            .with("TO11_GOOGLE_TOKEN_URL", "https://token.example"),
    )
    .expect("valid");
    assert_eq!(
        cp.api.public_gateway_url.as_deref(),
        Some("https://gw.example")
    );
    assert_eq!(cp.api.google_token_url, "https://token.example");
    let e = EmbeddedConfig::from_source(
        &Source::default()
            .with("TO11_PROBE_TIMEOUT_MS", "1500")
            .with("TO11_PROBE_CONNECT_TIMEOUT_MS", "700"),
    )
    .expect("valid");
    assert_eq!(e.api.probe_timeout.as_millis(), 1500);
    assert_eq!(e.api.probe_connect_timeout.as_millis(), 700);
}
