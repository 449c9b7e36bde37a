//! The usage in a whole answer, per format (see `UsageFormat`), normalised to `Usage`.
//!
//! Each provider counts differently; what every reader here produces is the same split:
//! `input` excludes cache reads and writes, `output` includes reasoning, `reasoning ⊆ output`.
//! A reader returns `None` when the answer carries no usage (a missing or `null` usage object,
//! or one without any count it knows): never a silent zero.

use serde_json::Value;

use super::{Usage, UsageFormat};

/// The usage an answer reports, if it reports any.
///
/// What each format reads:
/// - OpenAI: `usage`, else `response.usage` (the Responses API's streamed `response.completed`),
///   else `x_groq.usage` (Groq's streams); see `openai`.
/// - Anthropic: `usage`, else `message.usage` (a `message_start` event), else Bedrock's
///   `amazon-bedrock-invocationMetrics`.
/// - Gemini: `usageMetadata` (of the last element that has one, for a JSON array of answers).
/// - Converse: `usage`.
/// - BedrockInvoke: `amazon-bedrock-invocationMetrics`, else a `usage` object of any shape above
///   (Nova, OpenAI-shaped models), else Titan's `inputTextTokenCount` + `results[].tokenCount`,
///   else Llama's `prompt_token_count` + `generation_token_count`.
pub fn from_answer(format: UsageFormat, answer: &Value) -> Option<Usage> {
    match format {
        UsageFormat::OpenAi => openai_answer(answer),
        UsageFormat::Anthropic => answer
            .get("usage")
            .and_then(anthropic)
            .or_else(|| answer.pointer("/message/usage").and_then(anthropic))
            .or_else(|| answer.get(BEDROCK_METRICS).and_then(bedrock_metrics)),
        UsageFormat::Gemini => match answer {
            Value::Array(items) => items.iter().rev().find_map(gemini_answer),
            a => gemini_answer(a),
        },
        UsageFormat::Converse => answer.get("usage").and_then(converse),
        UsageFormat::BedrockInvoke => bedrock_invoke(answer),
    }
}

/// Bedrock InvokeModel's usage headers (`x-amzn-bedrock-input-token-count`,
/// `x-amzn-bedrock-output-token-count`). `None` when neither is there, or one is not a count.
pub fn from_bedrock_headers(input: Option<&str>, output: Option<&str>) -> Option<Usage> {
    if input.is_none() && output.is_none() {
        return None;
    }
    let count = |h: Option<&str>| match h {
        None => Some(0),
        Some(v) => v.trim().parse::<u64>().ok(),
    };
    Some(Usage {
        input: count(input)?,
        output: count(output)?,
        ..Usage::default()
    })
}

/// Bytes of a typical whole answer that are not its content (ids, model, finish reason, the
/// JSON around them): an OpenAI chat completion without usage is about 200.
const ENVELOPE_BYTES: u64 = 200;

/// See `super::estimate`. Input: a token per four bytes of the request body (rounded up), at
/// least 1. Output: the content chunks streamed (providers stream about a token per chunk; some
/// send more, so this errs low), else a token per four bytes of the whole answer beyond
/// `ENVELOPE_BYTES`, at least 1.
pub(super) fn estimate(request_bytes: u64, output_chunks: u64, answer_bytes: u64) -> Usage {
    let output = if output_chunks > 0 {
        output_chunks
    } else {
        answer_bytes.saturating_sub(ENVELOPE_BYTES).div_ceil(4)
    };
    Usage {
        input: request_bytes.div_ceil(4).max(1),
        output: output.max(1),
        ..Usage::default()
    }
}

/// The key of Bedrock's metrics in InvokeModel answers and stream chunks.
pub(super) const BEDROCK_METRICS: &str = "amazon-bedrock-invocationMetrics";

/// A count: a non-negative integer (an integral float is accepted, as some servers write them).
fn count(v: &Value, key: &str) -> Option<u64> {
    let n = v.get(key)?;
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0)
            .map(|f| f as u64)
    })
}

fn count_at(v: &Value, pointer: &str) -> Option<u64> {
    let (parent, key) = pointer.rsplit_once('/')?;
    count(v.pointer(parent)?, key)
}

fn openai_answer(a: &Value) -> Option<Usage> {
    a.get("usage")
        .and_then(openai)
        .or_else(|| a.pointer("/response/usage").and_then(openai))
        .or_else(|| a.pointer("/x_groq/usage").and_then(openai))
}

