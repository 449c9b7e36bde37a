//! Usage of answers on their way to the client: `Meter` reads it from the bytes as they pass
//! (split anywhere; JSON bodies, SSE streams, AWS event-stream frames) or from decoded events, and
//! `UsageStrip` removes the usage the gateway asked for on the client's behalf.
//!
//! The hot path: `push` runs on every chunk of every passed-through answer, so text (JSON bodies,
//! SSE) is never parsed whole. A `memmem` search finds the keys that hold usage (`scan::Keys`) and
//! the markers of content events (`scan::Counter`); only the object after a usage key is parsed,
//! and only it is buffered when a push cuts it. See `scan` for why a byte search cannot be fooled
//! by string content. AWS frames are decoded (`crate::eventstream::Decoder`, as the converter does)
//! and read by their `:event-type`; a Bedrock `chunk`'s base64 is decoded and searched the same
//! way as text.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use super::counts::Counts;
use super::extract::{self, BEDROCK_METRICS};
use super::scan::{needles, Counter, Found, Key, Keys, Needles, Slot, MAX_REASON};
use super::{Usage, UsageFormat};
use crate::eventstream::{Decoder, Frame};
use crate::translate::stream::{Event, Framing};

pub use super::strip::UsageStrip;

/// How an answer's body is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// One JSON document (a whole answer).
    Json,
    /// A stream, in this framing.
    Stream(Framing),
}

/// Reads the usage of one answer as it passes.
///
/// Merge rules, by format: OpenAI — the last non-null usage object wins; Anthropic (streams) —
/// `message_start.message.usage`, then each `message_delta.usage` updates the fields it carries;
/// Gemini — the last `usageMetadata` wins; Converse — the `metadata` event's usage; Bedrock
/// InvokeModel chunks — the Anthropic events inside, else the last chunk's
/// `amazon-bedrock-invocationMetrics` (for a model that is not Claude, the metrics first). A
/// whole JSON body: the last usage object wins.
pub struct Meter {
    format: UsageFormat,
    body: Body,
    usage: Option<Usage>,
    chunks: u64,
    read: Read,
    tally: Tally,
    /// Whether finish reasons are read too (for a traced request).
    finish: bool,
}

/// How bytes are read.
enum Read {
    /// JSON text (a whole body, or SSE): searched for keys and content markers.
    Text { keys: Keys, content: Counter },
    /// AWS event-stream frames. `None` once a frame was broken (the converter reports it).
    Frames {
        decoder: Option<Decoder>,
        framing: Framing,
        keys: Keys,
        content: Counter,
    },
}

const USAGE: Key = Key {
    bytes: b"\"usage\"",
    slot: Slot::Usage,
};
const USAGE_METADATA: Key = Key {
    bytes: b"\"usageMetadata\"",
    slot: Slot::Usage,
};
const METRICS: Key = Key {
    bytes: b"\"amazon-bedrock-invocationMetrics\"",
    slot: Slot::Metrics,
};
/// The counts of whole InvokeModel answers of Titan and Llama.
const TITAN_IN: Key = Key {
    bytes: b"\"inputTextTokenCount\"",
    slot: Slot::Input,
};
const TITAN_OUT: Key = Key {
    bytes: b"\"tokenCount\"",
    slot: Slot::OutputAdd,
};
const LLAMA_IN: Key = Key {
    bytes: b"\"prompt_token_count\"",
    slot: Slot::Input,
};
const LLAMA_OUT: Key = Key {
    bytes: b"\"generation_token_count\"",
    slot: Slot::Output,
};
/// OpenAI's (chat and completions, one per choice).
const FINISH_REASON: Key = Key {
    bytes: b"\"finish_reason\"",
    slot: Slot::Finish,
};
/// Anthropic's (and Llama's on Bedrock).
const STOP_REASON: Key = Key {
    bytes: b"\"stop_reason\"",
    slot: Slot::Finish,
};
/// Gemini's (one per candidate).
const FINISH_REASON_CAMEL: Key = Key {
    bytes: b"\"finishReason\"",
    slot: Slot::Finish,
};
/// Converse's whole answers (and Nova's on InvokeModel).
const STOP_REASON_CAMEL: Key = Key {
    bytes: b"\"stopReason\"",
    slot: Slot::Finish,
};
/// Titan's.
const COMPLETION_REASON: Key = Key {
    bytes: b"\"completionReason\"",
    slot: Slot::Finish,
};

