//! Anthropic Messages in, OpenAI Chat Completions out: for `/v1/messages` clients (agents, coding
//! tools) whose target speaks the OpenAI API.
//!
//! Request: `system` → a system message; text and image blocks → content parts; `tool_use` →
//! assistant `tool_calls`; `tool_result` → `tool` messages; tools, `tool_choice`,
//! `disable_parallel_tool_use`, `stop_sequences`, `metadata.user_id`; a stream asks for usage.
//! Earlier turns' `thinking` blocks are dropped (no OpenAI equivalent; they carry no instruction).
//! Features OpenAI cannot express are refused by name.
//!
//! Answer: the completion as a Messages `message` (text and `tool_use` blocks, stop reasons,
//! usage with cache reads); the chunk stream as Anthropic's named events, from `message_start` to
//! `message_stop`; an OpenAI error (whole or in the stream) as Anthropic's `error`.

use serde_json::{json, Map, Value};

use super::pair::{Answer, Target};
use super::stream::{Event, StreamTranslator};
use super::{Asked, Dropped, TranslateError};

fn unsupported(what: &str) -> TranslateError {
    TranslateError::Unsupported(format!("OpenAI-compatible models cannot express {what}"))
}

fn invalid(what: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(what.into())
}

/// An Anthropic Messages body → an OpenAI chat body for the target's model, its `max_tokens`
/// sent as the target's field (`max_tokens` or `max_completion_tokens`).
pub fn request(
    req: Map<String, Value>,
    target: &Target<'_>,
    asked: &mut Asked,
) -> Result<Map<String, Value>, TranslateError> {
    let mut out = Map::new();
    out.insert("model".into(), target.model.into());
    for (k, v) in &req {
        if v.is_null() {
            continue;
        }
        field(k, v, target, &mut out, asked)?;
    }
    // Cache points go on to a next step that keeps them (Converse); otherwise chat has no
    // equivalent and they are dropped.
    let keep = target.cache_points;
    if !keep && cache_points(&req) {
        asked.dropped.add(Dropped::CACHE_CONTROL);
    }
    let mut messages = system(req.get("system"), keep)?;
    for m in req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("the request has no 'messages'"))?
    {
        message(m, &mut messages, keep)?;
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(tools) = req.get("tools").and_then(Value::as_array) {
        let mut t = Vec::new();
        for tool in tools {
            if tool.get("type").is_some_and(|x| x != "custom") {
                return Err(unsupported(&format!("server tools ({})", tool["type"])));
            }
            let mut f = json!({"type": "function", "function": {"name": tool["name"], "description": tool["description"],
                "parameters": tool["input_schema"]}});
            mark(&mut f, tool, keep);
            t.push(f);
        }
        out.insert("tools".into(), Value::Array(t));
    }
    if let Some(c) = req.get("tool_choice").filter(|c| !c.is_null()) {
        let choice = match c["type"].as_str() {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => json!({"type": "function", "function": {"name": c["name"]}}),
            _ => return Err(invalid(format!("unknown tool_choice {c}"))),
        };
        out.insert("tool_choice".into(), choice);
        if c["disable_parallel_tool_use"] == true {
            out.insert("parallel_tool_calls".into(), false.into());
        }
    }
    Ok(out)
}

