//! Usage and cost, as pure code: the tokens an answer used, read from every provider's answer
//! (`extract`: whole bodies; `meter`: streamed or passed-through bodies, fed bytes split anywhere
//! or decoded events), estimated when an answer reports none, and priced in integer micro-units
//! of currency from a price table kept as data (`price`).

mod counts;
pub mod extract;
pub mod meter;
mod plain;
pub mod price;
mod scan;
mod strip;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use extract::{from_answer, from_bedrock_headers};
pub use meter::{Meter, UsageStrip};
pub use price::{cost, Price, PriceTable};

/// The tokens of one answer, split the way prices are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens billed at the input price: cache reads and cache writes excluded.
    pub input: u64,
    /// Completion tokens, reasoning included.
    pub output: u64,
    /// Prompt tokens read from a cache.
    pub cache_read: u64,
    /// Prompt tokens written to a cache (Anthropic's 5-minute writes, Bedrock's writes).
    pub cache_write: u64,
    /// Prompt tokens written to Anthropic's 1-hour cache.
    pub cache_write_1h: u64,
    /// Of `output`, the reasoning ("thinking") tokens.
    pub reasoning: u64,
}

impl Usage {
    /// Every prompt token: input, cache reads and cache writes.
    pub fn prompt(&self) -> u64 {
        self.input + self.cache_read + self.cache_write + self.cache_write_1h
    }

    /// Prompt and completion tokens.
    pub fn total(&self) -> u64 {
        self.prompt() + self.output
    }
}

/// The usage format of an answer: whose API answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageFormat {
    /// OpenAI chat, completions, responses and embeddings, and every OpenAI-compatible server
    /// (DeepSeek's cache fields, xAI's, Groq's `x_groq.usage` included).
    OpenAi,
    /// Anthropic Messages (first-party, Vertex `rawPredict`, Bedrock InvokeModel of Claude).
    Anthropic,
    /// Gemini `generateContent` (AI Studio and Vertex).
    Gemini,
    /// Bedrock Converse and ConverseStream.
    Converse,
    /// Bedrock InvokeModel of a model that is not Claude (usage in headers or the stream's
    /// `amazon-bedrock-invocationMetrics`).
    BedrockInvoke,
}

/// Whether a record's usage was reported by the provider or estimated by the gateway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageSource {
    #[default]
    Reported,
    Estimated,
}

/// An estimate for an answer that reported no usage: input from the request body's size (about
/// four bytes per token of its text), output from the content chunks streamed (about one token
/// each) or, for a whole answer, from its size. Never 0 for a request that had a body.
pub fn estimate(request_bytes: u64, output_chunks: u64, answer_bytes: u64) -> Usage {
    extract::estimate(request_bytes, output_chunks, answer_bytes)
}
