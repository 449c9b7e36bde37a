//! OpenAI Responses API in, OpenAI Chat Completions out: for `/v1/responses` clients (Codex, the
//! OpenAI Agents SDK, the Vercel AI SDK) whose target has no Responses API. Chained with the
//! existing chat translations, it reaches Claude, Gemini and Bedrock too.
//!
//! Request: `instructions` → a system message; `input` (a string, or items: messages with
//! text, image and output-text parts, `function_call` and `function_call_output` items) →
//! chat messages; `reasoning` items passed back from earlier turns are dropped (their content is
//! the provider's own); function tools, `tool_choice`, `parallel_tool_calls`, `text.format`
//! (JSON object or schema) → `response_format`, `max_output_tokens`, `reasoning.effort` →
//! `reasoning_effort`; a stream asks for usage. Stateless only: `previous_response_id`,
//! `conversation` and item references are refused with the reason, and so are hosted tools the
//! target cannot run (web search, file search, code interpreter, …), by name.
//!
//! Answer: the completion as a `response` object (a reasoning item, a message item, function-call
//! items, usage with cached and reasoning tokens, `incomplete` on a length stop); the chunk stream
//! as the Responses event sequence the OpenAI SDKs and Codex parse (`response.created` …
//! `response.completed`, every event with its `sequence_number`); an error as `response.failed`.

use serde_json::{json, Map, Value};

use super::pair::{Answer, Target};
use super::stream::{Event, StreamTranslator};
use super::{Asked, Dropped, TranslateError};

fn unsupported(what: &str) -> TranslateError {
    TranslateError::Unsupported(format!(
        "this target has no Responses API, and through chat completions it cannot express {what}"
    ))
}

fn invalid(what: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(what.into())
}

/// Why stored state cannot be used on a translated target.
const STATELESS: &str = "the target has no Responses API and to11 keeps no responses: send the \
whole conversation in 'input' (with store: false) instead of";

/// A Responses request body → an OpenAI chat body for the target's model.
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
    let mut messages = Vec::new();
    if let Some(i) = req.get("instructions").filter(|v| !v.is_null()) {
        let text = i
            .as_str()
            .ok_or_else(|| invalid("'instructions' must be a string"))?;
        messages.push(json!({"role": "system", "content": text}));
    }
    match req.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for item in items {
                input_item(item, &mut messages)?;
            }
        }
        None | Some(Value::Null) => return Err(invalid("the request has no 'input'")),
        Some(_) => return Err(invalid("'input' must be a string or an array of items")),
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(tools) = req.get("tools").and_then(Value::as_array) {
        let mut t = Vec::with_capacity(tools.len());
        for tool in tools {
            t.push(function_tool(tool)?);
        }
        if !t.is_empty() {
            out.insert("tools".into(), Value::Array(t));
        }
    }
    if let Some(c) = req.get("tool_choice").filter(|c| !c.is_null()) {
        out.insert("tool_choice".into(), tool_choice(c)?);
    }
    Ok(out)
}

/// One top-level field of a Responses request, in chat's terms.
fn field(
    k: &str,
    v: &Value,
    target: &Target<'_>,
    out: &mut Map<String, Value>,
    asked: &mut Asked,
) -> Result<(), TranslateError> {
    match k {
        "model" | "input" | "instructions" | "tools" | "tool_choice" => {}
        "max_output_tokens" => {
            out.insert(target.max_tokens_field.into(), v.clone());
        }
        "temperature"
        | "top_p"
        | "parallel_tool_calls"
        | "user"
        | "safety_identifier"
        | "prompt_cache_key"
        | "service_tier" => {
            out.insert(k.into(), v.clone());
        }
        // The usage of the stream, for the client's `response.completed` (and metering).
        "stream" => super::stream_to_chat(v, target, out),
        "text" => text(v, out)?,
        "reasoning" => {
            if let Some(e) = v["effort"].as_str() {
                out.insert("reasoning_effort".into(), e.into());
            }
            if v.get("summary").is_some_and(|s| !s.is_null()) {
                asked.dropped.add(Dropped::REASONING_SUMMARY);
            }
        }
        "previous_response_id" => {
            return Err(unsupported(&format!(
                "'previous_response_id': {STATELESS} it"
            )))
        }
        "conversation" => return Err(unsupported(&format!("'conversation': {STATELESS} it"))),
        "background" if v == true => return Err(unsupported("background responses")),
        "prompt" => return Err(unsupported("stored prompt templates ('prompt')")),
        "top_logprobs" if v.as_u64().is_some_and(|n| n > 0) => {
            return Err(unsupported("'top_logprobs'"))
        }
        "truncation" if v == "auto" => asked.dropped.add(Dropped::TRUNCATION),
        "max_tool_calls" => asked.dropped.add(Dropped::MAX_TOOL_CALLS),
        // What only concerns storage and the event stream's form: the gateway stores nothing.
        "store" | "metadata" | "include" | "stream_options" | "background" | "top_logprobs"
        | "truncation" => {}
        other => return Err(unsupported(&format!("the request field '{other}'"))),
    }
    Ok(())
}

