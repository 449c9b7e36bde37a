//! OpenAI Chat Completions ⇄ Gemini `generateContent` (Google AI Studio and Vertex).
//!
//! Request: `system`/`developer` → `systemInstruction`; `assistant` → role `model`; consecutive
//! same-role turns merge; images as base64 data URLs → `inlineData`; tools →
//! `functionDeclarations` (JSON-Schema keys Gemini rejects removed); `tool_choice` →
//! `functionCallingConfig`; `tool` results → `functionResponse` parts, named from the assistant
//! turn that called them (Gemini calls carry no id); sampling, stop, `n`, penalties, seed and JSON
//! mode → `generationConfig`. Features Gemini cannot express are refused by name.
//!
//! Answer: candidates → choices (text, `functionCall` → `tool_calls` with generated ids), finish
//! reasons (a function call makes it `tool_calls`; safety reasons → `content_filter`), a blocked
//! prompt → `content_filter`, usage with thoughts and cached tokens; the stream event by event,
//! `[DONE]` once the upstream ends after a finish reason.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::pair::{Answer, Target};
use super::stream::{Event, StreamTranslator};
use super::{
    assistant_message, chunk, image_url, openai_error, push_turn, stop_list, tool_arguments,
    usage_chunk, Asked, ImageUrl, TranslateError,
};

fn unsupported(what: &str) -> TranslateError {
    TranslateError::Unsupported(format!("Gemini models cannot express {what}"))
}

fn invalid(what: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(what.into())
}

/// JSON-Schema keys Gemini's function declarations refuse.
const SCHEMA_DROP: &[&str] = &[
    "$schema",
    "additionalProperties",
    "strict",
    "$id",
    "$defs",
    "definitions",
];

fn clean_schema(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !SCHEMA_DROP.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), clean_schema(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(clean_schema).collect()),
        other => other.clone(),
    }
}

/// An OpenAI chat request body → a `generateContent` body (the model is in the URL).
pub fn request(
    req: Map<String, Value>,
    target: &Target<'_>,
    asked: &mut Asked,
) -> Result<Map<String, Value>, TranslateError> {
    let mut out = Map::new();
    let mut config = Map::new();
    for (k, v) in &req {
        if !v.is_null() {
            field(k, v, asked, &mut config, target.model)?;
        }
    }
    if let Some(max) = req
        .get("max_completion_tokens")
        .or(req.get("max_tokens"))
        .and_then(Value::as_u64)
    {
        config.insert("maxOutputTokens".into(), max.into());
    }
    if let Some(tools) = req.get("tools").and_then(Value::as_array) {
        out.insert("tools".into(), declarations(tools)?);
    }
    if let Some(c) = req.get("tool_choice").filter(|c| !c.is_null()) {
        out.insert("toolConfig".into(), calling_config(c)?);
    }
    let (system, contents) = contents(
        req.get("messages")
            .ok_or_else(|| invalid("the request has no 'messages'"))?,
        target.model.starts_with("gemini-3"),
    )?;
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    out.insert("contents".into(), Value::Array(contents));
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(out)
}

