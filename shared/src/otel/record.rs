//! One request's span tree, encoded as OTLP/protobuf while the request is served, so that nothing
//! is left to encode when it ends: an attribute is written as its `Span.attributes` field the
//! moment it is set, an upstream attempt's span is written whole (header, attributes, end,
//! status) into the trace's output as it starts and ends, and the request span is written there
//! last, from its attributes gathered aside. An ended trace is a run of `ScopeSpans.spans`
//! fields (`bytes`) that a batch only copies (`encode::Head`).
//!
//! Two buffers per trace (the request span's attributes, and the output), reserved once at sizes
//! a request and one attempt fit in.

use super::encode::{
    close, field_len, open, string, tag, varint, varint_len, FIXED32, FIXED64, LEN, VARINT,
};
use super::{SpanId, TraceId};

/// OTLP's `Span.SpanKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Server = 2,
    Client = 3,
}

/// Where a string value of the request span lies in its encoded attributes (its model, which
/// also names the span).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Text {
    start: u32,
    end: u32,
}

/// An attribute's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    /// An array of strings (`gen_ai.response.finish_reasons`).
    List(&'a [String]),
}

/// An attribute's key, encoded once (at compile time for constants): `KeyValue.key = 1` (its tag,
/// length and name) followed by the tag of `KeyValue.value = 2`, in a fixed-size array, so that
/// writing it is a few fixed-size stores (the bytes past `len` are written and cut off again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    bytes: [u8; KEY_ROOM],
    len: u8,
}

/// A key's encoded size, at most: names of up to 61 bytes.
const KEY_ROOM: usize = 64;

impl Key {
    /// Panics (at compile time for a constant) when `name` is longer than 61 bytes.
    pub const fn new(name: &str) -> Key {
        let n = name.as_bytes();
        assert!(
            n.len() + 3 <= KEY_ROOM,
            "an attribute key of at most 61 bytes"
        );
        let mut bytes = [0u8; KEY_ROOM];
        bytes[0] = 0x0a;
        bytes[1] = n.len() as u8;
        let mut i = 0;
        while i < n.len() {
            bytes[2 + i] = n[i];
            i += 1;
        }
        bytes[2 + n.len()] = 0x12;
        Key {
            bytes,
            len: n.len() as u8 + 3,
        }
    }

    pub fn name(&self) -> &str {
        std::str::from_utf8(&self.bytes[2..usize::from(self.len) - 1]).unwrap_or("")
    }
}

/// `Span.flags`: the context-has-is-remote bit and the is-remote bit (the low byte carries the
/// W3C trace flags: sampled).
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;
/// `Status.StatusCode.STATUS_CODE_ERROR`.
const STATUS_ERROR: u64 = 2;

/// Most spans in one trace (the request and its attempts; `TO11_MAX_ATTEMPTS` bounds those).
pub const MAX_SPANS: usize = 64;

/// Room reserved for the request span's attributes, and for the output (a request span of some
/// 20 attributes and one attempt's span take about 900 bytes).
const ATTRS: usize = 512;
const OUTPUT: usize = 1024;

/// A trace's two buffers, kept for a later trace once one has ended (`Trace::into_buffers`), so
/// that a worker's traces reuse the same memory.
#[derive(Debug, Default)]
pub struct Buffers {
    attrs: Vec<u8>,
    out: Vec<u8>,
}

impl Buffers {
    /// Bytes held.
    pub fn capacity(&self) -> usize {
        self.attrs.capacity() + self.out.capacity()
    }
}

/// A request's trace while it is served.
#[derive(Clone, Debug)]
pub struct Trace {
    pub trace_id: TraceId,
    /// The caller's span, when a `traceparent` came.
    pub parent: Option<SpanId>,
    span: SpanId,
    start_ns: u64,
    /// The caller's `tracestate`, passed on as it came.
    state: Option<String>,
    /// The request span's name: its operation, and its model when known.
    operation: &'static str,
    model: Option<Text>,
    /// The request span's attributes, encoded.
    attrs: Vec<u8>,
    /// The ended spans, each a `ScopeSpans.spans` field, then the open attempt's, being written.
    out: Vec<u8>,
    open: Option<Open>,
    /// Spans begun, the request's included.
    spans: usize,
    ended: bool,
}

/// The attempt span being written at the end of `Trace::out`.
#[derive(Clone, Copy, Debug)]
struct Open {
    /// Its index (its attributes are set by it).
    index: usize,
    /// Where its content starts in `out` (after its tag and the byte kept for its length).
    at: usize,
    start_ns: u64,
}

