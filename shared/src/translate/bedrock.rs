//! OpenAI Chat Completions ⇄ Bedrock Converse (any Bedrock model; Claude goes through InvokeModel
//! with `anthropic`'s translation instead).
//!
//! Request: `system`/`developer` → `system`; merged turns; base64 images → `image` blocks; tools →
//! `toolConfig.tools[].toolSpec`, `tool_choice` → `toolChoice` (`none` sends no tools); assistant
//! `tool_calls` → `toolUse`; `tool` results → `toolResult`; `max_tokens`, `temperature`, `top_p`,
//! `stop` → `inferenceConfig`; JSON mode through a forced tool (`super::JSON_TOOL`). Features
//! Converse cannot express are refused by name.
//!
//! Answer: text, `toolUse` → `tool_calls`, reasoning → `reasoning_content`, stop reasons, usage
//! with cached tokens; the ConverseStream events (from `eventstream` frames) one by one.

use serde_json::{json, Map, Value};

use super::pair::{Answer, Target};
use super::stream::{Event, StreamTranslator};
use super::{
    assistant_message, chunk, image_url, json_tool, openai_error, push_turn, stop_list,
    tool_arguments, usage_chunk, Asked, ImageUrl, TranslateError, JSON_TOOL,
};

fn unsupported(what: &str) -> TranslateError {
    TranslateError::Unsupported(format!("Bedrock Converse cannot express {what}"))
}

fn invalid(what: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(what.into())
}

/// An OpenAI chat request body → a Converse body (the model is in the URL).
pub fn request(
    req: Map<String, Value>,
    target: &Target<'_>,
    asked: &mut Asked,
) -> Result<Map<String, Value>, TranslateError> {
    let caching = caches(target.model);
    if !caching && marked(&req) {
        asked.dropped.add(super::Dropped::CACHE_CONTROL);
    }
    let mut inference = Map::new();
    let mut json = None;
    for (k, v) in &req {
        if !v.is_null() {
            field(k, v, asked, &mut inference, &mut json)?;
        }
    }
    if let Some(max) = req
        .get("max_completion_tokens")
        .or(req.get("max_tokens"))
        .and_then(Value::as_u64)
    {
        inference.insert("maxTokens".into(), max.into());
    }
    let mut out = Map::new();
    let (system, messages) = messages(
        req.get("messages")
            .ok_or_else(|| invalid("the request has no 'messages'"))?,
        caching,
    )?;
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(messages));
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(config) = tool_config(&req, caching)? {
        out.insert("toolConfig".into(), config);
    }
    if let Some(j) = json {
        if out.contains_key("toolConfig") {
            return Err(unsupported(
                "response_format json_object/json_schema together with tools",
            ));
        }
        asked.json_tool = true;
        out.insert(
            "toolConfig".into(),
            json!({"tools": [{"toolSpec": {"name": JSON_TOOL, "description": j.description,
                "inputSchema": {"json": j.schema}}}],
                "toolChoice": {"tool": {"name": JSON_TOOL}}}),
        );
    }
    Ok(out)
}

/// One top-level field of the chat request: into `inferenceConfig`, into `asked`, or refused.
fn field(
    k: &str,
    v: &Value,
    asked: &mut Asked,
    inference: &mut Map<String, Value>,
    json: &mut Option<super::JsonTool>,
) -> Result<(), TranslateError> {
    match k {
        "model" | "messages" | "tools" | "tool_choice" | "max_tokens" | "max_completion_tokens" => {
        }
        "stream" => asked.stream = v.as_bool().unwrap_or(false),
        "stream_options" => asked.include_usage = v["include_usage"].as_bool().unwrap_or(false),
        "temperature" => {
            inference.insert("temperature".into(), v.clone());
        }
        "top_p" => {
            inference.insert("topP".into(), v.clone());
        }
        "stop" => {
            inference.insert("stopSequences".into(), stop_list(v)?);
        }
        "parallel_tool_calls" => {
            if v.as_bool() == Some(false) {
                return Err(unsupported("parallel_tool_calls: false"));
            }
        }
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
        "presence_penalty" | "frequency_penalty" => {
            if v.as_f64().is_some_and(|x| x != 0.0) {
                return Err(unsupported(&format!("'{k}'")));
            }
        }
        "response_format" => *json = json_tool(v, unsupported)?,
        "reasoning_effort" => asked.dropped.add(super::Dropped::REASONING_EFFORT),
        "top_logprobs" | "logit_bias" | "audio" | "prediction" | "web_search_options" | "top_k" => {
            return Err(unsupported(&format!("'{k}'")));
        }
        "modalities" => {
            if v.as_array().is_some_and(|m| m.iter().any(|x| x != "text")) {
                return Err(unsupported("output modalities other than text"));
            }
        }
        "user" | "store" | "metadata" | "service_tier" | "safety_identifier"
        | "prompt_cache_key" | "verbosity" | "seed" => {}
        other => return Err(unsupported(&format!("the request field '{other}'"))),
    }
    Ok(())
}

