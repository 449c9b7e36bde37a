//! The usage in a whole answer, per format (see `UsageFormat`), normalised to `Usage`.

use serde_json::Value;

use super::{Usage, UsageFormat};

/// The usage an answer reports, if it reports any.
pub fn from_answer(format: UsageFormat, answer: &Value) -> Option<Usage> {
    let _ = (format, answer);
    None
}

/// Bedrock InvokeModel's usage headers (`x-amzn-bedrock-input-token-count`,
/// `x-amzn-bedrock-output-token-count`).
pub fn from_bedrock_headers(input: Option<&str>, output: Option<&str>) -> Option<Usage> {
    let _ = (input, output);
    None
}

pub(super) fn estimate(request_bytes: u64, output_chunks: u64, answer_bytes: u64) -> Usage {
    let _ = (request_bytes, output_chunks, answer_bytes);
    Usage::default()
}
