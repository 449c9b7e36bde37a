//! A mock OpenAI-compatible upstream that answers in OpenAI's real wire format, checks the bearer
//! key, and records every request it receives.
//!
//! Streaming can be *gated*: with request header `x-mock-gate: <id>`, the mock sends one SSE chunk,
//! then waits until the test has released the gate before sending the next. A gateway that buffered
//! the stream would never hand the test the first chunk, so the test fails instead of passing by
//! timing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use tokio::sync::Semaphore;

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// A request as a mock received it: method, path with query, headers, body.
    pub fn of(req: &HttpRequest, body: &[u8]) -> Recorded {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or("<binary>").to_string(),
                )
            })
            .collect();
        Recorded {
            method: req.method().to_string(),
            path: req.uri().to_string(),
            headers,
            body: body.to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|s| s.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// How a provider family lists its models.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListingShape {
    /// `{"object":"list","data":[{"id"…}]}`
    #[default]
    Data,
    /// A bare array `[{"id"…}]` (Together).
    BareArray,
    /// `GET /api/tags` → `{"models":[{"name"…}]}` (Ollama), besides `/v1/models`.
    OllamaTags,
    /// No listing at all (Perplexity): `/models` answers 404.
    None,
}

/// How a provider family refuses a bad key, as each really does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InvalidKeyShape {
    /// 401 `{"error":{"message","type","param","code"}}` (OpenAI and most compatibles).
    #[default]
    OpenAi,
    /// 401 `{"error":"Unauthorized"}` (vLLM with `--api-key`).
    BareString,
    /// 401 `{"message":"Wrong API Key",…}` at the top level (Cerebras).
    TopLevel,
    /// 401 `{"detail":"Unauthorized"}` (Mistral).
    Detail,
    /// 400 `{"code":"…","error":"Incorrect API key provided: …"}` (xAI).
    Xai400,
    /// 401 with an HTML page (Perplexity behind its CDN).
    Html,
}

/// The wire format of one provider family.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    /// Path prefix of the API, e.g. `/v1`, `/openai/v1`, `` (none).
    pub prefix: &'static str,
    pub listing: ListingShape,
    pub invalid: InvalidKeyShape,
    /// An authenticated key-check endpoint beside a public listing (OpenRouter's `/key`).
    pub key_path: Option<&'static str>,
    /// Model names a chat call may use (for families without a listing: others answer 400).
    pub strict_models: bool,
}

impl Default for Family {
    fn default() -> Self {
        Family {
            prefix: "/v1",
            listing: ListingShape::Data,
            invalid: InvalidKeyShape::OpenAi,
            key_path: None,
            strict_models: false,
        }
    }
}

/// A scripted answer to a chat request.
#[derive(Clone, Debug)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering (a slow or hung upstream).
    pub delay_ms: u64,
}

impl Scripted {
    /// An OpenAI-shaped error with this status (and optional `code`).
    pub fn error(status: u16, code: &str) -> Scripted {
        Scripted {
            status,
            headers: vec![],
            body: serde_json::json!({"error": {"message": format!("scripted {status}"), "type": "api_error", "param": null, "code": code}}).to_string(),
            delay_ms: 0,
        }
    }

    /// A normal answer, after `ms` milliseconds.
    pub fn slow(ms: u64) -> Scripted {
        Scripted {
            status: 200,
            headers: vec![],
            body: serde_json::json!({"id": "slow", "object": "chat.completion", "choices": []})
                .to_string(),
            delay_ms: ms,
        }
    }