/// `text`: the output format (`response_format`) and verbosity.
fn text(v: &Value, out: &mut Map<String, Value>) -> Result<(), TranslateError> {
    let f = &v["format"];
    match f["type"].as_str() {
        None | Some("text") => {}
        Some("json_object") => {
            out.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some("json_schema") => {
            let mut schema = Map::new();
            for k in ["name", "schema", "strict", "description"] {
                if let Some(x) = f.get(k).filter(|x| !x.is_null()) {
                    schema.insert(k.into(), x.clone());
                }
            }
            if !schema.contains_key("schema") {
                return Err(invalid("text.format of type json_schema has no 'schema'"));
            }
            out.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": schema}),
            );
        }
        Some(other) => return Err(invalid(format!("unknown text.format type '{other}'"))),
    }
    if let Some(verbosity) = v.get("verbosity").filter(|x| !x.is_null()) {
        out.insert("verbosity".into(), verbosity.clone());
    }
    Ok(())
}

/// A function tool in chat's shape; hosted tools are refused by name.
fn function_tool(tool: &Value) -> Result<Value, TranslateError> {
    match tool["type"].as_str() {
        Some("function") => {
            let name = tool["name"]
                .as_str()
                .ok_or_else(|| invalid("a function tool has no 'name'"))?;
            let mut f = Map::new();
            f.insert("name".into(), name.into());
            for k in ["description", "parameters", "strict"] {
                if let Some(x) = tool.get(k).filter(|x| !x.is_null()) {
                    f.insert(k.into(), x.clone());
                }
            }
            Ok(json!({"type": "function", "function": f}))
        }
        Some(other) => Err(unsupported(&format!(
            "the hosted tool '{other}' (the target cannot run it)"
        ))),
        None => Err(invalid("a tool has no 'type'")),
    }
}

fn tool_choice(c: &Value) -> Result<Value, TranslateError> {
    Ok(match c {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => c.clone(),
        Value::Object(_) if c["type"] == "function" => {
            json!({"type": "function", "function": {"name": c["name"]}})
        }
        Value::Object(_) => {
            return Err(unsupported(&format!(
                "a tool_choice of type {} (only function tools reach the target)",
                c["type"]
            )))
        }
        _ => return Err(invalid(format!("unknown tool_choice {c}"))),
    })
}

