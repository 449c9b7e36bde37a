//! Translation between provider formats, as pure functions: a request in one API's format becomes
//! another's, and the answer (whole, or its stream event by event) comes back in the client's
//! format. One file per target family.

pub mod anthropic;
pub mod bedrock;
pub mod embeddings;
pub mod gemini;
pub mod messages_in;
pub mod pair;
pub mod responses_in;
pub mod sse;
pub mod stream;

pub use pair::{Answer, AnswerError, Step, Target, Translation};
pub use stream::{Converter, Event, Framing, StreamError, StreamTranslator};

/// What the answer translation needs to know about the request, learnt while translating it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Asked {
    pub stream: bool,
    pub include_usage: bool,
    /// JSON mode through the forced `JSON_TOOL`: its call is the answer's `content`.
    pub json_tool: bool,
    /// Hints that only tune how an answer is produced, dropped because the target has no
    /// equivalent (the answer names them in `x-to11-dropped`).
    pub dropped: Dropped,
    /// Embeddings asked for as base64 (`encoding_format`).
    pub base64: bool,
}

/// A set of dropped request hints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped(u16);

impl Dropped {
    pub const THINKING: Dropped = Dropped(1);
    pub const EFFORT: Dropped = Dropped(1 << 1);
    pub const CONTEXT_MANAGEMENT: Dropped = Dropped(1 << 2);
    pub const CACHE_CONTROL: Dropped = Dropped(1 << 3);
    pub const TOP_K: Dropped = Dropped(1 << 4);
    pub const REASONING_SUMMARY: Dropped = Dropped(1 << 5);
    pub const TRUNCATION: Dropped = Dropped(1 << 6);
    pub const MAX_TOOL_CALLS: Dropped = Dropped(1 << 7);
    pub const REASONING_EFFORT: Dropped = Dropped(1 << 8);
    const NAMES: [(Dropped, &'static str); 9] = [
        (Dropped::THINKING, "thinking"),
        (Dropped::EFFORT, "output_config.effort"),
        (Dropped::CONTEXT_MANAGEMENT, "context_management"),
        (Dropped::CACHE_CONTROL, "cache_control"),
        (Dropped::TOP_K, "top_k"),
        (Dropped::REASONING_SUMMARY, "reasoning.summary"),
        (Dropped::TRUNCATION, "truncation"),
        (Dropped::MAX_TOOL_CALLS, "max_tool_calls"),
        (Dropped::REASONING_EFFORT, "reasoning_effort"),
    ];

    pub fn add(&mut self, d: Dropped) {
        self.0 |= d.0;
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The dropped hints' request field names, comma-separated.
    pub fn names(self) -> String {
        Dropped::NAMES
            .iter()
            .filter(|(d, _)| self.0 & d.0 != 0)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Asked {
    /// Whether a tool call named `name` is the JSON-mode answer rather than a tool call.
    pub fn is_json_answer(&self, name: &Value) -> bool {
        self.json_tool && name == JSON_TOOL
    }

    /// The OpenAI `finish_reason` of a provider stop reason, `stop` for a JSON-mode answer.
    pub fn finish(&self, stop: &str) -> &'static str {
        match finish_reason(stop) {
            "tool_calls" if self.json_tool => "stop",
            f => f,
        }
    }
}

/// Why a request cannot be translated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The target cannot express a feature the request uses: a clear refusal naming it, never a
    /// silently different request. A route moves on to its next target.
    #[error("{0}")]
    Unsupported(String),
    /// The request itself is malformed.
    #[error("{0}")]
    Invalid(String),
}

use serde_json::{json, Map, Value};

/// Appends a turn, merged into the previous one when the role is the same (Anthropic, Gemini and
/// Converse require alternating roles). Empty turns are skipped.
pub(crate) fn push_turn(
    out: &mut Vec<(&'static str, Vec<Value>)>,
    role: &'static str,
    blocks: Vec<Value>,
) {
    if blocks.is_empty() {
        return;
    }
    match out.last_mut() {
        Some((r, existing)) if *r == role => existing.extend(blocks),
        _ => out.push((role, blocks)),
    }
}

/// A client's `stream` in a chat body, asking for the stream's usage when the target does not
/// send it unasked (the translations that end in chat need it for their client's last event).
pub(crate) fn stream_to_chat(v: &Value, target: &pair::Target<'_>, out: &mut Map<String, Value>) {
    out.insert("stream".into(), v.clone());
    if v == true && target.ask_usage {
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
}

/// The parsed `arguments` of an OpenAI tool call (`{}` when empty).
pub(crate) fn tool_arguments(call: &Value) -> Result<Value, TranslateError> {
    let args = call["function"]["arguments"].as_str().unwrap_or("{}");
    if args.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(args)
        .map_err(|_| TranslateError::Invalid("tool_calls[].function.arguments is not JSON".into()))
}

/// OpenAI's `stop` (a string or an array) as an array.
pub(crate) fn stop_list(v: &Value) -> Result<Value, TranslateError> {
    match v {
        Value::String(s) => Ok(json!([s])),
        Value::Array(_) => Ok(v.clone()),
        _ => Err(TranslateError::Invalid(
            "'stop' must be a string or an array of strings".into(),
        )),
    }
}

/// OpenAI's error object with `kind` as its type and code.
pub(crate) fn openai_error(message: &Value, kind: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": kind}})
}

/// One `chat.completion.chunk` event (`usage: null` on content chunks when usage was asked).
pub(crate) fn chunk(
    id: &str,
    created: i64,
    model: &str,
    include_usage: bool,
    delta: Value,
    finish: Option<&str>,
) -> Event {
    let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
    if include_usage {
        c["usage"] = Value::Null;
    }
    Event::data(c)
}

/// The usage chunk (`choices: []`) of `stream_options.include_usage`.
pub(crate) fn usage_chunk(id: &str, created: i64, model: &str, usage: Value) -> Event {
    Event::data(
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [], "usage": usage}),
    )
}

/// The tool through which a JSON-mode request (`response_format` `json_object`/`json_schema`) is
/// answered by targets without a JSON mode of their own on every model (Anthropic, Bedrock
/// Converse): the model is forced to call it, and its input comes back to the client as the
/// message's JSON `content` with `finish_reason: "stop"`, never as a tool call.
pub const JSON_TOOL: &str = "json_answer";

/// The forced tool of a JSON-mode request: its description and input schema.
pub(crate) struct JsonTool {
    pub description: String,
    pub schema: Value,
}

/// `response_format` → the forced tool carrying the JSON answer, or `None` for plain text.
/// A tool's input is always a JSON object, so a `json_schema` whose top level is not an object is
/// refused (`refuse` names the target) rather than answered in a different shape.
pub(crate) fn json_tool(
    v: &Value,
    refuse: fn(&str) -> TranslateError,
) -> Result<Option<JsonTool>, TranslateError> {
    let (description, schema) = match v["type"].as_str() {
        None if v.is_null() => return Ok(None),
        Some("text") => return Ok(None),
        Some("json_object") => (
            "Give your whole answer as this tool's input: a JSON object.".to_string(),
            json!({"type": "object"}),
        ),
        Some("json_schema") => {
            let s = &v["json_schema"];
            let schema = s["schema"].clone();
            if !schema.is_object() || schema.get("type").is_some_and(|t| t != "object") {
                return Err(refuse(
                    "a response_format json_schema whose top level is not an object",
                ));
            }
            let name = s["name"].as_str().unwrap_or("answer");
            let about = s["description"].as_str().unwrap_or("");
            (
                format!("Give your whole answer as this tool's input, following the schema '{name}'. {about}")
                    .trim_end()
                    .to_string(),
                schema,
            )
        }
        _ => {
            return Err(TranslateError::Invalid(format!(
                "unknown response_format {v}"
            )))
        }
    };
    Ok(Some(JsonTool {
        description,
        schema,
    }))
}

/// What an OpenAI `image_url` URL holds.
pub(crate) enum ImageUrl<'a> {
    /// A base64 data URL: its media type and data.
    Data { mime: &'a str, data: &'a str },
    /// An http(s) URL.
    Http(&'a str),
    /// Any other scheme.
    Other,
}

/// Reads an image URL. A data URL must be base64 (`refuse` names the target that needs it so).
pub(crate) fn image_url(
    url: &str,
    refuse: fn(&str) -> TranslateError,
) -> Result<ImageUrl<'_>, TranslateError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| TranslateError::Invalid("malformed data URL".into()))?;
        let mime = meta
            .strip_suffix(";base64")
            .ok_or_else(|| refuse("data URLs that are not base64"))?;
        return Ok(ImageUrl::Data { mime, data });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(ImageUrl::Http(url));
    }
    Ok(ImageUrl::Other)
}

