use super::*;
use crate::translate::pair::{Translation, CHAT_TO_MESSAGES, RESPONSES_TO_CHAT};
use crate::translate::{testing, Framing, Step};

fn to_chat(body: Value) -> Result<(Value, Asked), TranslateError> {
    testing::request(&RESPONSES_TO_CHAT, body.to_string().as_bytes(), "gpt-x")
        .map(|(b, a)| (serde_json::from_slice(&b).expect("json"), a))
}

fn refusal(body: Value) -> String {
    match to_chat(body) {
        Err(TranslateError::Unsupported(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_string_input_with_instructions_maps_to_chat() {
    let (out, asked) = to_chat(
        json!({"model": "m", "instructions": "Be brief.", "input": "Hi",
        "max_output_tokens": 50, "temperature": 0.2, "stream": true, "store": false,
        "metadata": {"a": "b"}, "include": ["reasoning.encrypted_content"]}),
    )
    .expect("ok");
    assert_eq!(
        out,
        json!({"model": "gpt-x", "max_tokens": 50, "temperature": 0.2, "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]})
    );
    assert!(asked.dropped.is_empty());
}

#[test]
fn input_items_of_a_tool_loop_map_to_chat_turns() {
    let (out, _) = to_chat(json!({"model": "m", "input": [
        {"role": "developer", "content": "Use tools."},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "Weather in"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "xyz"},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
            "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Oslo\"}"},
        {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "weather", "arguments": "{\"city\":\"Rome\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "4C"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "19C"}]}],
        "tools": [{"type": "function", "name": "weather", "description": "d",
            "parameters": {"type": "object"}, "strict": true}],
        "tool_choice": {"type": "function", "name": "weather"}, "parallel_tool_calls": false,
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}},
        "reasoning": {"effort": "low"}}))
    .expect("ok");
    let m = out["messages"].as_array().expect("messages");
    assert_eq!(m[0], json!({"role": "system", "content": "Use tools."}));
    assert_eq!(
        m[1]["content"],
        json!([{"type": "text", "text": "Weather in"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}])
    );
    assert_eq!(m[2]["content"], "Checking.");
    assert_eq!(
        m[2]["tool_calls"],
        json!([{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}])
    );
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "4C"})
    );
    assert_eq!(
        m[4],
        json!({"role": "tool", "tool_call_id": "call_2", "content": "19C"})
    );
    assert_eq!(m.len(), 5);
    assert_eq!(
        out["tools"],
        json!([{"type": "function", "function": {"name": "weather", "description": "d",
            "parameters": {"type": "object"}, "strict": true}}])
    );
    assert_eq!(
        out["tool_choice"],
        json!({"type": "function", "function": {"name": "weather"}})
    );
    assert_eq!(out["parallel_tool_calls"], false);
    assert_eq!(
        out["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": true}})
    );
    assert_eq!(out["reasoning_effort"], "low");
}

#[test]
fn hints_without_an_equivalent_are_dropped_and_named() {
    let (out, asked) = to_chat(json!({"model": "m", "input": "x",
        "reasoning": {"effort": "high", "summary": "auto"}, "truncation": "auto", "max_tool_calls": 3}))
    .expect("ok");
    assert_eq!(out["reasoning_effort"], "high");
    assert_eq!(
        asked.dropped.names(),
        "reasoning.summary, truncation, max_tool_calls"
    );
}

#[test]
fn stored_state_and_hosted_tools_are_refused_by_name() {
    let cases = [
        (
            json!({"previous_response_id": "resp_1"}),
            "'previous_response_id'",
        ),
        (json!({"conversation": "conv_1"}), "'conversation'"),
        (
            json!({"input": [{"type": "item_reference", "id": "msg_1"}]}),
            "item references",
        ),
        (
            json!({"tools": [{"type": "web_search"}]}),
            "the hosted tool 'web_search'",
        ),
        (
            json!({"tools": [{"type": "file_search", "vector_store_ids": ["v"]}]}),
            "the hosted tool 'file_search'",
        ),
        (
            json!({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}),
            "the hosted tool 'code_interpreter'",
        ),
        (
            json!({"tool_choice": {"type": "web_search_preview"}}),
            "tool_choice of type",
        ),
        (json!({"background": true}), "background responses"),
        (
            json!({"input": [{"type": "computer_call", "id": "c"}]}),
            "'computer_call'",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
            "file inputs",
        ),
        (json!({"modalities": ["audio"]}), "'modalities'"),
    ];
    for (extra, named) in cases {
        let mut body = json!({"model": "m", "input": "x"});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let m = refusal(body);
        assert!(m.contains(named), "{named}: {m}");
    }
    assert!(
        refusal(json!({"model": "m", "previous_response_id": "r", "input": "x"}))
            .contains("send the whole conversation in 'input'")
    );
}

