//! Answers and streams shaped as the providers send them (ids shortened), each with the `Usage`
//! it must read as. String content quotes usage keys on purpose: it must never be read.

use crate::usage::meter::Body;
use crate::usage::{Usage, UsageFormat};

pub struct Case {
    pub name: &'static str,
    pub format: UsageFormat,
    pub body: Body,
    pub bytes: Vec<u8>,
    pub want: Option<Usage>,
    /// Content chunks a stream counts.
    pub chunks: u64,
    /// A prefix of a stream that ends before its usage (and after some content).
    pub cut: Option<usize>,
}

pub fn usage(
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    cache_write_1h: u64,
    reasoning: u64,
) -> Usage {
    Usage {
        input,
        output,
        cache_read,
        cache_write,
        cache_write_1h,
        reasoning,
    }
}

/// SSE text of `(event name, data)` pairs, each ended by `sep`.
pub fn sse(events: &[(Option<&str>, &str)], sep: &str) -> Vec<u8> {
    let nl = &sep[..sep.len() / 2];
    let mut out = String::new();
    for (name, data) in events {
        if let Some(n) = name {
            out.push_str(&format!("event: {n}{nl}"));
        }
        out.push_str(&format!("data: {data}{sep}"));
    }
    out.into_bytes()
}

pub fn data(events: &[&str]) -> Vec<u8> {
    let v: Vec<_> = events.iter().map(|d| (None, *d)).collect();
    sse(&v, "\n\n")
}

pub fn named(events: &[(&str, &str)]) -> Vec<u8> {
    let v: Vec<_> = events.iter().map(|(n, d)| (Some(*n), *d)).collect();
    sse(&v, "\n\n")
}

/// The offset of the first occurrence of `needle` (a cut point).
pub fn at(bytes: &[u8], needle: &str) -> usize {
    memchr::memmem::find(bytes, needle.as_bytes()).unwrap_or(bytes.len())
}

pub const OPENAI_CHAT: &str = r#"{"id":"chatcmpl-C1","object":"chat.completion","created":1764460800,"model":"gpt-5.4-mini-2026-03-17","choices":[{"index":0,"message":{"role":"assistant","content":"Quoted: {\"usage\":{\"prompt_tokens\":999}}","refusal":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"log","arguments":"{\"usage\":{\"prompt_tokens\":5}}"}}],"annotations":[]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":2150,"completion_tokens":310,"total_tokens":2460,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":192,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":null}"#;

pub const OPENAI_RESPONSES: &str = r#"{"id":"resp_68a","object":"response","created_at":1764460800,"status":"completed","error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"gpt-6.1-terra-2026-10-01","output":[{"id":"rs_68a","type":"reasoning","summary":[]},{"id":"msg_68a","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"The key \"usage\": is fine."}],"role":"assistant"}],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":"medium","summary":null},"store":true,"temperature":1.0,"text":{"format":{"type":"text"},"verbosity":"medium"},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","usage":{"input_tokens":6000,"input_tokens_details":{"cached_tokens":1000,"cache_write_tokens":4000},"output_tokens":900,"output_tokens_details":{"reasoning_tokens":640},"total_tokens":6900},"user":null,"metadata":{}}"#;

pub const OPENAI_EMBEDDINGS: &str = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292,-0.0028842222]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;

pub const DEEPSEEK: &str = r#"{"id":"930c60df","object":"chat.completion","created":1764460800,"model":"deepseek-v4-pro","choices":[{"index":0,"message":{"role":"assistant","content":"4","reasoning_content":"2+2"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":1024},"completion_tokens_details":{"reasoning_tokens":250},"prompt_cache_hit_tokens":1024,"prompt_cache_miss_tokens":176},"system_fingerprint":"fp_1"}"#;

pub const XAI: &str = r#"{"id":"a3d1","object":"chat.completion","created":1764460800,"model":"grok-4.7","choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":33,"completion_tokens":1,"total_tokens":345,"prompt_tokens_details":{"text_tokens":33,"audio_tokens":0,"image_tokens":0,"cached_tokens":6},"completion_tokens_details":{"reasoning_tokens":311,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0},"num_sources_used":0},"system_fingerprint":"fp_2"}"#;

pub const ANTHROPIC: &str = r#"{"id":"msg_01XF","type":"message","role":"assistant","model":"claude-opus-5","content":[{"type":"thinking","thinking":"The user wants \"usage\": {\"input_tokens\": 1}","signature":"EqQB"},{"type":"text","text":"Recording it."},{"type":"tool_use","id":"toolu_01","name":"record","input":{"usage":{"input_tokens":999999,"output_tokens":1}}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":3000,"cache_read_input_tokens":20000,"cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":2000},"output_tokens":503,"service_tier":"standard","server_tool_use":{"web_search_requests":0}}}"#;

