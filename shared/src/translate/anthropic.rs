//! OpenAI Chat Completions ⇄ Anthropic Messages.
//!
//! Request: `system`/`developer` messages become `system` blocks; consecutive same-role messages
//! merge (Anthropic alternates roles); images (data URLs → base64 source, http(s) → url source);
//! assistant `tool_calls` → `tool_use` blocks; `tool` messages → `tool_result` blocks in a user
//! turn; tools, `tool_choice` and `parallel_tool_calls`; `stop` → `stop_sequences`; `user` →
//! `metadata.user_id`; `max_completion_tokens`/`max_tokens`, else `DEFAULT_MAX_TOKENS` (Anthropic
//! requires one). Features Anthropic cannot express are refused by name.
//!
//! Answer: text blocks joined, `tool_use` → `tool_calls`, `thinking` → `reasoning_content`, stop
//! reasons mapped, usage with cached tokens; the stream event by event into
//! `chat.completion.chunk`s ending with `[DONE]` (usage chunk when asked); an `error` event
//! becomes a terminal OpenAI error event.

use serde_json::{json, Map, Value};

use super::sse::Event;
use super::{
    assistant_message, chunk, finish_reason, image_url, json_tool, openai_error, push_turn,
    stop_list, tool_arguments, usage_chunk, ImageUrl, TranslateError, JSON_TOOL,
};

/// `max_tokens` when the request sets none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

fn unsupported(what: &str) -> TranslateError {
    TranslateError::Unsupported(format!("Anthropic models cannot express {what}"))
}

fn invalid(what: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(what.into())
}

/// What the answer translation needs to know about the request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Asked {
    pub stream: bool,
    pub include_usage: bool,
    /// JSON mode through the forced `JSON_TOOL`: its call is the answer's `content`.
    pub json_tool: bool,
}

impl Asked {
    /// Whether a tool call named `name` is the JSON-mode answer rather than a tool call.
    pub fn is_json_answer(&self, name: &Value) -> bool {
        self.json_tool && name == super::JSON_TOOL
    }

    /// The OpenAI `finish_reason` of a provider stop reason, `stop` for a JSON-mode answer.
    pub fn finish(&self, stop: &str) -> &'static str {
        match finish_reason(stop) {
            "tool_calls" if self.json_tool => "stop",
            f => f,
        }
    }
}

