#![allow(clippy::expect_used, clippy::unwrap_used)]
//! Metering across every family and surface: each call (whole and streamed, native and
//! translated) leaves a record with exactly the usage the mock upstream reported, cache reads,
//! cache writes and reasoning tokens included — read from the upstream's own format, whatever
//! the client called. The mocks report rich usage in this test binary only.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{json, Value};
use to11_tests::client::{gateway, wait_version, ApiClient};
use to11_tests::mock::{MockUpstream, RICH_USAGE};
use to11_tests::native_mock::{
    service_account, Native, NativeMock, AWS_KEY_ID, AWS_REGION, AWS_SECRET, SA_EMAIL,
};
use to11_tests::sandbox::embedded_with;
use to11_tests::wait_until;

const KEY: &str = "sk-matrix-1234";

/// What each upstream format reports in rich mode, normalised: (input, output, cache read,
/// cache write, reasoning).
fn expected(format: &str) -> (u64, u64, u64, u64, u64) {
    match format {
        "openai" => (3, 6, 7, 0, 4),
        "anthropic" => (3, 2, 7, 11, 0),
        "gemini" => (3, 6, 7, 0, 4),
        "converse" => (3, 2, 7, 11, 0),
        other => panic!("{other}"),
    }
}

struct Call {
    path: String,
    body: Value,
    /// The usage format the upstream answers in.
    format: &'static str,
    /// Whether the upstream reports this stream's usage (Cohere's compatibility API does not,
    /// and refuses to be asked): otherwise the record is an estimate.
    reported: bool,
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
}

fn messages(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
}

fn calls() -> Vec<Call> {
    let gemini_body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let converse_body = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
    let mut out = vec![];
    for stream in [false, true] {
        let c = |path: &str, body: Value, format: &'static str| Call {
            path: path.to_string(),
            body,
            format,
            reported: true,
        };
        // Native.
        out.push(c(
            "/v1/chat/completions",
            chat("oai/gpt-4o", stream),
            "openai",
        ));
        out.push(c(
            "/v1/chat/completions",
            chat("azure-openai/dep-a", stream),
            "openai",
        ));
        out.push(Call {
            reported: !stream,
            ..c("/v1/chat/completions", chat("cohere/m1", stream), "openai")
        });
        out.push(c(
            "/v1/messages",
            messages("anthropic/m1", stream),
            "anthropic",
        ));
        out.push(c(
            "/v1/messages",
            messages("vertex/claude-m1@20250514", stream),
            "anthropic",
        ));
        out.push(c(
            "/v1/messages",
            messages("bedrock/eu.anthropic.claude-m1-v1:0", stream),
            "anthropic",
        ));
        let method = if stream {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        out.push(c(
            &format!("/v1beta/models/gemini/m1:{method}"),
            gemini_body.clone(),
            "gemini",
        ));
        out.push(c(
            &format!("/v1beta/models/vertex/gemini-m1:{method}"),
            gemini_body.clone(),
            "gemini",
        ));
        let op = if stream {
            "converse-stream"
        } else {
            "converse"
        };
        out.push(c(
            &format!("/model/bedrock/m1/{op}"),
            converse_body.clone(),
            "converse",
        ));
        // OpenAI chat translated.
        out.push(c(
            "/v1/chat/completions",
            chat("anthropic/m1", stream),
            "anthropic",
        ));
        out.push(c(
            "/v1/chat/completions",
            chat("vertex/claude-m1@20250514", stream),
            "anthropic",
        ));
        out.push(c(
            "/v1/chat/completions",
            chat("bedrock/eu.anthropic.claude-m1-v1:0", stream),
            "anthropic",
        ));
        out.push(c(
            "/v1/chat/completions",
            chat("gemini/m1", stream),
            "gemini",
        ));
        out.push(c(
            "/v1/chat/completions",
            chat("vertex/gemini-m1", stream),
            "gemini",
        ));
        out.push(c(
            "/v1/chat/completions",
            chat("bedrock/m1", stream),
            "converse",
        ));
        // Anthropic Messages translated.
        out.push(c("/v1/messages", messages("oai/gpt-4o", stream), "openai"));
        out.push(c(
            "/v1/messages",
            messages("azure-openai/dep-a", stream),
            "openai",
        ));
        out.push(c("/v1/messages", messages("gemini/m1", stream), "gemini"));
        out.push(c(
            "/v1/messages",
            messages("bedrock/m1", stream),
            "converse",
        ));
    }
    out
}

