//! OpenTelemetry traces of gateway requests, off unless an OTLP endpoint is configured
//! (`to11_shared::otel::settings`). Off, the request path pays one `Option` check.
//!
//! On, a request is sampled once its caller is known (`Tracer::begin`: the client's
//! `traceparent` continued, or a new trace; the standard samplers). A sampled request's span tree
//! is a compact record (`to11_shared::otel::Trace`) carried by its metering `Draft`: the attempt
//! loop adds a child span per upstream attempt and sends the upstream that span's `traceparent`;
//! the draft writes the usage and the status when the answer ends and hands the record over
//! (`Tracer::offer`) without waiting: a bounded queue to a dedicated exporter thread (`export`),
//! which batches, encodes OTLP/protobuf and POSTs. A full queue drops the trace, a failed export
//! its batch; both are counted (`to11_trace_spans_dropped_total`,
//! `to11_trace_export_failures_total`), and neither touches a request.

pub mod export;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use to11_shared::otel::record::MAX_SPANS;
use to11_shared::otel::{genai, Kind, Sampler, SpanId, Trace, TraceId, TraceParent};
use to11_shared::upstream::Surface;
use tokio::sync::mpsc;

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

/// The replica's tracer: the sampler and the queue to the exporter thread.
pub struct Tracer {
    sampler: Sampler,
    queue: mpsc::Sender<Box<Traced>>,
    /// Free room in the queue at which the exporter is woken early (half of it).
    half: usize,
    wake: export::Wake,
    pub stats: Arc<TraceStats>,
}

/// A sampled request's trace while it is served.
pub struct Traced {
    pub trace: Trace,
    /// The called API (for the attempts' operation names).
    pub surface: Surface,
    tracer: Arc<Tracer>,
}

impl Tracer {
    /// A tracer whose records go to `queue`, whose exporter waits on `wake`.
    pub fn new(sampler: Sampler, queue: mpsc::Sender<Box<Traced>>, wake: export::Wake) -> Self {
        Tracer {
            sampler,
            half: queue.max_capacity() / 2,
            queue,
            stats: wake.stats.clone(),
            wake,
        }
    }

    /// The trace of a request with `headers` that arrived at `start_ns` (Unix nanoseconds), when
    /// it is sampled: the client's trace continued (its `traceparent` valid), or a new one.
    pub fn begin(
        self: &Arc<Self>,
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
        if !self.sampler.sample(&trace_id, parent.map(|p| p.sampled)) {
            return None;
        }
        let span = SpanId::from_random(ids::bytes8());
        let mut trace = Trace::new(trace_id, span, parent.map(|p| p.span_id), start_ns);
        // Named by its operation until its model is known (a request refused before has no
        // model).
        trace.name(0, genai::operation(surface), "");
        if parent.is_some() {
            let state = headers
                .get(&TRACESTATE)
                .and_then(|v| v.to_str().ok())
                .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE);
            if let Some(s) = state {
                trace.state = Some(trace.text(s));
            }
        }
        Some(Box::new(Traced {
            trace,
            surface,
            tracer: self.clone(),
        }))
    }

    /// Hands a finished trace to the exporter, or drops it (counted) when the queue is full.
    fn offer(&self, t: Box<Traced>) {
        let spans = t.trace.spans.len() as u64;
        if self.queue.try_send(t).is_err() {
            self.stats.dropped.fetch_add(spans, Ordering::Relaxed);
        } else if self.queue.capacity() == self.half {
            // Crossing half full (once per filling): the exporter starts before the delay ends.
            self.wake.half_full.notify_one();
        }
    }
}