/// One top-level field of a Messages request, in chat's terms. Hints that only tune how the
/// answer is produced (thinking, effort, context management, cache points, `top_k`) have no
/// chat equivalent every model accepts: they are dropped and named in `asked.dropped`; features
/// that change what the answer means are refused by name.
fn field(
    k: &str,
    v: &Value,
    target: &Target<'_>,
    out: &mut Map<String, Value>,
    asked: &mut Asked,
) -> Result<(), TranslateError> {
    match k {
        "model" | "messages" | "system" | "tools" | "tool_choice" => {}
        "max_tokens" => {
            out.insert(target.max_tokens_field.into(), v.clone());
        }
        "temperature" | "top_p" => {
            out.insert(k.into(), v.clone());
        }
        "stop_sequences" => {
            out.insert("stop".into(), v.clone());
        }
        // The usage of the stream, for the client's `message_delta` (and metering).
        "stream" => super::stream_to_chat(v, target, out),
        "metadata" => {
            if let Some(u) = v["user_id"].as_str() {
                out.insert("user".into(), u.into());
            }
        }
        "thinking" => {
            if v["type"] != "disabled" {
                asked.dropped.add(Dropped::THINKING);
            }
        }
        "output_config" => {
            let fields = v.as_object().map(|o| o.keys().collect::<Vec<_>>());
            match fields {
                Some(keys) if keys.iter().all(|k| *k == "effort") => {
                    asked.dropped.add(Dropped::EFFORT)
                }
                _ => return Err(unsupported("'output_config' beyond 'effort'")),
            }
        }
        "context_management" => asked.dropped.add(Dropped::CONTEXT_MANAGEMENT),
        "cache_control" => asked.dropped.add(Dropped::CACHE_CONTROL),
        "top_k" => asked.dropped.add(Dropped::TOP_K),
        "container" | "mcp_servers" | "output_format" => {
            return Err(unsupported(&format!("'{k}'")));
        }
        "service_tier" | "inference_geo" => {}
        other => return Err(unsupported(&format!("the request field '{other}'"))),
    }
    Ok(())
}

/// Whether the request marks cache points on its system blocks, message blocks or tools (chat
/// has no equivalent; OpenAI-format servers cache prefixes by themselves).
fn cache_points(req: &Map<String, Value>) -> bool {
    let marked = |v: Option<&Value>| {
        v.and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(|i| i.get("cache_control").is_some()))
    };
    marked(req.get("system"))
        || marked(req.get("tools"))
        || req
            .get("messages")
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().any(|m| marked(m.get("content"))))
}

/// `cache_control` copied from a Messages block to what it became, when kept.
fn mark(to: &mut Value, from: &Value, keep: bool) {
    if let Some(c) = from.get("cache_control").filter(|_| keep) {
        to["cache_control"] = c.clone();
    }
}

/// `system` as the first chat message (as text parts when cache points are kept on them).
fn system(system: Option<&Value>, keep: bool) -> Result<Vec<Value>, TranslateError> {
    Ok(match system {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![json!({"role": "system", "content": s})],
        Some(Value::Array(blocks))
            if keep && blocks.iter().any(|b| b.get("cache_control").is_some()) =>
        {
            let parts = blocks
                .iter()
                .filter(|b| b["text"].is_string())
                .map(|b| {
                    let mut p = json!({"type": "text", "text": b["text"]});
                    mark(&mut p, b, keep);
                    p
                })
                .collect();
            vec![json!({"role": "system", "content": Value::Array(parts)})]
        }
        Some(Value::Array(blocks)) => {
            let text: Vec<&str> = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
            vec![json!({"role": "system", "content": text.join("\n\n")})]
        }
        Some(_) => return Err(invalid("'system' must be a string or text blocks")),
    })
}

/// One Messages turn → chat messages (a user turn's tool results are messages of their own).
fn message(m: &Value, messages: &mut Vec<Value>, keep: bool) -> Result<(), TranslateError> {
    let role = m["role"]
        .as_str()
        .ok_or_else(|| invalid("a message has no role"))?;
    let text_block;
    let blocks: &[Value] = match &m["content"] {
        Value::String(s) => {
            text_block = [json!({"type": "text", "text": s})];
            &text_block
        }
        Value::Array(b) => b,
        _ => return Err(invalid("message content must be a string or blocks")),
    };
    match role {
        "user" => user_turn(blocks, messages, keep),
        "assistant" => {
            messages.push(assistant_turn(blocks)?);
            Ok(())
        }
        // Claude Code sends its instructions as a `system` turn to models it does not know:
        // chat has the same role, wherever it appears.
        "system" => {
            let text: Vec<&str> = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
            messages.push(json!({"role": "system", "content": text.join("\n\n")}));
            Ok(())
        }
        other => Err(invalid(format!("unknown role '{other}'"))),
    }
}

