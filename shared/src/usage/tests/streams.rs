//! Streams shaped as the providers send them: SSE (OpenAI chat and Responses, Groq, Anthropic,
//! Gemini) and AWS event-stream frames (ConverseStream, InvokeModelWithResponseStream).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::fixtures::{at, data, named, sse, usage, Case};
use crate::eventstream::encode;
use crate::translate::stream::Framing;
use crate::usage::meter::Body;
use crate::usage::UsageFormat;

const CHAT_HEAD: &str = r#"{"id":"chatcmpl-C2","object":"chat.completion.chunk","created":1764460800,"model":"gpt-5.4-mini-2026-03-17","service_tier":"default","system_fingerprint":null,"#;

fn openai_chat_stream() -> Case {
    let chunk = |rest: &str| format!("{CHAT_HEAD}{rest}");
    let events = [
        chunk(
            r#""choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x1"}"#,
        ),
        chunk(
            r#""choices":[{"index":0,"delta":{"content":"Say \"usage\":{\"prompt_tokens\":1}"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x2"}"#,
        ),
        chunk(
            r#""choices":[{"index":0,"delta":{"content":" done"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x3"}"#,
        ),
        chunk(
            r#""choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null,"obfuscation":"x4"}"#,
        ),
        chunk(
            r#""choices":[],"usage":{"prompt_tokens":2150,"completion_tokens":310,"total_tokens":2460,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":192,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"obfuscation":"x5"}"#,
        ),
        "[DONE]".to_string(),
    ];
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let bytes = data(&refs);
    let cut = at(&bytes, r#""choices":[]"#);
    Case {
        name: "openai chat stream",
        format: UsageFormat::OpenAi,
        body: Body::Stream(Framing::Sse),
        want: Some(usage(230, 310, 1920, 0, 0, 192)),
        chunks: 4,
        cut: Some(cut),
        bytes,
    }
}

fn openai_responses_stream() -> Case {
    let bytes = named(&[
        (
            "response.created",
            r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_68a","object":"response","created_at":1764460800,"status":"in_progress","model":"gpt-6.1-terra-2026-10-01","output":[],"usage":null,"metadata":{}}}"#,
        ),
        (
            "response.in_progress",
            r#"{"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_68a","object":"response","status":"in_progress","output":[],"usage":null}}"#,
        ),
        (
            "response.output_item.added",
            r#"{"type":"response.output_item.added","sequence_number":2,"output_index":1,"item":{"id":"msg_68a","type":"message","status":"in_progress","content":[],"role":"assistant"}}"#,
        ),
        (
            "response.content_part.added",
            r#"{"type":"response.content_part.added","sequence_number":3,"item_id":"msg_68a","output_index":1,"content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":""}}"#,
        ),
        (
            "response.output_text.delta",
            r#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_68a","output_index":1,"content_index":0,"delta":"The key \"usage\":","logprobs":[],"obfuscation":"a"}"#,
        ),
        (
            "response.output_text.delta",
            r#"{"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_68a","output_index":1,"content_index":0,"delta":" is fine.","logprobs":[],"obfuscation":"b"}"#,
        ),
        (
            "response.output_text.done",
            r#"{"type":"response.output_text.done","sequence_number":6,"item_id":"msg_68a","output_index":1,"content_index":0,"text":"The key \"usage\": is fine.","logprobs":[]}"#,
        ),
        (
            "response.completed",
            r#"{"type":"response.completed","sequence_number":7,"response":{"id":"resp_68a","object":"response","status":"completed","output":[{"id":"msg_68a","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"text":"The key \"usage\": is fine."}],"role":"assistant"}],"usage":{"input_tokens":6000,"input_tokens_details":{"cached_tokens":1000,"cache_write_tokens":4000},"output_tokens":900,"output_tokens_details":{"reasoning_tokens":640},"total_tokens":6900},"metadata":{}}}"#,
        ),
    ]);
    let cut = at(&bytes, "event: response.completed");
    Case {
        name: "openai responses stream",
        format: UsageFormat::OpenAi,
        body: Body::Stream(Framing::Sse),
        want: Some(usage(1000, 900, 1000, 4000, 0, 640)),
        chunks: 2,
        cut: Some(cut),
        bytes,
    }
}

fn groq_stream() -> Case {
    let bytes = data(&[
        r#"{"id":"chatcmpl-g","object":"chat.completion.chunk","created":1764460800,"model":"openai/gpt-oss-120b","system_fingerprint":"fp_g","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"x_groq":{"id":"req_01"}}"#,
        r#"{"id":"chatcmpl-g","object":"chat.completion.chunk","created":1764460800,"model":"openai/gpt-oss-120b","system_fingerprint":"fp_g","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-g","object":"chat.completion.chunk","created":1764460800,"model":"openai/gpt-oss-120b","system_fingerprint":"fp_g","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"x_groq":{"id":"req_01","usage":{"queue_time":0.021,"prompt_tokens":40,"prompt_time":0.003,"completion_tokens":12,"completion_time":0.01,"total_tokens":52,"total_time":0.013,"prompt_tokens_details":{"cached_tokens":32}}}}"#,
        "[DONE]",
    ]);
    let cut = at(&bytes, r#""finish_reason":"stop""#);
    Case {
        name: "groq stream",
        format: UsageFormat::OpenAi,
        body: Body::Stream(Framing::Sse),
        want: Some(usage(8, 12, 32, 0, 0, 0)),
        chunks: 3,
        cut: Some(cut),
        bytes,
    }
}

/// Anthropic's events of one answer; `delta_usage` is the `message_delta`'s usage.
pub fn anthropic_events(delta_usage: &str) -> Vec<(&'static str, String)> {
    vec![
        ("message_start", r#"{"type":"message_start","message":{"id":"msg_01XF","type":"message","role":"assistant","model":"claude-opus-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":3000,"cache_read_input_tokens":20000,"cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":2000},"output_tokens":1,"service_tier":"standard"}}}"#.to_string()),
        ("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#.to_string()),
        ("ping", r#"{"type": "ping"}"#.to_string()),
        ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"They said \"usage\":{\"output_tokens\":7}"}}"#.to_string()),
        ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}"#.to_string()),
        ("content_block_stop", r#"{"type":"content_block_stop","index":0}"#.to_string()),
        ("content_block_start", r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01","name":"record","input":{}}}"#.to_string()),
        ("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"usage\": {\"input_tokens\": 99"}}"#.to_string()),
        ("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"9999}}"}}"#.to_string()),
        ("content_block_stop", r#"{"type":"content_block_stop","index":1}"#.to_string()),
        ("message_delta", format!(r#"{{"type":"message_delta","delta":{{"stop_reason":"tool_use","stop_sequence":null}},"usage":{delta_usage}}}"#)),
        ("message_stop", r#"{"type":"message_stop"}"#.to_string()),
    ]
}

fn anthropic_stream(name: &'static str, delta_usage: &str) -> Case {
    let events = anthropic_events(delta_usage);
    let refs: Vec<(&str, &str)> = events.iter().map(|(n, d)| (*n, d.as_str())).collect();
    Case {
        name,
        format: UsageFormat::Anthropic,
        body: Body::Stream(Framing::Sse),
        bytes: named(&refs),
        want: Some(usage(12, 503, 20000, 1000, 2000, 0)),
        chunks: 4,
        cut: None,
    }
}

fn gemini_stream() -> Case {
    let bytes = sse(
        &[
            (
                None,
                r#"{"candidates": [{"content": {"parts": [{"text": "A key named \"usageMetadata\": {}"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 5000,"totalTokenCount": 5400,"cachedContentTokenCount": 4000,"thoughtsTokenCount": 400},"modelVersion": "gemini-2.5-pro","responseId": "mJXY"}"#,
            ),
            (
                None,
                r#"{"candidates": [{"content": {"parts": [{"text": " in text."}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 5000,"candidatesTokenCount": 120,"totalTokenCount": 5600,"cachedContentTokenCount": 4000,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 5000}],"toolUsePromptTokenCount": 80,"thoughtsTokenCount": 400},"modelVersion": "gemini-2.5-pro","responseId": "mJXY"}"#,
            ),
        ],
        "\r\n\r\n",
    );
    Case {
        name: "gemini stream",
        format: UsageFormat::Gemini,
        body: Body::Stream(Framing::Sse),
        bytes,
        want: Some(usage(1080, 520, 4000, 0, 0, 400)),
        chunks: 2,
        cut: None,
    }
}

fn frame(kind: &str, payload: &str) -> Vec<u8> {
    encode(
        &[
            (":event-type", kind),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.as_bytes(),
    )
}

/// The ConverseStream frames of one answer: (event type, payload).
pub fn converse_events() -> Vec<(&'static str, &'static str)> {
    vec![
        ("messageStart", r#"{"p":"abcdefgh","role":"assistant"}"#),
        (
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Say \"usage\":{}"},"p":"abcd"}"#,
        ),
        (
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":" please"},"p":"abcdefghijk"}"#,
        ),
        (
            "contentBlockStop",
            r#"{"contentBlockIndex":0,"p":"abcdefghijklmnopq"}"#,
        ),
        ("messageStop", r#"{"p":"abcdef","stopReason":"end_turn"}"#),
        (
            "metadata",
            r#"{"metrics":{"latencyMs":1200},"p":"abc","usage":{"cacheDetails":[{"inputTokens":600,"ttl":"1h"},{"inputTokens":400,"ttl":"5m"}],"cacheReadInputTokens":4000,"cacheWriteInputTokens":1000,"inputTokens":30,"outputTokens":200,"totalTokens":5230}}"#,
        ),
    ]
}

fn converse_stream() -> Case {
    let frames: Vec<Vec<u8>> = converse_events().iter().map(|(k, p)| frame(k, p)).collect();
    let cut = frames[..5].iter().map(Vec::len).sum();
    Case {
        name: "converse stream",
        format: UsageFormat::Converse,
        body: Body::Stream(Framing::ConverseEvents),
        bytes: frames.concat(),
        want: Some(usage(30, 200, 4000, 400, 600, 0)),
        chunks: 2,
        cut: Some(cut),
    }
}

/// A Bedrock `chunk` frame carrying `event`.
pub fn chunk(event: &str) -> Vec<u8> {
    let b = STANDARD.encode(event);
    frame(
        "chunk",
        &format!(r#"{{"bytes":"{b}","p":"abcdefghijklm"}}"#),
    )
}

pub const METRICS: &str = r#""amazon-bedrock-invocationMetrics":{"inputTokenCount":12,"outputTokenCount":503,"invocationLatency":2210,"firstByteLatency":410,"cacheReadInputTokenCount":20000,"cacheWriteInputTokenCount":3000}"#;

/// Bedrock's InvokeModelWithResponseStream of Claude: Anthropic's events in chunks, the metrics in
/// the last one.
pub fn claude_invoke_events(with_usage: bool) -> Vec<String> {
    anthropic_events(r#"{"output_tokens":503}"#)
        .into_iter()
        .filter(|(n, _)| *n != "ping")
        .map(|(n, d)| {
            let d = if with_usage {
                d
            } else {
                d.replace(r#""usage":"#, r#""usage_":"#)
            };
            if n == "message_stop" {
                format!(r#"{{"type":"message_stop",{METRICS}}}"#)
            } else {
                d
            }
        })
        .collect()
}

fn claude_invoke_stream(with_usage: bool) -> Case {
    let bytes: Vec<u8> = claude_invoke_events(with_usage)
        .iter()
        .flat_map(|e| chunk(e))
        .collect();
    Case {
        name: if with_usage {
            "bedrock claude chunks"
        } else {
            "bedrock claude chunks, metrics only"
        },
        format: UsageFormat::Anthropic,
        body: Body::Stream(Framing::AnthropicChunks),
        bytes,
        want: Some(if with_usage {
            usage(12, 503, 20000, 1000, 2000, 0)
        } else {
            usage(12, 503, 20000, 3000, 0, 0)
        }),
        chunks: 4,
        cut: None,
    }
}

pub fn llama_invoke_events() -> Vec<&'static str> {
    vec![
        r#"{"generation":"Paris","prompt_token_count":20,"generation_token_count":1,"stop_reason":null}"#,
        r#"{"generation":".","prompt_token_count":null,"generation_token_count":2,"stop_reason":null}"#,
        r#"{"generation":"","prompt_token_count":null,"generation_token_count":3,"stop_reason":"stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":20,"outputTokenCount":3,"invocationLatency":530,"firstByteLatency":210}}"#,
    ]
}

fn llama_invoke_stream() -> Case {
    let frames: Vec<Vec<u8>> = llama_invoke_events().iter().map(|e| chunk(e)).collect();
    let cut = frames[..2].iter().map(Vec::len).sum();
    Case {
        name: "bedrock llama chunks",
        format: UsageFormat::BedrockInvoke,
        body: Body::Stream(Framing::AnthropicChunks),
        bytes: frames.concat(),
        want: Some(usage(20, 3, 0, 0, 0, 0)),
        chunks: 3,
        cut: Some(cut),
    }
}

/// Every stream.
pub fn streams() -> Vec<Case> {
    vec![
        openai_chat_stream(),
        openai_responses_stream(),
        groq_stream(),
        anthropic_stream("anthropic stream", r#"{"output_tokens":503}"#),
        anthropic_stream(
            "anthropic stream, newer message_delta",
            r#"{"input_tokens":12,"cache_creation_input_tokens":3000,"cache_read_input_tokens":20000,"output_tokens":503,"server_tool_use":{"web_search_requests":0}}"#,
        ),
        gemini_stream(),
        converse_stream(),
        claude_invoke_stream(true),
        claude_invoke_stream(false),
        llama_invoke_stream(),
    ]
}
