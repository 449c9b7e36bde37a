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
    _: &Target<'_>,
    asked: &mut Asked,
) -> Result<Map<String, Value>, TranslateError> {
    let mut out = Map::new();
    let mut config = Map::new();
    for (k, v) in &req {
        if !v.is_null() {
            field(k, v, asked, &mut config)?;
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
        "top_logprobs" | "logit_bias" | "audio" | "prediction" | "web_search_options"
        | "reasoning_effort" => {
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

fn contents(v: &Value) -> Result<(Vec<Value>, Vec<Value>), TranslateError> {
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
                for c in m["tool_calls"].as_array().into_iter().flatten() {
                    let name = c["function"]["name"]
                        .as_str()
                        .ok_or_else(|| invalid("a tool call has no name"))?;
                    let args = tool_arguments(c)?;
                    if let Some(id) = c["id"].as_str() {
                        names.insert(id.to_string(), name.to_string());
                    }
                    p.push(json!({"functionCall": {"name": name, "args": args}}));
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

/// `(text, tool_calls, reasoning)` of a candidate's parts. Tool-call ids are generated:
/// `call_{choice}_{n}`.
fn split_parts(parts: &Value, choice: usize, first_call: usize) -> (String, Vec<Value>, String) {
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
            calls.push(
                json!({"id": format!("call_{choice}_{n}"), "type": "function",
                "function": {"name": f["name"], "arguments": f["args"].to_string()}}),
            );
        }
    }
    (text, calls, reasoning)
}

/// A `generateContent` answer → an OpenAI `chat.completion`.
pub fn answer(r: Value, a: &Answer<'_>) -> Value {
    let mut choices = Vec::new();
    for (i, c) in r["candidates"].as_array().into_iter().flatten().enumerate() {
        let (text, calls, reasoning) = split_parts(&c["content"]["parts"], i, 0);
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
        .unwrap_or_else(|| STREAM_ID.into());
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

/// The `id` of translated Gemini chunks (the SSE events carry no response id).
const STREAM_ID: &str = "chatcmpl-gemini";

/// `streamGenerateContent?alt=sse` events → `chat.completion.chunk` SSE.
pub struct Stream {
    asked: Asked,
    created: i64,
    model: String,
    started: bool,
    calls: usize,
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
            finished: false,
            usage: None,
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
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
        let c = &v["candidates"][0];
        let (text, calls, reasoning) = split_parts(&c["content"]["parts"], 0, self.calls);
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
            out.push(usage_chunk(STREAM_ID, self.created, &self.model, u));
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
            json!({"id": "call_0_0", "type": "function", "function": {"name": "get", "arguments": "{\"q\":\"a\"}"}})
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

    const STREAM: &str = "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hel\"}]},\"index\":0}]}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"lo\"},{\"functionCall\":{\"name\":\"get\",\"args\":{\"q\":\"a\"}}}]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2,\"totalTokenCount\":5}}\r\n\r\n";

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
}
