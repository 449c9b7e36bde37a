#![allow(clippy::expect_used, clippy::unwrap_used)]
//! One conformance suite run against every catalog entry: each against a mock speaking that
//! provider family's wire format (its path prefix, listing shape and the way it refuses a bad
//! key). discover → connect → call (plain and streaming) → invalid key → unreachable host.

use awc::http::Method;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use to11_tests::client::{chat, gated_stream, gateway, wait_version, ApiClient};
use to11_tests::mock::{
    stream_chunks, Family, InvalidKeyShape, ListingShape, MockUpstream, Recorded,
};
use to11_tests::native_mock::{
    anthropic_events, converse_frames, gemini_events, service_account, Native, NativeMock,
    AWS_KEY_ID, AWS_REGION, AWS_SECRET, IMAGE, SA_EMAIL, VERTEX_PROJECT,
};
use to11_tests::redis_server::free_port;
use to11_tests::sandbox::{embedded, embedded_with};

/// The wire format each catalog entry's provider really speaks (see shared/reference/providers.md).
fn family(id: &str) -> Family {
    let f = Family::default();
    match id {
        "openai" | "openai-compatible" => f,
        "mistral" => Family {
            invalid: InvalidKeyShape::Detail,
            ..f
        },
        "groq" => Family {
            prefix: "/openai/v1",
            ..f
        },
        "deepseek" => Family { prefix: "", ..f },
        "xai" => Family {
            invalid: InvalidKeyShape::Xai400,
            ..f
        },
        "together" => Family {
            listing: ListingShape::BareArray,
            ..f
        },
        "fireworks" => Family {
            prefix: "/inference/v1",
            ..f
        },
        "openrouter" => Family {
            prefix: "/api/v1",
            key_path: Some("/key"),
            ..f
        },
        "perplexity" => Family {
            prefix: "",
            listing: ListingShape::None,
            invalid: InvalidKeyShape::Html,
            strict_models: true,
            ..f
        },
        "cerebras" => Family {
            invalid: InvalidKeyShape::TopLevel,
            ..f
        },
        "deepinfra" => Family {
            prefix: "/v1/openai",
            ..f
        },
        "ollama" => Family {
            listing: ListingShape::OllamaTags,
            ..f
        },
        "vllm" => Family {
            invalid: InvalidKeyShape::BareString,
            ..f
        },
        other => panic!("no conformance family for catalog entry '{other}': add one"),
    }
}

/// Entries with their own API family, run by `native_entries_…` below.
const NATIVE: &[&str] = &[
    "anthropic",
    "gemini",
    "vertex",
    "bedrock",
    "azure-openai",
    "cohere",
];

/// The chunks of an OpenAI stream, which must end with `data: [DONE]`, and their joined content.
fn openai_stream(body: &[u8], what: &str) -> (Vec<Value>, String) {
    let text = String::from_utf8_lossy(body);
    assert!(text.ends_with("data: [DONE]\n\n"), "{what}: {text}");
    let data: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk"))
        .collect();
    let content = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    (chunks, content)
}

/// Discovery with `credential` is refused as an invalid credential, without echoing the key.
async fn refuses_credential(
    api: &ApiClient,
    project: &str,
    id: &str,
    body: &Value,
    credential: &Value,
) {
    let mut bad = body.clone();
    bad["credential"] = credential.clone();
    let (s, e) = api
        .post(&format!("/projects/{project}/providers/discover"), bad)
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("provider_invalid_credential")),
        "{id}: {e}"
    );
    assert!(
        !e.to_string().contains("sk-echo-wrong-1234"),
        "{id}: key echoed: {e}"
    );
}

/// Discovery against a port nobody listens on is `provider_unreachable`.
async fn refuses_unreachable(api: &ApiClient, project: &str, id: &str, body: &Value, prefix: &str) {
    let mut dead = body.clone();
    dead["base_url"] = json!(format!("http://127.0.0.1:{}{prefix}", free_port()));
    let (s, e) = api
        .post(&format!("/projects/{project}/providers/discover"), dead)
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("provider_unreachable")),
        "{id}: {e}"
    );
}

