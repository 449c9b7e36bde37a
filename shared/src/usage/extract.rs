//! The usage in a whole answer, per format (see `UsageFormat`), normalised to `Usage`.
//!
//! Each provider counts differently; what every reader here produces is the same split:
//! `input` excludes cache reads and writes, `output` includes reasoning, `reasoning ⊆ output`.
//! A reader returns `None` when the answer carries no usage (a missing or `null` usage object,
//! or one without any count it knows): never a silent zero.

use serde_json::Value;

use super::counts::{Counts, Details};
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
        UsageFormat::Anthropic => counts(answer.get("usage"))
            .and_then(|c| anthropic(&c))
            .or_else(|| counts(answer.pointer("/message/usage")).and_then(|c| anthropic(&c)))
            .or_else(|| counts(answer.get(BEDROCK_METRICS)).and_then(|c| bedrock_metrics(&c))),
        UsageFormat::Gemini => match answer {
            Value::Array(items) => items.iter().rev().find_map(gemini_answer),
            a => gemini_answer(a),
        },
        UsageFormat::Converse => counts(answer.get("usage")).and_then(|c| converse(&c)),
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

/// The counts of a parsed usage object, if it is an object.
fn counts(v: Option<&Value>) -> Option<Counts> {
    v.and_then(Counts::of)
}

/// A top-level count of a whole answer (Titan's, Llama's): a non-negative integer, or an
/// integral float.
fn count(v: &Value, key: &str) -> Option<u64> {
    let n = v.get(key)?;
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0)
            .map(|f| f as u64)
    })
}

fn openai_answer(a: &Value) -> Option<Usage> {
    counts(a.get("usage"))
        .and_then(|c| openai(&c))
        .or_else(|| counts(a.pointer("/response/usage")).and_then(|c| openai(&c)))
        .or_else(|| counts(a.pointer("/x_groq/usage")).and_then(|c| openai(&c)))
}