/// One input item, appended to the chat messages.
fn input_item(item: &Value, messages: &mut Vec<Value>) -> Result<(), TranslateError> {
    let kind = item["type"]
        .as_str()
        .unwrap_or(if item.get("role").is_some() {
            "message"
        } else {
            ""
        });
    match kind {
        "message" => message(item, messages),
        "function_call" => {
            let call = json!({"id": item["call_id"], "type": "function", "function": {
                "name": item["name"], "arguments": item["arguments"].as_str().unwrap_or("{}")}});
            match messages.last_mut() {
                // Calls of one turn, and the text before them, are one assistant message.
                Some(m) if m["role"] == "assistant" => match m["tool_calls"].as_array_mut() {
                    Some(calls) => calls.push(call),
                    None => m["tool_calls"] = json!([call]),
                },
                _ => messages
                    .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
            Ok(())
        }
        "function_call_output" => {
            let output = match &item["output"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(""),
                other => other.to_string(),
            };
            messages
                .push(json!({"role": "tool", "tool_call_id": item["call_id"], "content": output}));
            Ok(())
        }
        // Reasoning passed back from an earlier turn: the provider's own, no chat equivalent.
        "reasoning" => Ok(()),
        "item_reference" => Err(unsupported(&format!("item references: {STATELESS} them"))),
        "" => Err(invalid("an input item has no 'type'")),
        other => Err(unsupported(&format!("input items of type '{other}'"))),
    }
}

/// A message item (`{role, content}`, with or without `type`).
fn message(item: &Value, messages: &mut Vec<Value>) -> Result<(), TranslateError> {
    let role = match item["role"].as_str() {
        Some("user") => "user",
        Some("assistant") => "assistant",
        Some("system" | "developer") => "system",
        Some(other) => return Err(invalid(format!("unknown role '{other}'"))),
        None => return Err(invalid("a message item has no role")),
    };
    let content = match &item["content"] {
        Value::String(s) => Value::String(s.clone()),
        Value::Array(parts) if role == "user" => {
            let mut out = Vec::with_capacity(parts.len());
            for p in parts {
                out.push(user_part(p)?);
            }
            Value::Array(out)
        }
        Value::Array(parts) => Value::String(text_of(parts)?),
        _ => return Err(invalid("message content must be a string or parts")),
    };
    messages.push(json!({"role": role, "content": content}));
    Ok(())
}

/// The text of an assistant's or a system message's parts.
fn text_of(parts: &[Value]) -> Result<String, TranslateError> {
    let mut text = String::new();
    for p in parts {
        match p["type"].as_str() {
            Some("output_text" | "input_text" | "text") => {
                text.push_str(p["text"].as_str().unwrap_or(""))
            }
            Some("refusal") => text.push_str(p["refusal"].as_str().unwrap_or("")),
            Some(other) => return Err(unsupported(&format!("'{other}' parts in this message"))),
            None => return Err(invalid("a content part has no type")),
        }
    }
    Ok(text)
}

/// A user message part in chat's terms.
fn user_part(p: &Value) -> Result<Value, TranslateError> {
    match p["type"].as_str() {
        Some("input_text" | "output_text" | "text") => {
            Ok(json!({"type": "text", "text": p["text"]}))
        }
        Some("input_image") => {
            let url = p["image_url"].as_str().ok_or_else(|| {
                unsupported("images by file id (send the image as a URL or a data URL)")
            })?;
            let mut image = json!({"url": url});
            if let Some(d) = p["detail"].as_str() {
                image["detail"] = d.into();
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        Some("input_file") => Err(unsupported("file inputs ('input_file')")),
        Some("input_audio") => Err(unsupported("audio inputs")),
        Some(other) => Err(unsupported(&format!("'{other}' parts"))),
        None => Err(invalid("a content part has no type")),
    }
}

/// Chat usage → the Responses API's.
fn usage(u: &Value) -> Value {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let input = n(&u["prompt_tokens"]);
    let output = n(&u["completion_tokens"]);
    json!({"input_tokens": input,
        "input_tokens_details": {"cached_tokens": n(&u["prompt_tokens_details"]["cached_tokens"])},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": n(&u["completion_tokens_details"]["reasoning_tokens"])},
        "total_tokens": u["total_tokens"].as_u64().unwrap_or(input + output)})
}

/// A response id from the upstream's completion id.
fn response_id(chat_id: &Value) -> String {
    let raw = chat_id.as_str().unwrap_or("to11");
    let raw = raw
        .strip_prefix("chatcmpl-")
        .or_else(|| raw.strip_prefix("msg_"))
        .unwrap_or(raw);
    format!("resp_{raw}")
}

/// Status and `incomplete_details` of a chat `finish_reason`.
fn status(finish: Option<&str>) -> (&'static str, Value) {
    match finish {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// The response object around `output`.
fn response(
    id: &str,
    created: i64,
    model: &Value,
    status: (&str, Value),
    output: Vec<Value>,
    usage: Value,
) -> Value {
    json!({"id": id, "object": "response", "created_at": created, "status": status.0,
        "error": null, "incomplete_details": status.1, "instructions": null,
        "max_output_tokens": null, "model": model, "output": output,
        "parallel_tool_calls": true, "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null}, "store": false, "temperature": null,
        "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": null,
        "truncation": "disabled", "metadata": {}, "usage": usage})
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"id": id, "type": "message", "status": status, "role": "assistant",
        "content": [output_text(text)]})
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"id": id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]})
}