/// An OpenAI chat request body → an Anthropic Messages body for `model`.
pub fn request(body: &[u8], model: &str) -> Result<(Vec<u8>, Asked), TranslateError> {
    let req: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("request body is not a JSON object: {e}")))?;
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    let mut asked = Asked::default();
    let mut tool_choice: Option<Value> = None;
    let mut parallel = true;
    let mut json = None;
    for (k, v) in &req {
        match k.as_str() {
            "model" | "messages" => {}
            "max_tokens" | "max_completion_tokens" => {}
            "stream" => {
                asked.stream = v.as_bool().unwrap_or(false);
                out.insert("stream".into(), asked.stream.into());
            }
            "stream_options" => {
                asked.include_usage = v
                    .get("include_usage")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
            }
            "temperature" => {
                if let Some(t) = v.as_f64() {
                    if t > 1.0 {
                        return Err(unsupported("a temperature above 1 (its range is 0 to 1)"));
                    }
                    out.insert("temperature".into(), v.clone());
                }
            }
            "top_p" => {
                if !v.is_null() {
                    out.insert("top_p".into(), v.clone());
                }
            }
            "top_k" => {
                if !v.is_null() {
                    out.insert("top_k".into(), v.clone());
                }
            }
            "stop" => {
                if !v.is_null() {
                    out.insert("stop_sequences".into(), stop_list(v)?);
                }
            }
            "user" => {
                if let Some(u) = v.as_str() {
                    out.insert("metadata".into(), json!({"user_id": u}));
                }
            }
            "tools" => {
                let tools = v
                    .as_array()
                    .ok_or_else(|| invalid("'tools' must be an array"))?;
                let mut t = Vec::with_capacity(tools.len());
                for tool in tools {
                    if tool["type"] != "function" {
                        return Err(unsupported(&format!("tools of type {}", tool["type"])));
                    }
                    let f = &tool["function"];
                    let name = f["name"]
                        .as_str()
                        .ok_or_else(|| invalid("a tool has no function.name"))?;
                    let mut a = Map::new();
                    a.insert("name".into(), name.into());
                    if let Some(d) = f["description"].as_str() {
                        a.insert("description".into(), d.into());
                    }
                    let schema = match &f["parameters"] {
                        Value::Null => json!({"type": "object", "properties": {}}),
                        p => p.clone(),
                    };
                    a.insert("input_schema".into(), schema);
                    t.push(Value::Object(a));
                }
                out.insert("tools".into(), Value::Array(t));
            }
            "tool_choice" => {
                tool_choice = Some(match v {
                    Value::String(s) if s == "auto" => json!({"type": "auto"}),
                    Value::String(s) if s == "required" => json!({"type": "any"}),
                    Value::String(s) if s == "none" => json!({"type": "none"}),
                    Value::Object(o) if o.get("type") == Some(&json!("function")) => {
                        let name = v["function"]["name"]
                            .as_str()
                            .ok_or_else(|| invalid("tool_choice.function.name is missing"))?;
                        json!({"type": "tool", "name": name})
                    }
                    Value::Null => continue,
                    _ => return Err(invalid(format!("unknown tool_choice {v}"))),
                });
            }
            "parallel_tool_calls" => parallel = v.as_bool().unwrap_or(true),
            "n" => {
                if v.as_u64().is_some_and(|n| n > 1) {
                    return Err(unsupported("several choices (n > 1)"));
                }
            }
            "logprobs" => {
                if v.as_bool() == Some(true) {
                    return Err(unsupported("logprobs"));
                }
            }
            "top_logprobs" | "logit_bias" | "audio" | "prediction" | "web_search_options" => {
                if !v.is_null() {
                    return Err(unsupported(&format!("'{k}'")));
                }
            }
            "presence_penalty" | "frequency_penalty" => {
                if v.as_f64().is_some_and(|x| x != 0.0) {
                    return Err(unsupported(&format!("'{k}'")));
                }
            }
            "modalities" => {
                if v.as_array().is_some_and(|m| m.iter().any(|x| x != "text")) {
                    return Err(unsupported("output modalities other than text"));
                }
            }
            "response_format" => json = json_tool(v, unsupported)?,
            "reasoning_effort" => {
                if !v.is_null() {
                    return Err(unsupported(
                        "'reasoning_effort' (use an Anthropic 'thinking' budget)",
                    ));
                }
            }
            // Fields that do not change what the model answers.
            "seed" | "store" | "metadata" | "service_tier" | "safety_identifier"
            | "prompt_cache_key" | "verbosity" => {}
            other => return Err(unsupported(&format!("the request field '{other}'"))),
        }
    }
    let max = req
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| req.get("max_tokens").and_then(Value::as_u64))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), max.into());
    if let Some(j) = json {
        if out.contains_key("tools") {
            return Err(unsupported(
                "response_format json_object/json_schema together with tools",
            ));
        }
        asked.json_tool = true;
        out.insert(
            "tools".into(),
            json!([{"name": JSON_TOOL, "description": j.description, "input_schema": j.schema}]),
        );
        tool_choice = Some(json!({"type": "tool", "name": JSON_TOOL}));
    }
    if !parallel {
        let mut c = tool_choice
            .take()
            .unwrap_or_else(|| json!({"type": "auto"}));
        c["disable_parallel_tool_use"] = true.into();
        tool_choice = Some(c);
    }
    if let Some(c) = tool_choice {
        out.insert("tool_choice".into(), c);
    }
    let (system, messages) = messages(
        req.get("messages")
            .ok_or_else(|| invalid("the request has no 'messages'"))?,
    )?;
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(messages));
    let bytes = serde_json::to_vec(&Value::Object(out)).map_err(|e| invalid(e.to_string()))?;
    Ok((bytes, asked))
}