/// One top-level field of the chat request: into `generationConfig`, into `asked`, or refused.
fn field(
    k: &str,
    v: &Value,
    asked: &mut Asked,
    config: &mut Map<String, Value>,
    model: &str,
) -> Result<(), TranslateError> {
    match k {
        "model" | "messages" | "tools" | "tool_choice" | "parallel_tool_calls" => {}
        "stream" => asked.stream = v.as_bool().unwrap_or(false),
        "stream_options" => asked.include_usage = v["include_usage"].as_bool().unwrap_or(false),
        "temperature" => {
            config.insert("temperature".into(), v.clone());
        }
        "top_p" => {
            config.insert("topP".into(), v.clone());
        }
        "top_k" => {
            config.insert("topK".into(), v.clone());
        }
        "max_tokens" | "max_completion_tokens" => {}
        "n" => {
            config.insert("candidateCount".into(), v.clone());
        }
        "seed" => {
            config.insert("seed".into(), v.clone());
        }
        "presence_penalty" => {
            config.insert("presencePenalty".into(), v.clone());
        }
        "frequency_penalty" => {
            config.insert("frequencyPenalty".into(), v.clone());
        }
        "stop" => {
            config.insert("stopSequences".into(), stop_list(v)?);
        }
        "response_format" => match v["type"].as_str() {
            Some("text") => {}
            Some("json_object") => {
                config.insert("responseMimeType".into(), "application/json".into());
            }
            Some("json_schema") => {
                config.insert("responseMimeType".into(), "application/json".into());
                if let Some(schema) = v["json_schema"].get("schema") {
                    config.insert("responseJsonSchema".into(), schema.clone());
                }
            }
            _ => return Err(invalid(format!("unknown response_format {v}"))),
        },
        "logprobs" => {
            if v.as_bool() == Some(true) {
                return Err(unsupported("logprobs"));
            }
        }
        "reasoning_effort" => {
            if let Some(t) = v.as_str().and_then(|e| thinking(e, model)) {
                config.insert("thinkingConfig".into(), t);
            }
        }
        "top_logprobs" | "logit_bias" | "audio" | "prediction" | "web_search_options" => {
            return Err(unsupported(&format!("'{k}'")));
        }
        "modalities" => {
            if v.as_array().is_some_and(|m| m.iter().any(|x| x != "text")) {
                return Err(unsupported("output modalities other than text"));
            }
        }
        "user" | "store" | "metadata" | "service_tier" | "safety_identifier"
        | "prompt_cache_key" | "verbosity" => {}
        other => return Err(unsupported(&format!("the request field '{other}'"))),
    }
    Ok(())
}

/// OpenAI's `reasoning_effort` as Gemini's `thinkingConfig`: a thinking level on Gemini 3, a
/// thinking budget before it (Gemini 2.5 Pro cannot turn thinking off: its least is 128).
fn thinking(effort: &str, model: &str) -> Option<Value> {
    if model.starts_with("gemini-3") {
        let level = match effort {
            "none" | "minimal" | "low" => "low",
            _ => "high",
        };
        return Some(json!({"thinkingLevel": level}));
    }
    let budget = match effort {
        "none" | "minimal" if model.contains("pro") => 128,
        "none" | "minimal" => 0,
        "low" => 1024,
        "medium" => 8192,
        "high" | "xhigh" => 24576,
        _ => return None,
    };
    Some(json!({"thinkingBudget": budget}))
}

/// OpenAI function tools → `functionDeclarations`.
fn declarations(tools: &[Value]) -> Result<Value, TranslateError> {
    let mut decls = Vec::new();
    for t in tools {
        if t["type"] != "function" {
            return Err(unsupported(&format!("tools of type {}", t["type"])));
        }
        let f = &t["function"];
        let name = f["name"]
            .as_str()
            .ok_or_else(|| invalid("a tool has no function.name"))?;
        let mut d = json!({ "name": name });
        if let Some(desc) = f["description"].as_str() {
            d["description"] = desc.into();
        }
        if !f["parameters"].is_null() {
            d["parameters"] = clean_schema(&f["parameters"]);
        }
        decls.push(d);
    }
    Ok(json!([{ "functionDeclarations": decls }]))
}

/// OpenAI `tool_choice` → `toolConfig.functionCallingConfig`.
fn calling_config(c: &Value) -> Result<Value, TranslateError> {
    let cfg = match c {
        Value::String(s) if s == "auto" => json!({"mode": "AUTO"}),
        Value::String(s) if s == "required" => json!({"mode": "ANY"}),
        Value::String(s) if s == "none" => json!({"mode": "NONE"}),
        Value::Object(_) if c["type"] == "function" => {
            let name = c["function"]["name"]
                .as_str()
                .ok_or_else(|| invalid("tool_choice.function.name is missing"))?;
            json!({"mode": "ANY", "allowedFunctionNames": [name]})
        }
        _ => return Err(invalid(format!("unknown tool_choice {c}"))),
    };
    Ok(json!({ "functionCallingConfig": cfg }))
}

fn parts(c: &Value) -> Result<Vec<Value>, TranslateError> {
    match c {
        Value::Null => Ok(vec![]),
        Value::String(s) if s.is_empty() => Ok(vec![]),
        Value::String(s) => Ok(vec![json!({"text": s})]),
        Value::Array(list) => list
            .iter()
            .map(|p| match p["type"].as_str() {
                Some("text") => Ok(json!({"text": p["text"].as_str().unwrap_or("")})),
                Some("image_url") => {
                    let url = p["image_url"]["url"]
                        .as_str()
                        .ok_or_else(|| invalid("image_url has no url"))?;
                    // http(s) images were fetched and inlined by the data plane.
                    match image_url(url, unsupported)? {
                        ImageUrl::Data { mime, data } => {
                            Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
                        }
                        _ => Err(unsupported("image URLs other than http(s) (fetched by the gateway) and base64 data URLs")),
                    }
                }
                Some(other) => Err(unsupported(&format!("'{other}' content parts"))),
                None => Err(invalid("a content part has no type")),
            })
            .collect(),
        _ => Err(invalid(
            "message content must be a string or an array of parts",
        )),
    }
}

