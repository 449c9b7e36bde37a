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
    chunk, finish_reason, openai_error, push_turn, stop_list, tool_arguments, usage_chunk,
    TranslateError,
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
            "response_format" => {
                if !v.is_null() && v["type"] != "text" {
                    return Err(unsupported("response_format json_object/json_schema"));
                }
            }
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
            if let Some(rest) = url.strip_prefix("data:") {
                let (meta, data) = rest
                    .split_once(',')
                    .ok_or_else(|| invalid("malformed data URL"))?;
                let media = meta
                    .strip_suffix(";base64")
                    .ok_or_else(|| unsupported("data URLs that are not base64"))?;
                Ok(
                    json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}),
                )
            } else if url.starts_with("https://") || url.starts_with("http://") {
                Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
            } else {
                Err(invalid("image_url must be an http(s) or data URL"))
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
pub fn response(body: &[u8], created: i64) -> Result<Vec<u8>, String> {
    let m: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the provider's answer is not JSON: {e}"))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for b in m["content"].as_array().into_iter().flatten() {
        match b["type"].as_str() {
            Some("text") => text.push_str(b["text"].as_str().unwrap_or("")),
            Some("thinking") => reasoning.push_str(b["thinking"].as_str().unwrap_or("")),
            Some("tool_use") => calls.push(json!({"id": b["id"], "type": "function",
                "function": {"name": b["name"], "arguments": b["input"].to_string()}})),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { text.into() }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = reasoning.into();
    }
    let out = json!({"id": m["id"], "object": "chat.completion", "created": created, "model": m["model"],
        "choices": [{"index": 0, "message": message, "logprobs": null,
            "finish_reason": finish_reason(m["stop_reason"].as_str().unwrap_or("end_turn"))}],
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
                if b["type"] == "tool_use" {
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
                    self.finish = Some(finish_reason(s));
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
mod tests {
    use super::*;
    use crate::translate::sse::Parser;

    fn req(v: Value) -> Result<Value, TranslateError> {
        request(v.to_string().as_bytes(), "claude-x")
            .map(|(b, _)| serde_json::from_slice(&b).expect("json"))
    }

    #[test]
    fn a_full_conversation_maps_to_messages() {
        let out = req(json!({
            "model": "alias", "max_completion_tokens": 100, "temperature": 0.2, "stop": "END", "user": "u1",
            "stream": true, "stream_options": {"include_usage": true}, "parallel_tool_calls": false,
            "tools": [{"type": "function", "function": {"name": "get", "description": "d", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "get"}},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
                {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get", "arguments": "{\"q\":\"a\"}"}},
                    {"id": "c2", "type": "function", "function": {"name": "get", "arguments": "{\"q\":\"b\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "A"},
                {"role": "tool", "tool_call_id": "c2", "content": "B"},
                {"role": "user", "content": "thanks"}
            ]})).expect("ok");
        assert_eq!(out["model"], "claude-x");
        assert_eq!(out["max_tokens"], 100);
        assert_eq!(out["stop_sequences"], json!(["END"]));
        assert_eq!(out["metadata"], json!({"user_id": "u1"}));
        assert_eq!(
            out["system"],
            json!([{"type": "text", "text": "Be brief."}, {"type": "text", "text": "No emoji."}])
        );
        assert_eq!(
            out["tool_choice"],
            json!({"type": "tool", "name": "get", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            out["tools"][0]["input_schema"]["properties"]["q"]["type"],
            "string"
        );
        let m = out["messages"].as_array().expect("messages");
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(
            m[0]["content"][1]["source"],
            json!({"type": "base64", "media_type": "image/png", "data": "AAAA"})
        );
        assert_eq!(
            m[0]["content"][2]["source"],
            json!({"type": "url", "url": "https://x.test/a.png"})
        );
        assert_eq!(
            m[1]["content"][1],
            json!({"type": "tool_use", "id": "c2", "name": "get", "input": {"q": "b"}})
        );
        // Both tool results and the next user turn merge into one user message.
        assert_eq!(m[2]["role"], "user");
        assert_eq!(
            m[2]["content"][0],
            json!({"type": "tool_result", "tool_use_id": "c1", "content": "A"})
        );
        assert_eq!(
            m[2]["content"][2],
            json!({"type": "text", "text": "thanks"})
        );
    }

    #[test]
    fn defaults_and_refusals() {
        let out = req(json!({"messages": [{"role": "user", "content": "hi"}]})).expect("ok");
        assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
        for (field, value) in [
            ("n", json!(2)),
            ("logprobs", json!(true)),
            ("temperature", json!(1.5)),
            ("response_format", json!({"type": "json_object"})),
            ("presence_penalty", json!(0.5)),
            ("frobnicate", json!(1)),
        ] {
            let mut r = json!({"messages": [{"role": "user", "content": "hi"}]});
            r[field] = value;
            assert!(
                matches!(req(r), Err(TranslateError::Unsupported(_))),
                "{field}"
            );
        }
        assert!(matches!(
            req(json!({"messages": [{"role": "assistant", "content": "hi"}]})),
            Err(TranslateError::Invalid(_))
        ));
        let bad_args = json!({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{"}}]}]});
        assert!(matches!(req(bad_args), Err(TranslateError::Invalid(_))));
    }

    #[test]
    fn answers_map_back() {
        let body = json!({"id": "msg_1", "type": "message", "model": "claude-x", "role": "assistant",
            "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Calling."},
                {"type": "tool_use", "id": "tu1", "name": "get", "input": {"q": "a"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 1, "output_tokens": 7}});
        let out: Value =
            serde_json::from_slice(&response(body.to_string().as_bytes(), 1).expect("ok"))
                .expect("json");
        let c = &out["choices"][0];
        assert_eq!(c["finish_reason"], "tool_calls");
        assert_eq!(c["message"]["content"], "Calling.");
        assert_eq!(c["message"]["reasoning_content"], "hmm");
        assert_eq!(
            c["message"]["tool_calls"][0]["function"],
            json!({"name": "get", "arguments": "{\"q\":\"a\"}"})
        );
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 16, "completion_tokens": 7, "total_tokens": 23, "prompt_tokens_details": {"cached_tokens": 5}})
        );
        for (stop, want) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("refusal", "content_filter"),
            ("pause_turn", "stop"),
        ] {
            let b =
                json!({"id": "m", "model": "x", "content": [], "stop_reason": stop, "usage": {}});
            let o: Value =
                serde_json::from_slice(&response(b.to_string().as_bytes(), 1).expect("ok"))
                    .expect("json");
            assert_eq!(o["choices"][0]["finish_reason"], want, "{stop}");
        }
        let e: Value = serde_json::from_slice(&error(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ))
        .expect("json");
        assert_eq!(
            e["error"],
            json!({"message": "Overloaded", "type": "overloaded_error", "param": null, "code": "overloaded_error"})
        );
    }

    const STREAM: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\ndata: {\"type\":\"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"tu1\",\"name\":\"get\",\"input\":{}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"q\\\":\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"a\\\"}\"}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    fn translate(bytes: &[&[u8]], asked: Asked) -> Vec<Value> {
        let mut p = Parser::default();
        let mut s = Stream::new(asked, 1);
        let mut out = String::new();
        for b in bytes {
            for e in p.push(b) {
                out.push_str(&s.event(&e));
            }
        }
        assert!(s.ended());
        out.split("\n\n")
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| {
                if d == "[DONE]" {
                    json!("[DONE]")
                } else {
                    serde_json::from_str(d).expect("chunk json")
                }
            })
            .collect()
    }

    #[test]
    fn the_stream_maps_event_by_event_at_any_split() {
        let asked = Asked {
            stream: true,
            include_usage: true,
        };
        let whole = translate(&[STREAM.as_bytes()], asked);
        assert_eq!(
            whole[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(whole[1]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(
            whole[2]["choices"][0]["delta"]["tool_calls"][0],
            json!({"index": 0, "id": "tu1", "type": "function", "function": {"name": "get", "arguments": ""}})
        );
        let args: String = whole[3..5]
            .iter()
            .map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .expect("args")
            })
            .collect();
        assert_eq!(args, "{\"q\":\"a\"}");
        assert_eq!(whole[5]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(whole[6]["choices"], json!([]));
        assert_eq!(whole[6]["usage"]["completion_tokens"], 9);
        assert_eq!(whole[6]["usage"]["prompt_tokens"], 4);
        assert_eq!(whole[7], "[DONE]");
        assert_eq!(whole.len(), 8);
        let bytes = STREAM.as_bytes();
        for i in 0..=bytes.len() {
            assert_eq!(
                translate(&[&bytes[..i], &bytes[i..]], asked),
                whole,
                "split at {i}"
            );
        }
    }

    #[test]
    fn an_error_event_is_a_terminal_openai_error() {
        let mut s = Stream::new(Asked::default(), 1);
        let out = s.event(&Event {
            event: Some("error".into()),
            data: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                .into(),
        });
        assert!(out.starts_with("data: {\"error\""), "{out}");
        assert!(!out.contains("[DONE]") && s.ended());
        assert_eq!(
            s.event(&Event {
                event: Some("message_stop".into()),
                data: "{}".into()
            }),
            "",
            "nothing after the end"
        );
    }
}
