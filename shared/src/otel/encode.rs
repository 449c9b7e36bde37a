//! OTLP/protobuf, written by hand from the official
//! `opentelemetry/proto/{collector/trace,trace,common,resource}/v1/*.proto` field numbers (no
//! intermediate message structs): the wire primitives `record::Trace` encodes its spans with as
//! the request goes, and the head of an `ExportTraceServiceRequest` (one resource, one scope) that
//! turns a run of encoded spans into a batch (`Head`). The integration test decodes what is
//! written here with the official definitions (Python `opentelemetry-proto`).

use super::record::Trace;

/// Wire types.
pub(super) const VARINT: u32 = 0;
pub(super) const FIXED64: u32 = 1;
pub(super) const LEN: u32 = 2;
pub(super) const FIXED32: u32 = 5;

/// The instrumentation scope named in every batch.
pub struct Scope<'a> {
    pub name: &'a str,
    pub version: &'a str,
}

/// The enclosing messages of a batch: the resource and the scope, encoded once per process. A
/// batch is built as a buffer whose first `room()` bytes are kept free, followed by encoded spans
/// (`Trace::bytes`, each a `ScopeSpans.spans` field); `seal` writes the head into the free room,
/// right before the spans, whose lengths it then knows. The spans are never moved to make room
/// for a length, nor copied into a request body (`Bytes::from(buf).slice(start..)`).
#[derive(Clone, Debug)]
pub struct Head {
    /// `ResourceSpans.resource = 1` (tag, length and content).
    resource: Vec<u8>,
    /// `ScopeSpans.scope = 1` (tag, length and content).
    scope: Vec<u8>,
}

impl Head {
    pub fn new(resource: &[(String, String)], scope: &Scope<'_>) -> Head {
        let mut res = Vec::new();
        for (k, v) in resource {
            // Resource.attributes = 1
            nested(&mut res, 1, |b| {
                string(b, 1, k);
                nested(b, 2, |b| string(b, 1, v));
            });
        }
        let mut sc = Vec::new();
        string(&mut sc, 1, scope.name);
        string(&mut sc, 2, scope.version);
        let (mut resource, mut scope) = (Vec::new(), Vec::new());
        bytes(&mut resource, 1, &res);
        bytes(&mut scope, 1, &sc);
        Head { resource, scope }
    }

    /// The bytes kept free before the spans: the resource and the scope, and two tags and two
    /// lengths (at most 1 + 10 bytes each).
    pub fn room(&self) -> usize {
        2 * 11 + self.resource.len() + self.scope.len()
    }

    /// Writes the head into `buf`'s first `room()` bytes, right before the spans that follow,
    /// and returns where the batch starts.
    pub fn seal(&self, buf: &mut [u8]) -> usize {
        let room = self.room();
        let spans = buf.len() - room;
        // Lengths from the inside out: ScopeSpans, then ResourceSpans.
        let scope_spans = self.scope.len() + spans;
        let resource_spans = self.resource.len() + field_len(scope_spans);
        let mut front = Vec::with_capacity(room);
        // ExportTraceServiceRequest.resource_spans = 1
        tag(&mut front, 1, LEN);
        varint(&mut front, resource_spans as u64);
        front.extend_from_slice(&self.resource);
        // ResourceSpans.scope_spans = 2
        tag(&mut front, 2, LEN);
        varint(&mut front, scope_spans as u64);
        front.extend_from_slice(&self.scope);
        let start = room - front.len();
        buf[start..room].copy_from_slice(&front);
        start
    }
}

/// An encoded batch: the bytes are `buf[start..]`.
pub struct Encoded {
    pub buf: Vec<u8>,
    pub start: usize,
}

impl Encoded {
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// `traces` (ended) as one `ExportTraceServiceRequest` of one resource and one scope.
pub fn encode_batch<'t>(
    resource: &[(String, String)],
    scope: &Scope<'_>,
    traces: impl IntoIterator<Item = &'t Trace>,
) -> Encoded {
    let head = Head::new(resource, scope);
    let mut buf = vec![0; head.room()];
    for t in traces {
        buf.extend_from_slice(t.bytes());
    }
    let start = head.seal(&mut buf);
    Encoded { buf, start }
}

/// The size of a length-delimited field of `len` bytes (one-byte tag).
pub(super) fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

pub(super) fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[inline]
pub(super) fn tag(b: &mut Vec<u8>, field: u32, wire: u32) {
    varint(b, u64::from(field << 3 | wire));
}

#[inline]
pub(super) fn varint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