/// The keys that hold usage, and with `finish` the finish reasons, per format.
fn keys(format: UsageFormat, body: Body, finish: bool) -> &'static Needles<Key> {
    if !finish {
        return usage_keys(format, body);
    }
    const OPENAI: &[Key] = &[USAGE, FINISH_REASON];
    const CONVERSE: &[Key] = &[USAGE, STOP_REASON_CAMEL];
    const ANTHROPIC: &[Key] = &[USAGE, METRICS, STOP_REASON];
    const GEMINI: &[Key] = &[USAGE_METADATA, FINISH_REASON_CAMEL];
    const INVOKE: &[Key] = &[
        METRICS,
        USAGE,
        STOP_REASON,
        STOP_REASON_CAMEL,
        COMPLETION_REASON,
    ];
    const INVOKE_WHOLE: &[Key] = &[
        METRICS,
        USAGE,
        TITAN_IN,
        TITAN_OUT,
        LLAMA_IN,
        LLAMA_OUT,
        STOP_REASON,
        STOP_REASON_CAMEL,
        COMPLETION_REASON,
    ];
    static OPENAI_KEYS: Needles<Key> = needles!(OPENAI);
    static CONVERSE_KEYS: Needles<Key> = needles!(CONVERSE);
    static ANTHROPIC_KEYS: Needles<Key> = needles!(ANTHROPIC);
    static GEMINI_KEYS: Needles<Key> = needles!(GEMINI);
    static INVOKE_KEYS: Needles<Key> = needles!(INVOKE);
    static INVOKE_WHOLE_KEYS: Needles<Key> = needles!(INVOKE_WHOLE);
    match (format, body) {
        (UsageFormat::OpenAi, _) => &OPENAI_KEYS,
        (UsageFormat::Converse, _) => &CONVERSE_KEYS,
        (UsageFormat::Anthropic, _) => &ANTHROPIC_KEYS,
        (UsageFormat::Gemini, _) => &GEMINI_KEYS,
        (UsageFormat::BedrockInvoke, Body::Json) => &INVOKE_WHOLE_KEYS,
        (UsageFormat::BedrockInvoke, Body::Stream(_)) => &INVOKE_KEYS,
    }
}

/// The keys that hold usage, per format.
fn usage_keys(format: UsageFormat, body: Body) -> &'static Needles<Key> {
    const OPENAI: &[Key] = &[USAGE];
    const ANTHROPIC: &[Key] = &[USAGE, METRICS];
    const GEMINI: &[Key] = &[USAGE_METADATA];
    const INVOKE: &[Key] = &[METRICS, USAGE];
    // A whole InvokeModel answer of Titan or Llama has its counts at the top level.
    const INVOKE_WHOLE: &[Key] = &[METRICS, USAGE, TITAN_IN, TITAN_OUT, LLAMA_IN, LLAMA_OUT];
    static OPENAI_KEYS: Needles<Key> = needles!(OPENAI);
    static ANTHROPIC_KEYS: Needles<Key> = needles!(ANTHROPIC);
    static GEMINI_KEYS: Needles<Key> = needles!(GEMINI);
    static INVOKE_KEYS: Needles<Key> = needles!(INVOKE);
    static INVOKE_WHOLE_KEYS: Needles<Key> = needles!(INVOKE_WHOLE);
    match (format, body) {
        (UsageFormat::OpenAi | UsageFormat::Converse, _) => &OPENAI_KEYS,
        (UsageFormat::Anthropic, _) => &ANTHROPIC_KEYS,
        (UsageFormat::Gemini, _) => &GEMINI_KEYS,
        (UsageFormat::BedrockInvoke, Body::Json) => &INVOKE_WHOLE_KEYS,
        (UsageFormat::BedrockInvoke, Body::Stream(_)) => &INVOKE_KEYS,
    }
}

