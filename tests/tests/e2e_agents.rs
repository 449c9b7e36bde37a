#![allow(clippy::expect_used, clippy::unwrap_used)]
//! Coding agents' request sequences through the gateway, turn after turn, streamed, with tools:
//! Claude Code's (Anthropic Messages: `?beta=true`, `anthropic-beta`, 24 tools, cache points,
//! extended thinking, effort, context management) and Codex's (the Responses API: stateless,
//! instructions, reasoning, function tools, every output item sent back). Each runs against an
//! Anthropic-format target, an OpenAI-chat-only server and Gemini, and must get through every turn
//! without a refused or malformed request: the test checks what each upstream received (byte for
//! byte where the target speaks the client's API natively) as well as what the client got.

use bytes::Bytes;
use serde_json::{json, Value};
use to11_tests::client::{gateway, GatewayResponse};
use to11_tests::mock::MockUpstream;
use to11_tests::native_mock::{Natives, NativesProject, MOCK_SIGNATURE};
use to11_tests::sandbox::{EmbeddedInfo, Spawned};

struct World {
    gw: Spawned<EmbeddedInfo>,
    key: String,
    natives: Natives,
    compat: MockUpstream,
}

async fn world() -> World {
    let key = "sk-agents-valid-1234";
    let natives = Natives::start(key);
    let compat = MockUpstream::start("sk-compat", &["m1"]);
    let compat_body = json!({"kind": "openai-compatible", "slug": "compat", "base_url": compat.base_url(),
        "credential": {"api_key": "sk-compat"}});
    let connections = natives
        .connections(key, &["claude-m1@20250514"])
        .into_iter()
        .chain([compat_body]);
    let NativesProject { gw, key, .. } = natives.project("agents", connections).await;
    World {
        gw,
        key,
        natives,
        compat,
    }
}

/// The SSE events of a body: (event name, data).
fn events(body: &[u8]) -> Vec<(String, Value)> {
    let text = String::from_utf8_lossy(body);
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut name = String::new();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        let v = serde_json::from_str(&data)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {data}\nin: {text}"));
        out.push((name, v));
    }
    out
}

/// Claude Code's tool set: 24 tools, the last one with a cache point.
fn claude_code_tools() -> Vec<Value> {
    let mut tools: Vec<Value> = ["Bash", "Read", "Edit", "Write", "Glob", "Grep", "LS", "Task"]
        .iter()
        .chain(&["TodoWrite", "WebFetch", "NotebookEdit", "MultiEdit", "ExitPlanMode", "BashOutput"])
        .chain(&["KillShell", "SlashCommand", "Skill", "AskUser", "ListMcpResources", "ReadMcpResource"])
        .chain(&["mcp__ide__getDiagnostics", "mcp__ide__executeCode", "Agent", "Lookup"])
        .map(|n| json!({"name": n, "description": format!("The {n} tool."),
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"],
                "additionalProperties": false, "$schema": "http://json-schema.org/draft-07/schema#"}}))
        .collect();
    assert_eq!(tools.len(), 24);
    tools[23]["cache_control"] = json!({"type": "ephemeral"});
    tools
}

/// Claude Code's request for the conversation so far.
fn claude_code_request(model: &str, messages: &[Value]) -> Value {
    json!({"model": model, "max_tokens": 32000, "stream": true,
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
            {"type": "text", "text": "Work in /repo. Be concise.", "cache_control": {"type": "ephemeral"}}],
        "messages": messages, "tools": claude_code_tools(),
        "metadata": {"user_id": "user_abc_account_def_session_1"},
        "thinking": {"type": "enabled", "budget_tokens": 10000},
        "output_config": {"effort": "medium"},
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "temperature": 1})
}

const BETAS: &str = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,prompt-caching-scope-2026-01-05";

