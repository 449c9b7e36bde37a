use super::*;
use crate::translate::pair::CHAT_TO_MESSAGES;
use crate::translate::{testing, Framing};

fn req(v: Value) -> Result<Value, TranslateError> {
    testing::request(&CHAT_TO_MESSAGES, v.to_string().as_bytes(), "claude-x")
        .map(|(b, _)| serde_json::from_slice(&b).expect("json"))
}

fn request(body: &[u8], model: &str) -> Result<(Vec<u8>, Asked), TranslateError> {
    testing::request(&CHAT_TO_MESSAGES, body, model)
}

fn response(
    body: &[u8],
    created: i64,
    asked: Asked,
) -> Result<Vec<u8>, crate::translate::AnswerError> {
    testing::answer(&CHAT_TO_MESSAGES, body, "", created, asked)
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
        (
            "response_format",
            json!({"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "array"}}}),
        ),
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
    let out: Value = serde_json::from_slice(
        &response(body.to_string().as_bytes(), 1, Asked::default()).expect("ok"),
    )
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
        let b = json!({"id": "m", "model": "x", "content": [], "stop_reason": stop, "usage": {}});
        let o: Value = serde_json::from_slice(
            &response(b.to_string().as_bytes(), 1, Asked::default()).expect("ok"),
        )
        .expect("json");
        assert_eq!(o["choices"][0]["finish_reason"], want, "{stop}");
    }
    let e: Value = serde_json::from_slice(&testing::error(
        &CHAT_TO_MESSAGES,
        529,
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
    let (out, ended) = testing::stream(&CHAT_TO_MESSAGES, Framing::Sse, asked, "", bytes);
    assert!(ended);
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
        ..Asked::default()
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
    let (out, ended) = testing::stream(
        &CHAT_TO_MESSAGES,
        Framing::Sse,
        Asked::default(),
        "",
        &[b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
            b"event: message_stop\ndata: {}\n\n"],
    );
    assert!(out.starts_with("data: {\"error\""), "{out}");
    assert!(!out.contains("[DONE]") && ended);
    assert_eq!(
        out.matches("data: ").count(),
        1,
        "nothing after the end: {out}"
    );
}

#[test]
fn json_mode_is_a_forced_tool_whose_input_is_the_answer() {
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let (body, asked) = request(
        json!({"messages": [{"role": "user", "content": "where?"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "place", "schema": schema}}})
        .to_string()
        .as_bytes(),
        "claude-x",
    )
    .expect("ok");
    let out: Value = serde_json::from_slice(&body).expect("json");
    assert!(asked.json_tool);
    assert_eq!(out["tools"][0]["name"], JSON_TOOL);
    assert_eq!(out["tools"][0]["input_schema"], schema);
    assert!(out["tools"][0]["description"]
        .as_str()
        .expect("d")
        .contains("'place'"));
    assert_eq!(
        out["tool_choice"],
        json!({"type": "tool", "name": JSON_TOOL})
    );
    let object = req(json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})).expect("ok");
    assert_eq!(
        object["tools"][0]["input_schema"],
        json!({"type": "object"})
    );
    let text = req(json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "text"}})).expect("ok");
    assert!(text.get("tools").is_none());
    let with_tools = json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "f"}}]});
    assert!(
        matches!(req(with_tools), Err(TranslateError::Unsupported(m)) if m.contains("together with tools"))
    );

    // The whole answer: the forced call is the content, and the turn simply stopped.
    let answer = json!({"id": "m", "model": "claude-x", "stop_reason": "tool_use", "usage": {"input_tokens": 3, "output_tokens": 5},
        "content": [{"type": "tool_use", "id": "t", "name": JSON_TOOL, "input": {"city": "Oslo"}}]});
    let o: Value =
        serde_json::from_slice(&response(answer.to_string().as_bytes(), 1, asked).expect("ok"))
            .expect("json");
    let m = &o["choices"][0]["message"];
    assert_eq!(
        serde_json::from_str::<Value>(m["content"].as_str().expect("text")).expect("json"),
        json!({"city": "Oslo"})
    );
    assert!(m.get("tool_calls").is_none());
    assert_eq!(o["choices"][0]["finish_reason"], "stop");
    // Without JSON mode the same answer is a tool call.
    let o: Value = serde_json::from_slice(
        &response(answer.to_string().as_bytes(), 1, Asked::default()).expect("ok"),
    )
    .expect("json");
    assert_eq!(o["choices"][0]["finish_reason"], "tool_calls");

    // The stream: the forced call's input deltas are content deltas, at any split.
    let stream = STREAM.replace("\"name\":\"get\"", &format!("\"name\":\"{JSON_TOOL}\""));
    assert_ne!(stream, STREAM);
    let asked = Asked {
        stream: true,
        json_tool: true,
        ..Asked::default()
    };
    let whole = translate(&[stream.as_bytes()], asked);
    let content: String = whole
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hi{\"q\":\"a\"}");
    assert!(whole
        .iter()
        .all(|c| c["choices"][0]["delta"].get("tool_calls").is_none()));
    assert_eq!(
        whole[whole.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    let bytes = stream.as_bytes();
    for i in 0..=bytes.len() {
        assert_eq!(
            translate(&[&bytes[..i], &bytes[i..]], asked),
            whole,
            "split at {i}"
        );
    }
}