/// Whether a Bedrock model takes cache points (Claude and Nova); others refuse them.
fn caches(model: &str) -> bool {
    model.contains("anthropic.claude") || model.contains("amazon.nova")
}

/// Whether the chat request marks cache points (`cache_control` on parts, tool messages or
/// tools, as Anthropic writes them).
fn marked(req: &Map<String, Value>) -> bool {
    let on_parts = |c: &Value| {
        c.as_array()
            .is_some_and(|p| p.iter().any(|p| p.get("cache_control").is_some()))
    };
    req.get("messages")
        .and_then(Value::as_array)
        .is_some_and(|m| {
            m.iter()
                .any(|m| m.get("cache_control").is_some() || on_parts(&m["content"]))
        })
        || req.get("tools").is_some_and(on_parts)
}

/// The cache point after a marked block.
fn cache_point() -> Value {
    json!({"cachePoint": {"type": "default"}})
}

/// OpenAI tools and `tool_choice` → `toolConfig` (`none` sends no tools); a marked tool is
/// followed by a cache point when the model takes them.
fn tool_config(req: &Map<String, Value>, caching: bool) -> Result<Option<Value>, TranslateError> {
    let choice = req.get("tool_choice").filter(|c| !c.is_null());
    let none = choice.is_some_and(|c| c == "none");
    let (Some(tools), false) = (req.get("tools").and_then(Value::as_array), none) else {
        return Ok(None);
    };
    let mut specs = Vec::new();
    for t in tools {
        if t["type"] != "function" {
            return Err(unsupported(&format!("tools of type {}", t["type"])));
        }
        let f = &t["function"];
        let name = f["name"]
            .as_str()
            .ok_or_else(|| invalid("a tool has no function.name"))?;
        let schema = match &f["parameters"] {
            Value::Null => json!({"type": "object", "properties": {}}),
            p => p.clone(),
        };
        let mut spec = json!({"name": name, "inputSchema": {"json": schema}});
        if let Some(d) = f["description"].as_str() {
            spec["description"] = d.into();
        }
        specs.push(json!({ "toolSpec": spec }));
        if caching && t.get("cache_control").is_some() {
            specs.push(cache_point());
        }
    }
    let mut config = json!({ "tools": specs });
    if let Some(c) = choice {
        config["toolChoice"] = match c {
            Value::String(s) if s == "auto" => json!({"auto": {}}),
            Value::String(s) if s == "required" => json!({"any": {}}),
            Value::Object(_) if c["type"] == "function" => {
                json!({"tool": {"name": c["function"]["name"]}})
            }
            _ => return Err(invalid(format!("unknown tool_choice {c}"))),
        };
    }
    Ok(Some(config))
}

/// Chat content as Converse blocks; a marked part is followed by a cache point when `caching`.
fn blocks(c: &Value, caching: bool) -> Result<Vec<Value>, TranslateError> {
    match c {
        Value::Null => Ok(vec![]),
        Value::String(s) if s.is_empty() => Ok(vec![]),
        Value::String(s) => Ok(vec![json!({"text": s})]),
        Value::Array(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for p in parts {
                out.push(part_block(p)?);
                if caching && p.get("cache_control").is_some() {
                    out.push(cache_point());
                }
            }
            Ok(out)
        }
        _ => Err(invalid(
            "message content must be a string or an array of parts",
        )),
    }
}

