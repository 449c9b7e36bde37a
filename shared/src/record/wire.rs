//! `encode_batch`'s writer: the postcard bytes of a batch of records, written field by field
//! (the bytes serde's postcard serializer writes for `RequestRecord`, which the control plane
//! decodes with postcard). Serde's path pushes every byte through the serializer's output trait;
//! this one reserves room for a whole record once and writes its fields inline: 880 instead of
//! 1,469 instructions per record (callgrind), on a replica's hot core.
//!
//! postcard's rules used here: unsigned integers as LEB128 varints (u16, u32, u64, lengths),
//! `i64` zigzag-encoded then as a varint, `bool` one byte, `Option` a 0/1 byte then the value,
//! strings, byte strings and sequences their length then their items, maps their length then
//! key, value pairs, a unit enum variant its index as a varint, a struct its fields in order.

use std::collections::BTreeMap;

use super::{FailedAttempt, RequestRecord, BATCH_FORMAT};
use crate::usage::{Usage, UsageSource};

/// Room left at the front of a batch's buffer for its head: `BATCH_FORMAT` and the record count
/// (a varint of at most 10 bytes), written once the batch is complete.
const HEAD: usize = 11;

/// Records encoded as they finish, for the usage stream: postcard's bytes of a slice of
/// `RequestRecord`s, built one record at a time in one buffer (room for the head first), so a
/// record never waits in memory as a struct and a batch crosses threads as one allocation.
/// Batches are joined by appending the records' bytes; `seal` writes the head.
#[derive(Debug)]
pub struct Batch {
    /// `HEAD` bytes of room (the head, right-aligned, once sealed), then the records.
    buf: Vec<u8>,
    /// Where the head starts once sealed (`HEAD` before).
    start: usize,
    count: usize,
    /// The first record's time: how late the batch is when shipped.
    first: Option<chrono::DateTime<chrono::Utc>>,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch::with_capacity(0)
    }
}

impl Batch {
    /// An empty batch with room for about `records` records.
    pub fn with_capacity(records: usize) -> Batch {
        Batch::with_room(records * 192)
    }

    /// An empty batch with room for `bytes` bytes of records (the room of a batch as large as
    /// one that held `bytes_len()`).
    pub fn with_room(bytes: usize) -> Batch {
        let mut buf = Vec::with_capacity(HEAD + bytes);
        buf.resize(HEAD, 0);
        Batch {
            buf,
            start: HEAD,
            count: 0,
            first: None,
        }
    }

    /// Appends one record's bytes.
    pub fn push(&mut self, r: &RequestRecord) {
        debug_assert_eq!(self.start, HEAD, "a sealed batch takes no more records");
        // Room for the whole record first, then its fields written through a cursor over it:
        // no capacity check and no length update per byte, as a `Vec`'s pushes make.
        let start = self.buf.len();
        self.buf.resize(start + room(r), 0);
        let mut w = W {
            buf: &mut self.buf[start..],
            at: 0,
        };
        record(&mut w, r);
        let end = start + w.at;
        self.buf.truncate(end);
        self.count += 1;
        self.first.get_or_insert(r.time);
    }

    /// Appends `other`'s records (both unsealed).
    pub fn append(&mut self, other: &Batch) {
        self.buf.extend_from_slice(&other.buf[HEAD..]);
        self.count += other.count;
        if self.first.is_none() {
            self.first = other.first;
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the records (the head not counted).
    pub fn bytes_len(&self) -> usize {
        self.buf.len() - HEAD
    }

    /// The first record's time.
    pub fn first_time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.first
    }

    /// Writes the head in the room before the records; `bytes` is then the whole batch.
    pub fn seal(&mut self) {
        let mut head = [0u8; HEAD];
        let mut w = W {
            buf: &mut head,
            at: 0,
        };
        w.byte(BATCH_FORMAT);
        varint(&mut w, self.count as u64);
        let len = w.at;
        self.start = HEAD - len;
        self.buf[self.start..HEAD].copy_from_slice(&head[..len]);
    }

    /// The batch as the usage stream carries it (`decode_batch` reads it). Sealed first.
    pub fn bytes(&self) -> &[u8] {
        debug_assert!(self.start < HEAD, "seal the batch first");
        &self.buf[self.start..]
    }

    /// The records back, from a sealed batch (embedded mode stores them directly).
    pub fn records(&self) -> Result<Vec<RequestRecord>, super::BatchError> {
        super::decode_batch(self.bytes())
    }
}

/// `BATCH_FORMAT`, then `records` as postcard writes a slice of them.
pub(super) fn encode(records: &[RequestRecord]) -> Vec<u8> {
    let mut batch = Batch::with_capacity(records.len());
    for r in records {
        batch.push(r);
    }
    batch.seal();
    batch.buf.drain(..batch.start);
    batch.buf
}

/// At most the bytes `record` writes for `r`: every varint at its longest, plus its texts.
fn room(r: &RequestRecord) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let failed: usize = r
        .failed
        .iter()
        .map(|f| 40 + f.provider.len() + f.model.len() + opt(&f.error))
        .sum();
    let tags: usize = r.tags.iter().map(|(k, v)| 20 + k.len() + v.len()).sum();
    320 + r.surface.len()
        + r.requested_model.len()
        + r.layer.len()
        + opt(&r.function)
        + opt(&r.route)
        + opt(&r.provider)
        + opt(&r.provider_kind)
        + opt(&r.model)
        + opt(&r.error)
        + opt(&r.user)
        + failed
        + tags
}