/// Markers of content-carrying events, one per event (per choice for OpenAI), for `chunks()`.
/// OpenAI: each `delta` key (chat chunks, the Responses API's `*.delta` events) and each legacy
/// completions chunk; Anthropic: `content_block_delta`; Gemini: each `candidates`.
fn content(format: UsageFormat) -> &'static Needles<&'static [u8]> {
    const OPENAI: &[&[u8]] = &[b"\"delta\":", b"\"text_completion\""];
    const ANTHROPIC: &[&[u8]] = &[b"\"content_block_delta\""];
    const GEMINI: &[&[u8]] = &[b"\"candidates\":"];
    static OPENAI_MARKS: Needles<&'static [u8]> = needles!(OPENAI);
    static ANTHROPIC_MARKS: Needles<&'static [u8]> = needles!(ANTHROPIC);
    static GEMINI_MARKS: Needles<&'static [u8]> = needles!(GEMINI);
    match format {
        UsageFormat::OpenAi => &OPENAI_MARKS,
        UsageFormat::Anthropic => &ANTHROPIC_MARKS,
        UsageFormat::Gemini => &GEMINI_MARKS,
        // Their content events are frames, counted by their type.
        UsageFormat::Converse | UsageFormat::BedrockInvoke => &NONE,
    }
}

/// No markers (whole bodies, framed streams).
static NONE: Needles<&'static [u8]> = needles!(&[] as &[&[u8]]);

impl Meter {
    pub fn new(format: UsageFormat, body: Body) -> Self {
        let content = match body {
            Body::Json => Counter::new(&NONE),
            Body::Stream(_) => Counter::new(content(format)),
        };
        let keys = Keys::new(keys(format, body, false));
        let read = match body {
            Body::Json | Body::Stream(Framing::Sse) => Read::Text { keys, content },
            Body::Stream(framing) => Read::Frames {
                decoder: Some(Decoder::default()),
                framing,
                keys,
                content,
            },
        };
        Meter {
            format,
            body,
            usage: None,
            chunks: 0,
            read,
            tally: Tally::default(),
            finish: false,
        }
    }

    /// The same meter, reading the finish reasons too (`finish_reasons`). Searching for one more
    /// key costs a little on every chunk, so only traced requests ask. Call before the first push.
    pub fn with_finish(mut self) -> Self {
        self.read_finish();
        self
    }

    /// `with_finish` in place (a meter already where it will stay: moving its ~450 bytes costs
    /// more than setting it up).
    pub fn read_finish(&mut self) {
        let set = keys(self.format, self.body, true);
        match &mut self.read {
            Read::Text { keys, .. } | Read::Frames { keys, .. } => *keys = Keys::new(set),
        }
        self.finish = true;
    }

    /// Bytes of the upstream's answer as they pass (split anywhere).
    pub fn push(&mut self, bytes: &[u8]) {
        let (format, merge) = (self.format, self.merges());
        let tally = &mut self.tally;
        let mut found = |slot, f| tally.found(format, merge, slot, f);
        match &mut self.read {
            Read::Text { keys, content } => {
                keys.push(bytes, &mut found);
                if !content.is_empty() {
                    self.chunks += content.push(bytes);
                }
            }
            Read::Frames {
                decoder,
                framing,
                keys,
                content,
            } => {
                let Some(d) = decoder else { return };
                let Ok(frames) = d.push(bytes) else {
                    *decoder = None;
                    return;
                };
                for f in &frames {
                    self.chunks += frame(f, *framing, format, keys, content, &mut found);
                }
            }
        }
        self.usage = self.tally.current(self.format);
    }

    /// A decoded event of the upstream's stream (converted streams, which decode anyway).
    pub fn event(&mut self, e: &Event) {
        let Event::Json { name, data } = e else {
            return;
        };
        if self.finish {
            for r in reasons(self.format, name.as_deref(), data) {
                self.tally.reason(r);
            }
        }
        let merge = self.merges();
        let t = &mut self.tally;
        let object = |v: Option<&Value>| v.and_then(Counts::of).map(|c| Found::Object(Box::new(c)));
        let mut found = |slot, v: Option<&Value>| {
            if let Some(f) = object(v) {
                t.found(self.format, merge, slot, f);
            }
        };
        found(Slot::Metrics, data.get(BEDROCK_METRICS));
        let content = match self.format {
            UsageFormat::OpenAi => {
                found(Slot::Usage, data.get("usage"));
                found(Slot::Usage, data.pointer("/response/usage"));
                found(Slot::Usage, data.pointer("/x_groq/usage"));
                let choices = data.get("choices").and_then(Value::as_array);
                let deltas = choices.map_or(0, |cs| {
                    cs.iter().filter(|c| c.get("delta").is_some()).count() as u64
                });
                let legacy = data.get("object").and_then(Value::as_str) == Some("text_completion");
                deltas + u64::from(data.get("delta").is_some()) + u64::from(legacy)
            }
            UsageFormat::Anthropic => {
                found(Slot::Usage, data.pointer("/message/usage"));
                found(Slot::Usage, data.get("usage"));
                let kind = data.get("type").and_then(Value::as_str).or(name.as_deref());
                u64::from(kind == Some("content_block_delta"))
            }
            UsageFormat::Gemini => {
                found(Slot::Usage, data.get("usageMetadata"));
                u64::from(data.get("candidates").is_some())
            }
            UsageFormat::Converse => {
                found(Slot::Usage, data.get("usage"));
                u64::from(name.as_deref() == Some("contentBlockDelta"))
            }
            UsageFormat::BedrockInvoke => {
                found(Slot::Usage, data.get("usage"));
                1
            }
        };
        self.chunks += content;
        self.usage = self.tally.current(self.format);
    }