    pub fn with_header(mut self, k: &str, v: &str) -> Scripted {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

/// Counts, on drop, a request that had not finished: the peer went away (cancellation reached
/// the upstream).
struct CancelProbe {
    state: Arc<MockState>,
    finished: bool,
}

impl CancelProbe {
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for CancelProbe {
    fn drop(&mut self) {
        if !self.finished {
            self.state
                .cancelled
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[derive(Default)]
pub struct MockState {
    /// Requests whose handler or stream was dropped before finishing.
    pub cancelled: std::sync::atomic::AtomicUsize,
    /// Answers for the next chat requests, in order (consumed).
    pub script: Mutex<std::collections::VecDeque<Scripted>>,
    /// An answer for every chat request while set (after the script is used up).
    pub always: Mutex<Option<Scripted>>,
    pub api_key: String,
    pub family: Family,
    pub models: Mutex<Vec<String>>,
    pub requests: Mutex<Vec<Recorded>>,
    pub gates: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl MockState {
    pub fn gate(&self, id: &str) -> Arc<Semaphore> {
        self.gates
            .lock()
            .expect("lock")
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(0)))
            .clone()
    }
}

/// Whether the mocks report usage with cache reads and writes and reasoning tokens. A test binary
/// that checks metering turns it on; the others keep the plain counts their assertions use.
pub static RICH_USAGE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn rich_usage() -> bool {
    RICH_USAGE.load(std::sync::atomic::Ordering::Relaxed)
}

/// An OpenAI `usage` object: `prompt`/`completion` tokens, or (rich) 10 prompt tokens of which 7
/// cached and 6 completion tokens of which 4 reasoning.
pub fn openai_usage(prompt: u64, completion: u64) -> serde_json::Value {
    if rich_usage() {
        serde_json::json!({"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16,
            "prompt_tokens_details": {"cached_tokens": 7}, "completion_tokens_details": {"reasoning_tokens": 4}})
    } else {
        serde_json::json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
    }
}

/// The chunks of a streamed chat completion, as OpenAI sends them: with `include_usage`, a
/// `"usage":null` member in every chunk, then one more chunk (no choices) with the usage, before
/// `[DONE]`.
pub fn openai_stream(
    model: &str,
    include_usage: bool,
    prompt: u64,
    completion: u64,
) -> Vec<String> {
    let mut chunks = stream_chunks(model);
    if include_usage {
        for c in chunks.iter_mut().filter(|c| c.starts_with("data: {")) {
            let mut v: serde_json::Value =
                serde_json::from_str(c["data: ".len()..].trim()).expect("chunk");
            v["usage"] = serde_json::Value::Null;
            *c = format!("data: {v}\n\n");
        }
        let usage = serde_json::json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [], "usage": openai_usage(prompt, completion)});
        chunks.insert(chunks.len() - 1, format!("data: {usage}\n\n"));
    }
    chunks
}

/// The SSE chunks the mock streams for a chat completion of `model`, exactly as sent.
pub fn stream_chunks(model: &str) -> Vec<String> {
    let words = ["Hello", " from", " the", " mock"];
    let mut out: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let delta = if i == 0 {
                serde_json::json!({"role": "assistant", "content": w})
            } else {
                serde_json::json!({"content": w})
            };
            format!(
                "data: {}\n\n",
                serde_json::json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
            )
        })
        .collect();
    out.push(format!(
        "data: {}\n\n",
        serde_json::json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    ));
    out.push("data: [DONE]\n\n".to_string());
    out
}

/// OpenAI's 401. A presented key starting `sk-echo` is echoed back in full, as a careless or
/// hostile upstream might, to prove the gateway never repeats it; one starting `sk-echo-pad`
/// after a long preamble, so that the key straddles the 300th character of the message.
fn unauthorized(state: &MockState, req: &HttpRequest) -> HttpResponse {
    let key = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|k| k.starts_with("sk-echo"));
    let pad = if key.is_some_and(|k| k.starts_with("sk-echo-pad")) {
        format!("{} ", "a".repeat(257))
    } else {
        String::new()
    };
    let presented = format!("{pad}{}", key.unwrap_or("sk-***"));
    match state.family.invalid {
        InvalidKeyShape::OpenAi => HttpResponse::Unauthorized().json(serde_json::json!({"error": {
            "message": format!("Incorrect API key provided: {presented}. You can find your API key at https://platform.openai.com/account/api-keys."),
            "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})),
        InvalidKeyShape::BareString => HttpResponse::Unauthorized().json(serde_json::json!({"error": "Unauthorized"})),
        InvalidKeyShape::TopLevel => HttpResponse::Unauthorized().json(serde_json::json!({
            "message": "Wrong API Key", "type": "invalid_request_error", "param": "api_key", "code": "wrong_api_key"})),
        InvalidKeyShape::Detail => HttpResponse::Unauthorized().json(serde_json::json!({"detail": "Unauthorized"})),
        InvalidKeyShape::Xai400 => HttpResponse::BadRequest().json(serde_json::json!({
            "code": "Client specified an invalid argument",
            "error": format!("Incorrect API key provided: {presented}. You can obtain an API key from https://console.x.ai.")})),
        InvalidKeyShape::Html => HttpResponse::Unauthorized()
            .content_type("text/html")
            .body("<html><head><title>401 Authorization Required</title></head><body><center><h1>401 Authorization Required</h1></center></body></html>"),
    }
}

/// A hostile upstream: when the request carries `x-mock-echo-credentials` (a header the gateway
/// forwards), it answers 401 quoting every credential it received in every way a provider might —
/// whole, JSON-escaped, percent-encoded, in base64 (alone, as a `Basic` pair, with its scheme),
/// cut short by one character — in the body and in headers.
pub fn echo_credentials(req: &HttpRequest) -> Option<HttpResponse> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    req.headers().get("x-mock-echo-credentials")?;
    let mut quoted = Vec::new();
    let mut header_echo = Vec::new();
    for name in [
        "authorization",
        "x-api-key",
        "x-goog-api-key",
        "api-key",
        "x-amz-security-token",
    ] {
        for v in req.headers().get_all(name).filter_map(|v| v.to_str().ok()) {
            let token = v.split_whitespace().last().unwrap_or(v);
            // SigV4: `Credential=AKID/date/region/service/aws4_request, …`.
            let token = v
                .split("Credential=")
                .nth(1)
                .and_then(|c| c.split('/').next())
                .unwrap_or(token);
            let cut = &token[..token.len().saturating_sub(1)];
            quoted.push(format!(
                "{name}: {v} | {token} | {} | {} | {} | {} | {} | {cut}",
                token.replace('/', "\\/"),
                token
                    .bytes()
                    .map(|b| if b.is_ascii_alphanumeric() {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    })
                    .collect::<String>(),
                STANDARD.encode(token),
                STANDARD.encode(format!("{token}:")),
                STANDARD.encode(v),
            ));
            header_echo.push(format!("Bearer realm=\"mock\", token=\"{token}\""));
        }
    }
    let mut r = HttpResponse::Unauthorized();
    for h in &header_echo {
        r.append_header(("www-authenticate", h.as_str()));
    }
    if let Some(v) = req.headers().get("authorization") {
        r.insert_header(("x-echo-authorization", v.clone()));
    }
    Some(r.json(serde_json::json!({
        "error": {"message": format!("Invalid credentials: {}", quoted.join(" ; ")), "type": "authentication_error",
                  "code": 401, "status": "UNAUTHENTICATED"}
    })))
}

fn record(state: &MockState, req: &HttpRequest, body: &[u8]) {
    state
        .requests
        .lock()
        .expect("lock")
        .push(Recorded::of(req, body));
}

fn authorized(state: &MockState, req: &HttpRequest) -> bool {
    let got = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if state.api_key.is_empty() {
        return true; // a server without a key (Ollama, vLLM without --api-key)
    }
    // Any key starting with "sk-byok" is accepted too, standing for a client's own key.
    got == Some(format!("Bearer {}", state.api_key).as_str())
        || got.is_some_and(|g| g.starts_with("Bearer sk-byok"))
}

async fn list_models(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    record(&state, &req, b"");
    let public = state.family.key_path.is_some();
    if !public && !authorized(&state, &req) {
        return unauthorized(&state, &req);
    }
    let models = state.models.lock().expect("lock").clone();
    let items: Vec<serde_json::Value> = models
        .iter()
        .map(|m| serde_json::json!({"id": m, "object": "model", "created": 1700000000, "owned_by": "mock"}))
        .collect();
    if req.path() == "/api/tags" {
        let tags: Vec<serde_json::Value> = models
            .iter()
            .map(|m| serde_json::json!({"name": m, "model": m, "size": 1, "details": {"family": "mock"}}))
            .collect();
        return HttpResponse::Ok().json(serde_json::json!({"models": tags}));
    }
    match state.family.listing {
        ListingShape::BareArray => HttpResponse::Ok().json(items),
        ListingShape::None => {
            HttpResponse::NotFound().json(serde_json::json!({"error": {"message": "Not found"}}))
        }
        _ => HttpResponse::Ok().json(serde_json::json!({"object": "list", "data": items})),
    }
}

/// OpenRouter-style key check.
async fn key_check(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    record(&state, &req, b"");
    if !authorized(&state, &req) {
        return unauthorized(&state, &req);
    }
    HttpResponse::Ok()
        .json(serde_json::json!({"data": {"label": "mock", "limit": null, "usage": 0}}))
}

/// Routes a request by the family's paths.
async fn dispatch(req: HttpRequest, body: Bytes, state: web::Data<MockState>) -> HttpResponse {
    let prefix = state.family.prefix;
    let path = req.path().to_string();
    let rest = path.strip_prefix(prefix).unwrap_or("");
    let get = req.method() == actix_web::http::Method::GET;
    match (get, rest, path.as_str()) {
        (true, _, "/api/tags") if state.family.listing == ListingShape::OllamaTags => {
            list_models(req, state).await
        }
        (true, "/models", _) => list_models(req, state).await,
        (true, r, _) if Some(r) == state.family.key_path => key_check(req, state).await,
        (false, "/chat/completions", _) => chat(req, body, state).await,
        (false, "/embeddings" | "/completions" | "/responses", _) => echo(req, body, state).await,
        _ => HttpResponse::NotFound()
            .json(serde_json::json!({"error": {"message": format!("no route {path}")}})),
    }
}

async fn chat(req: HttpRequest, body: Bytes, state: web::Data<MockState>) -> HttpResponse {
    record(&state, &req, &body);
    if let Some(r) = echo_credentials(&req) {
        return r;
    }
    if !authorized(&state, &req) {
        return unauthorized(&state, &req);
    }
    let scripted = state
        .script
        .lock()
        .expect("lock")
        .pop_front()
        .or_else(|| state.always.lock().expect("lock").clone());
    if let Some(s) = scripted {
        if s.delay_ms > 0 {
            let mut probe = CancelProbe {
                state: state.clone().into_inner(),
                finished: false,
            };
            tokio::time::sleep(Duration::from_millis(s.delay_ms)).await;
            probe.finish();
        }
        let mut r =
            HttpResponse::build(actix_web::http::StatusCode::from_u16(s.status).expect("status"));
        for (k, v) in &s.headers {
            r.insert_header((k.as_str(), v.as_str()));
        }
        return r.content_type("application/json").body(s.body);
    }
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return HttpResponse::BadRequest().json(serde_json::json!({"error": {"message": "We could not parse the JSON body of your request.", "type": "invalid_request_error", "param": null, "code": null}}))
        }
    };
    let model = v["model"].as_str().unwrap_or("").to_string();
    if state.family.strict_models && !state.models.lock().expect("lock").contains(&model) {
        return HttpResponse::BadRequest().json(serde_json::json!({"error": {
            "message": format!("Invalid model '{model}'. Permitted models can be found in the documentation."),
            "type": "invalid_model", "code": 400}}));
    }
    if let Some(r) = tool_call(&v, &model) {
        return r;
    }
    if v["stream"].as_bool() == Some(true) {
        let chunks = openai_stream(&model, v["stream_options"]["include_usage"] == true, 5, 4);
        let gate = req
            .headers()
            .get("x-mock-gate")
            .and_then(|g| g.to_str().ok())
            .map(|id| state.gate(id));
        let probe = CancelProbe {
            state: state.clone().into_inner(),
            finished: false,
        };
        let s = futures_util::stream::unfold(
            (0usize, chunks, gate, probe),
            move |(i, chunks, gate, mut probe)| async move {
                if i >= chunks.len() {
                    probe.finish();
                    return None;
                }
                // The usage chunk is not gated: a client the gateway stripped it from never sees
                // it, so it cannot release a gate for it.
                if i > 0 && !chunks[i].starts_with("data: {\"choices\":[],") {
                    if let Some(g) = &gate {
                        // Wait (bounded) for the test to confirm it received the previous chunk.
                        if let Ok(Ok(p)) =
                            tokio::time::timeout(Duration::from_secs(20), g.acquire()).await
                        {
                            p.forget();
                        }
                    }
                }
                let c = Bytes::from(chunks[i].clone());
                Some((Ok::<_, actix_web::Error>(c), (i + 1, chunks, gate, probe)))
            },
        );
        return HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"))
            .streaming(s);
    }
    HttpResponse::Ok().insert_header(("x-request-id", "req_mock")).json(serde_json::json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the mock"}, "finish_reason": "stop", "logprobs": null}],
        "usage": openai_usage(5, 4)
    }))
}