/// The chat messages as `contents` (and the system instruction). `signatures_required`: the
/// model refuses a turn's first function call without a thought signature (Gemini 3).
fn contents(
    v: &Value,
    signatures_required: bool,
) -> Result<(Vec<Value>, Vec<Value>), TranslateError> {
    let list = v
        .as_array()
        .ok_or_else(|| invalid("'messages' must be an array"))?;
    let mut system = Vec::new();
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // Tool call id → function name, from the assistant turns (Gemini's responses need the name).
    let mut names: HashMap<String, String> = HashMap::new();
    for m in list {
        match m["role"]
            .as_str()
            .ok_or_else(|| invalid("a message has no role"))?
        {
            "system" | "developer" => {
                for p in parts(&m["content"])? {
                    if p.get("text").is_none() {
                        return Err(unsupported("non-text system messages"));
                    }
                    system.push(p);
                }
            }
            "user" => push_turn(&mut out, "user", parts(&m["content"])?),
            "assistant" => {
                let mut p = parts(&m["content"])?;
                for (i, c) in m["tool_calls"].as_array().into_iter().flatten().enumerate() {
                    let name = c["function"]["name"]
                        .as_str()
                        .ok_or_else(|| invalid("a tool call has no name"))?;
                    let args = tool_arguments(c)?;
                    let id = c["id"].as_str();
                    if let Some(id) = id {
                        names.insert(id.to_string(), name.to_string());
                    }
                    let mut part = json!({"functionCall": {"name": name, "args": args}});
                    match id.and_then(signature_of) {
                        Some(sig) => part["thoughtSignature"] = sig.into(),
                        None if signatures_required && i == 0 => {
                            part["thoughtSignature"] = NO_SIGNATURE.into()
                        }
                        None => {}
                    }
                    p.push(part);
                }
                push_turn(&mut out, "model", p);
            }
            "tool" => {
                let id = m["tool_call_id"]
                    .as_str()
                    .ok_or_else(|| invalid("a tool message has no tool_call_id"))?;
                let name = names.get(id).ok_or_else(|| {
                    invalid(format!(
                        "tool result '{id}' answers no tool call of an earlier assistant message"
                    ))
                })?;
                let text = match &m["content"] {
                    Value::String(s) => s.clone(),
                    c => parts(c)?
                        .iter()
                        .filter_map(|p| p["text"].as_str())
                        .collect::<Vec<_>>()
                        .join(""),
                };
                // A JSON object is passed as it is; anything else as {"content": …}.
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(o)) => Value::Object(o),
                    _ => json!({"content": text}),
                };
                push_turn(
                    &mut out,
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
            }
            "function" => return Err(unsupported("the deprecated 'function' role")),
            other => return Err(invalid(format!("unknown role '{other}'"))),
        }
    }
    if out.is_empty() {
        return Err(invalid("the conversation has no user message"));
    }
    Ok((
        system,
        out.into_iter()
            .map(|(role, p)| json!({"role": role, "parts": p}))
            .collect(),
    ))
}

fn finish(reason: &str, called: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT" => "content_filter",
        _ if called => "tool_calls",
        _ => "stop",
    }
}

fn usage(u: &Value) -> Value {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let prompt = n("promptTokenCount");
    let completion = n("candidatesTokenCount") + n("thoughtsTokenCount");
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": n("cachedContentTokenCount")}})
}

