//! OpenTelemetry traces of gateway requests, off unless an OTLP endpoint is configured
//! (`to11_shared::otel::settings`). Off, the request path pays one `Option` check.
//!
//! On, a request is sampled once its caller is known (`Batcher::begin`: the client's
//! `traceparent` continued, or a new trace; the standard samplers). A sampled request's trace
//! (`to11_shared::otel::Trace`) is carried by its metering `Draft` and encoded as OTLP/protobuf
//! as it goes: the attempt loop adds a child span per upstream attempt and sends the upstream
//! that span's `traceparent`; the draft writes the usage and the status when the answer ends.
//! The ended trace's bytes are appended to its worker's batch (`Batcher`), which goes to the
//! exporter thread (`export`) whole: once it holds `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` spans, or
//! `OTEL_BSP_SCHEDULE_DELAY` after its first span. So a request pays no hand-over between threads,
//! and the exporter only writes a batch's head before POSTing it. The queue of batches holds
//! `OTEL_BSP_MAX_QUEUE_SIZE` spans; a batch that does not fit is dropped, as is the batch of a
//! failed export; both are counted (`to11_trace_spans_dropped_total`,
//! `to11_trace_export_failures_total`), and neither touches a request.

pub mod export;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use to11_shared::otel::encode::Head;
use to11_shared::otel::record::{Buffers, MAX_SPANS};
use to11_shared::otel::{genai, Sampler, SpanId, Trace, TraceId, TraceParent};
use to11_shared::upstream::Surface;
use tokio::sync::mpsc;

use crate::handover::{flush_later, Backlog, Timer};

/// W3C trace context: read from the client, and sent to the upstream with the attempt's span.
pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// `tracestate` values longer than this are not passed on (the W3C limit is 512 characters).
const MAX_TRACESTATE: usize = 512;

/// The exporter's counters, read by `/metrics`.
#[derive(Default)]
pub struct TraceStats {
    /// Spans the collector accepted.
    pub exported: AtomicU64,
    /// Spans dropped: the queue was full, or their export failed.
    pub dropped: AtomicU64,
    /// Exports that failed (no answer, or not 2xx).
    pub export_failures: AtomicU64,
}

/// Ended traces' buffers a worker keeps for its next traces, at most, and the largest kept (a
/// trace of many attempts leaves larger ones).
const SPARE: usize = 64;
const SPARE_BYTES: usize = 16 * 1024;

/// A worker's batch of ended spans: their bytes follow `room` bytes kept for the batch's head
/// (`Head::seal`).
pub struct Spans {
    pub buf: Vec<u8>,
    pub count: usize,
}

/// The replica's tracer, shared by the workers: the sampler, and the queue of batches to the
/// exporter thread.
pub struct Tracer {
    sampler: Sampler,
    queue: mpsc::UnboundedSender<Spans>,
    /// Spans in the queue (taken off by the exporter), and how many it holds.
    backlog: Arc<Backlog>,
    /// Spans in a batch, at most; how long a batch gathers.
    max_batch: usize,
    delay: Duration,
    /// Bytes kept before a batch's spans for its head.
    room: usize,
    pub stats: Arc<TraceStats>,
}

impl Tracer {
    /// A tracer whose batches go to `queue` (`backlog`: `max_queue` spans at most), to be sealed
    /// with a head of `room` bytes.
    pub fn new(
        settings: &to11_shared::otel::TraceSettings,
        queue: mpsc::UnboundedSender<Spans>,
        backlog: Arc<Backlog>,
        room: usize,
        stats: Arc<TraceStats>,
    ) -> Self {
        Tracer {
            sampler: settings.sampler,
            queue,
            // A batch is queued whole: one larger than the queue would never fit (the SDKs clamp
            // it the same way).
            max_batch: settings.max_batch.clamp(1, backlog.capacity()),
            backlog,
            delay: settings.delay,
            room,
            stats,
        }
    }

