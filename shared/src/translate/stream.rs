//! Streamed answers that change form on the way, as pure code: bytes from the upstream (SSE, or
//! AWS's binary event stream) are decoded into events, passed through a chain of
//! `StreamTranslator`s over JSON values (never re-parsed between steps), and encoded as the SSE
//! the client reads. `Converter` does all three and is fed bytes split anywhere.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::sse;
use crate::eventstream::{Decoder, Frame, FrameError};
use crate::usage::Meter;

/// One event of a stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A JSON event, with its name when it has one (SSE `event:`, or a frame's `:event-type`).
    Json {
        name: Option<Cow<'static, str>>,
        data: Value,
    },
    /// OpenAI's `data: [DONE]`.
    Done,
    /// An exception frame of an AWS event stream: its type and payload.
    Exception { kind: String, data: Value },
}

impl Event {
    /// An unnamed JSON event (`data: …`).
    pub fn data(data: Value) -> Event {
        Event::Json { name: None, data }
    }

    /// A named JSON event (`event: name` + `data: …`).
    pub fn named(name: &'static str, data: Value) -> Event {
        Event::Json {
            name: Some(Cow::Borrowed(name)),
            data,
        }
    }

    /// The event's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Event::Json { name, .. } => name.as_deref(),
            Event::Done => None,
            Event::Exception { kind, .. } => Some(kind),
        }
    }

    /// Appends the event as SSE text.
    pub fn write_sse(&self, out: &mut Vec<u8>) {
        match self {
            Event::Json { name, data } => {
                if let Some(n) = name {
                    out.extend_from_slice(b"event: ");
                    out.extend_from_slice(n.as_bytes());
                    out.push(b'\n');
                }
                out.extend_from_slice(b"data: ");
                // Writing a `Value` into a `Vec` cannot fail.
                let _ = serde_json::to_writer(&mut *out, data);
                out.extend_from_slice(b"\n\n");
            }
            Event::Done => out.extend_from_slice(b"data: [DONE]\n\n"),
            Event::Exception { kind, data } => {
                out.extend_from_slice(b"data: ");
                let _ = serde_json::to_writer(&mut *out, &json!({"exception": kind, "data": data}));
                out.extend_from_slice(b"\n\n");
            }
        }
    }
}

/// One step of a streamed answer's translation: upstream events in, client events out.
pub trait StreamTranslator: Send {
    /// Translates one event, appending what it produces (often nothing).
    fn event(&mut self, e: Event, out: &mut Vec<Event>);
    /// The upstream ended cleanly: what closes the stream (`[DONE]`, `message_stop`), or nothing
    /// if the answer was incomplete.
    fn end(&mut self, out: &mut Vec<Event>);
    /// Whether the stream reached its end (its close or a terminal error was produced).
    fn ended(&self) -> bool;
}

/// Two translators in turn: `first`'s events are `second`'s input, as values.
pub struct Chain {
    first: Box<dyn StreamTranslator>,
    second: Box<dyn StreamTranslator>,
    between: Vec<Event>,
}

impl Chain {
    pub fn new(first: Box<dyn StreamTranslator>, second: Box<dyn StreamTranslator>) -> Self {
        Chain {
            first,
            second,
            between: Vec::new(),
        }
    }

    fn pass(&mut self, out: &mut Vec<Event>) {
        for e in self.between.drain(..) {
            self.second.event(e, out);
        }
    }
}

impl StreamTranslator for Chain {
    fn event(&mut self, e: Event, out: &mut Vec<Event>) {
        self.first.event(e, &mut self.between);
        self.pass(out);
    }

    fn end(&mut self, out: &mut Vec<Event>) {
        if !self.first.ended() {
            self.first.end(&mut self.between);
        }
        self.pass(out);
        if !self.second.ended() {
            self.second.end(out);
        }
    }

    fn ended(&self) -> bool {
        self.second.ended()
    }
}