async fn echo(req: HttpRequest, body: Bytes, state: web::Data<MockState>) -> HttpResponse {
    record(&state, &req, &body);
    if !authorized(&state, &req) {
        return unauthorized(&state, &req);
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let model = v["model"].as_str().unwrap_or("").to_string();
    let object = match req.path() {
        "/v1/embeddings" => serde_json::json!({"object": "list", "model": model,
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
            "usage": {"prompt_tokens": 2, "total_tokens": 2}}),
        "/v1/completions" => {
            serde_json::json!({"id": "cmpl-mock", "object": "text_completion", "model": model,
            "choices": [{"index": 0, "text": "mock", "finish_reason": "stop"}]})
        }
        _ if v["stream"] == true => {
            return HttpResponse::Ok()
                .content_type("text/event-stream")
                .body(responses_events(&model))
        }
        _ => responses_object(&model, "completed"),
    };
    HttpResponse::Ok().json(object)
}

/// With tools, the mock model calls the first one (or the one `tool_choice` names) with
/// {"q":"x"}, unless the last message is a tool's output: then it answers as usual.
fn tool_call(v: &serde_json::Value, model: &str) -> Option<HttpResponse> {
    let first = v["tools"].as_array()?.first()?;
    if v["messages"].as_array()?.last()?["role"] == "tool" {
        return None;
    }
    let name = v["tool_choice"]["function"]["name"]
        .as_str()
        .or(first["function"]["name"].as_str())
        .unwrap_or("tool");
    let call = |args: &str| {
        serde_json::json!({"index": 0, "id": "call_mock_1", "type": "function",
        "function": {"name": name, "arguments": args}})
    };
    if v["stream"] != true {
        return Some(HttpResponse::Ok().json(serde_json::json!({
            "id": "chatcmpl-tool", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null,
                "message": {"role": "assistant", "content": null, "tool_calls": [call("{\"q\":\"x\"}")]}}],
            "usage": openai_usage(5, 4)})));
    }
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let c = serde_json::json!({"id": "chatcmpl-tool", "object": "chat.completion.chunk", "created": 1,
            "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    let mut body = chunk(
        serde_json::json!({"role": "assistant", "tool_calls": [call("")]}),
        None,
    );
    for part in ["{\"q\":", "\"x\"}"] {
        body.push_str(&chunk(
            serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
            None,
        ));
    }
    body.push_str(&chunk(serde_json::json!({}), Some("tool_calls")));
    if v["stream_options"]["include_usage"] == true {
        let u = serde_json::json!({"id": "chatcmpl-tool", "object": "chat.completion.chunk", "created": 1,
            "model": model, "choices": [], "usage": openai_usage(5, 4)});
        body.push_str(&format!("data: {u}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    Some(
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .body(body),
    )
}

/// A Responses API answer as OpenAI gives it: one message with the text "mock".
fn responses_object(model: &str, status: &str) -> serde_json::Value {
    let done = status == "completed";
    serde_json::json!({"id": "resp_mock", "object": "response", "created_at": 1, "model": model,
        "status": status, "error": null, "incomplete_details": null, "parallel_tool_calls": true,
        "tool_choice": "auto", "tools": [],
        "output": if done { serde_json::json!([{"id": "msg_mock", "type": "message", "status": "completed",
            "role": "assistant", "content": [{"type": "output_text", "text": "mock", "annotations": []}]}]) }
            else { serde_json::json!([]) },
        "usage": if done { serde_json::json!({"input_tokens": 3, "input_tokens_details": {"cached_tokens": 1},
            "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 5}) }
            else { serde_json::Value::Null }})
}

/// The Responses API's event stream for the same answer, text in two deltas.
fn responses_events(model: &str) -> String {
    let item = serde_json::json!({"id": "msg_mock", "type": "message", "status": "in_progress",
        "role": "assistant", "content": []});
    let part =
        |text: &str| serde_json::json!({"type": "output_text", "text": text, "annotations": []});
    let at = |i: &str| serde_json::json!({"item_id": i, "output_index": 0, "content_index": 0});
    let mut events = vec![
        (
            "response.created",
            serde_json::json!({"response": responses_object(model, "in_progress")}),
        ),
        (
            "response.in_progress",
            serde_json::json!({"response": responses_object(model, "in_progress")}),
        ),
        (
            "response.output_item.added",
            serde_json::json!({"output_index": 0, "item": item}),
        ),
    ];
    let mut with = |name: &'static str, extra: serde_json::Value| {
        let mut v = at("msg_mock");
        for (k, x) in extra.as_object().into_iter().flatten() {
            v[k] = x.clone();
        }
        events.push((name, v));
    };
    with(
        "response.content_part.added",
        serde_json::json!({"part": part("")}),
    );
    with(
        "response.output_text.delta",
        serde_json::json!({"delta": "mo", "logprobs": []}),
    );
    with(
        "response.output_text.delta",
        serde_json::json!({"delta": "ck", "logprobs": []}),
    );
    with(
        "response.output_text.done",
        serde_json::json!({"text": "mock", "logprobs": []}),
    );
    with(
        "response.content_part.done",
        serde_json::json!({"part": part("mock")}),
    );
    let whole = responses_object(model, "completed");
    events.push((
        "response.output_item.done",
        serde_json::json!({"output_index": 0, "item": whole["output"][0]}),
    ));
    events.push(("response.completed", serde_json::json!({"response": whole})));
    let mut out = String::new();
    for (n, (name, mut data)) in events.into_iter().enumerate() {
        data["type"] = name.into();
        data["sequence_number"] = n.into();
        out.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    }
    out
}

/// Benchmark fast path: a fixed answer, no recording, no JSON parsing. `POST …/messages` gets
/// [`FAST_MESSAGES_BODY`] (Anthropic Messages); a body asking `"stream":true` (a byte search) gets
/// the SSE stream [`FAST_STREAM`], chunked, one chunk per event; anything else [`FAST_BODY`].
async fn fast(req: HttpRequest, body: Bytes) -> HttpResponse {
    if req.path().ends_with("/messages") {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(FAST_MESSAGES_BODY);
    }
    if asks_stream(&body) {
        let events = FAST_STREAM
            .iter()
            .map(|e| Ok::<_, std::convert::Infallible>(Bytes::from_static(e.as_bytes())));
        return HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"))
            .streaming(futures_util::stream::iter(events));
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(FAST_BODY)
}

/// Whether a request body asks for a stream, without parsing it (compact or spaced JSON).
fn asks_stream(body: &[u8]) -> bool {
    const NEEDLES: [&[u8]; 2] = [b"\"stream\":true", b"\"stream\": true"];
    NEEDLES
        .iter()
        .any(|n| body.windows(n.len()).any(|w| w == *n))
}

/// Benchmark fast path's model list: the mock's models, OpenAI's shape that Anthropic's listing
/// also reads (`has_more`), answered without a key check (as [`fast`] answers).
async fn fast_models(state: web::Data<MockState>) -> HttpResponse {
    let models = state.models.lock().expect("lock").clone();
    let items: Vec<serde_json::Value> = models
        .iter()
        .map(|m| serde_json::json!({"id": m, "object": "model", "created": 1700000000, "owned_by": "mock"}))
        .collect();
    HttpResponse::Ok().json(serde_json::json!({"object": "list", "data": items, "has_more": false}))
}

/// How long the mock keeps an idle keep-alive connection. The benchmark's fast path keeps it 75 s,
/// as providers' front ends keep theirs a minute or more, longer than the proxies' pools keep
/// theirs idle (awc 15 s, nginx 60 s). With actix's 5 s, to11 reused pooled connections the mock
/// had closed during the idle gap between two phases and answered 502 ("connector has been
/// disconnected"). Otherwise actix's 5 s.
fn idle_keep_alive(fast_only: bool) -> Duration {
    Duration::from_secs(if fast_only { 75 } else { 5 })
}

pub const FAST_BODY: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;

/// The fast path's Anthropic Messages answer (`POST /v1/messages`).
pub const FAST_MESSAGES_BODY: &str = r#"{"id":"msg_bench","type":"message","role":"assistant","model":"claude-bench","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}"#;

/// The fast path's OpenAI chat stream: a role chunk, three content chunks, the finish chunk, the
/// usage chunk (`"choices":[]`) and `[DONE]`, one SSE event each.
pub const FAST_STREAM: [&str; 7] = [
    concat!(
        "data: ",
        r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        "\n\n"
    ),
    concat!(
        "data: ",
        r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}"#,
        "\n\n"
    ),
    concat!(
        "data: ",
        r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench","choices":[{"index":0,"delta":{"content":" there"},"finish_reason":null}]}"#,
        "\n\n"
    ),
    concat!(
        "data: ",
        r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench","choices":[{"index":0,"delta":{"content":"!"},"finish_reason":null}]}"#,
        "\n\n"
    ),
    concat!(
        "data: ",
        r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        "\n\n"
    ),
    concat!(
        "data: ",
        r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"#,
        "\n\n"
    ),
    "data: [DONE]\n\n",
];

pub struct MockUpstream {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockUpstream {
    /// Starts the mock on 127.0.0.1:0 with the key it accepts and the models it lists.
    pub fn start(api_key: &str, models: &[&str]) -> MockUpstream {
        Self::start_on("127.0.0.1:0", api_key, models, 1, false)
    }

    /// Starts a mock speaking `family`'s wire format.
    pub fn start_family(api_key: &str, models: &[&str], family: Family) -> MockUpstream {
        Self::start_with("127.0.0.1:0", api_key, models, 1, false, family)
    }

    pub fn start_on(
        listen: &str,
        api_key: &str,
        models: &[&str],
        workers: usize,
        fast_only: bool,
    ) -> MockUpstream {
        Self::start_with(
            listen,
            api_key,
            models,
            workers,
            fast_only,
            Family::default(),
        )
    }

    fn start_with(
        listen: &str,
        api_key: &str,
        models: &[&str],
        workers: usize,
        fast_only: bool,
        family: Family,
    ) -> MockUpstream {
        let state = Arc::new(MockState {
            api_key: api_key.to_string(),
            family,
            models: Mutex::new(models.iter().map(|m| m.to_string()).collect()),
            ..Default::default()
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let st = state.clone();
        let listen = listen.to_string();
        let thread = std::thread::spawn(move || {
            let sys = actix_rt::System::new();
            sys.block_on(async move {
                let data = web::Data::from(st);
                let server = HttpServer::new(move || {
                    // The benchmark's fast path answers plain, as nginx's side of it does.
                    let app = App::new()
                        .app_data(data.clone())
                        .wrap_fn(move |req, srv| crate::gzip::gzip_json(req, srv, !fast_only));
                    if fast_only {
                        app.route("/v1/models", web::get().to(fast_models))
                            .default_service(web::to(fast))
                    } else {
                        app.default_service(web::to(dispatch))
                    }
                })
                .workers(workers)
                .backlog(4096)
                .keep_alive(idle_keep_alive(fast_only))
                // Notice a peer that went away (the gateway cancelling), as a real server would.
                .h1_allow_half_closed(false)
                // SIGTERM ends a mock process at once (its owner stops it; no graceful drain).
                .disable_signals()
                .bind(&listen)
                .expect("bind mock");
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).expect("send");
                let _ = server.await;
            });
        });
        let (addr, handle) = rx.recv().expect("mock started");
        MockUpstream {
            addr,
            state,
            handle,
            thread: Some(thread),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }

    pub fn last_request(&self, path: &str) -> Option<Recorded> {
        self.requests()
            .into_iter()
            .rev()
            .find(|r| r.path.starts_with(path))
    }

    pub fn set_models(&self, models: &[&str]) {
        *self.state.models.lock().expect("lock") = models.iter().map(|m| m.to_string()).collect();
    }

    /// Queues scripted answers for the next chat requests.
    pub fn script(&self, answers: Vec<Scripted>) {
        self.state.script.lock().expect("lock").extend(answers);
    }

    /// Answers every chat request with `answer` (or normally again, with `None`).
    pub fn always(&self, answer: Option<Scripted>) {
        *self.state.always.lock().expect("lock") = answer;
    }

    /// How many requests for `path` the mock has received.
    pub fn count(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.path == path).count()
    }

    /// Forgets recorded requests and scripts.
    pub fn reset(&self) {
        self.state.requests.lock().expect("lock").clear();
        self.state.script.lock().expect("lock").clear();
        *self.state.always.lock().expect("lock") = None;
    }

    /// Stops serving (connections are then refused).
    pub fn stop(&self) {
        let h = self.handle.clone();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(h.stop(false));
        })
        .join()
        .ok();
    }

    /// Requests the mock saw cancelled by the peer before it finished answering.
    pub fn cancelled(&self) -> usize {
        self.state
            .cancelled
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets a gated stream send its next chunk.
    pub fn release(&self, gate: &str) {
        self.state.gate(gate).add_permits(1);
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        let h = self.handle.clone();
        // Stop without waiting for graceful shutdown of in-flight streams.
        std::thread::spawn(move || {
            let rt = actix_rt::System::new();
            rt.block_on(h.stop(false));
        })
        .join()
        .ok();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
