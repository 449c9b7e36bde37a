//! Azure OpenAI (`api-key`, `api-version`, deployments by path) and Cohere (bearer, `v1/models` pages, the OpenAI-compatible surface).

use super::*;

pub(super) fn openai_chat(body: &[u8]) -> HttpResponse {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let model = v["model"].as_str().unwrap_or("").to_string();
    if v["stream"] == true {
        let usage = v["stream_options"]["include_usage"] == true;
        return sse(crate::mock::openai_stream(&model, usage, 3, 2));
    }
    HttpResponse::Ok().json(json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}],
        "usage": crate::mock::openai_usage(3, 2)}))
}

pub(super) fn azure(req: &HttpRequest, body: &[u8], state: &NativeState) -> HttpResponse {
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

pub(super) fn cohere(req: &HttpRequest, body: &[u8], state: &NativeState) -> HttpResponse {
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