/// How the upstream frames its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Server-sent events.
    Sse,
    /// AWS's event stream of ConverseStream events (`:event-type` names each).
    ConverseEvents,
    /// AWS's event stream of `chunk`s, each carrying one Anthropic Messages event in base64
    /// (Bedrock's InvokeModelWithResponseStream of a Claude model).
    AnthropicChunks,
}

/// Why a stream could not be converted. It ends there: the client gets a terminal error event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("the upstream's event stream broke: {0}")]
    Frame(#[from] FrameError),
    #[error("the upstream ended the stream in the middle of a frame")]
    CutFrame,
    #[error("Bedrock sent a chunk that is not a base64 JSON event")]
    BadChunk,
}

enum Decode {
    Sse(sse::Parser),
    Frames(Decoder, Framing),
}

/// A streamed answer converted on the fly: upstream bytes in, the client's SSE bytes out.
pub struct Converter {
    decode: Decode,
    /// `None`: events pass as they came (a framing change only).
    translator: Option<Box<dyn StreamTranslator>>,
    events: Vec<Event>,
    out: Vec<Event>,
    done: bool,
    /// Reads the usage from the upstream's events, before they are translated.
    meter: Option<Meter>,
}

impl Converter {
    pub fn new(framing: Framing, translator: Option<Box<dyn StreamTranslator>>) -> Self {
        Converter {
            decode: match framing {
                Framing::Sse => Decode::Sse(sse::Parser::default()),
                f => Decode::Frames(Decoder::default(), f),
            },
            translator,
            events: Vec::new(),
            out: Vec::new(),
            done: false,
            meter: None,
        }
    }

    /// Meters the upstream's events with `meter` as they are decoded.
    pub fn with_meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// The meter, if one was given.
    pub fn meter(&self) -> Option<&Meter> {
        self.meter.as_ref()
    }

    /// Whether the stream reached its end; later input is ignored.
    pub fn ended(&self) -> bool {
        self.done
    }

    /// Converts a piece of the upstream's body; returns the client's bytes it completes.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, StreamError> {
        if self.done {
            return Ok(Vec::new());
        }
        let mut text = Vec::new();
        match &mut self.decode {
            Decode::Sse(p) => {
                for e in p.push(bytes) {
                    decode_sse(e, &mut self.events);
                }
            }
            Decode::Frames(d, framing) => {
                let framing = *framing;
                for f in d.push(bytes)? {
                    if self.translator.is_none() && framing == Framing::AnthropicChunks {
                        // Passed as they came: each chunk's event bytes, verbatim.
                        if anthropic_chunk_sse(&f, &mut text, self.meter.as_mut())? {
                            self.done = true;
                            return Ok(text);
                        }
                        continue;
                    }
                    decode_frame(&f, framing, &mut self.events)?;
                }
            }
        }
        self.translate(&mut text, false);
        Ok(text)
    }

    /// The upstream ended cleanly: what the client still needs (a close, or nothing when the
    /// answer was incomplete — the caller reports the truncation).
    pub fn finish(&mut self) -> Result<Vec<u8>, StreamError> {
        if self.done {
            return Ok(Vec::new());
        }
        match &mut self.decode {
            Decode::Sse(p) => {
                if let Some(e) = p.finish() {
                    decode_sse(e, &mut self.events);
                }
            }
            Decode::Frames(d, _) if d.has_partial() => return Err(StreamError::CutFrame),
            Decode::Frames(..) => {}
        }
        let mut text = Vec::new();
        self.translate(&mut text, true);
        if self.translator.is_none() {
            // A framing change only: a clean end is the stream's end.
            self.done = true;
        }
        Ok(text)
    }

    fn translate(&mut self, text: &mut Vec<u8>, end: bool) {
        if let Some(m) = &mut self.meter {
            for e in &self.events {
                m.event(e);
            }
        }
        match &mut self.translator {
            Some(t) => {
                for e in self.events.drain(..) {
                    if t.ended() {
                        break;
                    }
                    t.event(e, &mut self.out);
                }
                if end && !t.ended() {
                    t.end(&mut self.out);
                }
                self.done = t.ended();
            }
            None => self.out.append(&mut self.events),
        }
        self.events.clear();
        for e in self.out.drain(..) {
            e.write_sse(text);
        }
    }
}