fn call_item(id: &str, call_id: &Value, name: &Value, arguments: &str, status: &str) -> Value {
    json!({"id": id, "type": "function_call", "status": status, "call_id": call_id,
        "name": name, "arguments": arguments})
}

/// A completion → a `response`.
pub fn answer(r: Value, a: &Answer<'_>) -> Value {
    let id = response_id(&r["id"]);
    let c = &r["choices"][0];
    let m = &c["message"];
    let mut output = Vec::new();
    if let Some(t) = m["reasoning_content"]
        .as_str()
        .or(m["reasoning"].as_str())
        .filter(|t| !t.is_empty())
    {
        output.push(reasoning_item(&format!("rs_{id}"), t));
    }
    if let Some(t) = m["content"].as_str().filter(|t| !t.is_empty()) {
        output.push(message_item(&format!("msg_{id}"), t, "completed"));
    } else if let Some(t) = m["refusal"].as_str() {
        output.push(
            json!({"id": format!("msg_{id}"), "type": "message", "status": "completed",
            "role": "assistant", "content": [{"type": "refusal", "refusal": t}]}),
        );
    }
    for (i, call) in m["tool_calls"].as_array().into_iter().flatten().enumerate() {
        let f = &call["function"];
        output.push(call_item(
            &format!("fc_{id}_{i}"),
            &call["id"],
            &f["name"],
            f["arguments"].as_str().unwrap_or("{}"),
            "completed",
        ));
    }
    let model = if r["model"].is_string() {
        r["model"].clone()
    } else {
        a.model.into()
    };
    let created = r["created"].as_i64().unwrap_or(a.created);
    let st = status(c["finish_reason"].as_str());
    response(&id, created, &model, st, output, usage(&r["usage"]))
}

/// An error body in OpenAI's shape (which the Responses API shares).
pub fn error(status: u16, v: &Value, text: &str) -> Value {
    if v["error"].is_object() {
        return v.clone();
    }
    let message = v["error"]
        .as_str()
        .or(v["message"].as_str())
        .unwrap_or(text);
    let kind = match status {
        400 | 404 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        _ => "api_error",
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
}

pub fn stream(a: &Answer<'_>) -> Box<dyn StreamTranslator> {
    Box::new(Stream::new(a))
}

/// An output item being streamed.
enum Item {
    Reasoning {
        id: String,
        text: String,
    },
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: Value,
        name: Value,
        arguments: String,
        /// The chat tool-call index it came from.
        index: u64,
    },
}

/// Chat chunks → Responses events, one chunk at a time.
pub struct Stream {
    id: String,
    model: Value,
    created: i64,
    sequence: u64,
    started: bool,
    items: Vec<Item>,
    /// Index in `items` of the open reasoning or message item (function calls stay open until
    /// the finish, since chat may interleave their argument deltas).
    open: Option<usize>,
    done: Vec<bool>,
    finish: Option<String>,
    usage: Value,
    ended: bool,
}

impl Stream {
    fn new(a: &Answer<'_>) -> Self {
        Stream {
            id: String::new(),
            model: a.model.into(),
            created: a.created,
            sequence: 0,
            started: false,
            items: Vec::new(),
            open: None,
            done: Vec::new(),
            finish: None,
            usage: Value::Null,
            ended: false,
        }
    }