    /// The usage reported so far, merged by the format's rules.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The distinct finish reasons read so far, in the order first seen (empty unless
    /// `with_finish`).
    pub fn finish_reasons(&self) -> &[String] {
        &self.tally.reasons
    }

    /// The finish reasons, taken out of the meter.
    pub fn take_finish_reasons(&mut self) -> Vec<String> {
        std::mem::take(&mut self.tally.reasons)
    }

    /// Content chunks seen so far (for an estimate when no usage was reported).
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Whether usage objects update the fields they carry (Anthropic's streams) rather than
    /// replace what was read before.
    fn merges(&self) -> bool {
        self.format == UsageFormat::Anthropic && self.body != Body::Json
    }
}

/// Reads one frame; returns the content events it counts for.
fn frame(
    f: &Frame,
    framing: Framing,
    format: UsageFormat,
    keys: &Keys,
    content: &Counter,
    found: &mut impl FnMut(Slot, Found),
) -> u64 {
    if f.header(":message-type") != Some("event") {
        return 0;
    }
    let kind = f.header(":event-type").unwrap_or("");
    match framing {
        Framing::AnthropicChunks if kind == "chunk" => {
            let Some(doc) = chunk_bytes(&f.payload) else {
                return 0;
            };
            keys.whole(&doc, found);
            match format {
                UsageFormat::Anthropic => content.whole(&doc),
                _ => 1,
            }
        }
        Framing::AnthropicChunks | Framing::Sse => 0,
        Framing::ConverseEvents => match kind {
            "metadata" => {
                if let Ok(v) = serde_json::from_slice::<Value>(&f.payload) {
                    if let Some(u) = v.get("usage").and_then(Counts::of) {
                        found(Slot::Usage, Found::Object(Box::new(u)));
                    }
                }
                0
            }
            "contentBlockDelta" => 1,
            "messageStop" if keys.fills(Slot::Finish) => {
                if let Ok(v) = serde_json::from_slice::<Value>(&f.payload) {
                    if let Some(r) = v.get("stopReason").and_then(Value::as_str) {
                        found(Slot::Finish, Found::Text(r.to_owned()));
                    }
                }
                0
            }
            _ => 0,
        },
    }
}

/// The finish reasons a decoded event carries, by format: OpenAI's `choices[].finish_reason`;
/// Anthropic's `message_delta.delta.stop_reason` (or a whole message's `stop_reason`); Gemini's
/// `candidates[].finishReason`; Converse's `messageStop.stopReason`; an InvokeModel chunk's
/// Anthropic `delta.stop_reason`, Llama `stop_reason`, Titan `completionReason` or Nova
/// `stopReason`.
fn reasons<'a>(
    format: UsageFormat,
    name: Option<&str>,
    data: &'a Value,
) -> impl Iterator<Item = &'a str> {
    let str_at = |v: &'a Value, k: &str| v.get(k).and_then(Value::as_str);
    let list = |k: &str| data.get(k).and_then(Value::as_array).into_iter().flatten();
    let (one, many): (Option<&str>, Vec<&str>) = match format {
        UsageFormat::OpenAi => (
            None,
            list("choices")
                .filter_map(|c| str_at(c, "finish_reason"))
                .collect(),
        ),
        UsageFormat::Anthropic => (
            data.get("delta")
                .and_then(|d| str_at(d, "stop_reason"))
                .or_else(|| data.get("message").and_then(|m| str_at(m, "stop_reason"))),
            Vec::new(),
        ),
        UsageFormat::Gemini => (
            None,
            list("candidates")
                .filter_map(|c| str_at(c, "finishReason"))
                .collect(),
        ),
        UsageFormat::Converse => (
            (name == Some("messageStop"))
                .then(|| str_at(data, "stopReason"))
                .flatten(),
            Vec::new(),
        ),
        UsageFormat::BedrockInvoke => (
            data.get("delta")
                .and_then(|d| str_at(d, "stop_reason"))
                .or_else(|| str_at(data, "stop_reason"))
                .or_else(|| str_at(data, "completionReason"))
                .or_else(|| str_at(data, "stopReason"))
                .or_else(|| {
                    data.get("messageStop")
                        .and_then(|m| str_at(m, "stopReason"))
                }),
            Vec::new(),
        ),
    };
    one.into_iter().chain(many)
}