fn decode_sse(e: sse::Event, out: &mut Vec<Event>) {
    if e.data == "[DONE]" {
        out.push(Event::Done);
        return;
    }
    // Events that are not JSON carry nothing a translator reads.
    if let Ok(data) = serde_json::from_str(&e.data) {
        out.push(Event::Json {
            name: e.event.map(Cow::Owned),
            data,
        });
    }
}

fn exception(f: &Frame) -> Event {
    Event::Exception {
        kind: f
            .header(":exception-type")
            .or(f.header(":error-code"))
            .unwrap_or("exception")
            .to_string(),
        data: serde_json::from_slice(&f.payload).unwrap_or_default(),
    }
}

fn decode_frame(f: &Frame, framing: Framing, out: &mut Vec<Event>) -> Result<(), StreamError> {
    if f.header(":message-type") != Some("event") {
        out.push(exception(f));
        return Ok(());
    }
    let kind = f.header(":event-type").unwrap_or("");
    match framing {
        Framing::AnthropicChunks if kind == "chunk" => {
            let data = chunk_bytes(f)?;
            let event: Value = serde_json::from_slice(&data).map_err(|_| StreamError::BadChunk)?;
            let name = event["type"].as_str().unwrap_or("message").to_string();
            out.push(Event::Json {
                name: Some(Cow::Owned(name)),
                data: event,
            });
        }
        // Other events (none are documented for InvokeModelWithResponseStream) are skipped.
        Framing::AnthropicChunks => {}
        _ => out.push(Event::Json {
            name: Some(Cow::Owned(kind.to_string())),
            data: serde_json::from_slice(&f.payload).unwrap_or_default(),
        }),
    }
    Ok(())
}

/// The Anthropic event bytes a `chunk` frame carries.
fn chunk_bytes(f: &Frame) -> Result<Vec<u8>, StreamError> {
    let v: Value = serde_json::from_slice(&f.payload).map_err(|_| StreamError::BadChunk)?;
    v["bytes"]
        .as_str()
        .and_then(|b| STANDARD.decode(b).ok())
        .ok_or(StreamError::BadChunk)
}

/// A frame of InvokeModelWithResponseStream as Anthropic SSE, the event's bytes as they came. An
/// exception frame becomes Anthropic's `error` event; `true` says the stream ends there.
fn anthropic_chunk_sse(
    f: &Frame,
    text: &mut Vec<u8>,
    meter: Option<&mut Meter>,
) -> Result<bool, StreamError> {
    if f.header(":message-type") != Some("event") {
        if let Event::Exception { kind, data } = exception(f) {
            let e = bedrock_exception(&kind, &data);
            Event::named("error", e).write_sse(text);
        }
        return Ok(true);
    }
    if f.header(":event-type") != Some("chunk") {
        return Ok(false);
    }
    let data = chunk_bytes(f)?;
    let event: Value = serde_json::from_slice(&data).map_err(|_| StreamError::BadChunk)?;
    let name = event["type"].as_str().unwrap_or("message").to_string();
    text.extend_from_slice(b"event: ");
    text.extend_from_slice(name.as_bytes());
    text.extend_from_slice(b"\ndata: ");
    text.extend_from_slice(String::from_utf8_lossy(&data).trim().as_bytes());
    text.extend_from_slice(b"\n\n");
    if let Some(m) = meter {
        m.event(&Event::Json {
            name: Some(Cow::Owned(name)),
            data: event,
        });
    }
    Ok(false)
}

