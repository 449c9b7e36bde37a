//! A batch of traces as an OTLP `ExportTraceServiceRequest` in protobuf, written directly from the
//! compact records (no intermediate message structs). Field numbers are those of the official
//! `opentelemetry/proto/{collector/trace,trace,common,resource}/v1/*.proto`; the integration test
//! decodes what this writes with the official definitions (Python `opentelemetry-proto`).

use super::record::{Attr, Trace, Value};

/// Wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// `Span.flags`: the context-has-is-remote bit and the is-remote bit (the low byte carries the
/// W3C trace flags).
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;
/// `Status.StatusCode.STATUS_CODE_ERROR`.
const STATUS_ERROR: u64 = 2;

/// The instrumentation scope named in every batch.
pub struct Scope<'a> {
    pub name: &'a str,
    pub version: &'a str,
}

/// An encoded batch: the bytes are `buf[start..]`. The spans are written once, after room left
/// for the messages that enclose them, whose lengths are known only at the end; those are
/// written last, right before the spans. The batch is never moved to make room for a length, nor
/// copied into a request body (`Bytes::from(buf).slice(start..)`).
pub struct Encoded {
    pub buf: Vec<u8>,
    pub start: usize,
}

impl Encoded {
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Encodes `traces` as one `ExportTraceServiceRequest` of one resource and one scope.
pub fn encode_batch<'t>(
    resource: &[(String, String)],
    scope: &Scope<'_>,
    traces: impl IntoIterator<Item = &'t Trace> + Clone,
) -> Encoded {
    // ResourceSpans.resource = 1, then ScopeSpans.scope = 1: small, written aside first.
    let mut res = Vec::new();
    for (k, v) in resource {
        // Resource.attributes = 1
        nested(&mut res, 1, |b| key_value(b, k, |b| string(b, 1, v)));
    }
    let mut sc = Vec::new();
    string(&mut sc, 1, scope.name);
    string(&mut sc, 2, scope.version);
    // Headroom: three tags and three lengths (at most 1 + 10 bytes each), and those two.
    let head = 3 * 11 + 2 * 11 + res.len() + sc.len();
    // Room for the whole batch up front: its strings, and a little for each span and attribute.
    let room: usize = traces
        .clone()
        .into_iter()
        .map(|t| t.text.len() + 80 * t.spans.len() + 52 * t.attrs.len())
        .sum();
    let mut buf = Vec::with_capacity(head + room);
    buf.resize(head, 0);
    for t in traces {
        for i in 0..t.spans.len() {
            // ScopeSpans.spans = 2
            nested(&mut buf, 2, |b| span(b, t, i));
        }
    }
    let spans = buf.len() - head;
    // Lengths from the inside out: ScopeSpans, then ResourceSpans.
    let scope_spans = field_len(sc.len()) + spans;
    let resource_spans = field_len(res.len()) + field_len(scope_spans);
    let mut front = Vec::with_capacity(head);
    // ExportTraceServiceRequest.resource_spans = 1
    tag(&mut front, 1, LEN);
    varint(&mut front, resource_spans as u64);
    bytes(&mut front, 1, &res);
    // ResourceSpans.scope_spans = 2
    tag(&mut front, 2, LEN);
    varint(&mut front, scope_spans as u64);
    bytes(&mut front, 1, &sc);
    let start = head - front.len();
    buf[start..head].copy_from_slice(&front);
    Encoded { buf, start }
}

/// The size of a length-delimited field of `len` bytes (one-byte tag).
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn span(b: &mut Vec<u8>, t: &Trace, i: usize) {
    let s = &t.spans[i];
    bytes(b, 1, &t.trace_id.0);
    bytes(b, 2, &s.id.0);
    if let Some(state) = t.state {
        string(b, 3, t.str(state));
    }
    let parent = match (i, s.parent) {
        (0, _) => t.parent,
        (_, p) => p,
    };
    if let Some(p) = parent {
        bytes(b, 4, &p.0);
    }
    string(b, 5, t.str(s.name));
    tag(b, 6, VARINT);
    varint(b, s.kind as u64);
    tag(b, 7, FIXED64);
    b.extend_from_slice(&s.start_ns.to_le_bytes());
    tag(b, 8, FIXED64);
    b.extend_from_slice(&s.end_ns.to_le_bytes());
    for a in t.attrs_of(i) {
        attribute(b, t, a);
    }
    if let Some(message) = s.error {
        // Span.status = 15: message = 2, code = 3
        nested(b, 15, |b| {
            string(b, 2, t.str(message));
            tag(b, 3, VARINT);
            varint(b, STATUS_ERROR);
        });
    }
    let remote = if i == 0 && t.parent.is_some() {
        IS_REMOTE
    } else {
        0
    };
    tag(b, 16, FIXED32);
    b.extend_from_slice(&(1 | HAS_IS_REMOTE | remote).to_le_bytes());
}