impl Trace {
    /// A trace whose request span is `span`, started at `start_ns` (Unix nanoseconds).
    pub fn new(trace_id: TraceId, span: SpanId, parent: Option<SpanId>, start_ns: u64) -> Trace {
        Trace::reusing(trace_id, span, parent, start_ns, Buffers::default())
    }

    /// The same, written into `buffers` (an ended trace's).
    pub fn reusing(
        trace_id: TraceId,
        span: SpanId,
        parent: Option<SpanId>,
        start_ns: u64,
        buffers: Buffers,
    ) -> Trace {
        let Buffers { mut attrs, mut out } = buffers;
        attrs.clear();
        attrs.reserve(ATTRS);
        out.clear();
        out.reserve(OUTPUT);
        Trace {
            trace_id,
            parent,
            span,
            start_ns,
            state: None,
            operation: "",
            model: None,
            attrs,
            out,
            open: None,
            spans: 1,
            ended: false,
        }
    }

    /// Its buffers, for a later trace.
    pub fn into_buffers(self) -> Buffers {
        Buffers {
            attrs: self.attrs,
            out: self.out,
        }
    }

    /// The request span's id.
    pub fn span_id(&self) -> SpanId {
        self.span
    }

    /// The caller's `tracestate`, written on every span.
    pub fn set_state(&mut self, state: &str) {
        self.state = Some(state.to_string());
    }

    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// Spans begun so far, the request's included.
    pub fn spans(&self) -> usize {
        self.spans
    }

    /// The request span's name: `{operation} {model}`, the model being a string attribute set
    /// on the request span (`set`'s answer), or `{operation}` alone.
    pub fn name(&mut self, operation: &'static str, model: Option<Text>) {
        self.operation = operation;
        self.model = model;
    }

    /// Sets attribute `key` of span `span` (0, the request's, until it ends; an attempt's while
    /// it is open; otherwise nothing is set). For a string on the request span, answers where
    /// its bytes went (see `name`).
    #[inline]
    pub fn set(&mut self, span: usize, key: &Key, value: Value<'_>) -> Option<Text> {
        if span == 0 && !self.ended {
            let start = attribute(&mut self.attrs, key, value);
            return Some(Text {
                start: start as u32,
                end: self.attrs.len() as u32,
            });
        }
        if self.open.is_some_and(|o| o.index == span) {
            attribute(&mut self.out, key, value);
        }
        None
    }

    /// Appends attributes encoded beforehand (`encode_attribute`) to span `span`, as `set` does.
    pub fn extend(&mut self, span: usize, encoded: &[u8]) {
        if span == 0 && !self.ended {
            self.attrs.extend_from_slice(encoded);
        } else if self.open.is_some_and(|o| o.index == span) {
            self.out.extend_from_slice(encoded);
        }
    }

    #[inline]
    pub fn set_str(&mut self, span: usize, key: &Key, value: &str) -> Option<Text> {
        self.set(span, key, Value::Str(value))
    }

    #[inline]
    pub fn set_int(&mut self, span: usize, key: &Key, value: i64) {
        self.set(span, key, Value::Int(value));
    }

    #[inline]
    pub fn set_bool(&mut self, span: usize, key: &Key, value: bool) {
        self.set(span, key, Value::Bool(value));
    }

    /// Begins a child span of the request span, named `{operation} {model}`, and answers its
    /// index; `None` when the trace holds `MAX_SPANS` already, or has ended. A child still open
    /// ends first (at this start).
    pub fn child(
        &mut self,
        id: SpanId,
        kind: Kind,
        start_ns: u64,
        operation: &str,
        model: &str,
    ) -> Option<usize> {
        if self.spans >= MAX_SPANS || self.ended {
            return None;
        }
        if let Some(o) = self.open {
            self.end(o.index, start_ns, None);
        }
        let b = &mut self.out;
        let at = open(b, 2);
        header(
            b,
            &self.trace_id,
            &id,
            self.state.as_deref(),
            Some(&self.span),
        );
        // Span.name = 5
        let name = operation.len() + if model.is_empty() { 0 } else { 1 + model.len() };
        tag(b, 5, LEN);
        varint(b, name as u64);
        b.extend_from_slice(operation.as_bytes());
        if !model.is_empty() {
            b.push(b' ');
            b.extend_from_slice(model.as_bytes());
        }
        times(b, kind, start_ns, None);
        self.open = Some(Open {
            index: self.spans,
            at,
            start_ns,
        });
        self.spans += 1;
        Some(self.spans - 1)
    }