/// The assistant message of a translated answer: `content` is null when the answer is only tool
/// calls; `tool_calls` and `reasoning_content` appear when there are some.
pub(crate) fn assistant_message(text: String, calls: Vec<Value>, reasoning: String) -> Value {
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        text.into()
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = reasoning.into();
    }
    message
}

/// The OpenAI `finish_reason` of a provider stop reason (shared by Anthropic and Bedrock).
pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" | "guardrail_intervened" | "content_filtered" => "content_filter",
        // end_turn, stop_sequence, pause_turn and values added later.
        _ => "stop",
    }
}

/// Test helpers: one step run through its descriptor, bytes in and out.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    fn one(step: &'static Step, framing: Framing) -> Translation {
        Translation::new(Box::leak(Box::new([step])), framing)
    }

    /// The request through `step` for `model` (max tokens as `max_tokens`).
    pub fn request(
        step: &'static Step,
        body: &[u8],
        model: &str,
    ) -> Result<(Vec<u8>, Asked), TranslateError> {
        one(step, Framing::Sse).request_bytes(
            body,
            &Target {
                model,
                max_tokens_field: "max_tokens",
                ask_usage: true,
                cache_points: false,
            },
        )
    }

    /// A whole answer back through `step`.
    pub fn answer(
        step: &'static Step,
        body: &[u8],
        model: &str,
        created: i64,
        asked: Asked,
    ) -> Result<Vec<u8>, AnswerError> {
        one(step, Framing::Sse).answer(
            body,
            &Answer {
                model,
                created,
                asked,
            },
        )
    }

    /// An error body back through `step`.
    pub fn error(step: &'static Step, status: u16, body: &[u8]) -> Vec<u8> {
        one(step, Framing::Sse).error(status, body)
    }

    /// A stream in `parts` back through `step`: the client's text, and whether it ended.
    pub fn stream(
        step: &'static Step,
        framing: Framing,
        asked: Asked,
        model: &str,
        parts: &[&[u8]],
    ) -> (String, bool) {
        let mut c = one(step, framing).stream(&Answer {
            model,
            created: 1,
            asked,
        });
        let mut out = Vec::new();
        for p in parts {
            out.extend(c.push(p).expect("stream"));
        }
        out.extend(c.finish().expect("stream end"));
        (String::from_utf8(out).expect("utf8"), c.ended())
    }
}