/// An OpenAI usage object: chat and completions (`prompt_tokens`, which include cached tokens and
/// cache writes; `completion_tokens`, which include reasoning), the Responses API
/// (`input_tokens`, `output_tokens` and their `_details`), embeddings (`prompt_tokens` only), and
/// DeepSeek's `prompt_cache_hit_tokens` / `prompt_cache_miss_tokens`.
///
/// Some servers (xAI) count reasoning apart from `completion_tokens`: when `total_tokens` is
/// prompt + completion + reasoning, or reasoning exceeds completion, reasoning is added to output.
pub(super) fn openai(u: &Counts) -> Option<Usage> {
    let responses = u.input_tokens.is_present() || u.output_tokens.is_present();
    let (prompt, completion, details_in, details_out) = if responses {
        (
            u.input_tokens.get(),
            u.output_tokens.get(),
            &u.input_tokens_details,
            &u.output_tokens_details,
        )
    } else {
        (
            u.prompt_tokens.get(),
            u.completion_tokens.get(),
            &u.prompt_tokens_details,
            &u.completion_tokens_details,
        )
    };
    let hit = u.prompt_cache_hit_tokens.get();
    let miss = u.prompt_cache_miss_tokens.get();
    let prompt = prompt.or_else(|| match (hit, miss) {
        (None, None) => None,
        (h, m) => Some(h.unwrap_or(0) + m.unwrap_or(0)),
    });
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    let (prompt, completion) = (prompt.unwrap_or(0), completion.unwrap_or(0));
    let none = Details::default();
    let details = details_in.0.as_ref().unwrap_or(&none);
    let cached = details.cached_tokens.get().or(hit).unwrap_or(0);
    let written = details
        .cache_write_tokens
        .get()
        .or_else(|| details.cache_creation_tokens.get())
        .unwrap_or(0);
    let reasoning = details_out
        .0
        .as_ref()
        .and_then(|d| d.reasoning_tokens.get())
        .unwrap_or(0);
    let apart = reasoning > completion
        || (reasoning > 0 && u.total_tokens.get() == Some(prompt + completion + reasoning));
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
pub(super) fn anthropic(u: &Counts) -> Option<Usage> {
    let mut usage = None;
    anthropic_update(&mut usage, u);
    usage
}

/// Updates `usage` with the fields an Anthropic usage object carries (`message_start`'s, then
/// each `message_delta`'s: `output_tokens` is cumulative, and newer APIs repeat the input and
/// cache fields there). The split `cache_creation.ephemeral_5m/1h_input_tokens`, when given,
/// decides `cache_write` / `cache_write_1h`; a bare `cache_creation_input_tokens` keeps the 1-hour
/// part already known. Returns whether the object carried any count.
pub(super) fn anthropic_update(usage: &mut Option<Usage>, u: &Counts) -> bool {
    let input = u.input_tokens.get();
    let output = u.output_tokens.get();
    let read = u.cache_read_input_tokens.get();
    let created = u.cache_creation_input_tokens.get();
    let split = u.cache_creation.0.as_ref();
    let w5m = split.and_then(|c| c.ephemeral_5m_input_tokens.get());
    let w1h = split.and_then(|c| c.ephemeral_1h_input_tokens.get());
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
    counts(a.get("usageMetadata")).and_then(|c| gemini(&c))
}

/// Gemini's `usageMetadata`: `promptTokenCount` includes `cachedContentTokenCount`;
/// `toolUsePromptTokenCount` is billed as input; `thoughtsTokenCount` is not in
/// `candidatesTokenCount` and is billed as output.
pub(super) fn gemini(m: &Counts) -> Option<Usage> {
    let prompt = m.prompt_token_count.get();
    let candidates = m.candidates_token_count.get();
    let thoughts = m.thoughts_token_count.get();
    if prompt.is_none() && candidates.is_none() && thoughts.is_none() {
        return None;
    }
    let cached = m.cached_content_token_count.get().unwrap_or(0);
    let tools = m.tool_use_prompt_token_count.get().unwrap_or(0);
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
pub(super) fn converse(u: &Counts) -> Option<Usage> {
    let input = u.input_tokens_camel.get();
    let output = u.output_tokens_camel.get();
    if input.is_none() && output.is_none() {
        return None;
    }
    let read = u
        .cache_read_input_tokens_camel
        .get()
        .or_else(|| u.cache_read_input_token_count.get());
    let written = u
        .cache_write_input_tokens_camel
        .get()
        .or_else(|| u.cache_write_input_token_count.get());
    let one_hour: u64 = u
        .cache_details
        .0
        .iter()
        .flatten()
        .filter_map(|d| d.0.as_ref())
        .filter(|d| d.ttl.0.as_deref() == Some("1h"))
        .filter_map(|d| d.input_tokens.get())
        .sum();
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
pub(super) fn bedrock_metrics(m: &Counts) -> Option<Usage> {
    let input = m.input_token_count.get();
    let output = m.output_token_count.get();
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input: input.unwrap_or(0),
        output: output.unwrap_or(0),
        cache_read: m.cache_read_input_token_count.get().unwrap_or(0),
        cache_write: m.cache_write_input_token_count.get().unwrap_or(0),
        ..Usage::default()
    })
}

/// A usage object whose shape says whose it is (models behind Bedrock InvokeModel answer in
/// their maker's format): camelCase counts are Converse's or Nova's, `prompt_tokens` OpenAI's,
/// `cache_*_input_tokens` Anthropic's, `*_tokens_details` the Responses API's, and bare
/// `input_tokens` / `output_tokens` Anthropic's (without cache fields both readings agree).
pub(super) fn usage_by_shape(u: &Counts) -> Option<Usage> {
    if u.input_tokens_camel.is_present() || u.output_tokens_camel.is_present() {
        converse(u)
    } else if u.prompt_tokens.is_present()
        || u.completion_tokens.is_present()
        || u.prompt_cache_hit_tokens.is_present()
    {
        openai(u)
    } else if u.cache_read_input_tokens.is_present() || u.cache_creation_input_tokens.is_present() {
        anthropic(u)
    } else if u.input_tokens_details != Default::default()
        || u.output_tokens_details != Default::default()
    {
        openai(u)
    } else {
        anthropic(u)
    }
}

fn bedrock_invoke(a: &Value) -> Option<Usage> {
    counts(a.get(BEDROCK_METRICS))
        .and_then(|c| bedrock_metrics(&c))
        .or_else(|| counts(a.get("usage")).and_then(|c| usage_by_shape(&c)))
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