    /// Ends span `span` at `end_ns`; `error`: its status is an error with this message. The
    /// request span ends last: its end closes an attempt left open, and the trace.
    pub fn end(&mut self, span: usize, end_ns: u64, error: Option<&str>) {
        if span == 0 {
            self.end_request(end_ns, error);
            return;
        }
        let Some(o) = self.open.filter(|o| o.index == span) else {
            return;
        };
        self.open = None;
        let b = &mut self.out;
        // Span.end_time_unix_nano = 8
        tag(b, 8, FIXED64);
        b.extend_from_slice(&end_ns.max(o.start_ns).to_le_bytes());
        tail(b, error, false);
        close(b, o.at);
    }

    fn end_request(&mut self, end_ns: u64, error: Option<&str>) {
        if self.ended {
            return;
        }
        if let Some(o) = self.open {
            self.end(o.index, end_ns, None);
        }
        self.ended = true;
        let b = &mut self.out;
        b.reserve(self.attrs.len() + 128);
        let at = open(b, 2);
        header(
            b,
            &self.trace_id,
            &self.span,
            self.state.as_deref(),
            self.parent.as_ref(),
        );
        let model = self
            .model
            .and_then(|t| self.attrs.get(t.start as usize..t.end as usize))
            .unwrap_or_default();
        tag(b, 5, LEN);
        let name = self.operation.len() + if model.is_empty() { 0 } else { 1 + model.len() };
        varint(b, name as u64);
        b.extend_from_slice(self.operation.as_bytes());
        if !model.is_empty() {
            b.push(b' ');
            b.extend_from_slice(model);
        }
        times(b, Kind::Server, self.start_ns, Some(end_ns));
        b.extend_from_slice(&self.attrs);
        tail(b, error, self.parent.is_some());
        close(b, at);
    }

    /// The ended trace's spans, encoded: a run of `ScopeSpans.spans` fields (attempts first,
    /// the request's last). Empty until the request span ends.
    pub fn bytes(&self) -> &[u8] {
        if self.ended {
            &self.out
        } else {
            &[]
        }
    }
}

/// A span's identity: `trace_id = 1`, `span_id = 2`, `trace_state = 3`, `parent_span_id = 4`.
fn header(
    b: &mut Vec<u8>,
    trace: &TraceId,
    span: &SpanId,
    state: Option<&str>,
    parent: Option<&SpanId>,
) {
    b.extend_from_slice(&[0x0a, 16]);
    b.extend_from_slice(&trace.0);
    b.extend_from_slice(&[0x12, 8]);
    b.extend_from_slice(&span.0);
    if let Some(s) = state {
        string(b, 3, s);
    }
    if let Some(p) = parent {
        b.extend_from_slice(&[0x22, 8]);
        b.extend_from_slice(&p.0);
    }
}

/// `kind = 6`, `start_time_unix_nano = 7` and, when known, `end_time_unix_nano = 8`.
fn times(b: &mut Vec<u8>, kind: Kind, start_ns: u64, end_ns: Option<u64>) {
    b.extend_from_slice(&[0x30, kind as u8]);
    tag(b, 7, FIXED64);
    b.extend_from_slice(&start_ns.to_le_bytes());
    if let Some(e) = end_ns {
        tag(b, 8, FIXED64);
        b.extend_from_slice(&e.max(start_ns).to_le_bytes());
    }
}

/// A span's `status = 15` (when an error) and `flags = 16`.
fn tail(b: &mut Vec<u8>, error: Option<&str>, remote_parent: bool) {
    if let Some(message) = error {
        // Status { message = 2, code = 3 }
        let at = open(b, 15);
        string(b, 2, message);
        tag(b, 3, VARINT);
        varint(b, STATUS_ERROR);
        close(b, at);
    }
    let remote = if remote_parent { IS_REMOTE } else { 0 };
    tag(b, 16, FIXED32);
    b.extend_from_slice(&(1 | HAS_IS_REMOTE | remote).to_le_bytes());
}

/// Appends attribute `key` = `value` to `b`, encoded as `Trace::set` writes it, for attributes
/// encoded once and appended to many spans (`Trace::extend`).
pub fn encode_attribute(b: &mut Vec<u8>, key: &Key, value: Value<'_>) {
    attribute(b, key, value);
}