/// One chat content part as a Converse block.
fn part_block(p: &Value) -> Result<Value, TranslateError> {
    match p["type"].as_str() {
        Some("text") => Ok(json!({"text": p["text"].as_str().unwrap_or("")})),
        Some("image_url") => {
            let url = p["image_url"]["url"]
                .as_str()
                .ok_or_else(|| invalid("image_url has no url"))?;
            // http(s) images were fetched and inlined by the data plane.
            let (format, data) = match image_url(url, unsupported)? {
                ImageUrl::Data { mime, data } if mime.starts_with("image/") => {
                    (&mime["image/".len()..], data)
                }
                _ => return Err(unsupported(
                    "image URLs other than http(s) (fetched by the gateway) and base64 data URLs",
                )),
            };
            let format = if format == "jpg" { "jpeg" } else { format };
            if !["png", "jpeg", "gif", "webp"].contains(&format) {
                return Err(unsupported(&format!(
                    "images of type image/{format} (png, jpeg, gif and webp only)"
                )));
            }
            Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
        }
        Some(other) => Err(unsupported(&format!("'{other}' content parts"))),
        None => Err(invalid("a content part has no type")),
    }
}

fn messages(v: &Value, caching: bool) -> Result<(Vec<Value>, Vec<Value>), TranslateError> {
    let list = v
        .as_array()
        .ok_or_else(|| invalid("'messages' must be an array"))?;
    let mut system = Vec::new();
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in list {
        match m["role"]
            .as_str()
            .ok_or_else(|| invalid("a message has no role"))?
        {
            "system" | "developer" => {
                for b in blocks(&m["content"], caching)? {
                    if b.get("text").is_none() && b.get("cachePoint").is_none() {
                        return Err(unsupported("non-text system messages"));
                    }
                    system.push(b);
                }
            }
            "user" => push_turn(&mut out, "user", blocks(&m["content"], caching)?),
            "assistant" => {
                let mut b = blocks(&m["content"], caching)?;
                for c in m["tool_calls"].as_array().into_iter().flatten() {
                    let input = tool_arguments(c)?;
                    b.push(json!({"toolUse": {"toolUseId": c["id"], "name": c["function"]["name"], "input": input}}));
                }
                push_turn(&mut out, "assistant", b);
            }
            "tool" => {
                let id = m["tool_call_id"]
                    .as_str()
                    .ok_or_else(|| invalid("a tool message has no tool_call_id"))?;
                let content = match &m["content"] {
                    Value::String(s) => vec![json!({"text": s})],
                    c => blocks(c, false)?,
                };
                let mut turn = vec![
                    json!({"toolResult": {"toolUseId": id, "content": content, "status": "success"}}),
                ];
                if caching && m.get("cache_control").is_some() {
                    turn.push(cache_point());
                }
                push_turn(&mut out, "user", turn);
            }
            "function" => return Err(unsupported("the deprecated 'function' role")),
            other => return Err(invalid(format!("unknown role '{other}'"))),
        }
    }
    if out.first().is_none_or(|(r, _)| *r != "user") {
        return Err(invalid(
            "Converse needs the conversation to start with a user message",
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
    let cached = n("cacheReadInputTokens");
    let prompt = n("inputTokens") + cached + n("cacheWriteInputTokens");
    let completion = n("outputTokens");
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached}})
}

/// A Converse answer → an OpenAI `chat.completion`.
pub fn answer(r: Value, a: &Answer<'_>) -> Value {
    let asked = a.asked;
    let (mut text, mut reasoning, mut calls) = (String::new(), String::new(), Vec::new());
    for b in r["output"]["message"]["content"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(t) = b["text"].as_str() {
            text.push_str(t);
        } else if let Some(u) = b
            .get("toolUse")
            .filter(|u| asked.is_json_answer(&u["name"]))
        {
            text.push_str(&u["input"].to_string());
        } else if let Some(u) = b.get("toolUse") {
            calls.push(json!({"id": u["toolUseId"], "type": "function", "function": {"name": u["name"], "arguments": u["input"].to_string()}}));
        } else if let Some(t) = b["reasoningContent"]["reasoningText"]["text"].as_str() {
            reasoning.push_str(t);
        }
    }
    let message = assistant_message(text, calls, reasoning);
    json!({"id": STREAM_ID, "object": "chat.completion", "created": a.created, "model": a.model,
        "choices": [{"index": 0, "message": message, "logprobs": null,
            "finish_reason": asked.finish(r["stopReason"].as_str().unwrap_or("end_turn"))}],
        "usage": usage(&r["usage"])})
}

