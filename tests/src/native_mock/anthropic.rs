//! Anthropic: `x-api-key` + `anthropic-version`, cursor pages, Messages JSON and its named SSE events (text and tool calls), first-party or through Vertex and Bedrock.

use super::*;

/// Anthropic's `usage`: 3 input tokens and `output`, and (rich) 7 read from and 11 written to the
/// cache.
pub(super) fn anthropic_usage(output: u64) -> Value {
    if crate::mock::rich_usage() {
        json!({"input_tokens": 3, "cache_read_input_tokens": 7, "cache_creation_input_tokens": 11, "output_tokens": output})
    } else {
        json!({"input_tokens": 3, "output_tokens": output})
    }
}

/// The SSE events of a streamed Anthropic message, exactly as sent.
pub fn anthropic_events(model: &str) -> Vec<String> {
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": anthropic_usage(1)}}),
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

pub(super) fn anthropic_message(model: &str) -> Value {
    json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": "Hello there"}], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": anthropic_usage(2)})
}

pub(super) fn anthropic_error(status: u16, kind: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .insert_header(("request-id", "req_mock"))
        .json(json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_mock"}))
}

/// Answers a Messages request (first-party, or through Vertex/Bedrock with `model` in the URL).
/// With tools, the mock Claude calls the first one (or the one `tool_choice` names) with
/// {"q":"x"}, after a sentence unless the choice forces a tool (Claude then writes no text
/// first): the tool's name and whether it was forced.
pub(super) fn claude_tool(v: &Value) -> Option<(String, bool)> {
    let first = v["tools"].as_array()?.first()?;
    let forced = v["tool_choice"]["type"] == "tool" || v["tool_choice"]["type"] == "any";
    let name = v["tool_choice"]["name"]
        .as_str()
        .or(first["name"].as_str())
        .unwrap_or("tool");
    Some((name.to_string(), forced))
}

/// The SSE events of a streamed call of tool `name`.
pub(super) fn tool_events(model: &str, name: &str) -> Vec<String> {
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

pub(super) fn messages(
    body: &[u8],
    url_model: Option<&str>,
    vendor_version: Option<&str>,
) -> HttpResponse {
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

pub(super) fn anthropic(req: &HttpRequest, body: &[u8], state: &NativeState) -> HttpResponse {
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