/// Writes `Span.attributes = 9 { KeyValue { key = 1, value = 2 { AnyValue } } }` and answers
/// where a string value's bytes start. Every length is computed first, so none is filled in
/// later; the common case (the whole attribute under 128 bytes, every length one byte) is a few
/// fixed-size stores and one copy of the value.
fn attribute(b: &mut Vec<u8>, key: &Key, value: Value<'_>) -> usize {
    let k = usize::from(key.len);
    let start = b.len();
    // AnyValue: string_value = 1, bool_value = 2, int_value = 3, array_value = 5.
    match value {
        Value::Str(s) if k + s.len() < 125 => {
            let n = s.len();
            b.reserve(KEY_ROOM + 5 + n);
            b.extend_from_slice(&[0x4a, (k + 3 + n) as u8]);
            b.extend_from_slice(&key.bytes);
            b.truncate(start + 2 + k);
            b.extend_from_slice(&[(2 + n) as u8, 0x0a, n as u8]);
            b.extend_from_slice(s.as_bytes());
            return start + 5 + k;
        }
        Value::Int(i @ 0..0x80) => {
            b.reserve(KEY_ROOM + 5);
            b.extend_from_slice(&[0x4a, (k + 3) as u8]);
            b.extend_from_slice(&key.bytes);
            b.truncate(start + 2 + k);
            b.extend_from_slice(&[2, 0x18, i as u8]);
            return b.len();
        }
        Value::Bool(x) => {
            b.reserve(KEY_ROOM + 5);
            b.extend_from_slice(&[0x4a, (k + 3) as u8]);
            b.extend_from_slice(&key.bytes);
            b.truncate(start + 2 + k);
            b.extend_from_slice(&[2, 0x10, u8::from(x)]);
            return b.len();
        }
        _ => {}
    }
    let any = match value {
        Value::Str(s) => field_len(s.len()),
        Value::Int(i) => 1 + varint_len(i as u64),
        Value::Bool(_) => 2,
        Value::List(l) => field_len(list_len(l)),
    };
    // The key's bytes end with the value's tag.
    let kv = k + varint_len(any as u64) + any;
    b.push(0x4a);
    varint(b, kv as u64);
    b.extend_from_slice(&key.bytes[..k]);
    varint(b, any as u64);
    let text = match value {
        Value::Int(i) => {
            b.push(0x18);
            varint(b, i as u64);
            return b.len();
        }
        Value::Bool(x) => {
            b.extend_from_slice(&[0x10, u8::from(x)]);
            return b.len();
        }
        Value::Str(s) => s,
        Value::List(l) => {
            // AnyValue.array_value = 5 → ArrayValue.values = 1 → AnyValue.string_value = 1.
            b.push(0x2a);
            varint(b, list_len(l) as u64);
            let mut at = b.len();
            for s in l {
                b.push(0x0a);
                varint(b, field_len(s.len()) as u64);
                b.push(0x0a);
                varint(b, s.len() as u64);
                at = b.len();
                b.extend_from_slice(s.as_bytes());
            }
            return at;
        }
    };
    b.push(0x0a);
    varint(b, text.len() as u64);
    let at = b.len();
    b.extend_from_slice(text.as_bytes());
    at
}

/// The encoded size of an `ArrayValue` of strings.
fn list_len(l: &[String]) -> usize {
    l.iter().map(|s| field_len(field_len(s.len()))).sum()
}

#[cfg(test)]
mod tests {
    use super::super::read::{self, Read};
    use super::*;

    fn decoded(t: &Trace) -> Vec<Read> {
        read::spans(t.bytes()).expect("decodes")
    }