pub const GEMINI: &str = r#"{
  "candidates": [
    {
      "content": {
        "parts": [
          {
            "text": "A key named \"usageMetadata\": {} in text."
          }
        ],
        "role": "model"
      },
      "finishReason": "STOP",
      "index": 0
    }
  ],
  "usageMetadata": {
    "promptTokenCount": 5000,
    "candidatesTokenCount": 120,
    "totalTokenCount": 5600,
    "cachedContentTokenCount": 4000,
    "promptTokensDetails": [
      {
        "modality": "TEXT",
        "tokenCount": 5000
      }
    ],
    "cacheTokensDetails": [
      {
        "modality": "TEXT",
        "tokenCount": 4000
      }
    ],
    "toolUsePromptTokenCount": 80,
    "thoughtsTokenCount": 400
  },
  "modelVersion": "gemini-2.5-pro",
  "responseId": "mJXYaK2fN"
}
"#;

pub const CONVERSE: &str = r#"{"output":{"message":{"role":"assistant","content":[{"text":"Calling."},{"toolUse":{"toolUseId":"tooluse_1","name":"record","input":{"usage":{"inputTokens":7,"outputTokens":7}}}}]}},"stopReason":"tool_use","usage":{"inputTokens":30,"outputTokens":200,"totalTokens":5230,"cacheReadInputTokens":4000,"cacheWriteInputTokens":1000,"cacheDetails":[{"inputTokens":600,"ttl":"1h"},{"inputTokens":400,"ttl":"5m"}]},"metrics":{"latencyMs":1200}}"#;

pub const TITAN: &str = r#"{"inputTextTokenCount":8,"results":[{"tokenCount":25,"outputText":"\"tokenCount\": 3 is text","completionReason":"FINISH"}]}"#;

pub const LLAMA: &str = r#"{"generation":"Paris.","prompt_token_count":20,"generation_token_count":3,"stop_reason":"stop"}"#;

pub const NOVA: &str = r#"{"output":{"message":{"content":[{"text":"Hi"}],"role":"assistant"}},"stopReason":"end_turn","usage":{"inputTokens":100,"outputTokens":20,"totalTokens":1120,"cacheReadInputTokenCount":1000,"cacheWriteInputTokenCount":0}}"#;

pub const TITAN_EMBED: &str = r#"{"embedding":[0.1,-0.2,0.3],"inputTextTokenCount":7}"#;

/// Whole answers: (name, format, body, usage).
pub fn whole() -> Vec<(&'static str, UsageFormat, &'static str, Option<Usage>)> {
    use UsageFormat::*;
    vec![
        (
            "openai chat",
            OpenAi,
            OPENAI_CHAT,
            Some(usage(230, 310, 1920, 0, 0, 192)),
        ),
        (
            "openai responses",
            OpenAi,
            OPENAI_RESPONSES,
            Some(usage(1000, 900, 1000, 4000, 0, 640)),
        ),
        (
            "openai embeddings",
            OpenAi,
            OPENAI_EMBEDDINGS,
            Some(usage(8, 0, 0, 0, 0, 0)),
        ),
        (
            "deepseek",
            OpenAi,
            DEEPSEEK,
            Some(usage(176, 300, 1024, 0, 0, 250)),
        ),
        (
            "xai, reasoning apart",
            OpenAi,
            XAI,
            Some(usage(27, 312, 6, 0, 0, 311)),
        ),
        (
            "anthropic",
            Anthropic,
            ANTHROPIC,
            Some(usage(12, 503, 20000, 1000, 2000, 0)),
        ),
        (
            "gemini",
            Gemini,
            GEMINI,
            Some(usage(1080, 520, 4000, 0, 0, 400)),
        ),
        (
            "converse",
            Converse,
            CONVERSE,
            Some(usage(30, 200, 4000, 400, 600, 0)),
        ),
        (
            "titan",
            BedrockInvoke,
            TITAN,
            Some(usage(8, 25, 0, 0, 0, 0)),
        ),
        (
            "llama",
            BedrockInvoke,
            LLAMA,
            Some(usage(20, 3, 0, 0, 0, 0)),
        ),
        (
            "nova",
            BedrockInvoke,
            NOVA,
            Some(usage(100, 20, 1000, 0, 0, 0)),
        ),
        (
            "titan embeddings",
            BedrockInvoke,
            TITAN_EMBED,
            Some(usage(7, 0, 0, 0, 0, 0)),
        ),
        (
            "mistral on invoke: no counts",
            BedrockInvoke,
            r#"{"outputs":[{"text":"Hi","stop_reason":"stop"}]}"#,
            None,
        ),
        (
            "openai without usage",
            OpenAi,
            r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"\"usage\":{\"prompt_tokens\":3}"},"finish_reason":"stop"}],"usage":null}"#,
            None,
        ),
        (
            "anthropic without usage",
            Anthropic,
            r#"{"id":"m","type":"message","content":[{"type":"text","text":"hi"}]}"#,
            None,
        ),
        (
            "gemini without usage",
            Gemini,
            r#"{"candidates": [{"content": {"parts": [{"text": "hi"}]}}]}"#,
            None,
        ),
    ]
}

/// Every whole answer as a case of the meter.
pub fn whole_cases() -> Vec<Case> {
    whole()
        .into_iter()
        .map(|(name, format, body, want)| Case {
            name,
            format,
            body: Body::Json,
            bytes: body.as_bytes().to_vec(),
            want,
            chunks: 0,
            cut: None,
        })
        .collect()
}
