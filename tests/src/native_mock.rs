//! Mock upstreams for the provider families with their own APIs, each answering in that family's
//! real wire format and checking credentials in that family's real form — never accepting
//! anything:
//!
//! - Anthropic: `x-api-key` + `anthropic-version` required; cursor pages (`has_more`, `last_id`);
//!   Messages JSON and its named SSE events; 401 `authentication_error`.
//! - Gemini: `x-goog-api-key`; `nextPageToken` pages of `models/…`; **400** `API_KEY_INVALID`;
//!   `generateContent` and `streamGenerateContent?alt=sse`.
//! - Vertex: a token endpoint that verifies the service account's RS256 JWT (signature, issuer,
//!   audience, scope, lifetime) before issuing a token; every API call needs an issued token; the
//!   project is checked; publisher pages; Gemini and Claude (`rawPredict`) paths.
//! - Bedrock: SigV4 verified by recomputing the signature over the request as received (known
//!   access key, region, service `bedrock`, date skew); 403 `UnrecognizedClientException` /
//!   `InvalidSignatureException` with `x-amzn-ErrorType`; `foundation-models`, paged
//!   `inference-profiles`; Converse JSON and the binary event stream (CRC32-checked frames);
//!   InvokeModel with an Anthropic body.
//! - Azure OpenAI: `api-key`; `api-version` required (404 without, as Azure does); deployments
//!   by path (404 `DeploymentNotFound`).
//! - Cohere: bearer; `v1/models` pages (`next_page_token`, `endpoints`); the OpenAI-compatible
//!   surface under `/compatibility/v1`; 401 `{"message":"invalid api token"}`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use serde_json::{json, Value};
use to11_shared::google::{public_key_der, verify_assertion, ServiceAccount};
use to11_shared::sigv4;

use crate::mock::{stream_chunks, Recorded};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Native {
    Anthropic,
    Gemini,
    Vertex,
    Bedrock,
    Azure,
    Cohere,
}

/// The test service account's RSA key (see shared/testdata).
pub const TEST_SA_KEY: &str = include_str!("../../shared/testdata/service_account_test_key.pem");
pub const SA_EMAIL: &str = "gateway@proj-1.iam.gserviceaccount.com";
pub const VERTEX_PROJECT: &str = "proj-1";
pub const AWS_KEY_ID: &str = "AKIAMOCKEXAMPLE0001";
pub const AWS_SECRET: &str = "mock/secret+key/EXAMPLEKEY0000000000000";
pub const AWS_REGION: &str = "eu-west-3";

pub fn service_account(email: &str) -> Value {
    json!({"type": "service_account", "project_id": VERTEX_PROJECT, "private_key_id": "k1",
        "private_key": TEST_SA_KEY, "client_email": email, "token_uri": "https://oauth2.googleapis.com/token"})
}

pub struct NativeState {
    pub kind: Native,
    pub api_key: String,
    pub requests: Mutex<Vec<Recorded>>,
    pub issued_tokens: Mutex<Vec<String>>,
    /// SigV4 checks done and passed.
    pub signatures_verified: std::sync::atomic::AtomicUsize,
}

pub struct NativeMock {
    pub addr: SocketAddr,
    pub state: Arc<NativeState>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NativeMock {
    pub fn start(kind: Native, api_key: &str) -> NativeMock {
        let state = Arc::new(NativeState {
            kind,
            api_key: api_key.to_string(),
            requests: Mutex::new(vec![]),
            issued_tokens: Mutex::new(vec![]),
            signatures_verified: Default::default(),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let sys = actix_rt::System::new();
            sys.block_on(async move {
                let data = web::Data::from(st);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .wrap_fn(|req, srv| crate::gzip::gzip_json(req, srv, true))
                        .default_service(web::to(dispatch))
                })
                .workers(1)
                .disable_signals()
                .bind("127.0.0.1:0")
                .expect("bind mock");
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).expect("send");
                let _ = server.await;
            });
        });
        let (addr, handle) = rx.recv().expect("mock started");
        NativeMock {
            addr,
            state,
            handle,
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// The last request whose path (with query) starts with `prefix`.
    pub fn last(&self, prefix: &str) -> Option<Recorded> {
        self.requests()
            .into_iter()
            .rev()
            .find(|r| r.path.starts_with(prefix))
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .count()
    }
}