async fn send(w: &World, path: &str, body: &Value, extra: &[(&str, &str)]) -> GatewayResponse {
    let auth = format!("Bearer {}", w.key);
    let mut headers = vec![("x-to11-authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    gateway(
        w.gw.info.gateway,
        awc::http::Method::POST,
        path,
        &headers,
        Some(Bytes::from(body.to_string())),
    )
    .await
}

/// The assistant message a Messages stream carried, as the client would send it back.
fn assistant_from_messages_stream(ev: &[(String, Value)]) -> (Value, String) {
    let mut blocks: Vec<Value> = Vec::new();
    let mut partial: Vec<String> = Vec::new();
    let mut stop = String::new();
    for (name, v) in ev {
        match name.as_str() {
            "content_block_start" => {
                blocks.push(v["content_block"].clone());
                partial.push(String::new());
            }
            "content_block_delta" => {
                let i = v["index"].as_u64().expect("index") as usize;
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => {
                        let t = blocks[i]["text"].as_str().unwrap_or("").to_string();
                        blocks[i]["text"] = (t + d["text"].as_str().unwrap_or("")).into();
                    }
                    Some("input_json_delta") => {
                        partial[i].push_str(d["partial_json"].as_str().unwrap_or(""))
                    }
                    _ => {}
                }
            }
            "message_delta" => stop = v["delta"]["stop_reason"].as_str().unwrap_or("").into(),
            _ => {}
        }
    }
    for (b, p) in blocks.iter_mut().zip(&partial) {
        if b["type"] == "tool_use" && !p.is_empty() {
            b["input"] = serde_json::from_str(p).expect("tool input is JSON");
        }
    }
    (json!({"role": "assistant", "content": blocks}), stop)
}

/// The chat messages an upstream received are well formed: every tool result answers a call of
/// an earlier assistant turn, and nothing of Anthropic's own reached it.
fn check_chat_body(v: &Value) {
    let mut calls = Vec::new();
    for m in v["messages"].as_array().expect("messages") {
        for c in m["tool_calls"].as_array().into_iter().flatten() {
            calls.push(c["id"].as_str().expect("call id").to_string());
        }
        if m["role"] == "tool" {
            let id = m["tool_call_id"].as_str().expect("tool_call_id");
            assert!(
                calls.iter().any(|c| c == id),
                "an orphan tool result {id}: {v}"
            );
        }
    }
    for k in [
        "thinking",
        "output_config",
        "context_management",
        "cache_control",
        "system",
        "metadata",
        "input",
        "instructions",
        "reasoning",
    ] {
        assert!(v.get(k).is_none(), "'{k}' reached a chat server: {v}");
    }
    assert!(!v.to_string().contains("cache_control"), "{v}");
}

/// Gemini's contents alternate roles and every function response follows its call.
fn check_gemini_body(v: &Value) {
    let contents = v["contents"].as_array().expect("contents");
    let mut called = Vec::new();
    let mut last_role = "";
    for c in contents {
        let role = c["role"].as_str().expect("role");
        assert_ne!(role, last_role, "roles must alternate: {v}");
        last_role = role;
        for p in c["parts"].as_array().expect("parts") {
            if let Some(f) = p.get("functionCall") {
                // Gemini's thought signature came back with its call, whatever API the
                // agent speaks (the mock refuses the turn otherwise).
                assert_eq!(p["thoughtSignature"], MOCK_SIGNATURE, "{v}");
                called.push(f["name"].as_str().expect("name").to_string());
            }
            if let Some(r) = p.get("functionResponse") {
                let n = r["name"].as_str().expect("name");
                assert!(
                    called.iter().any(|c| c == n),
                    "an orphan function response {n}: {v}"
                );
            }
        }
    }
    assert!(v.get("tools").is_some(), "{v}");
}