    #[test]
    fn spans_are_encoded_as_they_go_and_the_request_span_last() {
        let mut t = Trace::new(
            TraceId([1; 16]),
            SpanId([2; 8]),
            Some(SpanId([9; 8])),
            1_000,
        );
        t.set_state("vendor=1");
        let m = t.set_str(0, &Key::new("gen_ai.request.model"), "smart");
        t.name("chat", m);
        t.set_int(0, &Key::new("gen_ai.usage.input_tokens"), 300);
        t.set_int(0, &Key::new("negative"), -5);
        t.set_int(0, &Key::new("small"), 127);
        let long = "m".repeat(200);
        let a = t
            .child(SpanId([3; 8]), Kind::Client, 1_100, "chat", &long)
            .expect("room");
        t.set_str(a, &Key::new("server.address"), "127.0.0.1");
        t.set_bool(0, &Key::new("gen_ai.request.stream"), true);
        let key = Key::new(&"k".repeat(61));
        t.set_str(0, &key, &"v".repeat(70));
        t.set_bool(0, &key, false);
        t.end(a, 1_200, Some("503"));
        t.set_int(a, &Key::new("late"), 1);
        let b = t
            .child(SpanId([4; 8]), Kind::Client, 1_300, "chat", "m")
            .expect("room");
        t.set(
            b,
            &Key::new("gen_ai.response.finish_reasons"),
            Value::List(&["stop".to_string(), "length".to_string()]),
        );
        assert!(t.bytes().is_empty(), "nothing until the request ends");
        t.end(0, 2_000, None);
        t.set_int(0, &Key::new("after"), 1);
        assert_eq!(t.spans(), 3);
        let spans = decoded(&t);
        assert_eq!(spans.len(), 3);
        let (first, second, root) = (&spans[0], &spans[1], &spans[2]);
        assert_eq!(root.trace_id, [1; 16]);
        assert_eq!(root.span_id, [2; 8]);
        assert_eq!(root.parent, Some([9; 8]), "the caller's span");
        assert_eq!(root.name, "chat smart");
        assert_eq!(root.kind, 2);
        assert_eq!((root.start, root.end), (1_000, 2_000));
        assert_eq!(root.state.as_deref(), Some("vendor=1"));
        let (k61, v70) = ("k".repeat(61), "v".repeat(70));
        assert_eq!(
            root.attrs,
            [
                ("gen_ai.request.model", "smart"),
                ("gen_ai.usage.input_tokens", "300"),
                ("negative", "-5"),
                ("small", "127"),
                ("gen_ai.request.stream", "true"),
                (&k61, &v70),
                (&k61, "false"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(key.name(), k61);
        assert_eq!(root.error, None);
        assert_eq!(root.flags, 0x301);
        assert_eq!(
            first.parent,
            Some([2; 8]),
            "an attempt's parent is the request span"
        );
        assert_eq!(first.name, format!("chat {long}"), "a length over 127");
        assert_eq!(first.kind, 3);
        assert_eq!((first.start, first.end), (1_100, 1_200));
        assert_eq!(first.error.as_deref(), Some("503"));
        assert_eq!(first.state.as_deref(), Some("vendor=1"));
        assert_eq!(first.attrs.len(), 1, "{:?}", first.attrs);
        assert_eq!(first.flags, 0x101);
        assert_eq!(
            second.attrs,
            [(
                "gen_ai.response.finish_reasons".to_string(),
                "[stop,length]".to_string()
            )]
        );
        assert_eq!(
            (second.start, second.end),
            (1_300, 2_000),
            "left open: ended with the request"
        );
    }

    #[test]
    fn a_trace_written_into_an_ended_ones_buffers_holds_only_its_own_spans() {
        let mut t = Trace::new(TraceId([1; 16]), SpanId([2; 8]), None, 1);
        t.set_int(0, &Key::new("first"), 1);
        t.end(0, 2, None);
        let buffers = t.into_buffers();
        assert!(buffers.capacity() >= ATTRS + OUTPUT);
        let mut t = Trace::reusing(TraceId([3; 16]), SpanId([4; 8]), None, 5, buffers);
        assert!(t.bytes().is_empty());
        t.set_int(0, &Key::new("second"), 2);
        t.end(0, 6, None);
        let spans = decoded(&t);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].trace_id, [3; 16]);
        assert_eq!(spans[0].attrs, [("second".to_string(), "2".to_string())]);
    }

    #[test]
    fn a_trace_holds_at_most_max_spans() {
        let mut t = Trace::new(TraceId([1; 16]), SpanId([2; 8]), None, 1);
        let made = (0..100)
            .filter_map(|i| t.child(SpanId([i + 1; 8]), Kind::Client, 2, "chat", ""))
            .count();
        assert_eq!(made, MAX_SPANS - 1);
        t.end(0, 3, Some("error"));
        let spans = decoded(&t);
        assert_eq!(spans.len(), MAX_SPANS);
        let root = spans.last().expect("root");
        assert_eq!(root.name, "");
        assert_eq!(root.error.as_deref(), Some("error"));
        assert_eq!(root.parent, None);
        assert_eq!(root.flags, 0x101);
        assert!(t
            .child(SpanId([7; 8]), Kind::Client, 4, "chat", "")
            .is_none());
    }
}