#[inline]
pub(super) fn string(b: &mut Vec<u8>, field: u32, s: &str) {
    bytes(b, field, s.as_bytes());
}

#[inline]
pub(super) fn bytes(b: &mut Vec<u8>, field: u32, v: &[u8]) {
    tag(b, field, LEN);
    varint(b, v.len() as u64);
    b.extend_from_slice(v);
}

/// A length-delimited field whose content `f` writes. One byte is kept for the length, which is
/// filled in afterwards (`close`). No allocation.
#[inline]
pub(super) fn nested(b: &mut Vec<u8>, field: u32, f: impl FnOnce(&mut Vec<u8>)) {
    let start = open(b, field);
    f(b);
    close(b, start);
}

/// Starts a length-delimited field whose content follows: its tag and one byte kept for its
/// length. Returns where the content starts (for `close`).
#[inline]
pub(super) fn open(b: &mut Vec<u8>, field: u32) -> usize {
    tag(b, field, LEN);
    b.push(0);
    b.len()
}

/// Ends the field `open` started at `start`: its length goes into the byte kept for it, and only
/// a content of 128 bytes or more (a span) moves to make room for a longer length (one memmove).
pub(super) fn close(b: &mut Vec<u8>, start: usize) {
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
    // The content moves `n` bytes on, and the length's first byte stays in the byte kept for it.
    let end = b.len();
    b.resize(end + n, 0);
    b.copy_within(start..end, start + n);
    b[start - 1..start + n].copy_from_slice(&prefix[..=n]);
}

#[cfg(test)]
mod tests {
    use super::super::{Kind, SpanId, TraceId};
    use super::*;

    /// The contents of `b`'s length-delimited fields numbered `n`.
    fn field(b: &[u8], n: u32) -> Vec<&[u8]> {
        super::super::read::contents(b, n).expect("decodes")
    }

    fn fields(b: &[u8]) -> usize {
        super::super::read::count(b).expect("decodes")
    }

    fn trace(n: u8, model: &str) -> Trace {
        let mut t = Trace::new(TraceId([n; 16]), SpanId([n | 1; 8]), None, 1);
        let m = t.set_str(0, &super::super::genai::REQUEST_MODEL, model);
        t.name("chat", m);
        let a = t
            .child(SpanId([2; 8]), Kind::Client, 1, "chat", model)
            .expect("room");
        t.end(a, 2, None);
        t.end(0, 2, None);
        t
    }

    #[test]
    fn a_batch_is_a_resource_a_scope_and_every_span_with_its_attributes() {
        let traces = [trace(1, "smart"), trace(2, "fast")];
        let encoded = encode_batch(
            &[("service.name".into(), "gw".into())],
            &Scope {
                name: "to11",
                version: "1",
            },
            &traces,
        );
        let out = encoded.bytes();
        assert_eq!(fields(out), 1, "one resource, and nothing else");
        let rs = &field(out, 1)[0];
        let resource = &field(rs, 1)[0];
        let kv = &field(resource, 1)[0];
        assert_eq!(field(kv, 1)[0], b"service.name");
        assert_eq!(field(field(kv, 2)[0], 1)[0], b"gw");
        let ss = &field(rs, 2)[0];
        let scope = &field(ss, 1)[0];
        assert_eq!(field(scope, 1)[0], b"to11");
        assert_eq!(field(scope, 2)[0], b"1");
        let spans = super::super::read::batch(out).expect("decodes");
        assert_eq!(spans.len(), 4);
        assert_eq!(spans[1].name, "chat smart");
        assert_eq!(spans[3].name, "chat fast");
        assert_eq!(spans[3].trace_id, [2; 16]);
        assert_eq!(spans[2].parent, Some([3; 8]), "trace 2's request span");
    }

    #[test]
    fn a_large_batch_has_lengths_of_several_bytes_and_decodes_whole() {
        let traces: Vec<Trace> = (0..300u16)
            .map(|n| trace(n as u8, &"m".repeat(100 + usize::from(n))))
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
        assert!(out.len() > 150_000, "{}", out.len());
        assert_eq!(fields(out), 1);
        let rs = &field(out, 1)[0];
        assert_eq!(fields(rs), 2);
        let spans = super::super::read::batch(out).expect("decodes");
        assert_eq!(spans.len(), 600);
        assert_eq!(spans[599].trace_id, [43; 16], "299 as u8");
        assert_eq!(spans[599].name, format!("chat {}", "m".repeat(399)));
        for n in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut b = vec![];
            varint(&mut b, n);
            assert_eq!(varint_len(n), b.len(), "{n}");
        }
    }
}