/// The event a Bedrock `chunk` frame carries (`{"bytes":"<base64>", "p":…}`).
fn chunk_bytes(payload: &[u8]) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Chunk<'a> {
        #[serde(borrow)]
        bytes: &'a str,
    }
    let c: Chunk = serde_json::from_slice(payload).ok()?;
    STANDARD.decode(c.bytes).ok()
}

/// What was read so far, before the format's rules pick the answer's usage.
#[derive(Default)]
struct Tally {
    usage: Option<Usage>,
    metrics: Option<Usage>,
    input: Option<u64>,
    output: Option<u64>,
    /// Distinct finish reasons, at most `MAX_REASONS`.
    reasons: Vec<String>,
}

/// Finish reasons kept per answer (one per choice or candidate, and choices mostly agree).
const MAX_REASONS: usize = 8;

impl Tally {
    fn found(&mut self, format: UsageFormat, merge: bool, slot: Slot, f: Found) {
        match (slot, f) {
            (Slot::Usage, Found::Object(v)) => {
                if merge {
                    extract::anthropic_update(&mut self.usage, &v);
                    return;
                }
                let u = match format {
                    UsageFormat::OpenAi => extract::openai(&v),
                    UsageFormat::Anthropic => extract::anthropic(&v),
                    UsageFormat::Gemini => extract::gemini(&v),
                    UsageFormat::Converse => extract::converse(&v),
                    UsageFormat::BedrockInvoke => extract::usage_by_shape(&v),
                };
                if u.is_some() {
                    self.usage = u;
                }
            }
            (Slot::Metrics, Found::Object(v)) => {
                if let Some(u) = extract::bedrock_metrics(&v) {
                    self.metrics = Some(u);
                }
            }
            (Slot::Input, Found::Number(n)) => self.input = Some(n),
            (Slot::Output, Found::Number(n)) => self.output = Some(n),
            (Slot::OutputAdd, Found::Number(n)) => {
                self.output = Some(self.output.unwrap_or(0) + n);
            }
            (Slot::Finish, Found::Text(r)) => self.found_reason(r),
            _ => {}
        }
    }

    fn reason(&mut self, r: &str) {
        if self.takes(r) {
            self.reasons.push(r.to_owned());
        }
    }

    /// `reason` for a reason the scan already copied out of the answer: kept as it is, not
    /// copied again.
    fn found_reason(&mut self, r: String) {
        if self.takes(&r) {
            self.reasons.push(r);
        }
    }

    /// Whether `r` is a reason to keep: not empty, short, new, and room for it.
    fn takes(&self, r: &str) -> bool {
        let fits = !r.is_empty() && r.len() <= MAX_REASON && self.reasons.len() < MAX_REASONS;
        fits && !self.reasons.iter().any(|x| x == r)
    }

    fn current(&self, format: UsageFormat) -> Option<Usage> {
        match format {
            UsageFormat::BedrockInvoke => {
                let counts = (self.input.is_some() || self.output.is_some()).then(|| Usage {
                    input: self.input.unwrap_or(0),
                    output: self.output.unwrap_or(0),
                    ..Usage::default()
                });
                self.metrics.or(self.usage).or(counts)
            }
            _ => self.usage.or(self.metrics),
        }
    }
}
