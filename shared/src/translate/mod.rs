//! Translation between provider formats, as pure functions: a request in one API's format becomes
//! another's, and the answer (whole, or its stream event by event) comes back in the client's
//! format. One file per target family.

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod messages_in;
pub mod sse;

/// A provider's stream, translated into OpenAI `chat.completion.chunk` SSE one event at a time.
pub trait StreamTranslator {
    /// The OpenAI SSE text for one upstream event (often empty).
    fn event(&mut self, e: &sse::Event) -> String;
    /// The upstream ended cleanly: what closes the stream (`[DONE]`), or nothing if the answer
    /// was incomplete.
    fn end(&mut self) -> String;
    /// Whether the stream reached its end (`[DONE]` or a terminal error was written).
    fn ended(&self) -> bool;
}

/// Why a request cannot be translated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The target cannot express a feature the request uses: a clear refusal naming it, never a
    /// silently different request. A route moves on to its next target.
    #[error("{0}")]
    Unsupported(String),
    /// The request itself is malformed.
    #[error("{0}")]
    Invalid(String),
}

/// The OpenAI `finish_reason` of a provider stop reason (shared by Anthropic and Bedrock).
pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" | "guardrail_intervened" | "content_filtered" => "content_filter",
        // end_turn, stop_sequence, pause_turn and values added later.
        _ => "stop",
    }
}