/// An OpenAI usage object: chat and completions (`prompt_tokens`, which include cached tokens and
/// cache writes; `completion_tokens`, which include reasoning), the Responses API
/// (`input_tokens`, `output_tokens` and their `_details`), embeddings (`prompt_tokens` only), and
/// DeepSeek's `prompt_cache_hit_tokens` / `prompt_cache_miss_tokens`.
///
/// Some servers (xAI) count reasoning apart from `completion_tokens`: when `total_tokens` is
/// prompt + completion + reasoning, or reasoning exceeds completion, reasoning is added to output.
pub(super) fn openai(u: &Value) -> Option<Usage> {
    let responses = u.get("input_tokens").is_some() || u.get("output_tokens").is_some();
    let (prompt, completion, details_in, details_out) = if responses {
        (
            count(u, "input_tokens"),
            count(u, "output_tokens"),
            "input_tokens_details",
            "output_tokens_details",
        )
    } else {
        (
            count(u, "prompt_tokens"),
            count(u, "completion_tokens"),
            "prompt_tokens_details",
            "completion_tokens_details",
        )
    };
    let hit = count(u, "prompt_cache_hit_tokens");
    let miss = count(u, "prompt_cache_miss_tokens");
    let prompt = prompt.or_else(|| match (hit, miss) {
        (None, None) => None,
        (h, m) => Some(h.unwrap_or(0) + m.unwrap_or(0)),
    });
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    let (prompt, completion) = (prompt.unwrap_or(0), completion.unwrap_or(0));
    let details = u.get(details_in).unwrap_or(&Value::Null);
    let cached = count(details, "cached_tokens").or(hit).unwrap_or(0);
    let written = count(details, "cache_write_tokens")
        .or_else(|| count(details, "cache_creation_tokens"))
        .unwrap_or(0);
    let reasoning = u
        .get(details_out)
        .and_then(|d| count(d, "reasoning_tokens"))
        .unwrap_or(0);
    let apart = reasoning > completion
        || (reasoning > 0 && count(u, "total_tokens") == Some(prompt + completion + reasoning));
    let output = if apart {
        completion + reasoning
    } else {
        completion
    };
    Some(Usage {
        input: prompt.saturating_sub(cached).saturating_sub(written),
        output,
        cache_read: cached,
        cache_write: written,
        cache_write_1h: 0,
        reasoning,
    })
}

/// An Anthropic usage object (`input_tokens` exclude cache reads and writes).
pub(super) fn anthropic(u: &Value) -> Option<Usage> {
    let mut usage = None;
    anthropic_update(&mut usage, u);
    usage
}

/// Updates `usage` with the fields an Anthropic usage object carries (`message_start`'s, then
/// each `message_delta`'s: `output_tokens` is cumulative, and newer APIs repeat the input and
/// cache fields there). The split `cache_creation.ephemeral_5m/1h_input_tokens`, when given,
/// decides `cache_write` / `cache_write_1h`; a bare `cache_creation_input_tokens` keeps the 1-hour
/// part already known. Returns whether the object carried any count.
pub(super) fn anthropic_update(usage: &mut Option<Usage>, u: &Value) -> bool {
    let input = count(u, "input_tokens");
    let output = count(u, "output_tokens");
    let read = count(u, "cache_read_input_tokens");
    let created = count(u, "cache_creation_input_tokens");
    let w5m = count_at(u, "/cache_creation/ephemeral_5m_input_tokens");
    let w1h = count_at(u, "/cache_creation/ephemeral_1h_input_tokens");
    if [input, output, read, created, w5m, w1h]
        .iter()
        .all(Option::is_none)
    {
        return false;
    }
    let mut acc = usage.unwrap_or_default();
    if let Some(n) = input {
        acc.input = n;
    }
    if let Some(n) = output {
        acc.output = n;
    }
    if let Some(n) = read {
        acc.cache_read = n;
    }
    if w5m.is_some() || w1h.is_some() {
        let one_hour = w1h.unwrap_or(0);
        let five = w5m.unwrap_or(0);
        // The split should add up to the total; if it does not, the rest is a 5-minute write.
        let total = created.unwrap_or(five + one_hour).max(five + one_hour);
        acc.cache_write_1h = one_hour;
        acc.cache_write = total - one_hour;
    } else if let Some(total) = created {
        acc.cache_write_1h = acc.cache_write_1h.min(total);
        acc.cache_write = total - acc.cache_write_1h;
    }
    *usage = Some(acc);
    true
}

fn gemini_answer(a: &Value) -> Option<Usage> {
    a.get("usageMetadata").and_then(gemini)
}

