use serde_json::{json, Value};

use super::fixtures::{self, usage};
use crate::usage::{estimate, from_answer, from_bedrock_headers, Usage, UsageFormat};

#[test]
fn every_whole_answer_reads_as_expected() {
    for (name, format, body, want) in fixtures::whole() {
        let v: Value = serde_json::from_str(body).expect(name);
        assert_eq!(from_answer(format, &v), want, "{name}");
    }
}

#[test]
fn usage_objects_of_each_shape() {
    use UsageFormat::*;
    let cases: Vec<(&str, UsageFormat, Value, Option<Usage>)> = vec![
        (
            "responses' response.completed event",
            OpenAi,
            json!({"type":"response.completed","response":{"usage":{"input_tokens":10,"output_tokens":5,"input_tokens_details":{"cached_tokens":4},"output_tokens_details":{"reasoning_tokens":2}}}}),
            Some(usage(6, 5, 4, 0, 0, 2)),
        ),
        (
            "groq's x_groq.usage",
            OpenAi,
            json!({"choices":[],"x_groq":{"usage":{"prompt_tokens":40,"completion_tokens":12,"total_tokens":52}}}),
            Some(usage(40, 12, 0, 0, 0, 0)),
        ),
        (
            "deepseek without details",
            OpenAi,
            json!({"usage":{"prompt_cache_hit_tokens":64,"prompt_cache_miss_tokens":36,"completion_tokens":9}}),
            Some(usage(36, 9, 64, 0, 0, 0)),
        ),
        (
            "cache_creation_tokens in prompt details",
            OpenAi,
            json!({"usage":{"prompt_tokens":5000,"completion_tokens":10,"prompt_tokens_details":{"cached_tokens":1000,"cache_creation_tokens":2000}}}),
            Some(usage(2000, 10, 1000, 2000, 0, 0)),
        ),
        (
            "reasoning over completion is apart",
            OpenAi,
            json!({"usage":{"prompt_tokens":5,"completion_tokens":2,"completion_tokens_details":{"reasoning_tokens":9}}}),
            Some(usage(5, 11, 0, 0, 0, 9)),
        ),
        (
            "usage null",
            OpenAi,
            json!({"choices":[],"usage":null}),
            None,
        ),
        ("empty usage", OpenAi, json!({"usage":{}}), None),
        (
            "anthropic message_start",
            Anthropic,
            json!({"type":"message_start","message":{"usage":{"input_tokens":3,"output_tokens":1}}}),
            Some(usage(3, 1, 0, 0, 0, 0)),
        ),
        (
            "anthropic total without split is 5-minute",
            Anthropic,
            json!({"usage":{"input_tokens":3,"output_tokens":1,"cache_creation_input_tokens":50,"cache_read_input_tokens":7}}),
            Some(usage(3, 1, 7, 50, 0, 0)),
        ),
        (
            "anthropic split short of the total",
            Anthropic,
            json!({"usage":{"input_tokens":3,"output_tokens":1,"cache_creation_input_tokens":50,"cache_creation":{"ephemeral_1h_input_tokens":20}}}),
            Some(usage(3, 1, 0, 30, 20, 0)),
        ),
        (
            "anthropic message_stop from bedrock: the metrics",
            Anthropic,
            json!({"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":4,"outputTokenCount":2}}),
            Some(usage(4, 2, 0, 0, 0, 0)),
        ),
        (
            "gemini array of answers: the last with usage",
            Gemini,
            json!([
                {"candidates":[],"usageMetadata":{"promptTokenCount":9}},
                {"candidates":[],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":4}},
                {"candidates":[]}
            ]),
            Some(usage(9, 4, 0, 0, 0, 0)),
        ),
        (
            "converse without cache",
            Converse,
            json!({"usage":{"inputTokens":30,"outputTokens":20,"totalTokens":50}}),
            Some(usage(30, 20, 0, 0, 0, 0)),
        ),
        (
            "bedrock invoke metrics win over the body",
            BedrockInvoke,
            json!({"generation":"","prompt_token_count":1,"generation_token_count":1,"amazon-bedrock-invocationMetrics":{"inputTokenCount":20,"outputTokenCount":3,"cacheReadInputTokenCount":5,"cacheWriteInputTokenCount":6}}),
            Some(usage(20, 3, 5, 6, 0, 0)),
        ),
        (
            "bedrock invoke, openai-shaped model",
            BedrockInvoke,
            json!({"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":4,"total_tokens":15}}),
            Some(usage(11, 4, 0, 0, 0, 0)),
        ),
        (
            "bedrock invoke, anthropic-shaped usage",
            BedrockInvoke,
            json!({"usage":{"input_tokens":11,"output_tokens":4,"cache_read_input_tokens":100}}),
            Some(usage(11, 4, 100, 0, 0, 0)),
        ),
    ];
    for (name, format, v, want) in cases {
        assert_eq!(from_answer(format, &v), want, "{name}");
    }
}

#[test]
fn bedrock_headers() {
    let cases = [
        (Some("12"), Some("34"), Some(usage(12, 34, 0, 0, 0, 0))),
        (Some(" 5 "), None, Some(usage(5, 0, 0, 0, 0, 0))),
        (None, None, None),
        (Some("x"), Some("1"), None),
        (Some("-1"), Some("1"), None),
    ];
    for (input, output, want) in cases {
        assert_eq!(
            from_bedrock_headers(input, output),
            want,
            "{input:?} {output:?}"
        );
    }
}

#[test]
fn estimates() {
    let cases = [
        // (request bytes, chunks, answer bytes) → (input, output)
        ((0, 0, 0), (1, 1)),
        ((4001, 0, 0), (1001, 1)),
        ((400, 37, 5000), (100, 37)),
        ((400, 0, 1000), (100, 200)),
        ((3, 0, 150), (1, 1)),
    ];
    for ((req, chunks, answer), (input, output)) in cases {
        assert_eq!(
            estimate(req, chunks, answer),
            usage(input, output, 0, 0, 0, 0),
            "{req} {chunks} {answer}"
        );
    }
}
