//! One request's span tree as recorded on the request path, built to cost little: ids are fixed
//! arrays, every string value is appended to one buffer (`text`) and named by its range, and the
//! spans and attributes live in two vectors reserved once. The exporter encodes it (`encode`).

use super::{SpanId, TraceId};

/// OTLP's `Span.SpanKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Server = 2,
    Client = 3,
}

/// A range of `Trace::text`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Text {
    start: u32,
    end: u32,
}

/// An attribute's value: 16 bytes (a string, fixed or not, is copied into `Trace::text`,
/// which keeps `Attr` at 40 bytes; see `ATTRS`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Text(Text),
    Int(i64),
    Bool(bool),
    /// A one-element array of strings (`gen_ai.response.finish_reasons`).
    TextList(Text),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attr {
    /// Index of the span in `Trace::spans`.
    pub span: u8,
    pub key: &'static str,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub id: SpanId,
    /// `None`: the request span's own parent is `Trace::parent`.
    pub parent: Option<SpanId>,
    pub kind: Kind,
    pub name: Text,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Status error, with its message.
    pub error: Option<Text>,
}

/// A request's spans: `spans[0]` is the request's (kind server), the others its attempts.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub trace_id: TraceId,
    /// The caller's span, when a `traceparent` came.
    pub parent: Option<SpanId>,
    /// The caller's `tracestate`, passed on as it came.
    pub state: Option<Text>,
    pub text: String,
    pub spans: Vec<Span>,
    pub attrs: Vec<Attr>,
}

/// Attributes reserved per trace: a request and one attempt set about 22. 25 of 40 bytes stay
/// within the allocator's small sizes (1 KiB), whose path costs a fifth of the larger ones'.
const ATTRS: usize = 25;

/// Most spans in one trace (the request and its attempts; `TO11_MAX_ATTEMPTS` bounds those).
pub const MAX_SPANS: usize = 64;

impl Trace {
    /// A trace whose request span is `span`, started at `start_ns` (Unix nanoseconds).
    pub fn new(trace_id: TraceId, span: SpanId, parent: Option<SpanId>, start_ns: u64) -> Trace {
        let mut spans = Vec::with_capacity(4);
        spans.push(Span {
            id: span,
            parent: None,
            kind: Kind::Server,
            name: Text::default(),
            start_ns,
            end_ns: start_ns,
            error: None,
        });
        Trace {
            trace_id,
            parent,
            state: None,
            text: String::with_capacity(256),
            spans,
            attrs: Vec::with_capacity(ATTRS),
        }
    }

    /// The request span's id.
    pub fn span_id(&self) -> SpanId {
        self.spans[0].id
    }

    /// Appends `s` to the text buffer.
    pub fn text(&mut self, s: &str) -> Text {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        Text {
            start,
            end: self.text.len() as u32,
        }
    }

    /// A span name made of two parts (`{operation} {model}`).
    pub fn name(&mut self, span: usize, operation: &str, model: &str) {
        let start = self.text.len() as u32;
        self.text.push_str(operation);
        if !model.is_empty() {
            self.text.push(' ');
            self.text.push_str(model);
        }
        if let Some(s) = self.spans.get_mut(span) {
            s.name = Text {
                start,
                end: self.text.len() as u32,
            };
        }
    }

    pub fn str(&self, t: Text) -> &str {
        self.text
            .get(t.start as usize..t.end as usize)
            .unwrap_or("")
    }

    /// Adds a child span of the request span; `None` when the trace holds `MAX_SPANS` already.
    pub fn child(&mut self, id: SpanId, kind: Kind, start_ns: u64) -> Option<usize> {
        if self.spans.len() >= MAX_SPANS {
            return None;
        }
        let parent = Some(self.span_id());
        self.spans.push(Span {
            id,
            parent,
            kind,
            name: Text::default(),
            start_ns,
            end_ns: start_ns,
            error: None,
        });
        Some(self.spans.len() - 1)
    }

    pub fn set_str(&mut self, span: usize, key: &'static str, value: &str) {
        let t = self.text(value);
        self.push(span, key, Value::Text(t));
    }

    pub fn set_int(&mut self, span: usize, key: &'static str, value: i64) {
        self.push(span, key, Value::Int(value));
    }

    pub fn set_bool(&mut self, span: usize, key: &'static str, value: bool) {
        self.push(span, key, Value::Bool(value));
    }

    pub fn set_list(&mut self, span: usize, key: &'static str, value: &str) {
        let t = self.text(value);
        self.push(span, key, Value::TextList(t));
    }

    fn push(&mut self, span: usize, key: &'static str, value: Value) {
        self.attrs.push(Attr {
            span: span as u8,
            key,
            value,
        });
    }

    /// Ends span `span` at `end_ns`; `error`: its status is an error with this message.
    pub fn end(&mut self, span: usize, end_ns: u64, error: Option<&str>) {
        let error = error.map(|e| self.text(e));
        if let Some(s) = self.spans.get_mut(span) {
            s.end_ns = end_ns.max(s.start_ns);
            s.error = error;
        }
    }

    /// The attributes of span `span`, in the order they were set.
    pub fn attrs_of(&self, span: usize) -> impl Iterator<Item = &Attr> {
        self.attrs
            .iter()
            .filter(move |a| usize::from(a.span) == span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traces_attributes_fit_the_allocators_small_sizes() {
        assert_eq!(std::mem::size_of::<Attr>(), 40);
        assert!(std::mem::size_of::<Attr>() * ATTRS <= 1024);
    }
}