#[actix_rt::test]
async fn every_catalog_entry_connects_validates_discovers_and_serves() {
    let dir = std::env::temp_dir().join(format!("to11-conformance-{}", uuid::Uuid::new_v4()));
    let gw = embedded(&dir).expect("embedded");
    let api = ApiClient::new(
        gw.info.api,
        gw.info.generated_admin_token.as_deref().expect("token"),
    );
    let (_, p) = api
        .post("/projects", json!({"name": "Conformance", "slug": "conf"}))
        .await;
    let project = p["id"].as_str().expect("id").to_string();
    let (_, catalog) = api.get("/catalog").await;
    let entries = catalog["data"].as_array().expect("catalog");
    assert!(entries.len() >= 20, "{} entries", entries.len());

    for e in entries {
        let id = e["id"].as_str().expect("id");
        if NATIVE.contains(&id) {
            continue;
        }
        let fam = family(id);
        let keyless = id == "ollama";
        let key = if keyless {
            String::new()
        } else {
            format!("sk-{id}-valid-9876")
        };
        let mock = MockUpstream::start_family(&key, &["m1", "m2"], fam);
        let base = format!("http://{}{}", mock.addr, fam.prefix);
        let named = fam.listing == ListingShape::None;
        let mut body = json!({"kind": id, "base_url": base});
        if !keyless {
            body["credential"] = json!({"api_key": key});
        }
        if named {
            body["models"] = json!(["m1"]);
        }

        // Discover: validates and lists (or checks the named models), saves nothing.
        let (s, d) = api
            .post("/projects/conf/providers/discover", body.clone())
            .await;
        assert_eq!(s, 200, "{id}: discover: {d}");
        let ids: Vec<&str> = d["models"]
            .as_array()
            .expect("models")
            .iter()
            .filter_map(|m| m["id"].as_str())
            .collect();
        assert!(ids.contains(&"m1"), "{id}: {ids:?}");
        if !named {
            assert_eq!(ids, ["m1", "m2"], "{id}");
        }
        if named {
            let mut unknown = body.clone();
            unknown["models"] = json!(["nope"]);
            let (s, e) = api.post("/projects/conf/providers/discover", unknown).await;
            assert_eq!(
                s, 422,
                "{id}: a named model the provider does not serve: {e}"
            );
        }

        // Connect with m1 exposed.
        let mut connect = body.clone();
        connect["models"] = json!(["m1"]);
        let (s, c) = api.post("/projects/conf/providers", connect).await;
        assert_eq!(s, 201, "{id}: connect: {c}");
        assert!(
            !c.to_string().contains(&key) || keyless,
            "{id}: secret in the answer"
        );

        // Call through the gateway, plain and streaming, on the provider's own path.
        let (_, k) = api.post("/projects/conf/keys", json!({"name": id})).await;
        let gk = k["key"].as_str().expect("key").to_string();
        wait_version(
            &[gw.info.gateway],
            &project,
            k["version"].as_u64().expect("v"),
        )
        .await;
        let model = format!("{id}/m1");
        let r = chat(gw.info.gateway, &gk, &model).await;
        assert_eq!(r.status, 200, "{id}: chat: {:?}", r.body);
        assert_eq!(r.header("x-to11-provider"), Some(id));
        let rec = mock
            .last_request(&format!("{}/chat/completions", fam.prefix))
            .expect("recorded");
        assert_eq!(rec.json()["model"], "m1", "{id}");
        let auth = rec.header("authorization").map(String::from);
        if keyless {
            assert_eq!(auth, None, "{id}: no key, no header");
        } else {
            assert_eq!(auth, Some(format!("Bearer {key}")), "{id}");
        }
        let gate = format!("conf-{id}");
        let (status, _, events) =
            gated_stream(gw.info.gateway, &gk, &model, &gate, |_| mock.release(&gate)).await;
        assert_eq!(status, 200, "{id}: stream");
        assert_eq!(events, stream_chunks("m1"), "{id}: stream chunks as sent");

        // An invalid key: the provider's own refusal, in its own shape, is one clear error.
        if !keyless {
            let bad = json!({"api_key": "sk-echo-wrong-1234"});
            refuses_credential(&api, "conf", id, &body, &bad).await;
        }

        // An unreachable host.
        refuses_unreachable(&api, "conf", id, &body, fam.prefix).await;
    }
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// One native entry's case: how to connect it to its mock, what discovery must find, and how to
/// call it on its own API.
struct Case {
    id: &'static str,
    kind: Native,
    /// Path of the API under the mock's root.
    prefix: &'static str,
    connect: Value,
    /// Named models (entries without a full listing).
    named: &'static [&'static str],
    expect_ids: &'static [&'static str],
    expose: &'static [&'static str],
    bad_credentials: Vec<Value>,
    /// (gateway path, body, upstream path, expected streamed body) of a plain and a streamed call.
    calls: Vec<(String, Value, String, Option<Vec<u8>>)>,
    /// Checks the credential on a recorded upstream request.
    auth_ok: fn(&Recorded, &NativeMock) -> bool,
}