/// One content part → Anthropic blocks.
fn part(p: &Value) -> Result<Value, TranslateError> {
    match p["type"].as_str() {
        Some("text") => Ok(json!({"type": "text", "text": p["text"].as_str().unwrap_or("")})),
        Some("image_url") => {
            let url = p["image_url"]["url"]
                .as_str()
                .or(p["image_url"].as_str())
                .ok_or_else(|| invalid("image_url has no url"))?;
            match image_url(url, unsupported)? {
                ImageUrl::Data { mime, data } => Ok(
                    json!({"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}),
                ),
                ImageUrl::Http(url) => {
                    Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
                }
                ImageUrl::Other => Err(invalid("image_url must be an http(s) or data URL")),
            }
        }
        Some(other) => Err(unsupported(&format!("'{other}' content parts"))),
        None => Err(invalid("a content part has no type")),
    }
}

fn content_blocks(c: &Value) -> Result<Vec<Value>, TranslateError> {
    match c {
        Value::Null => Ok(vec![]),
        Value::String(s) if s.is_empty() => Ok(vec![]),
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts.iter().map(part).collect(),
        _ => Err(invalid(
            "message content must be a string or an array of parts",
        )),
    }
}

/// OpenAI messages → (system blocks, alternating Anthropic messages).
fn messages(v: &Value) -> Result<(Vec<Value>, Vec<Value>), TranslateError> {
    let list = v
        .as_array()
        .ok_or_else(|| invalid("'messages' must be an array"))?;
    let mut system = Vec::new();
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in list {
        let role = m["role"]
            .as_str()
            .ok_or_else(|| invalid("a message has no role"))?;
        match role {
            "system" | "developer" => {
                for b in content_blocks(&m["content"])? {
                    if b["type"] != "text" {
                        return Err(unsupported("non-text system messages"));
                    }
                    system.push(b);
                }
            }
            "user" => push_turn(&mut out, "user", content_blocks(&m["content"])?),
            "assistant" => {
                let mut blocks = content_blocks(&m["content"])?;
                if let Some(calls) = m["tool_calls"].as_array() {
                    for c in calls {
                        let input = tool_arguments(c)?;
                        blocks.push(json!({"type": "tool_use", "id": c["id"], "name": c["function"]["name"], "input": input}));
                    }
                }
                push_turn(&mut out, "assistant", blocks);
            }
            "tool" => {
                let id = m["tool_call_id"]
                    .as_str()
                    .ok_or_else(|| invalid("a tool message has no tool_call_id"))?;
                let content = match &m["content"] {
                    Value::String(s) => Value::String(s.clone()),
                    c => Value::Array(content_blocks(c)?),
                };
                push_turn(
                    &mut out,
                    "user",
                    vec![json!({"type": "tool_result", "tool_use_id": id, "content": content})],
                );
            }
            "function" => return Err(unsupported("the deprecated 'function' role")),
            other => return Err(invalid(format!("unknown role '{other}'"))),
        }
    }
    if out.first().is_none_or(|(r, _)| *r != "user") {
        return Err(invalid(
            "Anthropic needs the conversation to start with a user message",
        ));
    }
    Ok((
        system,
        out.into_iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect(),
    ))
}

fn usage(u: &Value) -> Value {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let cached = n("cache_read_input_tokens");
    let prompt = n("input_tokens") + cached + n("cache_creation_input_tokens");
    let completion = n("output_tokens");
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached}})
}

/// An Anthropic message → an OpenAI `chat.completion`.
pub fn response(body: &[u8], created: i64, asked: Asked) -> Result<Vec<u8>, String> {
    let m: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the provider's answer is not JSON: {e}"))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for b in m["content"].as_array().into_iter().flatten() {
        match b["type"].as_str() {
            Some("text") => text.push_str(b["text"].as_str().unwrap_or("")),
            Some("thinking") => reasoning.push_str(b["thinking"].as_str().unwrap_or("")),
            Some("tool_use") if asked.is_json_answer(&b["name"]) => {
                text.push_str(&b["input"].to_string())
            }
            Some("tool_use") => calls.push(json!({"id": b["id"], "type": "function",
                "function": {"name": b["name"], "arguments": b["input"].to_string()}})),
            _ => {}
        }
    }
    let message = assistant_message(text, calls, reasoning);
    let out = json!({"id": m["id"], "object": "chat.completion", "created": created, "model": m["model"],
        "choices": [{"index": 0, "message": message, "logprobs": null,
            "finish_reason": asked.finish(m["stop_reason"].as_str().unwrap_or("end_turn"))}],
        "usage": usage(&m["usage"])});
    serde_json::to_vec(&out).map_err(|e| e.to_string())
}

/// An Anthropic error body → OpenAI's error shape (the status stays the provider's).
pub fn error(body: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let kind = v["error"]["type"].as_str().unwrap_or("api_error");
    let message = v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect());
    openai_error(&message.into(), kind).to_string().into_bytes()
}