    /// Queues a worker's batch whole, or drops it whole (counted) when the queue has no room.
    fn offer(&self, spans: Spans) {
        let n = spans.count;
        if !self.backlog.send(&self.queue, spans, n) {
            self.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

/// One worker's tracing: it begins the traces of the requests it serves, and gathers their spans
/// into a batch.
#[derive(Clone)]
pub struct Batcher(Rc<Gathering>);

struct Gathering {
    tracer: Arc<Tracer>,
    batch: RefCell<Spans>,
    /// Ended traces' buffers, for the next ones (`SPARE` at most).
    spare: RefCell<Vec<Buffers>>,
    /// The current batch's timed hand-over.
    timer: Timer,
}

/// A sampled request's trace while it is served.
pub struct Traced {
    pub trace: Trace,
    /// The called API (for the attempts' operation names).
    pub surface: Surface,
    batcher: Rc<Gathering>,
}

impl Batcher {
    pub fn new(tracer: Arc<Tracer>) -> Self {
        Batcher(Rc::new(Gathering {
            tracer,
            batch: RefCell::new(Spans {
                buf: Vec::new(),
                count: 0,
            }),
            timer: Timer::default(),
            spare: RefCell::default(),
        }))
    }

    /// The trace of a request with `headers` that arrived at `start_ns` (Unix nanoseconds), when
    /// it is sampled: the client's trace continued (its `traceparent` valid), or a new one.
    pub fn begin(
        &self,
        headers: &HeaderMap,
        surface: Surface,
        start_ns: u64,
    ) -> Option<Box<Traced>> {
        let parent = headers
            .get(&TRACEPARENT)
            .and_then(|v| TraceParent::parse(v.as_bytes()));
        let trace_id = match parent {
            Some(p) => p.trace_id,
            None => TraceId::from_random(ids::bytes16()),
        };
        if !self
            .0
            .tracer
            .sampler
            .sample(&trace_id, parent.map(|p| p.sampled))
        {
            return None;
        }
        let span = SpanId::from_random(ids::bytes8());
        let buffers = self.0.spare.borrow_mut().pop().unwrap_or_default();
        let parent_span = parent.map(|p| p.span_id);
        let mut trace = Trace::reusing(trace_id, span, parent_span, start_ns, buffers);
        // Named by its operation until its model is known (a request refused before has no
        // model).
        trace.name(genai::operation(surface), None);
        if parent.is_some() {
            let state = headers
                .get(&TRACESTATE)
                .and_then(|v| v.to_str().ok())
                .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE);
            if let Some(s) = state {
                trace.set_state(s);
            }
        }
        Some(Box::new(Traced {
            trace,
            surface,
            batcher: self.0.clone(),
        }))
    }
}

impl Gathering {
    /// Appends an ended trace's spans to the batch, which is handed over when full, or is given
    /// a time to be (must run inside the worker's runtime).
    fn add(self: &Rc<Self>, trace: &Trace) {
        let n = trace.spans();
        let max = self.tracer.max_batch;
        if self.batch.borrow().count + n > max {
            self.flush();
        }
        let full = {
            let mut batch = self.batch.borrow_mut();
            if batch.buf.is_empty() {
                let room = self.tracer.room;
                // Room for the spans of a full batch, up to 512 of them (about 256 KiB).
                batch.buf = Vec::with_capacity(room + max.min(512) * 512);
                batch.buf.resize(room, 0);
            }
            batch.buf.extend_from_slice(trace.bytes());
            batch.count += n;
            batch.count >= max
        };
        if full {
            self.flush();
        } else {
            flush_later(self, |g| &g.timer, self.tracer.delay, Gathering::flush);
        }
    }

    fn flush(&self) {
        self.timer.handed_over();
        let spans = std::mem::replace(
            &mut *self.batch.borrow_mut(),
            Spans {
                buf: Vec::new(),
                count: 0,
            },
        );
        if spans.count > 0 {
            self.tracer.offer(spans);
        }
    }
}

impl Drop for Gathering {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Traced {
    /// Starts an attempt's span on `target` and returns its index and the `traceparent` the
    /// upstream is sent; `None` when the trace is full.
    pub fn attempt(&mut self, target: &genai::Target<'_>) -> Option<(usize, HeaderValue)> {
        let id = SpanId::from_random(ids::bytes8());
        let i = genai::attempt(&mut self.trace, id, now_ns(), target)?;
        let header = TraceParent {
            trace_id: self.trace.trace_id,
            span_id: id,
            sampled: true,
        }
        .format();
        let value = HeaderValue::from_bytes(&header).ok()?;
        Some((i, value))
    }

    /// The request ended: its status, its error code (`fault`: the span's status is an error),
    /// and the trace's spans added to the worker's batch.
    pub fn end(mut self, status: u16, error: Option<&str>, fault: bool) {
        genai::request_end(&mut self.trace, now_ns(), status, error, fault);
        self.batcher.add(&self.trace);
        let buffers = self.trace.into_buffers();
        let mut spare = self.batcher.spare.borrow_mut();
        if spare.len() < SPARE && buffers.capacity() <= SPARE_BYTES {
            spare.push(buffers);
        }
    }
}

/// Trace and span ids: random, unique in practice, not secret. A per-thread SplitMix64 seeded
/// once from the operating system's randomness (through `rand`), as OpenTelemetry SDKs use a fast
/// generator: a few instructions per id instead of a ChaCha block.
mod ids {
    use std::cell::Cell;

    thread_local! {
        static STATE: Cell<u64> = Cell::new(rand::random::<u64>() | 1);
    }

    fn next() -> u64 {
        STATE.with(|s| {
            let x = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            s.set(x);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    }

    pub fn bytes8() -> [u8; 8] {
        next().to_be_bytes()
    }

    pub fn bytes16() -> [u8; 16] {
        (u128::from(next()) << 64 | u128::from(next())).to_be_bytes()
    }
}

/// Spans a trace may hold (its request span and its attempts).
pub const SPANS_MAX: usize = MAX_SPANS;

/// The wall clock in Unix nanoseconds.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A time as Unix nanoseconds.
pub fn unix_ns(at: chrono::DateTime<chrono::Utc>) -> u64 {
    at.timestamp_nanos_opt().unwrap_or(0).max(0) as u64
}

/// The request span's to11 identity: the project's id and the request's id.
pub fn identify(t: &mut Trace, project: &uuid::Uuid, request_id: &str) {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    t.set_str(
        0,
        &genai::TO11_PROJECT,
        project.hyphenated().encode_lower(&mut buf),
    );
    t.set_str(0, &genai::TO11_REQUEST_ID, request_id);
}

/// Starts the exporter thread for `settings` and returns the tracer feeding it.
pub fn start(settings: &to11_shared::otel::TraceSettings) -> std::io::Result<Arc<Tracer>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let head = Head::new(&settings.resource, &export::scope());
    let stats = Arc::<TraceStats>::default();
    let backlog = Arc::new(Backlog::new(settings.max_queue));
    let head_room = head.room();
    export::spawn(settings.clone(), head, rx, backlog.clone(), stats.clone())?;
    Ok(Arc::new(Tracer::new(
        settings, tx, backlog, head_room, stats,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderName;

    /// A worker's batcher whose batches hold `max_batch` spans and go to a queue of `max_queue`.
    fn batcher(
        sampler: &str,
        max_queue: usize,
        max_batch: usize,
    ) -> (Batcher, mpsc::UnboundedReceiver<Spans>) {
        let settings = to11_shared::otel::TraceSettings {
            endpoint: "http://127.0.0.1:1/v1/traces".into(),
            headers: vec![],
            sampler: Sampler::parse(sampler, None).expect("sampler"),
            resource: vec![("service.name".into(), "t".into())],
            max_queue,
            max_batch,
            delay: Duration::from_millis(50),
            timeout: Duration::from_secs(1),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(Backlog::new(max_queue));
        let tracer = Tracer::new(&settings, tx, backlog, ROOM, Arc::default());
        (Batcher::new(Arc::new(tracer)), rx)
    }

    const ROOM: usize = 7;

    /// A sampled request's trace, begun without a caller's context.
    fn root(b: &Batcher) -> Box<Traced> {
        b.begin(&HeaderMap::new(), Surface::Chat, 1)
            .expect("sampled")
    }

    /// `n` requests traced and ended, without attempts.
    fn ended(b: &Batcher, n: usize) {
        for _ in 0..n {
            root(b).end(200, None, false);
        }
    }

    fn decoded(s: &Spans) -> Vec<to11_shared::otel::read::Read> {
        assert_eq!(s.buf[..ROOM], [0; ROOM], "room kept for the head");
        to11_shared::otel::read::spans(&s.buf[ROOM..]).expect("decodes")
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[actix_rt::test]
    async fn a_clients_trace_is_continued_and_passed_on_as_the_attempts_context() {
        let (b, mut rx) = batcher("parentbased_always_off", 4, 1);
        let h = headers(&[("traceparent", PARENT), ("tracestate", "vendor=1")]);
        let mut traced = b
            .begin(&h, Surface::Chat, 1)
            .expect("the caller sampled it");
        let provider = genai::ProviderAttrs::new("openai", "main", "api.openai.com", Some(443));
        let target = genai::Target {
            surface: Surface::Chat,
            provider: &provider,
            model: "gpt-4o",
            address: None,
        };
        let (_, header) = traced.attempt(&target).expect("room");
        let sent = TraceParent::parse(header.as_bytes()).expect("valid");
        assert_eq!(sent.trace_id, traced.trace.trace_id);
        assert!(sent.sampled);
        traced.end(200, None, false);
        let got = rx.try_recv().expect("a full batch is handed over at once");
        assert_eq!(got.count, 2);
        let spans = decoded(&got);
        let (attempt, root) = (&spans[0], &spans[1]);
        assert_eq!(
            to11_shared::otel::context::hex(&root.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            root.parent,
            Some([0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        assert_eq!(root.state.as_deref(), Some("vendor=1"));
        assert_eq!(root.name, "chat");
        assert_eq!(
            attempt.span_id, sent.span_id.0,
            "the attempt span is the upstream's parent"
        );
        assert_eq!(attempt.parent, Some(root.span_id));
        let unsampled = headers(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        )]);
        assert!(b.begin(&unsampled, Surface::Chat, 1).is_none());
        assert!(
            b.begin(&HeaderMap::new(), Surface::Chat, 1).is_none(),
            "no caller: always off"
        );
    }

    #[test]
    fn ids_differ() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(ids::bytes8()));
        }
        assert_ne!(ids::bytes16(), ids::bytes16());
    }

    #[actix_rt::test]
    async fn without_a_valid_parent_a_new_trace_starts_and_a_full_queue_drops_and_counts() {
        let (b, mut rx) = batcher("always_on", 2, 1);
        let bad = headers(&[("traceparent", "garbage"), ("tracestate", "vendor=1")]);
        let a = b.begin(&bad, Surface::Chat, 1).expect("sampled");
        assert_eq!(a.trace.parent, None);
        assert_eq!(
            a.trace.state(),
            None,
            "tracestate only with a valid traceparent"
        );
        let (c, d) = (root(&b), root(&b));
        assert_ne!(a.trace.trace_id, c.trace.trace_id);
        a.end(200, None, false);
        c.end(502, Some("upstream_failure"), true);
        d.end(200, None, false);
        let stats = &b.0.tracer.stats;
        assert_eq!(
            stats.dropped.load(Ordering::Relaxed),
            1,
            "the queue holds two"
        );
        assert_eq!(b.0.tracer.backlog.waiting(), 2);
        assert_eq!(decoded(&rx.try_recv().expect("first")).len(), 1);
        let second = decoded(&rx.try_recv().expect("second"));
        assert_eq!(second[0].error.as_deref(), Some("upstream_failure"));
        assert!(rx.try_recv().is_err());
    }

    #[actix_rt::test]
    async fn a_batch_larger_than_the_queue_is_made_to_fit_it() {
        let (b, mut rx) = batcher("always_on", 2, 10);
        ended(&b, 2);
        let got = rx
            .try_recv()
            .expect("a batch of the queue's size, handed over at once");
        assert_eq!(got.count, 2);
        assert_eq!(b.0.tracer.stats.dropped.load(Ordering::Relaxed), 0);
    }

    #[actix_rt::test]
    async fn a_worker_gathers_its_requests_spans_and_hands_them_over_after_the_delay() {
        let (b, mut rx) = batcher("always_on", 100, 10);
        ended(&b, 3);
        assert!(rx.try_recv().is_err(), "gathering");
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("handed over after the delay")
            .expect("open");
        assert_eq!(got.count, 3);
        assert_eq!(decoded(&got).len(), 3);
        // Four traces of three spans each in batches of ten: three go at once (nine spans, the
        // fourth would make twelve), the fourth when the worker stops.
        let mut traced: Vec<_> = (0..4).map(|_| root(&b)).collect();
        for t in &mut traced {
            for _ in 0..2 {
                let provider = genai::ProviderAttrs::new("openai", "main", "h", None);
                let target = genai::Target {
                    surface: Surface::Chat,
                    provider: &provider,
                    model: "m",
                    address: None,
                };
                t.attempt(&target).expect("room");
            }
        }
        for t in traced {
            t.end(200, None, false);
        }
        let first = rx
            .try_recv()
            .expect("the first batch, before the fourth trace");
        assert_eq!((first.count, decoded(&first).len()), (9, 9));
        drop(b);
        let last = rx.try_recv().expect("handed over when the worker stops");
        assert_eq!(last.count, 3);
    }
}