impl Drop for NativeMock {
    fn drop(&mut self) {
        let h = self.handle.clone();
        let _ = std::thread::spawn(move || actix_rt::System::new().block_on(h.stop(false))).join();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn record(state: &NativeState, req: &HttpRequest, body: &[u8]) {
    state
        .requests
        .lock()
        .expect("lock")
        .push(Recorded::of(req, body));
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn query(req: &HttpRequest, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn not_found(path: &str) -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": {"code": 404, "message": format!("no route {path}"), "status": "NOT_FOUND"}}))
}

/// The bytes every native mock serves at `/images/dot.png` (any bytes: only their journey is
/// checked).
pub const IMAGE: &[u8] = b"\x89PNG\r\n\x1a\nmock-image-bytes";

async fn dispatch(req: HttpRequest, body: Bytes, state: web::Data<NativeState>) -> HttpResponse {
    record(&state, &req, &body);
    // A web server hosting images that clients refer to by URL.
    match req.path() {
        "/images/dot.png" => return HttpResponse::Ok().content_type("image/png").body(IMAGE),
        "/images/page.html" => return HttpResponse::Ok().content_type("text/html").body("<p>"),
        p if p.starts_with("/images/") => return HttpResponse::NotFound().finish(),
        _ => {}
    }
    match state.kind {
        Native::Anthropic => anthropic(&req, &body, &state),
        Native::Gemini => gemini(&req, &body, &state),
        Native::Vertex => vertex(&req, &body, &state),
        Native::Bedrock => bedrock(&req, &body, &state),
        Native::Azure => azure(&req, &body, &state),
        Native::Cohere => cohere(&req, &body, &state),
    }
}

fn sse(events: Vec<String>) -> HttpResponse {
    let chunks = events
        .into_iter()
        .map(|e| Ok::<_, actix_web::Error>(Bytes::from(e)));
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(futures_util::stream::iter(chunks))
}

// ---------------------------------------------------------------- Anthropic

/// The SSE events of a streamed Anthropic message, exactly as sent.
pub fn anthropic_events(model: &str) -> Vec<String> {
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 3, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", json!({"type": "ping"})),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " there"}}),
        ),
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 2}}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ]
}

fn anthropic_message(model: &str) -> Value {
    json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": "Hello there"}], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 3, "output_tokens": 2}})
}

fn anthropic_error(status: u16, kind: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .insert_header(("request-id", "req_mock"))
        .json(json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_mock"}))
}

/// Answers a Messages request (first-party, or through Vertex/Bedrock with `model` in the URL).
/// With tools, the mock Claude calls the first one (or the one `tool_choice` names) with
/// {"q":"x"}, after a sentence unless the choice forces a tool (Claude then writes no text
/// first): the tool's name and whether it was forced.
fn claude_tool(v: &Value) -> Option<(String, bool)> {
    let first = v["tools"].as_array()?.first()?;
    let forced = v["tool_choice"]["type"] == "tool" || v["tool_choice"]["type"] == "any";
    let name = v["tool_choice"]["name"]
        .as_str()
        .or(first["name"].as_str())
        .unwrap_or("tool");
    Some((name.to_string(), forced))
}

/// The SSE events of a streamed call of tool `name`.
fn tool_events(model: &str, name: &str) -> Vec<String> {
    let ev = |n: &str, d: Value| format!("event: {n}\ndata: {d}\n\n");
    vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_tool", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 3, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": name, "input": {}}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"q\":"}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "\"x\"}"}}),
        ),
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 5}}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ]
}