/// `(text, tool_calls, reasoning)` of a candidate's parts. Tool-call ids are generated,
/// unique per answer (`call_{scope}_{choice}_{n}`, the scope being the answer's `responseId` or a
/// random token): agents match tool outputs to calls by id across turns. A call's
/// `thoughtSignature` rides in its id (`__ts__` and the signature in URL-safe base64), so that
/// the next turn, whichever API the client speaks, gives it back to Gemini with the call.
fn split_parts(
    parts: &Value,
    choice: usize,
    first_call: usize,
    scope: &str,
) -> (String, Vec<Value>, String) {
    let (mut text, mut calls, mut reasoning) = (String::new(), Vec::new(), String::new());
    for p in parts.as_array().into_iter().flatten() {
        if let Some(t) = p["text"].as_str() {
            if p["thought"] == true {
                reasoning.push_str(t);
            } else {
                text.push_str(t);
            }
        } else if let Some(f) = p.get("functionCall") {
            let n = first_call + calls.len();
            let mut id = format!("call_{scope}_{choice}_{n}");
            if let Some(sig) = p["thoughtSignature"].as_str() {
                id.push_str(SIGNATURE_MARK);
                id.extend(sig.chars().filter(|c| *c != '=').map(|c| match c {
                    '+' => '-',
                    '/' => '_',
                    c => c,
                }));
            }
            calls.push(json!({"id": id, "type": "function",
                "function": {"name": f["name"], "arguments": f["args"].to_string()}}));
        }
    }
    (text, calls, reasoning)
}

/// Between a generated tool-call id and the thought signature it carries.
const SIGNATURE_MARK: &str = "__ts__";

/// The thought signature a tool-call id carries (standard base64, as Gemini gave it).
fn signature_of(id: &str) -> Option<String> {
    let (_, sig) = id.split_once(SIGNATURE_MARK)?;
    let mut s: String = sig
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !s.len().is_multiple_of(4) {
        s.push('=');
    }
    (!sig.is_empty()).then_some(s)
}

/// What Gemini 3 accepts in place of a function call's thought signature when there is none
/// (history from another model, or from a client that dropped it): Google's documented value for
/// skipping the check, instead of a 400.
const NO_SIGNATURE: &str = "skip_thought_signature_validator";

/// A token that makes generated tool-call ids unique when the answer has no `responseId`.
fn scope_of(r: &Value) -> String {
    match r["responseId"].as_str() {
        Some(id) if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
            id.to_string()
        }
        _ => format!("{:012x}", rand::random::<u64>() >> 16),
    }
}

/// A `generateContent` answer → an OpenAI `chat.completion`.
pub fn answer(r: Value, a: &Answer<'_>) -> Value {
    let mut choices = Vec::new();
    let scope = scope_of(&r);
    for (i, c) in r["candidates"].as_array().into_iter().flatten().enumerate() {
        let (text, calls, reasoning) = split_parts(&c["content"]["parts"], i, 0, &scope);
        let called = !calls.is_empty();
        let message = assistant_message(text, calls, reasoning);
        choices.push(json!({"index": c["index"].as_u64().unwrap_or(i as u64), "message": message, "logprobs": null,
            "finish_reason": finish(c["finishReason"].as_str().unwrap_or("STOP"), called)}));
    }
    if choices.is_empty() {
        // A blocked prompt: no candidates, `promptFeedback.blockReason`.
        choices.push(json!({"index": 0, "message": {"role": "assistant", "content": null}, "logprobs": null, "finish_reason": "content_filter"}));
    }
    let id = r["responseId"]
        .as_str()
        .map(|i| format!("chatcmpl-{i}"))
        .unwrap_or_else(|| format!("chatcmpl-{scope}"));
    json!({"id": id, "object": "chat.completion", "created": a.created,
        "model": r["modelVersion"].as_str().unwrap_or(a.model), "choices": choices, "usage": usage(&r["usageMetadata"])})
}

/// A Google error body → OpenAI's error shape.
pub fn error(_: u16, v: &Value, text: &str) -> Value {
    let status = v["error"]["status"].as_str().unwrap_or("UNKNOWN");
    let message = v["error"]["message"].as_str().unwrap_or(text);
    openai_error(&message.into(), status)
}

/// The translator of a Gemini stream into OpenAI chunks.
pub fn stream(a: &Answer<'_>) -> Box<dyn StreamTranslator> {
    Box::new(Stream::new(a.asked, a.model, a.created))
}

/// `streamGenerateContent?alt=sse` events → `chat.completion.chunk` SSE.
pub struct Stream {
    asked: Asked,
    created: i64,
    model: String,
    started: bool,
    calls: usize,
    /// What makes this answer's tool-call ids unique (from its first event).
    scope: String,
    /// The chunks' `id`: `chatcmpl-{scope}`.
    id: String,
    finished: bool,
    usage: Option<Value>,
    ended: bool,
}