/// A Bedrock exception as Anthropic's `error` event data.
pub fn bedrock_exception(kind: &str, data: &Value) -> Value {
    let message = data["message"].as_str().unwrap_or(kind);
    let error_type = match kind {
        "throttlingException" => "rate_limit_error",
        "validationException" => "invalid_request_error",
        "modelTimeoutException" => "timeout_error",
        "serviceUnavailableException" => "overloaded_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": error_type, "message": format!("{kind}: {message}")}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventstream::encode;

    fn chunk(event: &str) -> Vec<u8> {
        let b = STANDARD.encode(event);
        encode(
            &[(":event-type", "chunk"), (":message-type", "event")],
            format!(r#"{{"bytes":"{b}"}}"#).as_bytes(),
        )
    }

    fn run(c: &mut Converter, parts: &[&[u8]]) -> Result<String, StreamError> {
        let mut out = Vec::new();
        for p in parts {
            out.extend(c.push(p)?);
        }
        out.extend(c.finish()?);
        Ok(String::from_utf8(out).expect("utf8"))
    }

    #[test]
    fn anthropic_chunks_pass_verbatim_at_any_split() {
        let bytes = [
            chunk(r#"{"type":"message_start","z":1,"a":2}"#),
            chunk(r#"{"type":"message_stop"}"#),
        ]
        .concat();
        let want = "event: message_start\ndata: {\"type\":\"message_start\",\"z\":1,\"a\":2}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        for at in 0..=bytes.len() {
            let mut c = Converter::new(Framing::AnthropicChunks, None);
            let (a, b) = bytes.split_at(at);
            assert_eq!(run(&mut c, &[a, b]).expect("ok"), want, "split at {at}");
        }
    }

    #[test]
    fn a_cut_frame_or_an_exception_ends_the_stream() {
        let bytes = chunk(r#"{"type":"message_start"}"#);
        let mut c = Converter::new(Framing::AnthropicChunks, None);
        assert_eq!(
            run(&mut c, &[&bytes[..bytes.len() - 3]]),
            Err(StreamError::CutFrame)
        );
        let throttled = encode(
            &[
                (":message-type", "exception"),
                (":exception-type", "throttlingException"),
            ],
            br#"{"message":"slow down"}"#,
        );
        let mut c = Converter::new(Framing::AnthropicChunks, None);
        let text = run(&mut c, &[&throttled, &chunk(r#"{"type":"message_stop"}"#)]).expect("ok");
        assert!(
            text.starts_with("event: error\n") && text.contains("rate_limit_error"),
            "{text}"
        );
        assert!(!text.contains("message_stop"), "nothing after the error");
    }

    /// Upper-cases `content`, turns `[DONE]` into content, and closes with `[DONE]`.
    struct Upper(bool);
    impl StreamTranslator for Upper {
        fn event(&mut self, e: Event, out: &mut Vec<Event>) {
            let t = match e {
                Event::Json { data, .. } => data["content"].as_str().unwrap_or("").to_uppercase(),
                _ => "<done>".into(),
            };
            out.push(Event::data(json!({ "content": t })));
        }
        fn end(&mut self, out: &mut Vec<Event>) {
            self.0 = true;
            out.push(Event::Done);
        }
        fn ended(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn chained_translators_see_values_and_close_in_turn() {
        let mut c = Converter::new(
            Framing::Sse,
            Some(Box::new(Chain::new(
                Box::new(Upper(false)),
                Box::new(Upper(false)),
            ))),
        );
        let text = run(
            &mut c,
            &[
                b"data: {\"content\":\"a\"}\n\nda",
                b"ta: {\"content\":\"b\"}\n\n",
            ],
        )
        .expect("ok");
        assert_eq!(
            text,
            "data: {\"content\":\"A\"}\n\ndata: {\"content\":\"B\"}\n\ndata: {\"content\":\"<done>\"}\n\ndata: [DONE]\n\n",
            "the first translator's close reaches the second as an event"
        );
        assert!(c.ended());
    }
}