    fn emit(&mut self, out: &mut Vec<Event>, name: &'static str, mut data: Value) {
        data["type"] = name.into();
        data["sequence_number"] = self.sequence.into();
        self.sequence += 1;
        out.push(Event::named(name, data));
    }

    fn snapshot(&self, status: (&str, Value), usage: Value) -> Value {
        let output = (0..self.items.len()).map(|i| self.item(i, true)).collect();
        response(&self.id, self.created, &self.model, status, output, usage)
    }

    /// An item as JSON: whole when `done`, empty as first announced otherwise.
    fn item(&self, i: usize, done: bool) -> Value {
        let status = if done { "completed" } else { "in_progress" };
        match &self.items[i] {
            Item::Reasoning { id, text } => {
                if done {
                    reasoning_item(id, text)
                } else {
                    json!({"id": id, "type": "reasoning", "summary": []})
                }
            }
            Item::Message { id, text } => {
                if done {
                    message_item(id, text, status)
                } else {
                    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": []})
                }
            }
            Item::Call {
                id,
                call_id,
                name,
                arguments,
                ..
            } => call_item(id, call_id, name, if done { arguments } else { "" }, status),
        }
    }

    fn start(&mut self, v: &Value, out: &mut Vec<Event>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = response_id(&v["id"]);
        if v["model"].is_string() {
            self.model = v["model"].clone();
        }
        if let Some(c) = v["created"].as_i64() {
            self.created = c;
        }
        let r = self.snapshot(("in_progress", Value::Null), Value::Null);
        self.emit(out, "response.created", json!({"response": r}));
        let r = self.snapshot(("in_progress", Value::Null), Value::Null);
        self.emit(out, "response.in_progress", json!({"response": r}));
    }