impl Stream {
    pub fn new(asked: Asked, model: &str, created: i64) -> Self {
        Stream {
            asked,
            created,
            model: model.to_string(),
            started: false,
            calls: 0,
            scope: String::new(),
            id: "chatcmpl-gemini".into(),
            finished: false,
            usage: None,
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
    fn event(&mut self, e: Event, out: &mut Vec<Event>) {
        let Event::Json { data: v, .. } = e else {
            return;
        };
        if self.ended {
            return;
        }
        if let Some(err) = v.get("error") {
            self.ended = true;
            let status = err["status"].as_str().unwrap_or("UNKNOWN");
            out.push(Event::data(openai_error(&err["message"], status)));
            return;
        }
        if !self.started {
            self.started = true;
            self.scope = scope_of(&v);
            self.id = format!("chatcmpl-{}", self.scope);
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
        let c = &v["candidates"][0];
        let (text, calls, reasoning) =
            split_parts(&c["content"]["parts"], 0, self.calls, &self.scope);
        if !reasoning.is_empty() {
            out.push(self.chunk(json!({ "reasoning_content": reasoning }), None));
        }
        if !text.is_empty() {
            out.push(self.chunk(json!({ "content": text }), None));
        }
        for call in calls {
            let index = self.calls;
            self.calls += 1;
            let mut delta = call;
            delta["index"] = index.into();
            out.push(self.chunk(json!({ "tool_calls": [delta] }), None));
        }
        if let Some(u) = v.get("usageMetadata") {
            self.usage = Some(u.clone());
        }
        if let Some(r) = c["finishReason"].as_str() {
            self.finished = true;
            out.push(self.chunk(json!({}), Some(finish(r, self.calls > 0))));
        } else if v["promptFeedback"]["blockReason"].is_string() {
            self.finished = true;
            out.push(self.chunk(json!({}), Some("content_filter")));
        }
    }

    fn end(&mut self, out: &mut Vec<Event>) {
        if self.ended || !self.finished {
            // Without a finish reason the answer is incomplete: no `[DONE]` (the guard reports it).
            return;
        }
        self.ended = true;
        if self.asked.include_usage {
            let u = usage(self.usage.as_ref().unwrap_or(&json!({})));
            out.push(usage_chunk(&self.id, self.created, &self.model, u));
        }
        out.push(Event::Done);
    }

    fn ended(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::pair::CHAT_TO_GEMINI;
    use crate::translate::{testing, Framing};

    fn req(v: Value) -> Result<Value, TranslateError> {
        testing::request(&CHAT_TO_GEMINI, v.to_string().as_bytes(), "m")
            .map(|(b, _)| serde_json::from_slice(&b).expect("json"))
    }

    fn response(
        body: &[u8],
        model: &str,
        created: i64,
    ) -> Result<Vec<u8>, crate::translate::AnswerError> {
        testing::answer(&CHAT_TO_GEMINI, body, model, created, Asked::default())
    }

    #[test]
    fn a_full_conversation_maps_to_contents() {
        let out = req(
            json!({"model": "x", "max_tokens": 50, "temperature": 1.5, "stop": ["END"], "n": 2, "seed": 7,
            "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "get", "parameters": {"$schema": "s", "type": "object", "additionalProperties": false,
                "properties": {"q": {"type": "string"}}}}}],
            "tool_choice": "required",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "tool_calls": [{"id": "c9", "type": "function", "function": {"name": "get", "arguments": "{\"q\":\"a\"}"}}]},
                {"role": "tool", "tool_call_id": "c9", "content": "{\"temp\":20}"},
                {"role": "tool_unused_check", "content": ""}
            ]}),
        );
        assert!(
            matches!(out, Err(TranslateError::Invalid(_))),
            "unknown role refused"
        );
        let out = req(json!({"model": "x", "max_tokens": 50, "temperature": 1.5, "stop": ["END"], "n": 2, "seed": 7,
            "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "get", "parameters": {"$schema": "s", "type": "object", "additionalProperties": false,
                "properties": {"q": {"type": "string"}}}}}],
            "tool_choice": "required",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "tool_calls": [{"id": "c9", "type": "function", "function": {"name": "get", "arguments": "{\"q\":\"a\"}"}}]},
                {"role": "tool", "tool_call_id": "c9", "content": "{\"temp\":20}"},
                {"role": "user", "content": "and?"}
            ]})).expect("ok");
        assert_eq!(
            out["systemInstruction"],
            json!({"parts": [{"text": "Be brief."}]})
        );
        assert_eq!(
            out["generationConfig"],
            json!({"maxOutputTokens": 50, "temperature": 1.5, "stopSequences": ["END"], "candidateCount": 2, "seed": 7, "responseMimeType": "application/json"})
        );
        assert_eq!(
            out["tools"][0]["functionDeclarations"][0]["parameters"],
            json!({"type": "object", "properties": {"q": {"type": "string"}}})
        );
        assert_eq!(
            out["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY"}})
        );
        let c = out["contents"].as_array().expect("contents");
        assert_eq!(c.len(), 3);
        assert_eq!(
            c[0]["parts"][1],
            json!({"inlineData": {"mimeType": "image/png", "data": "AAAA"}})
        );
        assert_eq!(
            c[1],
            json!({"role": "model", "parts": [{"functionCall": {"name": "get", "args": {"q": "a"}}}]})
        );
        assert_eq!(
            c[2]["parts"][0],
            json!({"functionResponse": {"name": "get", "response": {"temp": 20}}})
        );
        assert_eq!(c[2]["parts"][1], json!({"text": "and?"}));
    }

    #[test]
    fn refusals() {
        let m = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}]);
        assert!(matches!(
            req(json!({"messages": m})),
            Err(TranslateError::Unsupported(_))
        ));
        assert!(matches!(
            req(json!({"messages": [{"role": "user", "content": "x"}], "logit_bias": {"1": 2}})),
            Err(TranslateError::Unsupported(_))
        ));
        let orphan = json!({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "zz", "content": "1"}]});
        assert!(matches!(req(orphan), Err(TranslateError::Invalid(_))));
    }

    #[test]
    fn answers_map_back() {
        let body = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "thinking", "thought": true}, {"text": "Calling."},
            {"functionCall": {"name": "get", "args": {"q": "a"}}}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 2, "cachedContentTokenCount": 4, "totalTokenCount": 17},
            "modelVersion": "gemini-x", "responseId": "r1"});
        let out: Value =
            serde_json::from_slice(&response(body.to_string().as_bytes(), "m", 1).expect("ok"))
                .expect("json");
        let c = &out["choices"][0];
        assert_eq!(c["finish_reason"], "tool_calls");
        assert_eq!(c["message"]["content"], "Calling.");
        assert_eq!(c["message"]["reasoning_content"], "thinking");
        assert_eq!(
            c["message"]["tool_calls"][0],
            json!({"id": "call_r1_0_0", "type": "function", "function": {"name": "get", "arguments": "{\"q\":\"a\"}"}})
        );
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17, "prompt_tokens_details": {"cached_tokens": 4}})
        );
        for (reason, want) in [
            ("STOP", "stop"),
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "stop"),
            ("OTHER", "stop"),
        ] {
            let b = json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]});
            let o: Value =
                serde_json::from_slice(&response(b.to_string().as_bytes(), "m", 1).expect("ok"))
                    .expect("json");
            assert_eq!(o["choices"][0]["finish_reason"], want, "{reason}");
        }
        let blocked: Value = serde_json::from_slice(
            &response(br#"{"promptFeedback":{"blockReason":"SAFETY"}}"#, "m", 1).expect("ok"),
        )
        .expect("json");
        assert_eq!(blocked["choices"][0]["finish_reason"], "content_filter");
        let e: Value = serde_json::from_slice(&testing::error(
            &CHAT_TO_GEMINI,
            429,
            br#"{"error":{"code":429,"message":"Quota","status":"RESOURCE_EXHAUSTED"}}"#,
        ))
        .expect("json");
        assert_eq!(e["error"]["code"], "RESOURCE_EXHAUSTED");
    }

    const STREAM: &str = "data: {\"responseId\":\"s1\",\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hel\"}]},\"index\":0}]}\r\n\r\n\
data: {\"responseId\":\"s1\",\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"lo\"},{\"functionCall\":{\"name\":\"get\",\"args\":{\"q\":\"a\"}}}]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2,\"totalTokenCount\":5}}\r\n\r\n";

    fn translate(parts: &[&[u8]], asked: Asked) -> String {
        testing::stream(&CHAT_TO_GEMINI, Framing::Sse, asked, "m", parts).0
    }

    #[test]
    fn the_stream_maps_event_by_event_at_any_split() {
        let asked = Asked {
            stream: true,
            include_usage: true,
            ..Asked::default()
        };
        let whole = translate(&[STREAM.as_bytes()], asked);
        let chunks: Vec<&str> = whole
            .split("\n\n")
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        assert_eq!(chunks.last(), Some(&"[DONE]"));
        let v: Vec<Value> = chunks[..chunks.len() - 1]
            .iter()
            .map(|c| serde_json::from_str(c).expect("json"))
            .collect();
        let text: String = v
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello");
        assert!(v
            .iter()
            .any(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get"));
        assert!(v
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
        assert_eq!(v.last().expect("usage")["usage"]["total_tokens"], 5);
        let bytes = STREAM.as_bytes();
        for i in 0..=bytes.len() {
            assert_eq!(
                translate(&[&bytes[..i], &bytes[i..]], asked),
                whole,
                "split at {i}"
            );
        }
        // Cut before the finish reason: no [DONE].
        assert!(!translate(&[&bytes[..bytes.len() / 2]], asked).contains("[DONE]"));
    }

    /// A function call's thought signature leaves in the tool-call id and comes back with the
    /// call on the next turn; Gemini 3 gets Google's skip value for a call that has none.
    #[test]
    fn thought_signatures_round_trip_through_tool_call_ids() {
        let sig = "Cr8BAY+/v7+/a2V5PT0=";
        let body = json!({"responseId": "r9", "candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get", "args": {"q": "a"}}, "thoughtSignature": sig},
            {"functionCall": {"name": "get", "args": {"q": "b"}}}]}, "finishReason": "STOP"}]});
        let out: Value =
            serde_json::from_slice(&response(body.to_string().as_bytes(), "m", 1).expect("ok"))
                .expect("json");
        let calls = out["choices"][0]["message"]["tool_calls"].clone();
        let id = calls[0]["id"].as_str().expect("id").to_string();
        assert!(id.starts_with("call_r9_0_0__ts__"), "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "ids stay within [A-Za-z0-9_-] (Anthropic's rule for tool_use ids): {id}"
        );
        assert_eq!(calls[1]["id"], "call_r9_0_1");
        let next = |model: &str| {
            testing::request(
                &CHAT_TO_GEMINI,
                json!({"model": "x", "messages": [{"role": "user", "content": "q"},
                    {"role": "assistant", "content": null, "tool_calls": calls},
                    {"role": "tool", "tool_call_id": id, "content": "1"},
                    {"role": "tool", "tool_call_id": "call_r9_0_1", "content": "2"}]})
                .to_string()
                .as_bytes(),
                model,
            )
            .map(|(b, _)| serde_json::from_slice::<Value>(&b).expect("json"))
            .expect("ok")
        };
        let v = next("gemini-2.5-pro");
        let model_turn = &v["contents"][1]["parts"];
        assert_eq!(model_turn[0]["thoughtSignature"], sig);
        assert!(model_turn[1].get("thoughtSignature").is_none());
        // A Gemini 3 turn whose first call lost its signature gets the documented skip value.
        let mut unsigned = calls.clone();
        unsigned[0]["id"] = "call_other".into();
        let v = testing::request(
            &CHAT_TO_GEMINI,
            json!({"model": "x", "messages": [{"role": "user", "content": "q"},
                {"role": "assistant", "content": null, "tool_calls": [unsigned[0].clone()]},
                {"role": "tool", "tool_call_id": "call_other", "content": "1"}]})
            .to_string()
            .as_bytes(),
            "gemini-3-pro-preview",
        )
        .map(|(b, _)| serde_json::from_slice::<Value>(&b).expect("json"))
        .expect("ok");
        assert_eq!(
            v["contents"][1]["parts"][0]["thoughtSignature"],
            NO_SIGNATURE
        );
        // Streamed the same way.
        let stream = format!(
            "data: {}\r\n\r\n",
            json!({"responseId": "r9", "candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "get", "args": {}}, "thoughtSignature": sig}]}, "finishReason": "STOP"}]})
        );
        let text = translate(&[stream.as_bytes()], Asked::default());
        assert!(text.contains(&id[..id.len() - 1]), "{text}");
        assert_eq!(signature_of(&id).as_deref(), Some(sig));
    }
}