/// Connects one native mock as provider `kind`.
async fn connect(api: &ApiClient, kind: Native, mock: &NativeMock) {
    let (id, prefix, mut body) = match kind {
        Native::Anthropic => (
            "anthropic",
            "/v1",
            json!({"credential": {"api_key": KEY}, "models": ["m1"]}),
        ),
        Native::Gemini => (
            "gemini",
            "/v1beta",
            json!({"credential": {"api_key": KEY}, "models": ["m1"]}),
        ),
        Native::Vertex => (
            "vertex",
            "",
            json!({"credential": {"service_account_json": service_account(SA_EMAIL)},
            "account": {"region": "us-central1"}, "models": ["gemini-m1", "claude-m1@20250514"]}),
        ),
        Native::Bedrock => (
            "bedrock",
            "",
            json!({"credential": {"access_key_id": AWS_KEY_ID, "secret_access_key": AWS_SECRET},
            "account": {"region": AWS_REGION}, "models": ["m1", "eu.anthropic.claude-m1-v1:0"]}),
        ),
        Native::Azure => (
            "azure-openai",
            "/openai",
            json!({"credential": {"api_key": KEY},
            "account": {"resource": "contoso"}, "models": ["dep-a"]}),
        ),
        Native::Cohere => (
            "cohere",
            "/compatibility/v1",
            json!({"credential": {"api_key": KEY}, "models": ["m1"]}),
        ),
    };
    body["kind"] = id.into();
    body["base_url"] = format!("http://{}{prefix}", mock.addr).into();
    let (s, e) = api.post("/projects/matrix/providers", body).await;
    assert_eq!(s, 201, "{id}: {e}");
}

#[actix_rt::test]
async fn every_family_and_surface_is_metered_with_the_usage_reported() {
    RICH_USAGE.store(true, std::sync::atomic::Ordering::Relaxed);
    let kinds = [
        Native::Anthropic,
        Native::Gemini,
        Native::Vertex,
        Native::Bedrock,
        Native::Azure,
        Native::Cohere,
    ];
    let mocks: Vec<(Native, NativeMock)> = kinds
        .iter()
        .map(|k| (*k, NativeMock::start(*k, KEY)))
        .collect();
    let token_url = mocks
        .iter()
        .find(|(k, _)| *k == Native::Vertex)
        .map(|(_, m)| format!("http://{}/token", m.addr))
        .expect("vertex");
    let oai = MockUpstream::start(KEY, &["gpt-4o"]);
    let dir = std::env::temp_dir().join(format!("to11-matrix-{}", uuid::Uuid::new_v4()));
    let gw = embedded_with(&dir, move |s| {
        s.api.google_token_url = token_url.clone();
        s.gateway.google_token_url = token_url;
    })
    .expect("embedded");
    let api = ApiClient::new(
        gw.info.api,
        gw.info.generated_admin_token.as_deref().expect("token"),
    );
    let (_, p) = api
        .post("/projects", json!({"name": "Matrix", "slug": "matrix"}))
        .await;
    let project = p["id"].as_str().expect("id").to_string();
    for (kind, mock) in &mocks {
        connect(&api, *kind, mock).await;
    }
    let (s, e) = api
        .post(
            "/projects/matrix/providers",
            json!({"kind": "openai-compatible", "slug": "oai", "base_url": oai.base_url(), "credential": {"api_key": KEY}}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    let (_, k) = api
        .post("/projects/matrix/keys", json!({"name": "m"}))
        .await;
    let key = k["key"].as_str().expect("key").to_string();
    wait_version(
        &[gw.info.gateway],
        &project,
        k["version"].as_u64().expect("v"),
    )
    .await;

    let calls = calls();
    let mut by_id: HashMap<String, &Call> = HashMap::new();
    for call in &calls {
        let r = gateway(
            gw.info.gateway,
            awc::http::Method::POST,
            &call.path,
            &[("x-to11-authorization", &key)],
            Some(Bytes::from(call.body.to_string())),
        )
        .await;
        assert_eq!(
            r.status,
            200,
            "{} {}: {}",
            call.path,
            call.body["model"],
            String::from_utf8_lossy(&r.body)
        );
        let id = r
            .header("x-to11-request-id")
            .expect("request id")
            .to_string();
        by_id.insert(id, call);
    }
    let records: Vec<Value> = wait_until("every record", 30, || async {
        let (_, page) = api.get("/projects/matrix/requests?limit=500").await;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        (data.len() >= calls.len()).then_some(data)
    })
    .await;
    assert_eq!(records.len(), calls.len(), "one record per call");
    let mut failures = vec![];
    for r in &records {
        let call = by_id[r["id"].as_str().expect("id")];
        let what = format!(
            "{} {} stream={}",
            call.path, call.body["model"], r["stream"]
        );
        let u = &r["usage"];
        let got = (
            u["input"].as_u64().unwrap_or(0),
            u["output"].as_u64().unwrap_or(0),
            u["cache_read"].as_u64().unwrap_or(0),
            u["cache_write"].as_u64().unwrap_or(0),
            u["reasoning"].as_u64().unwrap_or(0),
        );
        if call.reported {
            if r["usage_source"] != "reported" || got != expected(call.format) {
                failures.push(format!(
                    "{what}: {} {got:?}, want reported {:?}",
                    r["usage_source"],
                    expected(call.format)
                ));
            }
        } else if r["usage_source"] != "estimated" || got.0 == 0 || got.1 == 0 {
            failures.push(format!(
                "{what}: {} {got:?}, want an estimate",
                r["usage_source"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let _ = std::fs::remove_dir_all(dir);
}