fn messages_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 16, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn gemini_body() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
}

fn chat_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn joined(events: Vec<String>) -> Option<Vec<u8>> {
    Some(events.concat().into_bytes())
}

fn cases(key: &str) -> Vec<Case> {
    let vertex_prefix = format!("/v1/projects/{VERTEX_PROJECT}/locations/us-central1/publishers");
    vec![
        Case {
            id: "anthropic",
            kind: Native::Anthropic,
            prefix: "/v1",
            connect: json!({"credential": {"api_key": key}}),
            named: &[],
            expect_ids: &["m1", "m2"],
            expose: &["m1"],
            bad_credentials: vec![json!({"api_key": "sk-echo-wrong-1234"})],
            calls: vec![
                (
                    "/v1/messages".into(),
                    messages_body("anthropic/m1", false),
                    "/v1/messages".into(),
                    None,
                ),
                (
                    "/v1/messages".into(),
                    messages_body("anthropic/m1", true),
                    "/v1/messages".into(),
                    joined(anthropic_events("m1")),
                ),
            ],
            auth_ok: |r, m| {
                r.header("x-api-key") == Some(m.state.api_key.as_str())
                    && r.header("anthropic-version") == Some("2023-06-01")
                    && r.json()["model"] == "m1"
            },
        },
        Case {
            id: "gemini",
            kind: Native::Gemini,
            prefix: "/v1beta",
            connect: json!({"credential": {"api_key": key}}),
            named: &[],
            expect_ids: &["m1", "m2"],
            expose: &["m1"],
            bad_credentials: vec![json!({"api_key": "sk-echo-wrong-1234"})],
            calls: vec![
                (
                    "/v1beta/models/gemini/m1:generateContent".into(),
                    gemini_body(),
                    "/v1beta/models/m1:generateContent".into(),
                    None,
                ),
                (
                    "/v1beta/models/gemini/m1:streamGenerateContent?alt=sse".into(),
                    gemini_body(),
                    "/v1beta/models/m1:streamGenerateContent?alt=sse".into(),
                    joined(gemini_events()),
                ),
            ],
            auth_ok: |r, m| r.header("x-goog-api-key") == Some(m.state.api_key.as_str()),
        },
        Case {
            id: "vertex",
            kind: Native::Vertex,
            prefix: "",
            connect: json!({"credential": {"service_account_json": service_account(SA_EMAIL)}, "account": {"region": "us-central1"}}),
            named: &["claude-m1@20250514"],
            expect_ids: &["claude-m1@20250514", "gemini-m1", "gemini-m2"],
            expose: &["gemini-m1", "claude-m1@20250514"],
            bad_credentials: vec![
                json!({"service_account_json": service_account("stranger@other.iam.gserviceaccount.com")}),
            ],
            calls: vec![
                (
                    "/v1beta/models/vertex/gemini-m1:generateContent".into(),
                    gemini_body(),
                    format!("{vertex_prefix}/google/models/gemini-m1:generateContent"),
                    None,
                ),
                (
                    "/v1beta/models/vertex/gemini-m1:streamGenerateContent?alt=sse".into(),
                    gemini_body(),
                    format!(
                        "{vertex_prefix}/google/models/gemini-m1:streamGenerateContent?alt=sse"
                    ),
                    joined(gemini_events()),
                ),
                (
                    "/v1/messages".into(),
                    messages_body("vertex/claude-m1@20250514", false),
                    format!("{vertex_prefix}/anthropic/models/claude-m1@20250514:rawPredict"),
                    None,
                ),
                (
                    "/v1/messages".into(),
                    messages_body("vertex/claude-m1@20250514", true),
                    format!("{vertex_prefix}/anthropic/models/claude-m1@20250514:streamRawPredict"),
                    joined(anthropic_events("claude-m1@20250514")),
                ),
            ],
            auth_ok: |r, m| {
                let issued = m.state.issued_tokens.lock().expect("lock").clone();
                r.header("authorization")
                    .and_then(|a| a.strip_prefix("Bearer "))
                    .is_some_and(|t| issued.iter().any(|i| i == t))
            },
        },
        Case {
            id: "bedrock",
            kind: Native::Bedrock,
            prefix: "",
            connect: json!({"credential": {"access_key_id": AWS_KEY_ID, "secret_access_key": AWS_SECRET, "session_token": "FQo-mock-session"},
                "account": {"region": AWS_REGION}}),
            named: &[],
            expect_ids: &[
                "amazon.titan-embed-text-v2:0",
                "cohere.embed-v4:0",
                "eu.anthropic.claude-m1-v1:0",
                "eu.m2",
                "m1",
            ],
            expose: &["m1", "eu.anthropic.claude-m1-v1:0"],
            bad_credentials: vec![
                json!({"access_key_id": "AKIAUNKNOWN000000000", "secret_access_key": AWS_SECRET}),
                json!({"access_key_id": AWS_KEY_ID, "secret_access_key": "not-the-secret"}),
            ],
            calls: vec![
                (
                    "/model/bedrock/m1/converse".into(),
                    json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
                    "/model/m1/converse".into(),
                    None,
                ),
                (
                    "/model/bedrock/m1/converse-stream".into(),
                    json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
                    "/model/m1/converse-stream".into(),
                    Some(converse_frames()),
                ),
                (
                    "/v1/messages".into(),
                    messages_body("bedrock/eu.anthropic.claude-m1-v1:0", false),
                    "/model/eu.anthropic.claude-m1-v1%3A0/invoke".into(),
                    None,
                ),
                // Streamed: Bedrock's event stream, turned into Anthropic's SSE on the way.
                (
                    "/v1/messages".into(),
                    messages_body("bedrock/eu.anthropic.claude-m1-v1:0", true),
                    "/model/eu.anthropic.claude-m1-v1%3A0/invoke-with-response-stream".into(),
                    joined(anthropic_events("eu.anthropic.claude-m1-v1:0")),
                ),
            ],
            // The mock recomputed the signature over the request as received.
            auth_ok: |r, _| {
                r.header("authorization").is_some_and(|a| {
                    a.starts_with("AWS4-HMAC-SHA256 Credential=AKIAMOCKEXAMPLE0001/")
                }) && r.header("x-amz-security-token") == Some("FQo-mock-session")
            },
        },
        Case {
            id: "azure-openai",
            kind: Native::Azure,
            prefix: "/openai",
            connect: json!({"credential": {"api_key": key}, "account": {"resource": "contoso"}}),
            named: &["dep-a"],
            expect_ids: &["dep-a"],
            expose: &["dep-a"],
            bad_credentials: vec![json!({"api_key": "sk-echo-wrong-1234"})],
            calls: vec![
                (
                    "/v1/chat/completions".into(),
                    chat_body("azure-openai/dep-a", false),
                    "/openai/deployments/dep-a/chat/completions?api-version=2024-10-21".into(),
                    None,
                ),
                (
                    "/v1/chat/completions".into(),
                    chat_body("azure-openai/dep-a", true),
                    "/openai/deployments/dep-a/chat/completions?api-version=2024-10-21".into(),
                    joined(stream_chunks("dep-a")),
                ),
            ],
            auth_ok: |r, m| {
                r.header("api-key") == Some(m.state.api_key.as_str())
                    && r.header("authorization").is_none()
            },
        },
        Case {
            id: "cohere",
            kind: Native::Cohere,
            prefix: "/compatibility/v1",
            connect: json!({"credential": {"api_key": key}}),
            named: &[],
            expect_ids: &["m1", "m2"],
            expose: &["m1"],
            bad_credentials: vec![json!({"api_key": "sk-echo-wrong-1234"})],
            calls: vec![
                (
                    "/v1/chat/completions".into(),
                    chat_body("cohere/m1", false),
                    "/compatibility/v1/chat/completions".into(),
                    None,
                ),
                (
                    "/v1/chat/completions".into(),
                    chat_body("cohere/m1", true),
                    "/compatibility/v1/chat/completions".into(),
                    joined(stream_chunks("m1")),
                ),
            ],
            auth_ok: |r, m| {
                r.header("authorization") == Some(format!("Bearer {}", m.state.api_key).as_str())
            },
        },
    ]
}

