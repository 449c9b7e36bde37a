#![allow(clippy::expect_used, clippy::unwrap_used)]
//! The official `openai` and `anthropic` Python SDKs (pinned in `tests/sdk/requirements.txt`,
//! installed from PyPI into `target/sdk-venv` on first run) against a running gateway whose targets
//! are mocks: `tests/sdk/check_sdks.py` must parse every answer, stream and error, and
//! `tests/sdk/check_responses.py` runs the Responses API (and the OpenAI Agents SDK) against every
//! family, and `tests/sdk-node/check_responses.mjs` the same with the OpenAI Node SDK (installed
//! from `tests/sdk-node/package-lock.json` on first run).

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;
use to11_tests::checker::run_checks;
use to11_tests::mock::MockUpstream;
use to11_tests::native_mock::{Natives, NativesProject};

fn root() -> PathBuf {
    to11_tests::repo_root()
}

/// The venv's python, created (and the SDKs installed) when missing.
fn python() -> PathBuf {
    to11_tests::venv("sdk-venv", "tests/sdk/requirements.txt").join("python")
}

/// `tests/sdk-node`, with the OpenAI Node SDK installed from its lock file when missing.
fn node_sdk() -> PathBuf {
    let dir = root().join("tests/sdk-node");
    if !dir.join("node_modules/openai/package.json").exists() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .expect("npm runs (Node.js is needed for the Node SDK checks)");
        assert!(ok.success(), "npm ci in tests/sdk-node failed");
    }
    dir
}

#[actix_rt::test]
async fn official_sdks_parse_every_answer_stream_and_error() {
    let key = "sk-sdk-valid-1234";
    let openai = MockUpstream::start("sk-openai-valid", &["m1"]);
    let natives = Natives::start(key);
    let connections = [
        json!({"kind": "openai", "base_url": openai.base_url(), "credential": {"api_key": "sk-openai-valid"}}),
        // The same mock as a server without a Responses API: `/v1/responses` goes as chat.
        json!({"kind": "openai-compatible", "slug": "compat", "base_url": openai.base_url(), "credential": {"api_key": "sk-openai-valid"}}),
    ]
    .into_iter()
    .chain(natives.connections(key, &["claude-m1@20250514", "text-embedding-m1"]));
    let NativesProject { gw, dir, key: gk } = natives.project("sdks", connections).await;

    let gateway = format!("http://{}", gw.info.gateway);
    let scripts = [
        (
            python(),
            root().join("tests/sdk/check_sdks.py"),
            "the SDK checks",
            "all SDK checks passed",
        ),
        (
            python(),
            root().join("tests/sdk/check_responses.py"),
            "the Responses API checks",
            "all Responses checks passed",
        ),
        (
            "node".into(),
            node_sdk().join("check_responses.mjs"),
            "the Node SDK's Responses API checks",
            "all Node Responses checks passed",
        ),
    ];
    for (program, script, what, success) in scripts {
        let mut cmd = Command::new(program);
        cmd.arg(script)
            .env("TO11_GATEWAY", &gateway)
            .env("TO11_KEY", &gk);
        run_checks(cmd, what, success).await;
    }
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