/// Claude Code, three turns, each a stream with tools: the model calls a tool, the result goes
/// back, and so on.
#[actix_rt::test]
async fn claude_code_sessions_run_against_every_target_format() {
    let w = world().await;
    let models = [
        "anthropic/m1",
        "vertex/claude-m1@20250514",
        "bedrock/eu.anthropic.claude-m1-v1:0",
        "compat/m1",
        "gemini/m1",
    ];
    for model in models {
        let mut messages = vec![json!({"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>context</system-reminder>"},
            {"type": "text", "text": "Find the bug.", "cache_control": {"type": "ephemeral"}}]})];
        for turn in 0..3 {
            let body = claude_code_request(model, &messages);
            let r = send(
                &w,
                "/v1/messages?beta=true",
                &body,
                &[
                    ("anthropic-version", "2023-06-01"),
                    ("anthropic-beta", BETAS),
                ],
            )
            .await;
            assert_eq!(
                r.status,
                200,
                "{model} turn {turn}: {}",
                String::from_utf8_lossy(&r.body)
            );
            let ev = events(&r.body);
            assert_eq!(
                ev.first().map(|e| e.0.as_str()),
                Some("message_start"),
                "{model}"
            );
            assert_eq!(
                ev.last().map(|e| e.0.as_str()),
                Some("message_stop"),
                "{model}"
            );
            let (assistant, stop) = assistant_from_messages_stream(&ev);
            let used: Vec<&Value> = assistant["content"]
                .as_array()
                .expect("content")
                .iter()
                .filter(|b| b["type"] == "tool_use")
                .collect();
            match model {
                "anthropic/m1" => {
                    // Native: what Claude received is what Claude Code sent, the model
                    // name aside, byte for byte; the betas and version went with it.
                    let got = w.natives.anthropic.last("/v1/messages").expect("sent");
                    let sent = body.to_string().replace("\"anthropic/m1\"", "\"m1\"");
                    assert_eq!(String::from_utf8_lossy(&got.body), sent, "turn {turn}");
                    assert_eq!(
                        got.headers.get("anthropic-beta").map(String::as_str),
                        Some(BETAS)
                    );
                    assert!(got.path.ends_with("?beta=true"), "{}", got.path);
                    assert!(r.headers.get("x-to11-dropped").is_none());
                }
                "vertex/claude-m1@20250514" | "bedrock/eu.anthropic.claude-m1-v1:0" => {
                    // Claude on Vertex and Bedrock: the same body as sent, but for what the
                    // platform asks (no model, its anthropic_version; Bedrock: no stream).
                    let (got, version) = if model.starts_with("vertex") {
                        (
                            w.natives.vertex.last("/v1/projects/").expect("sent"),
                            "vertex-2023-10-16",
                        )
                    } else {
                        (
                            w.natives.bedrock.last("/model/").expect("sent"),
                            "bedrock-2023-05-31",
                        )
                    };
                    let mut want = body.clone();
                    let o = want.as_object_mut().expect("object");
                    o.remove("model");
                    o.insert("anthropic_version".into(), version.into());
                    if version.starts_with("bedrock") {
                        o.remove("stream");
                    }
                    let got: Value = serde_json::from_slice(&got.body).expect("json");
                    assert_eq!(got, want, "{model} turn {turn}");
                }
                "compat/m1" => {
                    check_chat_body(
                        &w.compat
                            .last_request("/v1/chat/completions")
                            .expect("sent")
                            .json(),
                    );
                    assert_eq!(
                        r.headers.get("x-to11-dropped").map(|h| h.to_str().unwrap()),
                        Some("thinking, output_config.effort, context_management, cache_control")
                    );
                }
                _ => {
                    let got = w
                        .natives
                        .gemini
                        .last("/v1beta/models/m1:streamGenerateContent")
                        .expect("sent");
                    check_gemini_body(&serde_json::from_slice(&got.body).expect("json"));
                }
            }
            // Tool results go back (the chat-only mock answers text after one).
            if used.is_empty() {
                assert_eq!(stop, "end_turn", "{model} turn {turn}");
                break;
            }
            assert_eq!(stop, "tool_use", "{model} turn {turn}");
            let results: Vec<Value> = used
                .iter()
                .map(|u| json!({"type": "tool_result", "tool_use_id": u["id"], "content": "src/lib.rs:3: off by one",
                    "cache_control": {"type": "ephemeral"}}))
                .collect();
            // Claude's signed thinking comes first in its turn, and must go back with the turn's
            // tool calls unchanged (the mocks do not think, so the test writes one in).
            let mut assistant = assistant;
            if let Some(blocks) = assistant["content"].as_array_mut() {
                blocks.insert(
                    0,
                    json!({"type": "thinking", "thinking": "The test fails at line 3.",
                    "signature": format!("EqQBCkgIBxABGAIiQ{turn}sig+/=")}),
                );
            }
            messages.push(assistant);
            messages.push(json!({"role": "user", "content": results}));
        }
        assert!(messages.len() >= 3, "{model}: at least one tool round trip");
    }
}

