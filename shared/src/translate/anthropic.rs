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

use super::pair::{Answer, Target};
use super::stream::{Event, StreamTranslator};
use super::{
    assistant_message, chunk, image_url, json_tool, openai_error, push_turn, stop_list,
    tool_arguments, usage_chunk, Asked, ImageUrl, TranslateError, JSON_TOOL,
};

/// `max_tokens` when the request sets none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

fn unsupported(what: &str) -> TranslateError {
    TranslateError::Unsupported(format!("Anthropic models cannot express {what}"))
}

fn invalid(what: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(what.into())
}

/// An OpenAI chat request body → an Anthropic Messages body for the target's model.
pub fn request(
    req: Map<String, Value>,
    target: &Target<'_>,
    asked: &mut Asked,
) -> Result<Map<String, Value>, TranslateError> {
    let mut f = Fields {
        out: Map::new(),
        tool_choice: None,
        parallel: true,
        json: None,
    };
    f.out.insert("model".into(), target.model.into());
    for (k, v) in &req {
        f.field(k, v, asked)?;
    }
    let max = req
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| req.get("max_tokens").and_then(Value::as_u64))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    f.out.insert("max_tokens".into(), max.into());
    f.tooling(asked)?;
    let (system, messages) = messages(
        req.get("messages")
            .ok_or_else(|| invalid("the request has no 'messages'"))?,
    )?;
    let mut out = f.out;
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(messages));
    Ok(out)
}

/// The Messages body being built, and what decides its tool settings at the end.
struct Fields {
    out: Map<String, Value>,
    tool_choice: Option<Value>,
    parallel: bool,
    json: Option<super::JsonTool>,
}

impl Fields {
    /// One top-level field of the chat request.
    fn field(&mut self, k: &str, v: &Value, asked: &mut Asked) -> Result<(), TranslateError> {
        let out = &mut self.out;
        match k {
            "model" | "messages" | "max_tokens" | "max_completion_tokens" => {}
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
            "top_p" | "top_k" if !v.is_null() => {
                out.insert(k.into(), v.clone());
            }
            "stop" if !v.is_null() => {
                out.insert("stop_sequences".into(), stop_list(v)?);
            }
            "user" => {
                if let Some(u) = v.as_str() {
                    out.insert("metadata".into(), json!({"user_id": u}));
                }
            }
            "tools" => {
                out.insert("tools".into(), tools(v)?);
            }
            "tool_choice" if !v.is_null() => self.tool_choice = Some(choice(v)?),
            "parallel_tool_calls" => self.parallel = v.as_bool().unwrap_or(true),
            "response_format" => self.json = json_tool(v, unsupported)?,
            // Claude's equivalent, a thinking budget, needs each turn's signed thinking blocks
            // sent back with its tool calls, which chat cannot carry: a tuning hint, dropped.
            "reasoning_effort" if !v.is_null() => {
                asked.dropped.add(super::Dropped::REASONING_EFFORT)
            }
            _ => refusals(k, v)?,
        }
        Ok(())
    }

    /// JSON mode's forced tool, and parallel tool calls turned off, into `tool_choice`.
    fn tooling(&mut self, asked: &mut Asked) -> Result<(), TranslateError> {
        if let Some(j) = self.json.take() {
            if self.out.contains_key("tools") {
                return Err(unsupported(
                    "response_format json_object/json_schema together with tools",
                ));
            }
            asked.json_tool = true;
            self.out.insert(
                "tools".into(),
                json!([{"name": JSON_TOOL, "description": j.description, "input_schema": j.schema}]),
            );
            self.tool_choice = Some(json!({"type": "tool", "name": JSON_TOOL}));
        }
        if !self.parallel {
            let mut c = self
                .tool_choice
                .take()
                .unwrap_or_else(|| json!({"type": "auto"}));
            c["disable_parallel_tool_use"] = true.into();
            self.tool_choice = Some(c);
        }
        if let Some(c) = self.tool_choice.take() {
            self.out.insert("tool_choice".into(), c);
        }
        Ok(())
    }
}