/// A cursor over the room `room` reserved for one record: `room` is an upper bound, so a write
/// past the end is a bug in it (and panics rather than writing a wrong record).
struct W<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl W<'_> {
    #[inline(always)]
    fn byte(&mut self, b: u8) {
        self.buf[self.at] = b;
        self.at += 1;
    }

    #[inline(always)]
    fn slice(&mut self, b: &[u8]) {
        self.buf[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
    }
}

fn record(out: &mut W<'_>, r: &RequestRecord) {
    // Destructured: a field added to `RequestRecord` must be written here too, in its place.
    let RequestRecord {
        id,
        time,
        project,
        key,
        surface,
        requested_model,
        layer,
        function,
        route,
        provider,
        provider_kind,
        model,
        stream,
        status,
        error,
        attempts,
        failed: failures,
        latency_us,
        ttfb_us,
        usage: used,
        usage_source,
        cancelled,
        cost,
        user,
        tags: labels,
    } = r;
    bytes(out, id.as_bytes());
    varint(out, zigzag(time.timestamp_micros()));
    bytes(out, project.as_bytes());
    bytes(out, key.as_bytes());
    text(out, surface);
    text(out, requested_model);
    text(out, layer);
    opt_text(out, function.as_deref());
    opt_text(out, route.as_deref());
    opt_text(out, provider.as_deref());
    opt_text(out, provider_kind.as_deref());
    opt_text(out, model.as_deref());
    out.byte(u8::from(*stream));
    varint(out, u64::from(*status));
    opt_text(out, error.as_deref());
    varint(out, u64::from(*attempts));
    varint(out, failures.len() as u64);
    for f in failures {
        failed(out, f);
    }
    varint(out, *latency_us);
    opt_varint(out, *ttfb_us);
    match used {
        Some(u) => {
            out.byte(1);
            usage(out, u);
        }
        None => out.byte(0),
    }
    match usage_source {
        Some(s) => {
            out.byte(1);
            out.byte(match s {
                UsageSource::Reported => 0,
                UsageSource::Estimated => 1,
            });
        }
        None => out.byte(0),
    }
    out.byte(u8::from(*cancelled));
    opt_varint(out, *cost);
    opt_text(out, user.as_deref());
    tags(out, labels);
}

fn failed(out: &mut W<'_>, f: &FailedAttempt) {
    text(out, &f.provider);
    text(out, &f.model);
    opt_varint(out, f.status.map(u64::from));
    opt_text(out, f.error.as_deref());
}

fn usage(out: &mut W<'_>, u: &Usage) {
    // Destructured: a field added to `Usage` must be added here too.
    let Usage {
        input,
        output,
        cache_read,
        cache_write,
        cache_write_1h,
        reasoning,
    } = *u;
    for n in [
        input,
        output,
        cache_read,
        cache_write,
        cache_write_1h,
        reasoning,
    ] {
        varint(out, n);
    }
}

fn tags(out: &mut W<'_>, tags: &BTreeMap<String, String>) {
    varint(out, tags.len() as u64);
    for (name, value) in tags {
        text(out, name);
        text(out, value);
    }
}

#[inline(always)]
fn varint(out: &mut W<'_>, mut n: u64) {
    while n >= 0x80 {
        out.byte((n as u8) | 0x80);
        n >>= 7;
    }
    out.byte(n as u8);
}

#[inline(always)]
fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

#[inline(always)]
fn bytes(out: &mut W<'_>, b: &[u8]) {
    varint(out, b.len() as u64);
    out.slice(b);
}

#[inline(always)]
fn text(out: &mut W<'_>, s: &str) {
    bytes(out, s.as_bytes());
}

#[inline(always)]
fn opt_text(out: &mut W<'_>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.byte(1);
            text(out, s);
        }
        None => out.byte(0),
    }
}

#[inline(always)]
fn opt_varint(out: &mut W<'_>, n: Option<u64>) {
    match n {
        Some(n) => {
            out.byte(1);
            varint(out, n);
        }
        None => out.byte(0),
    }
}