/// Codex's request for the input so far.
fn codex_request(model: &str, input: &[Value]) -> Value {
    json!({"model": model, "instructions": "You are Codex, a coding agent. Work in /repo.",
        "input": input, "stream": true, "store": false, "parallel_tool_calls": false, "tool_choice": "auto",
        "reasoning": {"effort": "medium", "summary": "auto"}, "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "session-1", "text": {"verbosity": "medium"},
        "tools": [
            {"type": "function", "name": "shell", "description": "Runs a command.", "strict": false,
                "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}, "required": ["command"]}},
            {"type": "function", "name": "update_plan", "description": "Updates the plan.", "strict": false,
                "parameters": {"type": "object", "properties": {"plan": {"type": "string"}}}}]})
}

/// Codex, three turns over the Responses API: every output item goes back in the next input
/// with the tool's output (stateless), as Codex does with `store: false`.
#[actix_rt::test]
async fn codex_sessions_run_against_every_target_format() {
    let w = world().await;
    for model in ["anthropic/m1", "compat/m1", "gemini/m1"] {
        let mut input = vec![json!({"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Find the bug."}]})];
        for turn in 0..3 {
            let body = codex_request(model, &input);
            let r = send(&w, "/v1/responses", &body, &[]).await;
            assert_eq!(
                r.status,
                200,
                "{model} turn {turn}: {}",
                String::from_utf8_lossy(&r.body)
            );
            let ev = events(&r.body);
            let names: Vec<&str> = ev.iter().map(|e| e.0.as_str()).collect();
            assert_eq!(names.first(), Some(&"response.created"), "{model}");
            assert_eq!(
                names.last(),
                Some(&"response.completed"),
                "{model}: {names:?}"
            );
            for (i, (name, v)) in ev.iter().enumerate() {
                assert_eq!(v["type"], name.as_str());
                assert_eq!(v["sequence_number"], i as u64);
            }
            assert_eq!(
                r.headers.get("x-to11-dropped").map(|h| h.to_str().unwrap()),
                Some(match model {
                    "gemini/m1" => "reasoning.summary",
                    _ if model.starts_with("anthropic") => "reasoning.summary, reasoning_effort",
                    _ => "reasoning.summary",
                }),
                "{model}"
            );
            let done = &ev.last().expect("events").1["response"];
            match model {
                "compat/m1" => {
                    let sent = w
                        .compat
                        .last_request("/v1/chat/completions")
                        .expect("sent")
                        .json();
                    check_chat_body(&sent);
                    assert_eq!(
                        sent["reasoning_effort"], "medium",
                        "an OpenAI-format server gets the effort"
                    );
                }
                "gemini/m1" => {
                    let got = w
                        .natives
                        .gemini
                        .last("/v1beta/models/m1:streamGenerateContent")
                        .expect("sent");
                    let v: Value = serde_json::from_slice(&got.body).expect("json");
                    check_gemini_body(&v);
                    assert_eq!(
                        v["generationConfig"]["thinkingConfig"]["thinkingBudget"],
                        8192
                    );
                }
                _ => {
                    let got = w.natives.anthropic.last("/v1/messages").expect("sent");
                    let v: Value = serde_json::from_slice(&got.body).expect("json");
                    assert_eq!(
                        v["system"][0]["text"],
                        "You are Codex, a coding agent. Work in /repo."
                    );
                    assert_eq!(v["tool_choice"]["disable_parallel_tool_use"], true);
                }
            }
            let output = done["output"].as_array().expect("output").clone();
            let calls: Vec<&Value> = output
                .iter()
                .filter(|o| o["type"] == "function_call")
                .collect();
            if calls.is_empty() {
                assert!(done["output"].to_string().contains("output_text"), "{done}");
                break;
            }
            let outputs: Vec<Value> = calls
                .iter()
                .map(|c| json!({"type": "function_call_output", "call_id": c["call_id"], "output": "exit 0"}))
                .collect();
            input.extend(output.iter().cloned());
            input.extend(outputs);
        }
        assert!(input.len() >= 3, "{model}: at least one tool round trip");
    }
}