fn messages(body: &[u8], url_model: Option<&str>, vendor_version: Option<&str>) -> HttpResponse {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    if let Some(version) = vendor_version {
        if v["anthropic_version"] != version || v.get("model").is_some() {
            return anthropic_error(
                400,
                "invalid_request_error",
                &format!("anthropic_version must be {version} and model must not be in the body"),
            );
        }
    }
    if v["max_tokens"].as_u64().is_none() {
        return anthropic_error(400, "invalid_request_error", "max_tokens: Field required");
    }
    let model = url_model
        .map(String::from)
        .unwrap_or_else(|| v["model"].as_str().unwrap_or("").to_string());
    let last_user_text = v["messages"]
        .as_array()
        .and_then(|m| m.last())
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            c => c
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| b["text"].as_str())
                .collect(),
        })
        .unwrap_or_default();
    let stream = v["stream"] == true;
    // "fail midway": the answer starts, then Anthropic reports an error inside the 200 stream.
    if stream && last_user_text == "fail midway" {
        let mut events = anthropic_events(&model)[..4].to_vec();
        events.push(format!(
            "event: error\ndata: {}\n\n",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        ));
        return sse(events);
    }
    if let Some((name, forced)) = claude_tool(&v) {
        if stream {
            return sse(tool_events(&model, &name));
        }
        let mut content =
            vec![json!({"type": "tool_use", "id": "toolu_1", "name": name, "input": {"q": "x"}})];
        if !forced {
            content.insert(0, json!({"type": "text", "text": "Calling."}));
        }
        return HttpResponse::Ok().json(json!({"id": "msg_tool", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": "tool_use", "stop_sequence": null, "usage": {"input_tokens": 3, "output_tokens": 5}}));
    }
    if stream {
        sse(anthropic_events(&model))
    } else {
        HttpResponse::Ok().json(anthropic_message(&model))
    }
}

fn anthropic(req: &HttpRequest, body: &[u8], state: &NativeState) -> HttpResponse {
    if header(req, "anthropic-version").is_none() {
        return anthropic_error(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    let key = header(req, "x-api-key");
    if key != Some(&state.api_key) && !key.is_some_and(|k| k.starts_with("sk-byok")) {
        return anthropic_error(401, "authentication_error", "invalid x-api-key");
    }
    match (req.method().as_str(), req.path()) {
        ("GET", "/v1/models") => {
            // One model per page, so the cursor is followed.
            let all = ["m1", "m2"];
            let start = match query(req, "after_id") {
                Some(a) => all
                    .iter()
                    .position(|m| *m == a)
                    .map_or(all.len(), |i| i + 1),
                None => 0,
            };
            let page: Vec<Value> = all[start.min(all.len())..]
                .iter()
                .take(1)
                .map(|m| json!({"id": m, "type": "model", "display_name": m, "created_at": "2025-05-14T00:00:00Z"}))
                .collect();
            let last = page.last().and_then(|m| m["id"].as_str()).map(String::from);
            HttpResponse::Ok().json(json!({"data": page, "has_more": start + 1 < all.len(), "first_id": last, "last_id": last}))
        }
        ("POST", "/v1/messages") => messages(body, None, None),
        (_, p) => anthropic_error(404, "not_found_error", &format!("no route {p}")),
    }
}

// ---------------------------------------------------------------- Gemini and Vertex

fn google_error(status: u16, code: &str, message: &str, reason: Option<&str>) -> HttpResponse {
    let mut e = json!({"error": {"code": status, "message": message, "status": code}});
    if let Some(r) = reason {
        e["error"]["details"] = json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": r, "domain": "googleapis.com"}]);
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).json(e)
}

/// The SSE events of a streamed `generateContent`, exactly as sent (no `[DONE]`).
pub fn gemini_events() -> Vec<String> {
    let part = |t: &str| json!({"candidates": [{"content": {"role": "model", "parts": [{"text": t}]}, "index": 0}]});
    let mut last = part(" there");
    last["candidates"][0]["finishReason"] = "STOP".into();
    last["usageMetadata"] =
        json!({"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5});
    [part("Hello"), last]
        .iter()
        .map(|v| format!("data: {v}\r\n\r\n"))
        .collect()
}

/// What the Gemini mock's model answers: with function declarations, a call of the first one with
/// `{"q":"x"}`; in JSON mode (`responseMimeType`), the text `{"q":"x"}`; else "Hello there".
/// Each as the parts of its stream chunks.
fn gemini_parts(body: &[u8]) -> Vec<Value> {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    if let Some(f) = v["tools"][0]["functionDeclarations"][0]["name"].as_str() {
        return vec![json!({"functionCall": {"name": f, "args": {"q": "x"}}})];
    }
    if v["generationConfig"]["responseMimeType"] == "application/json" {
        return vec![json!({"text": "{\"q\":"}), json!({"text": "\"x\"}"})];
    }
    vec![json!({"text": "Hello"}), json!({"text": " there"})]
}

fn generate(method: &str, body: &[u8]) -> HttpResponse {
    let parts = gemini_parts(body);
    let usage = json!({"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5});
    match method {
        "generateContent" => {
            let whole = match parts
                .iter()
                .map(|p| p["text"].as_str())
                .collect::<Option<String>>()
            {
                Some(text) => vec![json!({"text": text})],
                None => parts,
            };
            HttpResponse::Ok().json(json!({
                "candidates": [{"content": {"role": "model", "parts": whole}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": usage, "modelVersion": "mock"}))
        }
        "streamGenerateContent" if parts.len() == 2 && parts[0]["text"] == "Hello" => {
            sse(gemini_events())
        }
        "streamGenerateContent" => {
            let n = parts.len();
            sse(parts
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut c = json!({"candidates": [{"content": {"role": "model", "parts": [p]}, "index": 0}]});
                    if i + 1 == n {
                        c["candidates"][0]["finishReason"] = "STOP".into();
                        c["usageMetadata"] = usage.clone();
                    }
                    format!("data: {c}\r\n\r\n")
                })
                .collect())
        }
        "countTokens" => HttpResponse::Ok().json(json!({"totalTokens": 1})),
        m => google_error(
            400,
            "INVALID_ARGUMENT",
            &format!("unknown method {m}"),
            None,
        ),
    }
}

fn gemini(req: &HttpRequest, body: &[u8], state: &NativeState) -> HttpResponse {
    let key = header(req, "x-goog-api-key");
    if key != Some(&state.api_key) && !key.is_some_and(|k| k.starts_with("sk-byok")) {
        // Google answers a bad key with 400, not 401.
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            Some("API_KEY_INVALID"),
        );
    }
    if query(req, "key").is_some() {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "a key in the URL reached the upstream",
            None,
        );
    }
    let path = req.path();
    if req.method() == actix_web::http::Method::GET && path == "/v1beta/models" {
        let pages = [
            json!({"models": [{"name": "models/m1", "supportedGenerationMethods": ["generateContent", "countTokens"]},
                              {"name": "models/aqa", "supportedGenerationMethods": ["generateAnswer"]}], "nextPageToken": "page-2"}),
            json!({"models": [{"name": "models/m2", "supportedGenerationMethods": ["embedContent"]}]}),
        ];
        return match query(req, "pageToken").as_deref() {
            None => HttpResponse::Ok().json(&pages[0]),
            Some("page-2") => HttpResponse::Ok().json(&pages[1]),
            Some(_) => google_error(400, "INVALID_ARGUMENT", "bad page token", None),
        };
    }
    match path
        .strip_prefix("/v1beta/models/")
        .and_then(|r| r.split_once(':'))
    {
        Some((m, method)) if m == "m1" || m == "m2" => generate(method, body),
        Some((m, _)) => google_error(404, "NOT_FOUND", &format!("models/{m} is not found"), None),
        None => not_found(path),
    }
}

fn vertex(req: &HttpRequest, body: &[u8], state: &NativeState) -> HttpResponse {
    let path = req.path().to_string();
    if path == "/token" {
        return token_endpoint(body, state);
    }
    let bearer = header(req, "authorization").and_then(|a| a.strip_prefix("Bearer "));
    let issued = bearer.is_some_and(|t| {
        state
            .issued_tokens
            .lock()
            .expect("lock")
            .iter()
            .any(|i| i == t)
    });
    if !issued && !bearer.is_some_and(|t| t.starts_with("sk-byok")) {
        return google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.", None);
    }
    if req.method() == actix_web::http::Method::GET && path == "/v1beta1/publishers/google/models" {
        return match query(req, "pageToken").as_deref() {
            None => HttpResponse::Ok().json(json!({"publisherModels": [
                {"name": "publishers/google/models/gemini-m1", "versionId": "001", "launchStage": "GA"},
                {"name": "publishers/google/models/imagen-x", "versionId": "001"}], "nextPageToken": "p2"})),
            Some("p2") => HttpResponse::Ok().json(json!({"publisherModels": [
                {"name": "publishers/google/models/gemini-m2", "versionId": "001", "launchStage": "GA"}]})),
            Some(_) => google_error(400, "INVALID_ARGUMENT", "bad page token", None),
        };
    }
    let Some(rest) = path.strip_prefix("/v1/projects/") else {
        return not_found(&path);
    };
    let Some((project, rest)) = rest.split_once("/locations/") else {
        return not_found(&path);
    };
    if project != VERTEX_PROJECT {
        return google_error(403, "PERMISSION_DENIED", &format!("Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/projects/{project}'"), None);
    }
    let Some((_region, rest)) = rest.split_once('/') else {
        return not_found(&path);
    };
    if rest == "models" {
        return HttpResponse::Ok().json(json!({"models": []}));
    }
    if let Some(call) = rest.strip_prefix("publishers/google/models/") {
        return match call.split_once(':') {
            Some((m, method)) if m.starts_with("gemini-m") => generate(method, body),
            _ => google_error(404, "NOT_FOUND", "Publisher model not found", None),
        };
    }
    if let Some(call) = rest.strip_prefix("publishers/anthropic/models/") {
        return match call.split_once(':') {
            Some((m, "rawPredict" | "streamRawPredict")) if m == "claude-m1@20250514" => {
                messages(body, Some(m), Some("vertex-2023-10-16"))
            }
            _ => google_error(
                404,
                "NOT_FOUND",
                "Publisher model not found or not enabled",
                None,
            ),
        };
    }
    not_found(&path)
}

/// Google's token endpoint: verifies the JWT-bearer assertion before issuing a token.
fn token_endpoint(body: &[u8], state: &NativeState) -> HttpResponse {
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body).into_owned().collect();
    let refuse = |d: &str| {
        HttpResponse::BadRequest().json(json!({"error": "invalid_grant", "error_description": d}))
    };
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return HttpResponse::BadRequest().json(json!({"error": "unsupported_grant_type"}));
    }
    let sa = ServiceAccount::from_json(&service_account(SA_EMAIL)).expect("test SA");
    let pk = public_key_der(&sa).expect("public key");
    let Some(claims) = form.get("assertion").and_then(|a| verify_assertion(a, &pk)) else {
        return refuse("Invalid JWT Signature.");
    };
    let now = chrono::Utc::now().timestamp();
    if claims["iss"] != SA_EMAIL {
        return refuse("Invalid grant: account not found");
    }
    let exp = claims["exp"].as_i64().unwrap_or(0);
    let iat = claims["iat"].as_i64().unwrap_or(0);
    if claims["aud"] != "https://oauth2.googleapis.com/token"
        || claims["scope"] != "https://www.googleapis.com/auth/cloud-platform"
        || exp <= now
        || exp - iat > 3600
        || (iat - now).abs() > 300
    {
        return refuse("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.");
    }
    let mut issued = state.issued_tokens.lock().expect("lock");
    let token = format!("ya29.mock-{}", issued.len() + 1);
    issued.push(token.clone());
    HttpResponse::Ok()
        .json(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))
}

// ---------------------------------------------------------------- Bedrock

fn aws_error(status: u16, kind: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .insert_header((
            "x-amzn-ErrorType",
            format!("{kind}:http://internal.amazon.com/coral/com.amazon.coral.service/"),
        ))
        .json(json!({"message": message}))
}

/// Verifies SigV4 over the request as received; `Err` is AWS's answer.
#[allow(clippy::result_large_err)]
fn verify_sigv4(req: &HttpRequest, body: &[u8]) -> Result<(), HttpResponse> {
    let auth = header(req, "authorization").unwrap_or("");
    let missing = || {
        aws_error(
            403,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'.",
        )
    };
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(missing)?;
    let field = |name: &str| {
        rest.split(", ")
            .find_map(|p| p.strip_prefix(name))
            .map(String::from)
    };
    let (credential, signed_headers, signature) = match (
        field("Credential="),
        field("SignedHeaders="),
        field("Signature="),
    ) {
        (Some(c), Some(h), Some(s)) => (c, h, s),
        _ => return Err(missing()),
    };
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[0] != AWS_KEY_ID {
        return Err(aws_error(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    let amz_date = header(req, "x-amz-date").unwrap_or("");
    let at = chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map(|t| t.and_utc().timestamp())
        .map_err(|_| missing())?;
    if (chrono::Utc::now().timestamp() - at).abs() > 300 {
        return Err(aws_error(
            403,
            "InvalidSignatureException",
            "Signature expired",
        ));
    }
    if scope[2] != AWS_REGION || scope[3] != "bedrock" || scope[4] != "aws4_request" {
        return Err(aws_error(
            403,
            "InvalidSignatureException",
            &format!(
                "Credential should be scoped to a valid region and service 'bedrock', not '{}/{}'",
                scope[2], scope[3]
            ),
        ));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"host") || !names.contains(&"x-amz-date") {
        return Err(missing());
    }
    let extra: Vec<(&str, &str)> = names
        .iter()
        .filter(|n| !matches!(**n, "host" | "x-amz-date" | "x-amz-security-token"))
        .map(|n| (*n, header(req, n).unwrap_or("")))
        .collect();
    let creds = sigv4::AwsCredentials {
        access_key_id: AWS_KEY_ID.into(),
        secret_access_key: AWS_SECRET.into(),
        session_token: header(req, "x-amz-security-token").map(String::from),
    };
    // The path exactly as it arrived on the wire (still percent-encoded).
    let raw_path = req.uri().path();
    let expected = sigv4::sign(
        &sigv4::Request {
            method: req.method().as_str(),
            host: header(req, "host").unwrap_or(""),
            path: raw_path,
            query: req.query_string(),
            headers: &extra,
            body,
        },
        &creds,
        AWS_REGION,
        "bedrock",
        at,
    );
    let want = expected
        .authorization
        .rsplit("Signature=")
        .next()
        .unwrap_or("")
        .to_string();
    if want != signature
        || !expected
            .authorization
            .contains(&format!("SignedHeaders={signed_headers},"))
    {
        return Err(aws_error(403, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."));
    }
    Ok(())
}

/// One AWS event-stream frame of an event (headers `:event-type`, `:content-type`,
/// `:message-type`), CRC32-checked by whoever decodes it.
pub fn event_frame(event_type: &str, payload: &Value) -> Vec<u8> {
    to11_shared::eventstream::encode(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// InvokeModelWithResponseStream for a Claude model: each Anthropic event of `anthropic_events`
/// as a `chunk` frame carrying its JSON in base64.
pub fn invoke_stream_frames(model: &str) -> Vec<u8> {
    chunk_frames(&anthropic_events(model))
}

/// Anthropic SSE events as InvokeModel stream `chunk` frames.
fn chunk_frames(events: &[String]) -> Vec<u8> {
    use base64::Engine;
    events
        .iter()
        .flat_map(|e| {
            let data = e
                .split_once("\ndata: ")
                .map(|(_, d)| d.trim_end())
                .unwrap_or("");
            let b = base64::engine::general_purpose::STANDARD.encode(data);
            event_frame("chunk", &json!({"bytes": b}))
        })
        .collect()
}

/// The ConverseStream frames the mock sends, exactly as sent.
pub fn converse_frames() -> Vec<u8> {
    [
        ("messageStart", json!({"role": "assistant"})),
        ("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Hello"}})),
        ("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": " there"}})),
        ("contentBlockStop", json!({"contentBlockIndex": 0})),
        ("messageStop", json!({"stopReason": "end_turn"})),
        ("metadata", json!({"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}, "metrics": {"latencyMs": 1}})),
    ]
    .iter()
    .flat_map(|(t, p)| event_frame(t, p))
    .collect()
}

fn bedrock(req: &HttpRequest, body: &[u8], state: &NativeState) -> HttpResponse {
    let bearer = header(req, "authorization").and_then(|a| a.strip_prefix("Bearer "));
    match bearer {
        // A Bedrock API key.
        Some(k) if k == state.api_key || k.starts_with("sk-byok") => {}
        Some(_) => {
            return aws_error(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        }
        None => {
            if let Err(e) = verify_sigv4(req, body) {
                return e;
            }
            state
                .signatures_verified
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let path = req.path().to_string();
    if req.method() == actix_web::http::Method::GET {
        return match path.as_str() {
            "/foundation-models" => HttpResponse::Ok().json(json!({"modelSummaries": [
                {"modelArn": "arn:aws:bedrock:eu-west-3::foundation-model/m1", "modelId": "m1", "modelName": "M1", "providerName": "Mock",
                 "inferenceTypesSupported": ["ON_DEMAND"], "modelLifecycle": {"status": "ACTIVE"}},
                {"modelArn": "arn:…/old", "modelId": "old-m", "providerName": "Mock", "inferenceTypesSupported": ["ON_DEMAND"], "modelLifecycle": {"status": "LEGACY"}},
                {"modelArn": "arn:…/p", "modelId": "anthropic.claude-m1-v1:0", "providerName": "Anthropic", "inferenceTypesSupported": ["INFERENCE_PROFILE"], "modelLifecycle": {"status": "ACTIVE"}}]})),
            "/inference-profiles" => match query(req, "nextToken").as_deref() {
                None => HttpResponse::Ok().json(json!({"inferenceProfileSummaries": [
                    {"inferenceProfileId": "eu.anthropic.claude-m1-v1:0", "inferenceProfileArn": "arn:…", "status": "ACTIVE", "type": "SYSTEM_DEFINED"}], "nextToken": "t2"})),
                Some("t2") => HttpResponse::Ok().json(json!({"inferenceProfileSummaries": [
                    {"inferenceProfileId": "eu.m2", "inferenceProfileArn": "arn:…", "status": "ACTIVE", "type": "SYSTEM_DEFINED"}]})),
                Some(_) => aws_error(400, "ValidationException", "bad token"),
            },
            _ => aws_error(404, "UnknownOperationException", "unknown"),
        };
    }
    let Some(rest) = path.strip_prefix("/model/") else {
        return aws_error(404, "UnknownOperationException", "unknown");
    };
    let Some((model, op)) = rest.rsplit_once('/') else {
        return aws_error(404, "UnknownOperationException", "unknown");
    };
    let model = to11_shared::upstream::decode_segment(model).unwrap_or_default();
    let known = ["m1", "eu.m2", "eu.anthropic.claude-m1-v1:0"];
    if !known.contains(&model.as_str()) {
        return aws_error(
            400,
            "ValidationException",
            "The provided model identifier is invalid.",
        );
    }
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    // With tools, the model calls the first one (or the one `toolChoice` names) with {"q":"x"}.
    let tool = v["toolConfig"]["toolChoice"]["tool"]["name"]
        .as_str()
        .or(v["toolConfig"]["tools"][0]["toolSpec"]["name"].as_str());
    match (op, tool) {
        ("converse", Some(name)) => HttpResponse::Ok().json(json!({
            "output": {"message": {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_1", "name": name, "input": {"q": "x"}}}]}},
            "stopReason": "tool_use", "usage": {"inputTokens": 3, "outputTokens": 5, "totalTokens": 8}, "metrics": {"latencyMs": 1}})),
        ("converse-stream", Some(name)) => HttpResponse::Ok()
            .content_type("application/vnd.amazon.eventstream")
            .body(
                [
                    ("messageStart", json!({"role": "assistant"})),
                    ("contentBlockStart", json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": name}}})),
                    ("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"q\":"}}})),
                    ("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "\"x\"}"}}})),
                    ("contentBlockStop", json!({"contentBlockIndex": 0})),
                    ("messageStop", json!({"stopReason": "tool_use"})),
                    ("metadata", json!({"usage": {"inputTokens": 3, "outputTokens": 5, "totalTokens": 8}, "metrics": {"latencyMs": 1}})),
                ]
                .iter()
                .flat_map(|(t, p)| event_frame(t, p))
                .collect::<Vec<u8>>(),
            ),
        _ => converse_or_invoke(op, &model, body),
    }
}

fn converse_or_invoke(op: &str, model: &str, body: &[u8]) -> HttpResponse {
    let model = model.to_string();
    match op {
        "converse" => HttpResponse::Ok().json(json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "Hello there"}]}},
            "stopReason": "end_turn", "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}, "metrics": {"latencyMs": 1}})),
        "converse-stream" => HttpResponse::Ok()
            .content_type("application/vnd.amazon.eventstream")
            .body(converse_frames()),
        "invoke" if model.contains("anthropic.") => messages(body, Some(&model), Some("bedrock-2023-05-31")),
        "invoke-with-response-stream" if model.contains("anthropic.") => {
            let v: Value = serde_json::from_slice(body).unwrap_or_default();
            if v["anthropic_version"] != "bedrock-2023-05-31" || v.get("model").is_some() || v.get("stream").is_some() {
                return aws_error(400, "ValidationException", "malformed Anthropic body for InvokeModel");
            }
            HttpResponse::Ok()
                .content_type("application/vnd.amazon.eventstream")
                .body(chunk_frames(&match claude_tool(&v) {
                    Some((name, _)) => tool_events(&model, &name),
                    None => anthropic_events(&model),
                }))
        }
        _ => aws_error(400, "ValidationException", "unsupported"),
    }
}

// ---------------------------------------------------------------- Azure and Cohere

fn openai_chat(body: &[u8]) -> HttpResponse {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let model = v["model"].as_str().unwrap_or("").to_string();
    if v["stream"] == true {
        return sse(stream_chunks(&model));
    }
    HttpResponse::Ok().json(json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}))
}

fn azure(req: &HttpRequest, body: &[u8], state: &NativeState) -> HttpResponse {
    let key = header(req, "api-key");
    if key != Some(&state.api_key) && !key.is_some_and(|k| k.starts_with("sk-byok")) {
        return HttpResponse::Unauthorized().json(json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}));
    }
    if query(req, "api-version").as_deref() != Some("2024-10-21") {
        return HttpResponse::NotFound()
            .json(json!({"error": {"code": "404", "message": "Resource not found"}}));
    }
    let path = req.path();
    if path == "/openai/models" {
        return HttpResponse::Ok().json(json!({"object": "list", "data": [{"id": "gpt-4o", "object": "model", "status": "succeeded", "capabilities": {"chat_completion": true}}]}));
    }
    match path.strip_prefix("/openai/deployments/").and_then(|r| r.split_once('/')) {
        Some(("dep-a" | "dep-b", "chat/completions")) => openai_chat(body),
        Some((d, _)) => HttpResponse::NotFound().json(json!({"error": {"code": "DeploymentNotFound", "message": format!("The API deployment {d} for this resource does not exist.")}})),
        None => HttpResponse::NotFound().json(json!({"error": {"code": "404", "message": "Resource not found"}})),
    }
}

fn cohere(req: &HttpRequest, body: &[u8], state: &NativeState) -> HttpResponse {
    let got = header(req, "authorization").and_then(|a| a.strip_prefix("Bearer "));
    if got != Some(&state.api_key) && !got.is_some_and(|k| k.starts_with("sk-byok")) {
        return HttpResponse::Unauthorized()
            .json(json!({"id": "mock", "message": "invalid api token"}));
    }
    match (req.method().as_str(), req.path()) {
        ("GET", "/v1/models") => match query(req, "page_token").as_deref() {
            None => HttpResponse::Ok().json(json!({"models": [{"name": "m1", "endpoints": ["chat", "generate"]}], "next_page_token": "p2"})),
            Some("p2") => HttpResponse::Ok().json(json!({"models": [{"name": "m2", "endpoints": ["embed"]}, {"name": "rerank-x", "endpoints": ["rerank"]}]})),
            Some(_) => HttpResponse::BadRequest().json(json!({"message": "bad page token"})),
        },
        ("POST", "/compatibility/v1/chat/completions") => openai_chat(body),
        (_, p) => HttpResponse::NotFound().json(json!({"message": format!("no route {p}")})),
    }
}