/// Anthropic's stream events → `chat.completion.chunk` SSE, one event at a time.
pub struct Stream {
    asked: Asked,
    created: i64,
    id: String,
    model: String,
    /// Anthropic content-block index → OpenAI tool-call index.
    tools: Vec<(u64, usize)>,
    /// The content block carrying a JSON-mode answer.
    json_block: Option<u64>,
    input_usage: Value,
    output_tokens: u64,
    finish: Option<&'static str>,
    ended: bool,
}

impl Stream {
    pub fn new(asked: Asked, created: i64) -> Self {
        Stream {
            asked,
            created,
            id: String::new(),
            model: String::new(),
            tools: vec![],
            json_block: None,
            input_usage: json!({}),
            output_tokens: 0,
            finish: None,
            ended: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        chunk(
            &self.id,
            self.created,
            &self.model,
            self.asked.include_usage,
            delta,
            finish,
        )
    }

    /// Whether the stream reached its end (`[DONE]` or a terminal error was written).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The OpenAI SSE text for one Anthropic event (often empty).
    pub fn event(&mut self, e: &Event) -> String {
        if self.ended {
            return String::new();
        }
        let v: Value = serde_json::from_str(&e.data).unwrap_or_default();
        let kind = e.event.as_deref().or(v["type"].as_str()).unwrap_or("");
        match kind {
            "message_start" => {
                self.id = v["message"]["id"].as_str().unwrap_or("").to_string();
                self.model = v["message"]["model"].as_str().unwrap_or("").to_string();
                self.input_usage = v["message"]["usage"].clone();
                self.chunk(json!({"role": "assistant", "content": ""}), None)
            }
            "content_block_start" => {
                let b = &v["content_block"];
                if b["type"] == "tool_use" && self.asked.is_json_answer(&b["name"]) {
                    self.json_block = v["index"].as_u64();
                    String::new()
                } else if b["type"] == "tool_use" {
                    let index = self.tools.len();
                    self.tools.push((v["index"].as_u64().unwrap_or(0), index));
                    self.chunk(
                        json!({"tool_calls": [{"index": index, "id": b["id"], "type": "function",
                        "function": {"name": b["name"], "arguments": ""}}]}),
                        None,
                    )
                } else {
                    String::new()
                }
            }
            "content_block_delta" => {
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => self.chunk(json!({"content": d["text"]}), None),
                    Some("thinking_delta") => {
                        self.chunk(json!({"reasoning_content": d["thinking"]}), None)
                    }
                    Some("input_json_delta") if v["index"].as_u64() == self.json_block => {
                        self.chunk(json!({"content": d["partial_json"]}), None)
                    }
                    Some("input_json_delta") => {
                        let block = v["index"].as_u64().unwrap_or(0);
                        match self.tools.iter().find(|(b, _)| *b == block) {
                            Some((_, index)) => self.chunk(
                                json!({"tool_calls": [{"index": index,
                                "function": {"arguments": d["partial_json"]}}]}),
                                None,
                            ),
                            None => String::new(),
                        }
                    }
                    _ => String::new(),
                }
            }
            "message_delta" => {
                if let Some(s) = v["delta"]["stop_reason"].as_str() {
                    self.finish = Some(self.asked.finish(s));
                }
                if let Some(o) = v["usage"]["output_tokens"].as_u64() {
                    self.output_tokens = o;
                }
                String::new()
            }
            "message_stop" => {
                self.ended = true;
                let mut out = self.chunk(json!({}), Some(self.finish.unwrap_or("stop")));
                if self.asked.include_usage {
                    let mut u = self.input_usage.clone();
                    u["output_tokens"] = self.output_tokens.into();
                    out.push_str(&usage_chunk(&self.id, self.created, &self.model, usage(&u)));
                }
                out.push_str("data: [DONE]\n\n");
                out
            }
            "error" => {
                self.ended = true;
                let kind = v["error"]["type"].as_str().unwrap_or("api_error");
                format!("data: {}\n\n", openai_error(&v["error"]["message"], kind))
            }
            _ => String::new(),
        }
    }
}

impl super::StreamTranslator for Stream {
    fn event(&mut self, e: &Event) -> String {
        Stream::event(self, e)
    }

    /// Anthropic streams end with `message_stop`; a clean close before it adds nothing.
    fn end(&mut self) -> String {
        String::new()
    }

    fn ended(&self) -> bool {
        Stream::ended(self)
    }
}

#[cfg(test)]
mod tests;