/// `Span.attributes = 9`.
#[inline]
fn attribute(b: &mut Vec<u8>, t: &Trace, a: &Attr) {
    nested(b, 9, |b| key_value(b, a.key, |b| any_value(b, t, a.value)));
}

/// `KeyValue { key = 1; value = 2 }`.
#[inline]
fn key_value(b: &mut Vec<u8>, key: &str, value: impl FnOnce(&mut Vec<u8>)) {
    string(b, 1, key);
    nested(b, 2, value);
}

/// The inside of an `AnyValue`: string = 1, bool = 2, int = 3, array = 5.
#[inline]
fn any_value(b: &mut Vec<u8>, t: &Trace, v: Value) {
    match v {
        Value::Text(s) => string(b, 1, t.str(s)),
        Value::Bool(x) => {
            tag(b, 2, VARINT);
            varint(b, u64::from(x));
        }
        Value::Int(x) => {
            tag(b, 3, VARINT);
            varint(b, x as u64);
        }
        // ArrayValue { repeated AnyValue values = 1 }
        Value::TextList(s) => nested(b, 5, |b| nested(b, 1, |b| string(b, 1, t.str(s)))),
    }
}

#[inline]
fn tag(b: &mut Vec<u8>, field: u32, wire: u32) {
    varint(b, u64::from(field << 3 | wire));
}

#[inline]
fn varint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

#[inline]
fn string(b: &mut Vec<u8>, field: u32, s: &str) {
    bytes(b, field, s.as_bytes());
}

#[inline]
fn bytes(b: &mut Vec<u8>, field: u32, v: &[u8]) {
    tag(b, field, LEN);
    varint(b, v.len() as u64);
    b.extend_from_slice(v);
}