impl Traced {
    /// Starts an attempt's span on `target` and returns its index and the `traceparent` the
    /// upstream is sent; `None` when the trace is full.
    pub fn attempt(&mut self, target: &genai::Target<'_>) -> Option<(usize, HeaderValue)> {
        let id = SpanId::from_random(ids::bytes8());
        let i = self.trace.child(id, Kind::Client, now_ns())?;
        genai::attempt(&mut self.trace, i, target);
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
    /// and the trace handed to the exporter.
    pub fn end(mut self: Box<Self>, status: u16, error: Option<&str>, fault: bool) {
        genai::request_end(&mut self.trace, now_ns(), status, error, fault);
        let tracer = self.tracer.clone();
        tracer.offer(self);
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
        "to11.project",
        project.hyphenated().encode_lower(&mut buf),
    );
    t.set_str(0, "to11.request_id", request_id);
}

/// Starts the exporter thread for `settings` and returns the tracer feeding it.
pub fn start(settings: &to11_shared::otel::TraceSettings) -> std::io::Result<Arc<Tracer>> {
    let (tx, rx) = mpsc::channel(settings.max_queue);
    let wake = export::Wake {
        stats: Arc::default(),
        half_full: Arc::default(),
    };
    export::spawn(settings.clone(), rx, wake.clone())?;
    Ok(Arc::new(Tracer::new(settings.sampler, tx, wake)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderName;

    fn tracer(sampler: &str, cap: usize) -> (Arc<Tracer>, mpsc::Receiver<Box<Traced>>) {
        let (tx, rx) = mpsc::channel(cap);
        let s = Sampler::parse(sampler, None).expect("sampler");
        let wake = export::Wake {
            stats: Arc::default(),
            half_full: Arc::default(),
        };
        (Arc::new(Tracer::new(s, tx, wake)), rx)
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_clients_trace_is_continued_and_passed_on_as_the_attempts_context() {
        let (t, mut rx) = tracer("parentbased_always_off", 4);
        let h = headers(&[("traceparent", PARENT), ("tracestate", "vendor=1")]);
        let mut traced = t
            .begin(&h, Surface::Chat, 1)
            .expect("the caller sampled it");
        assert_eq!(
            to11_shared::otel::context::hex(&traced.trace.trace_id.0),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            traced.trace.parent.map(|p| p.0),
            Some([0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        assert_eq!(
            traced
                .trace
                .state
                .map(|s| traced.trace.str(s).to_string())
                .as_deref(),
            Some("vendor=1")
        );
        let target = genai::Target {
            surface: Surface::Chat,
            kind: "openai",
            slug: "main",
            model: "gpt-4o",
            host: "api.openai.com",
            port: None,
        };
        let (i, header) = traced.attempt(&target).expect("room");
        let sent = TraceParent::parse(header.as_bytes()).expect("valid");
        assert_eq!(sent.trace_id, traced.trace.trace_id);
        assert_eq!(
            sent.span_id, traced.trace.spans[i].id,
            "the attempt span is the upstream's parent"
        );
        assert!(sent.sampled);
        traced.end(200, None, false);
        let got = rx.try_recv().expect("offered");
        assert_eq!(got.trace.spans.len(), 2);
        let unsampled = headers(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        )]);
        assert!(t.begin(&unsampled, Surface::Chat, 1).is_none());
        assert!(
            t.begin(&HeaderMap::new(), Surface::Chat, 1).is_none(),
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

    #[test]
    fn without_a_valid_parent_a_new_trace_starts_and_a_full_queue_drops_and_counts() {
        let (t, _rx) = tracer("always_on", 1);
        let bad = headers(&[("traceparent", "garbage"), ("tracestate", "vendor=1")]);
        let a = t.begin(&bad, Surface::Chat, 1).expect("sampled");
        assert_eq!(a.trace.parent, None);
        assert_eq!(
            a.trace.state, None,
            "tracestate only with a valid traceparent"
        );
        let b = t
            .begin(&HeaderMap::new(), Surface::Chat, 1)
            .expect("sampled");
        assert_ne!(a.trace.trace_id, b.trace.trace_id);
        a.end(200, None, false);
        b.end(502, Some("upstream_failure"), true);
        assert_eq!(t.stats.dropped.load(Ordering::Relaxed), 1);
    }
}