/// Gemini's `usageMetadata`: `promptTokenCount` includes `cachedContentTokenCount`;
/// `toolUsePromptTokenCount` is billed as input; `thoughtsTokenCount` is not in
/// `candidatesTokenCount` and is billed as output.
pub(super) fn gemini(m: &Value) -> Option<Usage> {
    let prompt = count(m, "promptTokenCount");
    let candidates = count(m, "candidatesTokenCount");
    let thoughts = count(m, "thoughtsTokenCount");
    if prompt.is_none() && candidates.is_none() && thoughts.is_none() {
        return None;
    }
    let cached = count(m, "cachedContentTokenCount").unwrap_or(0);
    let tools = count(m, "toolUsePromptTokenCount").unwrap_or(0);
    let thoughts = thoughts.unwrap_or(0);
    Some(Usage {
        input: prompt.unwrap_or(0).saturating_sub(cached) + tools,
        output: candidates.unwrap_or(0) + thoughts,
        cache_read: cached,
        reasoning: thoughts,
        ..Usage::default()
    })
}

/// Converse's `usage` (`inputTokens` exclude cache reads and writes; `cacheDetails` splits the
/// writes by TTL, `5m` or `1h`). Nova's InvokeModel answers name the cache fields
/// `cacheReadInputTokenCount` / `cacheWriteInputTokenCount`; both are read.
pub(super) fn converse(u: &Value) -> Option<Usage> {
    let input = count(u, "inputTokens");
    let output = count(u, "outputTokens");
    if input.is_none() && output.is_none() {
        return None;
    }
    let read = count(u, "cacheReadInputTokens").or_else(|| count(u, "cacheReadInputTokenCount"));
    let written =
        count(u, "cacheWriteInputTokens").or_else(|| count(u, "cacheWriteInputTokenCount"));
    let one_hour: u64 = u
        .get("cacheDetails")
        .and_then(Value::as_array)
        .map(|ds| {
            ds.iter()
                .filter(|d| d.get("ttl").and_then(Value::as_str) == Some("1h"))
                .filter_map(|d| count(d, "inputTokens"))
                .sum()
        })
        .unwrap_or(0);
    let written = written.unwrap_or(0).max(one_hour);
    Some(Usage {
        input: input.unwrap_or(0),
        output: output.unwrap_or(0),
        cache_read: read.unwrap_or(0),
        cache_write: written - one_hour,
        cache_write_1h: one_hour,
        reasoning: 0,
    })
}

/// Bedrock's `amazon-bedrock-invocationMetrics` (`inputTokenCount` excludes cache reads and
/// writes, as the usage headers do).
pub(super) fn bedrock_metrics(m: &Value) -> Option<Usage> {
    let input = count(m, "inputTokenCount");
    let output = count(m, "outputTokenCount");
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input: input.unwrap_or(0),
        output: output.unwrap_or(0),
        cache_read: count(m, "cacheReadInputTokenCount").unwrap_or(0),
        cache_write: count(m, "cacheWriteInputTokenCount").unwrap_or(0),
        ..Usage::default()
    })
}

/// A usage object whose shape says whose it is (models behind Bedrock InvokeModel answer in
/// their maker's format): camelCase counts are Converse's or Nova's, `prompt_tokens` OpenAI's,
/// `cache_*_input_tokens` Anthropic's, `*_tokens_details` the Responses API's, and bare
/// `input_tokens` / `output_tokens` Anthropic's (without cache fields both readings agree).
pub(super) fn usage_by_shape(u: &Value) -> Option<Usage> {
    let has = |k: &str| u.get(k).is_some();
    if has("inputTokens") || has("outputTokens") {
        converse(u)
    } else if has("prompt_tokens") || has("completion_tokens") || has("prompt_cache_hit_tokens") {
        openai(u)
    } else if has("cache_read_input_tokens") || has("cache_creation_input_tokens") {
        anthropic(u)
    } else if has("input_tokens_details") || has("output_tokens_details") {
        openai(u)
    } else {
        anthropic(u)
    }
}

fn bedrock_invoke(a: &Value) -> Option<Usage> {
    a.get(BEDROCK_METRICS)
        .and_then(bedrock_metrics)
        .or_else(|| a.get("usage").and_then(usage_by_shape))
        .or_else(|| titan(a))
        .or_else(|| llama(a))
}

/// Titan: `inputTextTokenCount`, and `results[].tokenCount` for text (embeddings have none).
fn titan(a: &Value) -> Option<Usage> {
    let input = count(a, "inputTextTokenCount")?;
    let output = a
        .get("results")
        .and_then(Value::as_array)
        .map(|rs| rs.iter().filter_map(|r| count(r, "tokenCount")).sum())
        .unwrap_or(0);
    Some(Usage {
        input,
        output,
        ..Usage::default()
    })
}

/// Llama: `prompt_token_count`, `generation_token_count`.
fn llama(a: &Value) -> Option<Usage> {
    let input = count(a, "prompt_token_count");
    let output = count(a, "generation_token_count");
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input: input.unwrap_or(0),
        output: output.unwrap_or(0),
        ..Usage::default()
    })
}