/// A Bedrock error body (`{"message"}` with `x-amzn-ErrorType`) → OpenAI's error shape.
pub fn error(_: u16, v: &Value, text: &str) -> Value {
    let message = v["message"]
        .as_str()
        .or(v["Message"].as_str())
        .unwrap_or(text);
    openai_error(&message.into(), "bedrock_error")
}

/// The translator of ConverseStream events into OpenAI chunks.
pub fn stream(a: &Answer<'_>) -> Box<dyn StreamTranslator> {
    Box::new(Stream::new(a.asked, a.model, a.created))
}

/// The `id` of translated Converse answers and chunks (Converse gives none).
const STREAM_ID: &str = "chatcmpl-bedrock";

/// ConverseStream frames → `chat.completion.chunk` SSE.
pub struct Stream {
    asked: Asked,
    created: i64,
    model: String,
    /// Converse content-block index → OpenAI tool-call index.
    tools: Vec<(u64, usize)>,
    /// The content block carrying a JSON-mode answer.
    json_block: Option<u64>,
    stopped: bool,
    ended: bool,
}

impl Stream {
    pub fn new(asked: Asked, model: &str, created: i64) -> Self {
        Stream {
            asked,
            created,
            model: model.to_string(),
            tools: vec![],
            json_block: None,
            stopped: false,
            ended: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Event {
        chunk(
            STREAM_ID,
            self.created,
            &self.model,
            self.asked.include_usage,
            delta,
            finish,
        )
    }

    fn done(&mut self, usage_of: Option<&Value>, out: &mut Vec<Event>) {
        self.ended = true;
        if let (true, Some(u)) = (self.asked.include_usage, usage_of) {
            out.push(usage_chunk(STREAM_ID, self.created, &self.model, usage(u)));
        }
        out.push(Event::Done);
    }

    /// The chunk delta of a `contentBlockDelta`, if it makes one.
    fn delta(&self, v: &Value) -> Option<Value> {
        let d = &v["delta"];
        if let Some(t) = d["text"].as_str() {
            return Some(json!({ "content": t }));
        }
        if let Some(input) = d["toolUse"]["input"].as_str() {
            let block = v["contentBlockIndex"].as_u64();
            if block == self.json_block {
                return Some(json!({ "content": input }));
            }
            let block = block.unwrap_or(0);
            return self.tools.iter().find(|(b, _)| *b == block).map(|(_, index)| {
                json!({"tool_calls": [{"index": index, "function": {"arguments": input}}]})
            });
        }
        d["reasoningContent"]["text"]
            .as_str()
            .map(|t| json!({ "reasoning_content": t }))
    }
}

impl StreamTranslator for Stream {
    /// The OpenAI chunks of one ConverseStream event.
    fn event(&mut self, e: Event, out: &mut Vec<Event>) {
        if self.ended {
            return;
        }
        let (name, v) = match e {
            Event::Json { name, data } => (name.unwrap_or_default(), data),
            Event::Exception { kind, data } => {
                self.ended = true;
                let message = format!("{kind}: {}", data["message"].as_str().unwrap_or(""));
                out.push(Event::data(openai_error(&message.into(), &kind)));
                return;
            }
            Event::Done => return,
        };
        match name.as_ref() {
            "messageStart" => {
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), None))
            }
            "contentBlockStart" => match v["start"].get("toolUse") {
                Some(u) if self.asked.is_json_answer(&u["name"]) => {
                    self.json_block = v["contentBlockIndex"].as_u64();
                }
                Some(u) => {
                    let index = self.tools.len();
                    self.tools
                        .push((v["contentBlockIndex"].as_u64().unwrap_or(0), index));
                    out.push(self.chunk(json!({"tool_calls": [{"index": index, "id": u["toolUseId"], "type": "function",
                        "function": {"name": u["name"], "arguments": ""}}]}), None));
                }
                None => {}
            },
            "contentBlockDelta" => {
                if let Some(delta) = self.delta(&v) {
                    out.push(self.chunk(delta, None));
                }
            }
            "messageStop" => {
                self.stopped = true;
                let finish = self
                    .asked
                    .finish(v["stopReason"].as_str().unwrap_or("end_turn"));
                out.push(self.chunk(json!({}), Some(finish)));
            }
            "metadata" if self.stopped => self.done(Some(&v["usage"]), out),
            _ => {}
        }
    }

    /// The frames ended: `[DONE]` if the message was complete.
    fn end(&mut self, out: &mut Vec<Event>) {
        if !self.ended && self.stopped {
            self.done(None, out);
        }
    }

    fn ended(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventstream::encode;
    use crate::translate::pair::CHAT_TO_CONVERSE;
    use crate::translate::{testing, Framing};

    fn req(v: Value) -> Result<Value, TranslateError> {
        request(v.to_string().as_bytes()).map(|(b, _)| serde_json::from_slice(&b).expect("json"))
    }

    fn request(body: &[u8]) -> Result<(Vec<u8>, Asked), TranslateError> {
        testing::request(&CHAT_TO_CONVERSE, body, "m")
    }

    fn response(
        body: &[u8],
        model: &str,
        created: i64,
        asked: Asked,
    ) -> Result<Vec<u8>, crate::translate::AnswerError> {
        testing::answer(&CHAT_TO_CONVERSE, body, model, created, asked)
    }

    fn frames(asked: Asked, parts: &[&[u8]]) -> (String, bool) {
        testing::stream(
            &CHAT_TO_CONVERSE,
            Framing::ConverseEvents,
            asked,
            "m",
            parts,
        )
    }

    #[test]
    fn a_full_conversation_maps_to_converse() {
        let out = req(json!({"model": "x", "max_tokens": 20, "temperature": 0.3, "top_p": 0.9, "stop": "END",
            "tools": [{"type": "function", "function": {"name": "get", "description": "d", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "get"}},
            "messages": [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,AAAA"}}]},
                {"role": "assistant", "content": "ok", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "get", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "42"}]})).expect("ok");
        assert_eq!(out["system"], json!([{"text": "Be brief."}]));
        assert_eq!(
            out["inferenceConfig"],
            json!({"maxTokens": 20, "temperature": 0.3, "topP": 0.9, "stopSequences": ["END"]})
        );
        assert_eq!(
            out["toolConfig"]["toolChoice"],
            json!({"tool": {"name": "get"}})
        );
        assert_eq!(
            out["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"],
            json!({"json": {"type": "object"}})
        );
        assert_eq!(
            out["messages"][0]["content"][1],
            json!({"image": {"format": "jpeg", "source": {"bytes": "AAAA"}}})
        );
        assert_eq!(
            out["messages"][1]["content"][1],
            json!({"toolUse": {"toolUseId": "t1", "name": "get", "input": {}}})
        );
        assert_eq!(
            out["messages"][2]["content"][0],
            json!({"toolResult": {"toolUseId": "t1", "content": [{"text": "42"}], "status": "success"}})
        );
        let none = req(json!({"tools": [{"type": "function", "function": {"name": "get"}}], "tool_choice": "none",
            "messages": [{"role": "user", "content": "x"}]})).expect("ok");
        assert!(none.get("toolConfig").is_none());
        for (k, v) in [
            ("n", json!(3)),
            ("logit_bias", json!({})),
            (
                "response_format",
                json!({"type": "json_schema", "json_schema": {"schema": {"type": "string"}}}),
            ),
            ("top_k", json!(5)),
            (
                "messages",
                json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/svg+xml;base64,AA"}}]}]),
            ),
        ] {
            let mut r = json!({"messages": [{"role": "user", "content": "x"}]});
            r[k] = v;
            assert!(matches!(req(r), Err(TranslateError::Unsupported(_))), "{k}");
        }
    }

    #[test]
    fn answers_map_back() {
        let body = json!({"output": {"message": {"role": "assistant", "content": [{"text": "Hi"},
            {"toolUse": {"toolUseId": "t9", "name": "get", "input": {"a": 1}}}]}}, "stopReason": "tool_use",
            "usage": {"inputTokens": 5, "outputTokens": 3, "cacheReadInputTokens": 2, "totalTokens": 8}});
        let out: Value = serde_json::from_slice(
            &response(body.to_string().as_bytes(), "m", 1, Asked::default()).expect("ok"),
        )
        .expect("json");
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            out["choices"][0]["message"]["tool_calls"][0]["function"],
            json!({"name": "get", "arguments": "{\"a\":1}"})
        );
        assert_eq!(out["usage"]["prompt_tokens"], 7);
        assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
        let e: Value = serde_json::from_slice(&testing::error(
            &CHAT_TO_CONVERSE,
            400,
            br#"{"message":"Too many tokens"}"#,
        ))
        .expect("json");
        assert_eq!(e["error"]["message"], "Too many tokens");
    }

    fn frame(t: &str, p: Value) -> Vec<u8> {
        encode(
            &[(":event-type", t), (":message-type", "event")],
            p.to_string().as_bytes(),
        )
    }

    #[test]
    fn the_stream_maps_frame_by_frame_at_any_split() {
        let bytes: Vec<u8> = [
            frame("messageStart", json!({"role": "assistant"})),
            frame("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}})),
            frame("contentBlockStart", json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "get"}}})),
            frame("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"a\":"}}})),
            frame("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "1}"}}})),
            frame("messageStop", json!({"stopReason": "tool_use"})),
            frame("metadata", json!({"usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}})),
        ]
        .concat();
        let run = |parts: &[&[u8]]| {
            let asked = Asked {
                stream: true,
                include_usage: true,
                ..Asked::default()
            };
            frames(asked, parts).0
        };
        let whole = run(&[&bytes]);
        assert!(whole.ends_with("data: [DONE]\n\n"), "{whole}");
        assert!(whole.contains("\"finish_reason\":\"tool_calls\""));
        assert!(whole.contains("\"arguments\":\"{\\\"a\\\":\""));
        assert!(whole.contains("\"completion_tokens\":4"));
        for i in 0..=bytes.len() {
            assert_eq!(run(&[&bytes[..i], &bytes[i..]]), whole, "split at {i}");
        }
        let exception = encode(
            &[
                (":exception-type", "throttlingException"),
                (":message-type", "exception"),
            ],
            br#"{"message":"slow down"}"#,
        );
        let out = run(&[&[frame("messageStart", json!({})), exception].concat()]);
        assert!(
            out.contains("throttlingException") && !out.contains("[DONE]"),
            "{out}"
        );
    }

    #[test]
    fn json_mode_is_a_forced_tool_whose_input_is_the_answer() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "number"}}});
        let (body, asked) = request(
            json!({"messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}})
            .to_string()
            .as_bytes(),
        )
        .expect("ok");
        let out: Value = serde_json::from_slice(&body).expect("json");
        assert!(asked.json_tool);
        assert_eq!(out["toolConfig"]["tools"][0]["toolSpec"]["name"], JSON_TOOL);
        assert_eq!(
            out["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
            schema
        );
        assert_eq!(
            out["toolConfig"]["toolChoice"],
            json!({"tool": {"name": JSON_TOOL}})
        );
        let with_tools = json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "f"}}]});
        assert!(matches!(
            req(with_tools),
            Err(TranslateError::Unsupported(_))
        ));

        let answer = json!({"output": {"message": {"role": "assistant", "content": [
            {"toolUse": {"toolUseId": "t9", "name": JSON_TOOL, "input": {"a": 1}}}]}}, "stopReason": "tool_use", "usage": {}});
        let o: Value = serde_json::from_slice(
            &response(answer.to_string().as_bytes(), "m", 1, asked).expect("ok"),
        )
        .expect("json");
        assert_eq!(o["choices"][0]["message"]["content"], "{\"a\":1}");
        assert!(o["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(o["choices"][0]["finish_reason"], "stop");

        let bytes: Vec<u8> = [
            frame("messageStart", json!({"role": "assistant"})),
            frame("contentBlockStart", json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t1", "name": JSON_TOOL}}})),
            frame("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"a\":"}}})),
            frame("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "1}"}}})),
            frame("messageStop", json!({"stopReason": "tool_use"})),
            frame("metadata", json!({"usage": {"inputTokens": 3, "outputTokens": 4}})),
        ]
        .concat();
        let (text, ended) = frames(
            Asked {
                stream: true,
                ..asked
            },
            &[&bytes],
        );
        let mut content = String::new();
        let mut finish = Vec::new();
        for c in text.split("\n\n").filter_map(|l| l.strip_prefix("data: ")) {
            if c == "[DONE]" {
                continue;
            }
            let c: Value = serde_json::from_str(c).expect("chunk");
            assert!(c["choices"][0]["delta"].get("tool_calls").is_none(), "{c}");
            content.push_str(c["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
            if let Some(r) = c["choices"][0]["finish_reason"].as_str() {
                finish.push(r.to_string());
            }
        }
        assert!(ended);
        assert_eq!(content, "{\"a\":1}");
        assert_eq!(finish, ["stop"]);
    }
}