#[actix_rt::test]
async fn native_entries_connect_validate_discover_and_serve_their_own_apis() {
    let key = "sk-native-valid-9876";
    // Vertex's token endpoint is part of its mock, and both planes must use it.
    let mocks: Vec<(Case, NativeMock)> = cases(key)
        .into_iter()
        .map(|c| {
            let m = NativeMock::start(c.kind, key);
            (c, m)
        })
        .collect();
    let token_url = mocks
        .iter()
        .find(|(c, _)| c.kind == Native::Vertex)
        .map(|(_, m)| format!("http://{}/token", m.addr))
        .expect("vertex mock");
    let dir =
        std::env::temp_dir().join(format!("to11-conformance-native-{}", uuid::Uuid::new_v4()));
    // The images clients refer to are on the mocks' loopback too.
    let gw = embedded_with(&dir, move |s| {
        s.api.google_token_url = token_url.clone();
        s.gateway.google_token_url = token_url;
        s.gateway.allow_private_image_urls = true;
    })
    .expect("embedded");
    let api = ApiClient::new(
        gw.info.api,
        gw.info.generated_admin_token.as_deref().expect("token"),
    );
    let (_, p) = api
        .post("/projects", json!({"name": "Native", "slug": "native"}))
        .await;
    let project = p["id"].as_str().expect("id").to_string();
    let (_, catalog) = api.get("/catalog").await;
    let ids: Vec<&str> = catalog["data"]
        .as_array()
        .expect("catalog")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    for n in NATIVE {
        assert!(ids.contains(n), "{n} in the catalog");
        assert!(mocks.iter().any(|(c, _)| c.id == *n), "a case for {n}");
    }

    for (case, mock) in &mocks {
        let id = case.id;
        let mut body = case.connect.clone();
        body["kind"] = id.into();
        body["base_url"] = format!("http://{}{}", mock.addr, case.prefix).into();
        if !case.named.is_empty() {
            body["models"] = json!(case.named);
        }

        // Discover: the real listing (every page), or the named models checked one by one.
        let (s, d) = api
            .post("/projects/native/providers/discover", body.clone())
            .await;
        assert_eq!(s, 200, "{id}: discover: {d}");
        let found: Vec<&str> = d["models"]
            .as_array()
            .expect("models")
            .iter()
            .filter_map(|m| m["id"].as_str())
            .collect();
        assert_eq!(found, case.expect_ids, "{id}");
        if !case.named.is_empty() {
            let mut unknown = body.clone();
            unknown["models"] = json!(["nope"]);
            let (s, e) = api
                .post("/projects/native/providers/discover", unknown)
                .await;
            assert_eq!(
                s, 422,
                "{id}: a named model the provider does not serve: {e}"
            );
        }

        // Connect, exposing a subset.
        let mut connect = body.clone();
        connect["models"] = json!(case.expose);
        let (s, c) = api.post("/projects/native/providers", connect).await;
        assert_eq!(s, 201, "{id}: connect: {c}");
        assert!(
            !c.to_string().contains(key) && !c.to_string().contains("PRIVATE KEY"),
            "{id}: secret in the answer"
        );

        // Refresh rediscovers with the stored credential and account.
        let (s, r) = api
            .post(
                &format!("/projects/native/providers/{id}/refresh"),
                json!({}),
            )
            .await;
        assert_eq!(
            (s, &r["added"], &r["removed"]),
            (200, &json!([]), &json!([])),
            "{id}: refresh: {r}"
        );

        // Call through the gateway on the provider's own API, plain and streaming.
        let (_, k) = api.post("/projects/native/keys", json!({"name": id})).await;
        let gk = k["key"].as_str().expect("key").to_string();
        wait_version(
            &[gw.info.gateway],
            &project,
            k["version"].as_u64().expect("v"),
        )
        .await;
        let tokens_before = mock.state.issued_tokens.lock().expect("lock").len();
        for (path, call, upstream, streamed) in &case.calls {
            let r = gateway(
                gw.info.gateway,
                Method::POST,
                path,
                &[("x-to11-authorization", &gk)],
                Some(Bytes::from(call.to_string())),
            )
            .await;
            assert_eq!(
                r.status,
                200,
                "{id} {path}: {:?}; upstream saw {:?}",
                String::from_utf8_lossy(&r.body),
                mock.requests()
                    .iter()
                    .map(|r| (r.path.clone(), r.header("authorization").map(String::from)))
                    .collect::<Vec<_>>()
            );
            assert_eq!(r.header("x-to11-provider"), Some(id), "{id}");
            let rec = mock.last(upstream).unwrap_or_else(|| {
                panic!(
                    "{id}: nothing reached {upstream}: {:?}",
                    mock.requests().iter().map(|r| &r.path).collect::<Vec<_>>()
                )
            });
            assert_eq!(&rec.path, upstream, "{id}");
            assert!(
                (case.auth_ok)(&rec, mock),
                "{id}: credential in the provider's form: {:?}",
                rec.headers
            );
            assert!(
                rec.header("x-to11-authorization").is_none(),
                "{id}: the to11 key went upstream"
            );
            if let Some(want) = streamed {
                assert_eq!(
                    r.body.as_ref(),
                    want.as_slice(),
                    "{id}: the stream as the provider sent it"
                );
            }
        }
        if case.kind == Native::Vertex {
            // One token minted for all those calls (cached by the replica).
            assert_eq!(
                mock.state.issued_tokens.lock().expect("lock").len(),
                tokens_before + 1,
                "vertex: token cached"
            );
        }
        if case.kind == Native::Bedrock {
            assert!(
                mock.state
                    .signatures_verified
                    .load(std::sync::atomic::Ordering::SeqCst)
                    >= 5
            );
        }

        // An invalid credential, in the provider's own refusal shape, is one clear error.
        for bad in &case.bad_credentials {
            refuses_credential(&api, "native", id, &body, bad).await;
        }

        // An unreachable host.
        refuses_unreachable(&api, "native", id, &body, case.prefix).await;
    }

    // A surface the target does not speak is a clear 400 naming both, not a mangled request.
    let (_, k) = api
        .post("/projects/native/keys", json!({"name": "surfaces"}))
        .await;
    let gk = k["key"].as_str().expect("key").to_string();
    wait_version(
        &[gw.info.gateway],
        &project,
        k["version"].as_u64().expect("v"),
    )
    .await;
    for (path, body) in [
        ("/v1/embeddings", chat_body("anthropic/m1", false)),
        // Translated, but with a feature Anthropic cannot express.
        (
            "/v1/chat/completions",
            json!({"model": "anthropic/m1", "temperature": 1.5, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        // Embeddings reach Gemini translated, but token ids only OpenAI's tokenizer knows.
        (
            "/v1/embeddings",
            json!({"model": "gemini/m1", "input": [[1, 2, 3]]}),
        ),
        // Messages to an OpenAI-family target, with a feature OpenAI chat cannot express.
        (
            "/v1/messages",
            json!({"model": "cohere/m1", "max_tokens": 5, "mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}], "messages": [{"role": "user", "content": "hi"}]}),
        ),
        // The Responses API through translation, with a hosted tool no target but OpenAI runs.
        (
            "/v1/responses",
            json!({"model": "bedrock/m1", "input": "hi", "tools": [{"type": "web_search"}]}),
        ),
        (
            "/v1/embeddings",
            json!({"model": "vertex/gemini-m1", "input": [[1, 2, 3]]}),
        ),
    ] {
        let r = gateway(
            gw.info.gateway,
            Method::POST,
            path,
            &[("x-to11-authorization", &gk)],
            Some(Bytes::from(body.to_string())),
        )
        .await;
        assert_eq!(
            (r.status, r.error_code().as_deref()),
            (400, Some("unsupported_by_target")),
            "{path} {body}: {:?}",
            r.json()
        );
        if path == "/v1/messages" {
            // In the Anthropic SDK's own error shape.
            assert_eq!(r.json()["type"], "error", "{:?}", r.json());
            assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        }
    }
    // OpenAI chat reaches Claude wherever it is served, translated both ways.
    let up = |id: &str| &mocks.iter().find(|(c, _)| c.id == id).expect("mock").1;
    for (model, mock_id, upstream) in [
        ("anthropic/m1", "anthropic", "/v1/messages"),
        ("vertex/claude-m1@20250514", "vertex", "/v1/projects/proj-1/locations/us-central1/publishers/anthropic/models/claude-m1@20250514:rawPredict"),
        ("bedrock/eu.anthropic.claude-m1-v1:0", "bedrock", "/model/eu.anthropic.claude-m1-v1%3A0/invoke"),
    ] {
        let r = gateway(gw.info.gateway, Method::POST, "/v1/chat/completions", &[("x-to11-authorization", &gk)],
            Some(Bytes::from(json!({"model": model, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]}).to_string()))).await;
        assert_eq!(r.status, 200, "{model}: {:?}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        assert_eq!((v["object"].as_str(), v["choices"][0]["message"]["content"].as_str(), v["choices"][0]["finish_reason"].as_str()),
            (Some("chat.completion"), Some("Hello there"), Some("stop")), "{model}: {v}");
        assert_eq!(v["usage"]["total_tokens"], 5, "{model}");
        let sent = up(mock_id).last(upstream).expect("upstream request").json();
        assert_eq!(sent["system"], json!([{"type": "text", "text": "Be brief."}]), "{model}: {sent}");
        assert_eq!(sent["max_tokens"], 4096, "{model}");
        // Streamed, with usage: OpenAI chunks ending with [DONE].
        let r = gateway(gw.info.gateway, Method::POST, "/v1/chat/completions", &[("x-to11-authorization", &gk)],
            Some(Bytes::from(json!({"model": model, "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]}).to_string()))).await;
        assert_eq!(r.status, 200, "{model} stream: {:?}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        let (chunks, content) = openai_stream(&r.body, model);
        assert_eq!(content, "Hello there", "{model}");
        assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"), "{model}");
        assert_eq!(chunks.last().expect("usage")["usage"]["completion_tokens"], 2, "{model}");
    }

    // And Gemini, on AI Studio and on Vertex.
    for (model, mock_id, upstream) in [
        ("gemini/m1", "gemini", "/v1beta/models/m1:"),
        (
            "vertex/gemini-m1",
            "vertex",
            "/v1/projects/proj-1/locations/us-central1/publishers/google/models/gemini-m1:",
        ),
    ] {
        let r = gateway(gw.info.gateway, Method::POST, "/v1/chat/completions", &[("x-to11-authorization", &gk)],
            Some(Bytes::from(json!({"model": model, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]}).to_string()))).await;
        assert_eq!(
            r.status,
            200,
            "{model}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json();
        assert_eq!(
            (
                v["choices"][0]["message"]["content"].as_str(),
                v["choices"][0]["finish_reason"].as_str()
            ),
            (Some("Hello there"), Some("stop")),
            "{model}: {v}"
        );
        assert_eq!(v["usage"]["total_tokens"], 5, "{model}");
        let sent = up(mock_id)
            .last(&format!("{upstream}generateContent"))
            .expect("upstream request")
            .json();
        assert_eq!(
            sent["systemInstruction"],
            json!({"parts": [{"text": "Be brief."}]}),
            "{model}: {sent}"
        );
        assert_eq!(
            sent["contents"],
            json!([{"role": "user", "parts": [{"text": "hi"}]}]),
            "{model}"
        );
        let r = gateway(gw.info.gateway, Method::POST, "/v1/chat/completions", &[("x-to11-authorization", &gk)],
            Some(Bytes::from(json!({"model": model, "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]}).to_string()))).await;
        assert_eq!(
            r.status,
            200,
            "{model} stream: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            up(mock_id)
                .last(&format!("{upstream}streamGenerateContent?alt=sse"))
                .is_some(),
            "{model}: streamed upstream"
        );
        let (chunks, content) = openai_stream(&r.body, model);
        assert_eq!(content, "Hello there", "{model}");
        assert_eq!(
            chunks.last().expect("usage")["usage"]["total_tokens"],
            5,
            "{model}"
        );
    }

    // And any other Bedrock model, through Converse.
    let r = gateway(gw.info.gateway, Method::POST, "/v1/chat/completions", &[("x-to11-authorization", &gk)],
        Some(Bytes::from(json!({"model": "bedrock/m1", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]}).to_string()))).await;
    assert_eq!(
        r.status,
        200,
        "converse: {:?}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello there");
    assert_eq!(r.json()["usage"]["total_tokens"], 5);
    let sent = up("bedrock")
        .last("/model/m1/converse")
        .expect("converse request")
        .json();
    assert_eq!(sent["system"], json!([{"text": "Be brief."}]), "{sent}");
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [{"text": "hi"}]}])
    );
    let r = gateway(gw.info.gateway, Method::POST, "/v1/chat/completions", &[("x-to11-authorization", &gk)],
        Some(Bytes::from(json!({"model": "bedrock/m1", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]}).to_string()))).await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body).to_string();
    let (chunks, content) = openai_stream(&r.body, "bedrock/m1");
    assert_eq!(content, "Hello there", "{text}");
    assert!(text.contains("\"total_tokens\":5"), "{text}");
    assert_eq!(chunks.last().expect("usage")["usage"]["total_tokens"], 5);

    // A client's own key is presented in the provider's form.
    let anthropic = &mocks
        .iter()
        .find(|(c, _)| c.id == "anthropic")
        .expect("anthropic")
        .1;
    let r = gateway(
        gw.info.gateway,
        Method::POST,
        "/v1/messages",
        &[
            ("x-to11-authorization", &gk),
            ("x-api-key", "sk-byok-client-1"),
        ],
        Some(Bytes::from(
            messages_body("anthropic/m1", false).to_string(),
        )),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        anthropic
            .last("/v1/messages")
            .expect("rec")
            .header("x-api-key"),
        Some("sk-byok-client-1")
    );
    // Images by URL reach Gemini and Converse as bytes: the gateway fetches them (once per
    // request) and inlines them; an image it cannot use is a 400 naming it, never a request sent
    // without it.
    let images = format!("http://{}/images", anthropic.addr);
    let with_image = |model: &str, url: &str| {
        Some(Bytes::from(
            json!({"model": model, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": url}}]}]})
            .to_string(),
        ))
    };
    let fetched_before = anthropic.count("/images/dot.png");
    let png = base64::engine::general_purpose::STANDARD.encode(IMAGE);
    for (model, mock_id, upstream) in [
        ("gemini/m1", "gemini", "/v1beta/models/m1:generateContent"),
        ("bedrock/m1", "bedrock", "/model/m1/converse"),
    ] {
        let r = gateway(
            gw.info.gateway,
            Method::POST,
            "/v1/chat/completions",
            &[("x-to11-authorization", &gk)],
            with_image(model, &format!("{images}/dot.png")),
        )
        .await;
        assert_eq!(
            r.status,
            200,
            "{model}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        let sent = up(mock_id).last(upstream).expect("upstream request").json();
        let part = if mock_id == "gemini" {
            sent["contents"][0]["parts"][1].clone()
        } else {
            sent["messages"][0]["content"][1].clone()
        };
        let want = if mock_id == "gemini" {
            json!({"inlineData": {"mimeType": "image/png", "data": png}})
        } else {
            json!({"image": {"format": "png", "source": {"bytes": png}}})
        };
        assert_eq!(part, want, "{model}: {sent}");
        for (url, why) in [
            (format!("{images}/missing.png"), "HTTP 404"),
            (format!("{images}/page.html"), "not as an image"),
            (
                "http://169.254.169.254/latest/x.png".to_string(),
                "metadata address",
            ),
            // Not fetched: the translation refuses it, naming what it accepts.
            ("ftp://example.com/a.png".to_string(), "other than http(s)"),
        ] {
            let r = gateway(
                gw.info.gateway,
                Method::POST,
                "/v1/chat/completions",
                &[("x-to11-authorization", &gk)],
                with_image(model, &url),
            )
            .await;
            let e = r.json();
            assert_eq!(r.status, 400, "{model} {url}: {e}");
            let m = e["error"]["message"].as_str().expect("message");
            let names_url = m.contains(&url) || url.starts_with("ftp:");
            assert!(names_url && m.contains(why), "{model} {url}: {m}");
        }
    }
    assert_eq!(
        anthropic.count("/images/dot.png"),
        fetched_before + 2,
        "one fetch per request"
    );

    // Vertex: a project the service account may not use is a permission problem.
    let vertex = &mocks
        .iter()
        .find(|(c, _)| c.id == "vertex")
        .expect("vertex")
        .1;
    let (s, e) = api
        .post(
            "/projects/native/providers/discover",
            json!({"kind": "vertex", "base_url": format!("http://{}", vertex.addr), "account": {"project": "someone-else", "region": "us-central1"},
                "credential": {"service_account_json": service_account(SA_EMAIL)}}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("provider_permission_denied")),
        "{e}"
    );
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