#[test]
fn malformed_input_is_invalid() {
    for body in [
        json!({"model": "m"}),
        json!({"model": "m", "input": 5}),
        json!({"model": "m", "input": [{"content": "no role or type"}]}),
        json!({"model": "m", "input": [{"role": "tool", "content": "x"}]}),
        json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}),
        json!({"model": "m", "input": "x", "instructions": 3}),
    ] {
        assert!(
            matches!(to_chat(body.clone()), Err(TranslateError::Invalid(_))),
            "{body}"
        );
    }
}

fn answer(body: Value) -> Value {
    let out = testing::answer(
        &RESPONSES_TO_CHAT,
        body.to_string().as_bytes(),
        "gpt-x",
        7,
        Asked::default(),
    )
    .expect("ok");
    serde_json::from_slice(&out).expect("json")
}

#[test]
fn a_completion_becomes_a_response() {
    let r = answer(
        json!({"id": "chatcmpl-abc", "object": "chat.completion", "created": 9, "model": "gpt-x-1",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
            "reasoning_content": "Think.", "content": "Calling.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 2}}}),
    );
    assert_eq!(
        (
            &r["id"],
            &r["object"],
            &r["status"],
            &r["model"],
            &r["created_at"]
        ),
        (
            &json!("resp_abc"),
            &json!("response"),
            &json!("completed"),
            &json!("gpt-x-1"),
            &json!(9)
        )
    );
    assert_eq!(
        r["output"],
        json!([
            {"id": "rs_resp_abc", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Think."}]},
            {"id": "msg_resp_abc", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "Calling.", "annotations": [], "logprobs": []}]},
            {"id": "fc_resp_abc_0", "type": "function_call", "status": "completed", "call_id": "call_1",
                "name": "f", "arguments": "{\"a\":1}"}])
    );
    assert_eq!(
        r["usage"],
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 15})
    );
    let cut = answer(
        json!({"id": "x", "choices": [{"finish_reason": "length", "message": {"content": "Hal"}}]}),
    );
    assert_eq!(
        (&cut["status"], &cut["incomplete_details"], &cut["model"]),
        (
            &json!("incomplete"),
            &json!({"reason": "max_output_tokens"}),
            &json!("gpt-x")
        )
    );
}

#[test]
fn errors_keep_openais_shape() {
    let e: Value = serde_json::from_slice(&testing::error(
        &RESPONSES_TO_CHAT,
        429,
        br#"{"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded"}}"#,
    ))
    .expect("json");
    assert_eq!(e["error"]["code"], "rate_limit_exceeded");
    let e: Value = serde_json::from_slice(&testing::error(&RESPONSES_TO_CHAT, 503, b"<html>down"))
        .expect("json");
    assert_eq!(
        (e["error"]["type"].as_str(), e["error"]["message"].as_str()),
        (Some("api_error"), Some("<html>down"))
    );
}

const CHUNKS: &str = concat!(
    "data: {\"id\":\"chatcmpl-s1\",\"created\":5,\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"reasoning_content\":\"Hm\"}}]}\n\n",
    "data: {\"id\":\"chatcmpl-s1\",\"created\":5,\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Héllo\"}}]}\n\n",
    "data: {\"id\":\"chatcmpl-s1\",\"created\":5,\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there\"}}]}\n\n",
    "data: {\"id\":\"chatcmpl-s1\",\"created\":5,\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_9\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n",
    "data: {\"id\":\"chatcmpl-s1\",\"created\":5,\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n\n",
    "data: {\"id\":\"chatcmpl-s1\",\"created\":5,\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]}}]}\n\n",
    "data: {\"id\":\"chatcmpl-s1\",\"created\":5,\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"id\":\"chatcmpl-s1\",\"created\":5,\"model\":\"gpt-x\",\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":6,\"total_tokens\":14}}\n\n",
    "data: [DONE]\n\n",
);