fn user_turn(
    blocks: &[Value],
    messages: &mut Vec<Value>,
    keep: bool,
) -> Result<(), TranslateError> {
    let mut parts = Vec::new();
    for b in blocks {
        match b["type"].as_str() {
            Some("text") => {
                let mut p = json!({"type": "text", "text": b["text"]});
                mark(&mut p, b, keep);
                parts.push(p);
            }
            Some("image") => {
                let s = &b["source"];
                let url = match s["type"].as_str() {
                    Some("base64") => format!(
                        "data:{};base64,{}",
                        s["media_type"].as_str().unwrap_or("image/png"),
                        s["data"].as_str().unwrap_or("")
                    ),
                    Some("url") => s["url"].as_str().unwrap_or("").to_string(),
                    _ => return Err(unsupported("image sources other than base64 and url")),
                };
                let mut p = json!({"type": "image_url", "image_url": {"url": url}});
                mark(&mut p, b, keep);
                parts.push(p);
            }
            Some("tool_result") => {
                // Tool results are messages of their own, before the rest of the turn.
                let content = match &b["content"] {
                    Value::String(s) => s.clone(),
                    Value::Array(c) => c
                        .iter()
                        .filter_map(|x| x["text"].as_str())
                        .collect::<Vec<_>>()
                        .join(""),
                    _ => String::new(),
                };
                let content = if b["is_error"] == true {
                    format!("Error: {content}")
                } else {
                    content
                };
                let mut m =
                    json!({"role": "tool", "tool_call_id": b["tool_use_id"], "content": content});
                mark(&mut m, b, keep);
                messages.push(m);
            }
            Some(other) => return Err(unsupported(&format!("'{other}' blocks"))),
            None => return Err(invalid("a content block has no type")),
        }
    }
    if !parts.is_empty() {
        messages.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

fn assistant_turn(blocks: &[Value]) -> Result<Value, TranslateError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b["type"].as_str() {
            Some("text") => text.push_str(b["text"].as_str().unwrap_or("")),
            Some("tool_use") => calls.push(json!({"id": b["id"], "type": "function",
                "function": {"name": b["name"], "arguments": b["input"].to_string()}})),
            Some("thinking" | "redacted_thinking") => {}
            Some(other) => return Err(unsupported(&format!("'{other}' blocks"))),
            None => return Err(invalid("a content block has no type")),
        }
    }
    let content = if text.is_empty() {
        Value::Null
    } else {
        text.into()
    };
    let mut msg = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        msg["tool_calls"] = Value::Array(calls);
    }
    Ok(msg)
}

fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

fn usage(u: &Value) -> Value {
    let cached = u["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0);
    json!({"input_tokens": u["prompt_tokens"].as_u64().unwrap_or(0).saturating_sub(cached),
        "output_tokens": u["completion_tokens"].as_u64().unwrap_or(0),
        "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0})
}

/// An OpenAI `chat.completion` → an Anthropic `message`.
pub fn answer(r: Value, _: &Answer<'_>) -> Value {
    let c = &r["choices"][0];
    let mut content = Vec::new();
    if let Some(t) = c["message"]["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": t}));
    }
    for call in c["message"]["tool_calls"].as_array().into_iter().flatten() {
        let input: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or("{}"))
                .unwrap_or_else(|_| json!({}));
        content.push(json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": input}));
    }
    json!({"id": format!("msg_{}", r["id"].as_str().unwrap_or("to11")), "type": "message", "role": "assistant",
        "model": r["model"], "content": content, "stop_reason": stop_reason(c["finish_reason"].as_str().unwrap_or("stop")),
        "stop_sequence": null, "usage": usage(&r["usage"])})
}