/// Fields Anthropic cannot express, refused by name when they ask for something; fields that do
/// not change what the model answers pass.
fn refusals(k: &str, v: &Value) -> Result<(), TranslateError> {
    match k {
        "n" if v.as_u64().is_some_and(|n| n > 1) => Err(unsupported("several choices (n > 1)")),
        "logprobs" if v.as_bool() == Some(true) => Err(unsupported("logprobs")),
        "top_logprobs" | "logit_bias" | "audio" | "prediction" | "web_search_options"
            if !v.is_null() =>
        {
            Err(unsupported(&format!("'{k}'")))
        }
        "presence_penalty" | "frequency_penalty" if v.as_f64().is_some_and(|x| x != 0.0) => {
            Err(unsupported(&format!("'{k}'")))
        }
        "modalities" if v.as_array().is_some_and(|m| m.iter().any(|x| x != "text")) => {
            Err(unsupported("output modalities other than text"))
        }
        "n" | "logprobs" | "top_logprobs" | "logit_bias" | "audio" | "prediction"
        | "web_search_options" | "presence_penalty" | "frequency_penalty" | "modalities"
        | "top_p" | "top_k" | "stop" | "tool_choice" | "reasoning_effort" => Ok(()),
        // Fields that do not change what the model answers.
        "seed" | "store" | "metadata" | "service_tier" | "safety_identifier"
        | "prompt_cache_key" | "verbosity" => Ok(()),
        other => Err(unsupported(&format!("the request field '{other}'"))),
    }
}

/// OpenAI function tools → Anthropic tools.
fn tools(v: &Value) -> Result<Value, TranslateError> {
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
    Ok(Value::Array(t))
}

/// OpenAI `tool_choice` → Anthropic's.
fn choice(v: &Value) -> Result<Value, TranslateError> {
    Ok(match v {
        Value::String(s) if s == "auto" => json!({"type": "auto"}),
        Value::String(s) if s == "required" => json!({"type": "any"}),
        Value::String(s) if s == "none" => json!({"type": "none"}),
        Value::Object(o) if o.get("type") == Some(&json!("function")) => {
            let name = v["function"]["name"]
                .as_str()
                .ok_or_else(|| invalid("tool_choice.function.name is missing"))?;
            json!({"type": "tool", "name": name})
        }
        _ => return Err(invalid(format!("unknown tool_choice {v}"))),
    })
}

/// Anthropic Messages for a vendor's `rawPredict`/`invoke`: `model` removed (it is in the URL),
/// `anthropic_version` set unless present, `stream` removed when the vendor takes none.
fn vendor(mut body: Map<String, Value>, version: &str, drop_stream: bool) -> Map<String, Value> {
    body.remove("model");
    if drop_stream {
        body.remove("stream");
    }
    body.entry("anthropic_version")
        .or_insert_with(|| version.into());
    body
}

/// Claude on Vertex (`rawPredict`, `streamRawPredict`).
pub fn vertex_body(
    body: Map<String, Value>,
    _: &Target<'_>,
    _: &mut Asked,
) -> Result<Map<String, Value>, TranslateError> {
    Ok(vendor(body, "vertex-2023-10-16", false))
}