/// A length-delimited field whose content `f` writes. One byte is kept for the length, which is
/// filled in afterwards; only a content of 128 bytes or more (a span) moves to make room
/// for a longer length. No allocation.
#[inline]
fn nested(b: &mut Vec<u8>, field: u32, f: impl FnOnce(&mut Vec<u8>)) {
    tag(b, field, LEN);
    b.push(0);
    let start = b.len();
    f(b);
    let len = b.len() - start;
    if len < 0x80 {
        b[start - 1] = len as u8;
        return;
    }
    let mut prefix = [0u8; 10];
    let mut n = 0;
    let mut v = len as u64;
    while v >= 0x80 {
        prefix[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    prefix[n] = v as u8;
    // The content moves `n` bytes on (one memmove), and the length's first byte stays in the
    // byte kept for it.
    let end = b.len();
    b.resize(end + n, 0);
    b.copy_within(start..end, start + n);
    b[start - 1..start + n].copy_from_slice(&prefix[..=n]);
}

#[cfg(test)]
mod tests {
    use super::super::{Kind, SpanId, TraceId};
    use super::*;

    /// A minimal reader of the protobuf wire format, enough to walk what was written.
    fn fields(mut b: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
        fn read_varint(b: &mut &[u8]) -> u64 {
            let mut v = 0u64;
            let mut shift = 0;
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return v;
                }
                shift += 7;
            }
        }
        let mut out = vec![];
        while !b.is_empty() {
            let key = read_varint(&mut b) as u32;
            let (field, wire) = (key >> 3, key & 7);
            let value = match wire {
                VARINT => read_varint(&mut b).to_le_bytes().to_vec(),
                FIXED64 => {
                    let (v, rest) = b.split_at(8);
                    b = rest;
                    v.to_vec()
                }
                FIXED32 => {
                    let (v, rest) = b.split_at(4);
                    b = rest;
                    v.to_vec()
                }
                _ => {
                    let n = read_varint(&mut b) as usize;
                    let (v, rest) = b.split_at(n);
                    b = rest;
                    v.to_vec()
                }
            };
            out.push((field, wire, value));
        }
        out
    }

    fn field(b: &[u8], n: u32) -> Vec<Vec<u8>> {
        fields(b)
            .into_iter()
            .filter(|f| f.0 == n)
            .map(|f| f.2)
            .collect()
    }

    #[test]
    fn a_batch_is_a_resource_a_scope_and_every_span_with_its_attributes() {
        let mut t = Trace::new(
            TraceId([1; 16]),
            SpanId([2; 8]),
            Some(SpanId([9; 8])),
            1_000,
        );
        t.name(0, "chat", "smart");
        t.set_str(0, "gen_ai.operation.name", "chat");
        t.set_int(0, "gen_ai.usage.input_tokens", 300);
        let long = "m".repeat(200);
        t.set_str(0, "gen_ai.request.model", &long);
        let a = t.child(SpanId([3; 8]), Kind::Client, 1_100).expect("room");
        t.name(a, "chat", "gpt-4o");
        t.set_int(a, "http.response.status_code", 503);
        t.end(a, 1_200, Some("503"));
        t.end(0, 2_000, None);
        let encoded = encode_batch(
            &[("service.name".into(), "gw".into())],
            &Scope {
                name: "to11",
                version: "1",
            },
            [&t],
        );
        let out = encoded.bytes();
        let top = fields(out);
        assert_eq!(top.len(), 1, "one resource, and nothing else");
        let rs = &field(out, 1)[0];
        let resource = &field(rs, 1)[0];
        let kv = &field(resource, 1)[0];
        assert_eq!(field(kv, 1)[0], b"service.name");
        let ss = &field(rs, 2)[0];
        assert_eq!(field(&field(ss, 1)[0], 1)[0], b"to11");
        let spans = field(ss, 2);
        assert_eq!(spans.len(), 2);
        let (root, attempt) = (&spans[0], &spans[1]);
        assert_eq!(field(root, 1)[0], [1; 16]);
        assert_eq!(field(root, 4)[0], [9; 8], "the caller's span is the parent");
        assert_eq!(field(root, 5)[0], b"chat smart");
        assert_eq!(field(root, 9).len(), 3);
        let tokens = &field(root, 9)[1];
        assert_eq!(field(tokens, 1)[0], b"gen_ai.usage.input_tokens");
        assert_eq!(
            field(&field(tokens, 2)[0], 3)[0][..2],
            300u64.to_le_bytes()[..2]
        );
        let model = &field(root, 9)[2];
        assert_eq!(
            field(&field(model, 2)[0], 1)[0],
            long.as_bytes(),
            "a length over 127"
        );
        assert!(field(root, 15).is_empty());
        assert_eq!(
            field(attempt, 4)[0],
            [2; 8],
            "an attempt's parent is the request span"
        );
        assert_eq!(field(attempt, 6)[0][0], 3, "client");
        assert_eq!(field(attempt, 7)[0], 1_100u64.to_le_bytes());
        let status = &field(attempt, 15)[0];
        assert_eq!(field(status, 2)[0], b"503");
        assert_eq!(field(status, 3)[0][0], 2);
        assert_eq!(field(root, 16)[0], 0x301u32.to_le_bytes());
        assert_eq!(field(attempt, 16)[0], 0x101u32.to_le_bytes());
    }

    #[test]
    fn a_large_batch_has_lengths_of_several_bytes_and_decodes_whole() {
        let traces: Vec<Trace> = (0..300u16)
            .map(|n| {
                let n = n as u8;
                let mut t = Trace::new(TraceId([n; 16]), SpanId([n; 8]), None, 1);
                t.name(0, "chat", &"x".repeat(150));
                t.set_str(0, "gen_ai.request.model", &"m".repeat(100));
                t.end(0, 2, None);
                t
            })
            .collect();
        let encoded = encode_batch(
            &[("service.name".into(), "gw".into())],
            &Scope {
                name: "to11",
                version: "1",
            },
            traces.iter(),
        );
        let out = encoded.bytes();
        assert!(out.len() > 70_000, "{}", out.len());
        assert_eq!(fields(out).len(), 1);
        let rs = &field(out, 1)[0];
        assert_eq!(fields(rs).len(), 2);
        let ss = &field(rs, 2)[0];
        let spans = field(ss, 2);
        assert_eq!(spans.len(), 300);
        assert_eq!(field(&spans[299], 1)[0], [43; 16], "299 as u8");
        for n in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut b = vec![];
            varint(&mut b, n);
            assert_eq!(varint_len(n), b.len(), "{n}");
        }
    }
}