    /// Opens a new item, closing the open reasoning or message item first.
    fn open_item(&mut self, item: Item, out: &mut Vec<Event>) -> usize {
        self.close_open(out);
        let i = self.items.len();
        self.items.push(item);
        self.done.push(false);
        let announced = self.item(i, false);
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": i, "item": announced}),
        );
        i
    }

    fn close_open(&mut self, out: &mut Vec<Event>) {
        if let Some(i) = self.open.take() {
            self.close(i, out);
        }
    }

    /// The events that finish item `i`.
    fn close(&mut self, i: usize, out: &mut Vec<Event>) {
        if self.done[i] {
            return;
        }
        self.done[i] = true;
        let whole = self.item(i, true);
        match &self.items[i] {
            Item::Reasoning { id, text } => {
                let (id, text) = (id.clone(), text.clone());
                self.emit(
                    out,
                    "response.reasoning_summary_text.done",
                    json!({"item_id": id, "output_index": i, "summary_index": 0, "text": text}),
                );
                self.emit(
                    out,
                    "response.reasoning_summary_part.done",
                    json!({"item_id": id, "output_index": i, "summary_index": 0,
                        "part": {"type": "summary_text", "text": text}}),
                );
            }
            Item::Message { id, text } => {
                let (id, text) = (id.clone(), text.clone());
                self.emit(out, "response.output_text.done",
                    json!({"item_id": id, "output_index": i, "content_index": 0, "text": text, "logprobs": []}));
                self.emit(out, "response.content_part.done",
                    json!({"item_id": id, "output_index": i, "content_index": 0, "part": output_text(&text)}));
            }
            Item::Call {
                id,
                name,
                arguments,
                ..
            } => {
                let data =
                    json!({"item_id": id, "output_index": i, "name": name, "arguments": arguments});
                self.emit(out, "response.function_call_arguments.done", data);
            }
        }
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": i, "item": whole}),
        );
    }

    fn reasoning(&mut self, t: &str, out: &mut Vec<Event>) {
        let i = match self.open {
            Some(i) if matches!(self.items[i], Item::Reasoning { .. }) => i,
            _ => {
                let id = format!("rs_{}_{}", self.id, self.items.len());
                let i = self.open_item(
                    Item::Reasoning {
                        id: id.clone(),
                        text: String::new(),
                    },
                    out,
                );
                self.open = Some(i);
                self.emit(
                    out,
                    "response.reasoning_summary_part.added",
                    json!({"item_id": id, "output_index": i, "summary_index": 0,
                        "part": {"type": "summary_text", "text": ""}}),
                );
                i
            }
        };
        let Item::Reasoning { id, text } = &mut self.items[i] else {
            return;
        };
        text.push_str(t);
        let id = id.clone();
        self.emit(
            out,
            "response.reasoning_summary_text.delta",
            json!({"item_id": id, "output_index": i, "summary_index": 0, "delta": t}),
        );
    }

    fn text(&mut self, t: &str, out: &mut Vec<Event>) {
        let i = match self.open {
            Some(i) if matches!(self.items[i], Item::Message { .. }) => i,
            _ => {
                let id = format!("msg_{}_{}", self.id, self.items.len());
                let i = self.open_item(
                    Item::Message {
                        id: id.clone(),
                        text: String::new(),
                    },
                    out,
                );
                self.open = Some(i);
                self.emit(out, "response.content_part.added",
                    json!({"item_id": id, "output_index": i, "content_index": 0, "part": output_text("")}));
                i
            }
        };
        let Item::Message { id, text } = &mut self.items[i] else {
            return;
        };
        text.push_str(t);
        let id = id.clone();
        self.emit(
            out,
            "response.output_text.delta",
            json!({"item_id": id, "output_index": i, "content_index": 0, "delta": t, "logprobs": []}),
        );
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<Event>) {
        let index = call["index"].as_u64().unwrap_or(0);
        let found = self
            .items
            .iter()
            .position(|it| matches!(it, Item::Call { index: x, .. } if *x == index));
        let i = match found {
            Some(i) => i,
            None => {
                let id = format!("fc_{}_{}", self.id, self.items.len());
                self.open_item(
                    Item::Call {
                        id,
                        call_id: call["id"].clone(),
                        name: call["function"]["name"].clone(),
                        arguments: String::new(),
                        index,
                    },
                    out,
                )
            }
        };
        let Some(delta) = call["function"]["arguments"]
            .as_str()
            .filter(|a| !a.is_empty())
        else {
            return;
        };
        let Item::Call { id, arguments, .. } = &mut self.items[i] else {
            return;
        };
        arguments.push_str(delta);
        let id = id.clone();
        self.emit(
            out,
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": i, "delta": delta}),
        );
    }

    fn fail(&mut self, err: &Value, out: &mut Vec<Event>) {
        self.ended = true;
        let message = err["message"]
            .as_str()
            .or(err.as_str())
            .unwrap_or("the upstream failed");
        let code = err["code"]
            .as_str()
            .or(err["type"].as_str())
            .unwrap_or("server_error");
        if !self.started {
            self.start(&Value::Null, out);
        }
        let mut r = self.snapshot(("failed", Value::Null), self.usage.clone());
        r["error"] = json!({"code": code, "message": message});
        self.emit(out, "response.failed", json!({"response": r}));
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
            return self.fail(err, out);
        }
        self.start(&v, out);
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.usage = usage(u);
        }
        let Some(c) = v["choices"].get(0) else {
            return;
        };
        let d = &c["delta"];
        if let Some(t) = d["reasoning_content"]
            .as_str()
            .or(d["reasoning"].as_str())
            .filter(|t| !t.is_empty())
        {
            self.reasoning(t, out);
        }
        if let Some(t) = d["content"].as_str().filter(|t| !t.is_empty()) {
            self.text(t, out);
        }
        for call in d["tool_calls"].as_array().into_iter().flatten() {
            self.tool_call(call, out);
        }
        if let Some(f) = c["finish_reason"].as_str() {
            self.finish = Some(f.to_string());
        }
    }

    fn end(&mut self, out: &mut Vec<Event>) {
        if self.ended || self.finish.is_none() || !self.started {
            return;
        }
        self.ended = true;
        self.open = None;
        for i in 0..self.items.len() {
            self.close(i, out);
        }
        let st = status(self.finish.as_deref());
        let name = if st.0 == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        let r = self.snapshot(st, self.usage.clone());
        self.emit(out, name, json!({"response": r}));
    }

    fn ended(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests;