/// Claude on Bedrock (`invoke`, `invoke-with-response-stream`: the operation says whether it
/// streams, the body does not).
pub fn bedrock_body(
    body: Map<String, Value>,
    _: &Target<'_>,
    _: &mut Asked,
) -> Result<Map<String, Value>, TranslateError> {
    Ok(vendor(body, "bedrock-2023-05-31", true))
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
pub fn answer(m: Value, a: &Answer<'_>) -> Value {
    let asked = a.asked;
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
    json!({"id": m["id"], "object": "chat.completion", "created": a.created, "model": m["model"],
        "choices": [{"index": 0, "message": message, "logprobs": null,
            "finish_reason": asked.finish(m["stop_reason"].as_str().unwrap_or("end_turn"))}],
        "usage": usage(&m["usage"])})
}

/// An Anthropic error body → OpenAI's error shape (the status stays the provider's).
pub fn error(_: u16, v: &Value, text: &str) -> Value {
    let kind = v["error"]["type"].as_str().unwrap_or("api_error");
    let message = v["error"]["message"].as_str().unwrap_or(text);
    openai_error(&message.into(), kind)
}

/// The translator of an Anthropic stream into OpenAI chunks.
pub fn stream(a: &Answer<'_>) -> Box<dyn StreamTranslator> {
    Box::new(Stream::new(a.asked, a.created))
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

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Event {
        chunk(
            &self.id,
            self.created,
            &self.model,
            self.asked.include_usage,
            delta,
            finish,
        )
    }
}

impl StreamTranslator for Stream {
    /// The OpenAI chunks of one Anthropic event (often none).
    fn event(&mut self, e: Event, out: &mut Vec<Event>) {
        if self.ended {
            return;
        }
        let name = e.name().map(str::to_string);
        let Event::Json { data: v, .. } = e else {
            return;
        };
        let kind = name.as_deref().or(v["type"].as_str()).unwrap_or("");
        match kind {
            "message_start" => {
                self.id = v["message"]["id"].as_str().unwrap_or("").to_string();
                self.model = v["message"]["model"].as_str().unwrap_or("").to_string();
                self.input_usage = v["message"]["usage"].clone();
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            "content_block_start" => {
                let b = &v["content_block"];
                if b["type"] == "tool_use" && self.asked.is_json_answer(&b["name"]) {
                    self.json_block = v["index"].as_u64();
                } else if b["type"] == "tool_use" {
                    let index = self.tools.len();
                    self.tools.push((v["index"].as_u64().unwrap_or(0), index));
                    out.push(self.chunk(
                        json!({"tool_calls": [{"index": index, "id": b["id"], "type": "function",
                        "function": {"name": b["name"], "arguments": ""}}]}),
                        None,
                    ));
                }
            }
            "content_block_delta" => {
                if let Some(delta) = self.delta(&v) {
                    out.push(self.chunk(delta, None));
                }
            }
            "message_delta" => {
                if let Some(s) = v["delta"]["stop_reason"].as_str() {
                    self.finish = Some(self.asked.finish(s));
                }
                if let Some(o) = v["usage"]["output_tokens"].as_u64() {
                    self.output_tokens = o;
                }
            }
            "message_stop" => {
                self.ended = true;
                out.push(self.chunk(json!({}), Some(self.finish.unwrap_or("stop"))));
                if self.asked.include_usage {
                    let mut u = self.input_usage.clone();
                    u["output_tokens"] = self.output_tokens.into();
                    out.push(usage_chunk(&self.id, self.created, &self.model, usage(&u)));
                }
                out.push(Event::Done);
            }
            "error" => {
                self.ended = true;
                let kind = v["error"]["type"].as_str().unwrap_or("api_error");
                out.push(Event::data(openai_error(&v["error"]["message"], kind)));
            }
            _ => {}
        }
    }

    /// Anthropic streams end with `message_stop`; a clean close before it adds nothing.
    fn end(&mut self, _: &mut Vec<Event>) {}

    fn ended(&self) -> bool {
        self.ended
    }
}

impl Stream {
    /// The chunk delta of a `content_block_delta`, if it makes one.
    fn delta(&self, v: &Value) -> Option<Value> {
        let d = &v["delta"];
        match d["type"].as_str() {
            Some("text_delta") => Some(json!({"content": d["text"]})),
            Some("thinking_delta") => Some(json!({"reasoning_content": d["thinking"]})),
            Some("input_json_delta") if v["index"].as_u64() == self.json_block => {
                Some(json!({"content": d["partial_json"]}))
            }
            Some("input_json_delta") => {
                let block = v["index"].as_u64().unwrap_or(0);
                self.tools.iter().find(|(b, _)| *b == block).map(|(_, index)| {
                    json!({"tool_calls": [{"index": index, "function": {"arguments": d["partial_json"]}}]})
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