fn error_kind(status: u16) -> &'static str {
    match status {
        400 | 404 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// An OpenAI-style error body → Anthropic's error shape (the status stays the provider's).
pub fn error(status: u16, v: &Value, text: &str) -> Value {
    let message = v["error"]["message"]
        .as_str()
        .or(v["error"].as_str())
        .or(v["message"].as_str())
        .unwrap_or(text);
    json!({"type": "error", "error": {"type": error_kind(status), "message": message}})
}

/// The translator of OpenAI chunks into Anthropic's events.
pub fn stream(_: &Answer<'_>) -> Box<dyn StreamTranslator> {
    Box::new(Stream::default())
}

/// OpenAI chunks → Anthropic's stream events.
#[derive(Default)]
pub struct Stream {
    started: bool,
    /// The open content block: its index and whether it is text.
    open: Option<(usize, bool)>,
    next_index: usize,
    /// OpenAI tool-call index → Anthropic block index.
    tools: Vec<(u64, usize)>,
    stop: Option<&'static str>,
    output_tokens: u64,
    ended: bool,
}

impl Stream {
    fn close(&mut self, out: &mut Vec<Event>) {
        if let Some((i, _)) = self.open.take() {
            out.push(Event::named(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": i}),
            ));
        }
    }

    fn open_block(&mut self, text: bool, block: Value, out: &mut Vec<Event>) -> usize {
        self.close(out);
        let i = self.next_index;
        self.next_index += 1;
        self.open = Some((i, text));
        out.push(Event::named(
            "content_block_start",
            json!({"type": "content_block_start", "index": i, "content_block": block}),
        ));
        i
    }

    fn start(&mut self, v: &Value, out: &mut Vec<Event>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(Event::named("message_start", json!({"type": "message_start", "message": {
            "id": format!("msg_{}", v["id"].as_str().unwrap_or("to11")), "type": "message", "role": "assistant",
            "model": v["model"], "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0}}})));
    }

    fn text(&mut self, t: &str, out: &mut Vec<Event>) {
        let index = match self.open {
            Some((i, true)) => i,
            _ => self.open_block(true, json!({"type": "text", "text": ""}), out),
        };
        out.push(Event::named(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
            "delta": {"type": "text_delta", "text": t}}),
        ));
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<Event>) {
        let oi = call["index"].as_u64().unwrap_or(0);
        let index = match self.tools.iter().find(|(o, _)| *o == oi) {
            Some((_, i)) => *i,
            None => {
                let block = json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": {}});
                let i = self.open_block(false, block, out);
                self.tools.push((oi, i));
                i
            }
        };
        if let Some(a) = call["function"]["arguments"]
            .as_str()
            .filter(|a| !a.is_empty())
        {
            out.push(Event::named(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": a}}),
            ));
        }
    }
}

impl StreamTranslator for Stream {
    fn event(&mut self, e: Event, out: &mut Vec<Event>) {
        if self.ended {
            return;
        }
        let v = match e {
            Event::Done => return self.end(out),
            Event::Json { data, .. } => data,
            Event::Exception { .. } => return,
        };
        if let Some(err) = v.get("error") {
            self.ended = true;
            let message = err["message"]
                .as_str()
                .or(err.as_str())
                .unwrap_or("the upstream failed");
            out.push(Event::named(
                "error",
                json!({"type": "error", "error": {"type": "api_error", "message": message}}),
            ));
            return;
        }
        self.start(&v, out);
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.output_tokens = u["completion_tokens"]
                .as_u64()
                .unwrap_or(self.output_tokens);
        }
        let Some(c) = v["choices"].get(0) else {
            return;
        };
        let d = &c["delta"];
        if let Some(t) = d["content"].as_str().filter(|t| !t.is_empty()) {
            self.text(t, out);
        }
        for call in d["tool_calls"].as_array().into_iter().flatten() {
            self.tool_call(call, out);
        }
        if let Some(f) = c["finish_reason"].as_str() {
            self.stop = Some(stop_reason(f));
            self.close(out);
        }
    }

    /// `[DONE]` (or a clean end after a finish reason): `message_delta` and `message_stop`.
    fn end(&mut self, out: &mut Vec<Event>) {
        if self.ended || self.stop.is_none() || !self.started {
            return;
        }
        self.ended = true;
        self.close(out);
        out.push(Event::named(
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": self.stop, "stop_sequence": null},
            "usage": {"output_tokens": self.output_tokens}}),
        ));
        out.push(Event::named(
            "message_stop",
            json!({"type": "message_stop"}),
        ));
    }

    fn ended(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::pair::{Target, Translation, MESSAGES_TO_CHAT};
    use crate::translate::sse::Parser;
    use crate::translate::{testing, Framing};

    fn request(
        body: &[u8],
        model: &str,
        max_field: &'static str,
    ) -> Result<Vec<u8>, TranslateError> {
        static STEPS: &[&crate::translate::Step] = &[&MESSAGES_TO_CHAT];
        Translation::new(STEPS, Framing::Sse)
            .request_bytes(
                body,
                &Target {
                    model,
                    max_tokens_field: max_field,
                    ask_usage: true,
                    cache_points: false,
                },
            )
            .map(|(b, _)| b)
    }

    fn response(body: &[u8]) -> Result<Vec<u8>, crate::translate::AnswerError> {
        testing::answer(&MESSAGES_TO_CHAT, body, "", 1, Asked::default())
    }

    fn error(status: u16, body: &[u8]) -> Vec<u8> {
        testing::error(&MESSAGES_TO_CHAT, status, body)
    }

    #[test]
    fn a_messages_request_maps_to_chat() {
        let body = json!({"model": "m", "max_tokens": 100, "system": [{"type": "text", "text": "Be brief."}], "stream": true,
        "stop_sequences": ["END"], "metadata": {"user_id": "u"},
        "tools": [{"name": "get", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "…", "signature": "s"}, {"type": "text", "text": "Calling."},
                {"type": "tool_use", "id": "tu1", "name": "get", "input": {"q": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu1", "content": "42"}, {"type": "text", "text": "and?"}]}
        ]});
        let out: Value = serde_json::from_slice(
            &request(body.to_string().as_bytes(), "gpt-x", "max_tokens").expect("ok"),
        )
        .expect("json");
        assert_eq!(out["model"], "gpt-x");
        assert_eq!(out["max_tokens"], 100);
        let reasoning: Value = serde_json::from_slice(
            &request(body.to_string().as_bytes(), "o4", "max_completion_tokens").expect("ok"),
        )
        .expect("json");
        assert_eq!(reasoning["max_completion_tokens"], 100);
        assert!(reasoning.get("max_tokens").is_none());
        assert_eq!(out["stream_options"], json!({"include_usage": true}));
        assert_eq!(out["stop"], json!(["END"]));
        assert_eq!(out["user"], "u");
        assert_eq!(
            (
                out["tool_choice"].clone(),
                out["parallel_tool_calls"].clone()
            ),
            (json!("required"), json!(false))
        );
        let m = out["messages"].as_array().expect("messages");
        assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(
            m[1]["content"][1],
            json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}})
        );
        assert_eq!(
            m[2]["tool_calls"][0]["function"],
            json!({"name": "get", "arguments": "{\"q\":1}"})
        );
        assert_eq!(m[2]["content"], "Calling.");
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "tu1", "content": "42"})
        );
        assert_eq!(m[4]["content"][0]["text"], "and?");
    }

    /// What Claude Code sends: hints that only tune the answer are dropped and named; what would
    /// change the answer's meaning is refused by name.
    #[test]
    fn tuning_hints_are_dropped_and_named_meaning_is_refused() {
        static STEPS: &[&crate::translate::Step] = &[&MESSAGES_TO_CHAT];
        let t = Translation::new(STEPS, Framing::Sse);
        let goal = Target {
            model: "x",
            max_tokens_field: "max_tokens",
            ask_usage: true,
            cache_points: false,
        };
        let body = json!({"model": "m", "max_tokens": 5, "thinking": {"type": "adaptive"},
            "output_config": {"effort": "high"}, "top_k": 5,
            "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
            "cache_control": {"type": "ephemeral"},
            "messages": [{"role": "user", "content": "hi"}]});
        let (out, asked) = t
            .request_bytes(body.to_string().as_bytes(), &goal)
            .expect("translated");
        let out: Value = serde_json::from_slice(&out).expect("json");
        for k in [
            "thinking",
            "output_config",
            "top_k",
            "context_management",
            "cache_control",
        ] {
            assert!(out.get(k).is_none(), "{k} dropped");
        }
        assert_eq!(
            asked.dropped.names(),
            "thinking, output_config.effort, context_management, cache_control, top_k"
        );
        let plain = json!({"model": "m", "max_tokens": 5, "thinking": {"type": "disabled"}, "messages": []});
        let (_, asked) = t
            .request_bytes(plain.to_string().as_bytes(), &goal)
            .expect("ok");
        assert!(asked.dropped.is_empty());
        for refused in [
            json!({"model": "m", "max_tokens": 5, "messages": [], "output_config": {"format": {"type": "json_schema"}}}),
            json!({"model": "m", "max_tokens": 5, "messages": [], "mcp_servers": [{"url": "https://x"}]}),
        ] {
            assert!(matches!(
                t.request_bytes(refused.to_string().as_bytes(), &goal),
                Err(TranslateError::Unsupported(_))
            ));
        }
    }

    #[test]
    fn a_system_turn_becomes_a_system_message() {
        let body = json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "system", "content": [{"type": "text", "text": "You are Claude Code."}, {"type": "text", "text": "Be terse."}]},
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "Later rule."}]});
        let out: Value = serde_json::from_slice(
            &request(body.to_string().as_bytes(), "gpt-x", "max_tokens").expect("ok"),
        )
        .expect("json");
        let m = out["messages"].as_array().expect("messages");
        assert_eq!(
            m[0],
            json!({"role": "system", "content": "You are Claude Code.\n\nBe terse."})
        );
        assert_eq!(m[2], json!({"role": "system", "content": "Later rule."}));
        let bad = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "robot", "content": "x"}]});
        assert!(request(bad.to_string().as_bytes(), "gpt-x", "max_tokens").is_err());
    }

    #[test]
    fn a_completion_maps_to_a_message() {
        let c = json!({"id": "c1", "model": "gpt-x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi",
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "get", "arguments": "{\"a\":1}"}}]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}});
        let m: Value =
            serde_json::from_slice(&response(c.to_string().as_bytes()).expect("ok")).expect("json");
        assert_eq!(
            m["content"],
            json!([{"type": "text", "text": "Hi"}, {"type": "tool_use", "id": "t1", "name": "get", "input": {"a": 1}}])
        );
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(
            m["usage"],
            json!({"input_tokens": 6, "output_tokens": 3, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0})
        );
        let e: Value = serde_json::from_slice(&error(429, br#"{"error":{"message":"slow down"}}"#))
            .expect("json");
        assert_eq!(
            e,
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
        );
    }

    const CHUNKS: &str = "data: {\"id\":\"c\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
data: {\"id\":\"c\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n\
data: {\"id\":\"c\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n\
data: {\"id\":\"c\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"\"}}]}}]}\n\n\
data: {\"id\":\"c\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}}]}\n\n\
data: {\"id\":\"c\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n\
data: {\"id\":\"c\",\"model\":\"gpt-x\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7}}\n\n\
data: [DONE]\n\n";

    fn run(parts: &[&[u8]]) -> Vec<(String, Value)> {
        let (out, ended) =
            testing::stream(&MESSAGES_TO_CHAT, Framing::Sse, Asked::default(), "", parts);
        assert!(ended);
        let mut q = Parser::default();
        q.push(out.as_bytes())
            .into_iter()
            .map(|e| {
                (
                    e.event.unwrap_or_default(),
                    serde_json::from_str(&e.data).expect("json"),
                )
            })
            .collect()
    }

    #[test]
    fn chunks_become_anthropic_events_at_any_split() {
        let whole = run(&[CHUNKS.as_bytes()]);
        let names: Vec<&str> = whole.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(
            whole[5].1["content_block"],
            json!({"type": "tool_use", "id": "t1", "name": "get", "input": {}})
        );
        assert_eq!(
            whole[6].1["delta"],
            json!({"type": "input_json_delta", "partial_json": "{\"a\":1}"})
        );
        assert_eq!(whole[8].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(whole[8].1["usage"]["output_tokens"], 7);
        let bytes = CHUNKS.as_bytes();
        for i in 0..=bytes.len() {
            assert_eq!(run(&[&bytes[..i], &bytes[i..]]), whole, "split at {i}");
        }
    }
}