/// The client's events: (name, data).
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut lines = e.lines();
            let name = lines
                .next()
                .and_then(|l| l.strip_prefix("event: "))
                .expect("named");
            let data = lines
                .next()
                .and_then(|l| l.strip_prefix("data: "))
                .expect("data");
            (name.to_string(), serde_json::from_str(data).expect("json"))
        })
        .collect()
}

fn stream_of(parts: &[&[u8]]) -> (String, bool) {
    testing::stream(
        &RESPONSES_TO_CHAT,
        Framing::Sse,
        Asked::default(),
        "gpt-x",
        parts,
    )
}

#[test]
fn a_chunk_stream_becomes_the_responses_event_sequence() {
    let (text, ended) = stream_of(&[CHUNKS.as_bytes()]);
    assert!(ended);
    let ev = events(&text);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (name, data)) in ev.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i as u64);
    }
    assert_eq!(ev[0].1["response"]["status"], "in_progress");
    assert_eq!(ev[0].1["response"]["id"], "resp_s1");
    assert_eq!(ev[12].1["text"], "Héllo there");
    assert_eq!(ev[18].1["arguments"], "{\"a\":1}");
    assert_eq!(ev[15].1["item"]["call_id"], "call_9");
    let done = &ev[20].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["usage"]["input_tokens"], 8);
    assert_eq!(done["usage"]["total_tokens"], 14);
    assert_eq!(
        done["output"]
            .as_array()
            .expect("output")
            .iter()
            .map(|o| o["type"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["reasoning", "message", "function_call"]
    );
    assert_eq!(done["output"][1]["content"][0]["text"], "Héllo there");
    assert_eq!(done["output"][2]["arguments"], "{\"a\":1}");
}

#[test]
fn the_stream_is_the_same_split_anywhere() {
    let whole = stream_of(&[CHUNKS.as_bytes()]);
    let b = CHUNKS.as_bytes();
    for at in 0..=b.len() {
        assert_eq!(stream_of(&[&b[..at], &b[at..]]), whole, "split at {at}");
    }
}

#[test]
fn stream_errors_and_cut_streams() {
    let failed = concat!(
        "data: {\"id\":\"chatcmpl-e\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n"
    );
    let (text, ended) = stream_of(&[failed.as_bytes()]);
    assert!(ended);
    let ev = events(&text);
    let (name, data) = ev.last().expect("events");
    assert_eq!(name, "response.failed");
    assert_eq!(data["response"]["status"], "failed");
    assert_eq!(
        data["response"]["error"],
        json!({"code": "server_error", "message": "overloaded"})
    );
    // Without a finish the answer was cut: no completion is invented.
    let cut = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
    let (text, ended) = stream_of(&[cut.as_bytes()]);
    assert!(!ended);
    assert!(!text.contains("response.completed"), "{text}");
    let length = concat!(
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"length\"}]}\n\n",
        "data: [DONE]\n\n"
    );
    let (text, ended) = stream_of(&[length.as_bytes()]);
    assert!(ended);
    let ev = events(&text);
    let (name, data) = ev.last().expect("events");
    assert_eq!(name, "response.incomplete");
    assert_eq!(
        data["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
}

#[test]
fn a_chain_reaches_claude_and_back() {
    static STEPS: &[&Step] = &[&RESPONSES_TO_CHAT, &CHAT_TO_MESSAGES];
    let t = Translation::new(STEPS, Framing::Sse);
    let (body, asked) = t
        .request_bytes(
            json!({"model": "m", "instructions": "Be brief.", "input": "hi", "max_output_tokens": 20,
                "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]})
            .to_string()
            .as_bytes(),
            &Target {
                model: "claude-x",
                max_tokens_field: "max_tokens",
                ask_usage: true,
                cache_points: false,
            },
        )
        .expect("ok");
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["system"][0]["text"], "Be brief.");
    assert_eq!(v["max_tokens"], 20);
    assert_eq!(v["tools"][0]["name"], "f");
    let a = Answer {
        model: "claude-x",
        created: 3,
        asked,
    };
    let out: Value = serde_json::from_slice(
        &t.answer(
            json!({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
                "content": [{"type": "text", "text": "Hello"}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": 2}})
            .to_string()
            .as_bytes(),
            &a,
        )
        .expect("ok"),
    )
    .expect("json");
    assert_eq!(out["object"], "response");
    assert_eq!(out["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(out["usage"]["input_tokens"], 5);
    assert_eq!(out["usage"]["input_tokens_details"]["cached_tokens"], 2);
}
