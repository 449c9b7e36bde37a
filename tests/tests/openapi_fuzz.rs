#![allow(clippy::expect_used, clippy::unwrap_used)]
//! The control plane's OpenAPI document against the running API, through schemathesis (pinned in
//! `tests/openapi/requirements.txt`, installed from PyPI into `target/openapi-venv` on first
//! run): every operation fuzzed from its schema, with a project to find (`{p}` is `fuzz`, set in
//! `tests/openapi/schemathesis.toml`), must never answer a server error, and every answer must
//! match the document (status documented, content type and body in its schema). A fixed seed
//! keeps runs comparable.

use std::process::Command;

use serde_json::json;
use to11_tests::client::ApiClient;
use to11_tests::sandbox::embedded;

#[actix_rt::test]
async fn the_api_matches_its_openapi_document_under_fuzzing() {
    let bin = to11_tests::venv("openapi-venv", "tests/openapi/requirements.txt");
    let dir = std::env::temp_dir().join(format!("to11-openapi-{}", uuid::Uuid::new_v4()));
    let cp = embedded(&dir).expect("embedded");
    let token = cp.info.generated_admin_token.clone().expect("token");
    let api = ApiClient::new(cp.info.api, &token);
    let (s, e) = api
        .post("/projects", json!({"name": "Fuzz", "slug": "fuzz"}))
        .await;
    assert_eq!(s, 201, "{e}");
    let url = format!("http://{}/api/v1/openapi.json", cp.info.api);
    let auth = format!("Authorization: Bearer {token}");
    let out = tokio::task::spawn_blocking(move || {
        // schemathesis keeps a cache in its working directory: a temporary one, not the tree.
        Command::new(bin.join("schemathesis"))
            .current_dir(std::env::temp_dir())
            .arg("--config-file")
            .arg(to11_tests::repo_root().join("tests/openapi/schemathesis.toml"))
            .args(["run", &url, "-H", &auth, "--no-color", "--seed", "1"])
            .args(["--max-examples", "10", "--workers", "1"])
            .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
            .output()
            .expect("schemathesis runs")
    })
    .await
    .expect("join");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: String = text
        .lines()
        .skip_while(|l| !l.contains("SUMMARY"))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("{summary}");
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
}
