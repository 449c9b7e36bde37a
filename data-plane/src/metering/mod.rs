//! Metering: one `RequestRecord` per authenticated request, built as the request goes (`Draft`),
//! completed when its answer ends — read whole, streamed to its end, or cut short — and gathered
//! by the worker that served it (`Batcher`) into batches handed to the shipper (`ship`) through
//! one bounded queue. A worker wakes the shipper once per batch, never per request. The queue
//! holds at most `capacity` records: while the sink is down records wait in it, and what
//! overflows is counted as dropped; a request never waits on metering.

pub mod redis;
pub mod ship;
mod stream;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use to11_shared::record::{Batch, FailedAttempt, RequestRecord};
use to11_shared::usage::{estimate, Usage, UsageSource};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::handover::{flush_later, Backlog, Timer};

pub use stream::Metered;

/// Most records in one batch. A batch's hand-over wakes the shipper's thread and its `XADD` wakes
/// it again for the reply: on one core those context switches cost about 3 % of a request's CPU
/// with batches of 200 at 37,000 requests per second (`BENCH_ONLY=builds`: 0.972x with 1,000),
/// and a batch of 1,000 records is some 200 KB.
pub const MAX_BATCH: usize = 1000;
/// How long a worker gathers records after the first of a batch, by default
/// (`TO11_USAGE_FLUSH_MS`). A batch costs the same whether it holds 5 records or 200 (a timer, a
/// hand-over that wakes the shipper, one `XADD`, one consumer-group read and insert): at a few
/// hundred requests per second per worker, 50 ms made batches of ten and that fixed cost a fifth
/// of metering's. What it bounds: how late a record reaches the store, and what a replica killed
/// outright loses (a stopped one ships first).
pub const GATHER: Duration = Duration::from_millis(200);

/// The metering pipeline's counters.
#[derive(Default)]
pub struct MeterStats {
    pub queued: AtomicU64,
    pub dropped: AtomicU64,
    pub shipped: AtomicU64,
    pub ship_failures: AtomicU64,
    /// Age of the oldest record of the last batch shipped, when it was shipped (ms).
    pub lag_ms: AtomicU64,
}

/// The bounded queue between the workers and the shipper, shared by all workers.
pub struct Recorder {
    tx: Option<mpsc::UnboundedSender<Batch>>,
    /// Records in the queue (handed over, not yet taken by the shipper), and how many it holds.
    backlog: Backlog,
    /// How long the workers gather a batch.
    gather: Duration,
    pub stats: Arc<MeterStats>,
}

impl Recorder {
    /// Metering off: no records.
    pub fn off() -> Self {
        Recorder {
            tx: None,
            backlog: Backlog::new(0),
            gather: GATHER,
            stats: Arc::default(),
        }
    }

    /// A recorder whose queue holds `capacity` records, whose workers gather batches for
    /// `gather`, and the queue's other end.
    pub fn new(capacity: usize, gather: Duration) -> (Self, mpsc::UnboundedReceiver<Batch>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Recorder {
                tx: Some(tx),
                backlog: Backlog::new(capacity),
                gather,
                stats: Arc::default(),
            },
            rx,
        )
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues a worker's batch whole, or drops it whole (counted) when the queue has no room.
    fn offer(&self, batch: Batch) {
        let (Some(tx), n) = (&self.tx, batch.len()) else {
            return;
        };
        if self.backlog.send(tx, batch, n) {
            self.stats.queued.fetch_add(n as u64, Ordering::Relaxed);
        } else {
            self.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Records in the queue (handed over, not yet taken by the shipper).
    pub fn waiting(&self) -> usize {
        self.backlog.waiting()
    }

    /// The shipper took `n` records off the queue.
    fn taken(&self, n: usize) {
        self.backlog.taken(n);
    }
}

/// One worker's records, gathered into a batch: handed to the queue when it holds `MAX_BATCH`
/// records or the gathering time after its first one, whichever comes first, and when the worker
/// stops.
#[derive(Clone)]
pub struct Batcher(Rc<Gathering>);

struct Gathering {
    recorder: Arc<Recorder>,
    batch: RefCell<Batch>,
    /// The current batch's timed hand-over.
    timer: Timer,
    /// Bytes of the last batch handed over: the next one's room, so that a busy worker's batch
    /// is made once at its size (not grown by doubling), and a quiet one's stays small.
    room: Cell<usize>,
    /// Finished drafts, emptied, for the next requests (`SPARE_DRAFTS` at most): a draft's box
    /// and its texts' room are made once per worker, not per request.
    #[allow(clippy::vec_box)] // kept as the boxes a `Draft` is, to be handed out as they are
    spare: RefCell<Vec<Box<Open>>>,
}

/// Emptied drafts a worker keeps for its next requests, at most.
const SPARE_DRAFTS: usize = 64;

impl Batcher {
    pub fn new(recorder: Arc<Recorder>) -> Self {
        Batcher(Rc::new(Gathering {
            recorder,
            batch: RefCell::new(Batch::default()),
            timer: Timer::default(),
            room: Cell::new(0),
            spare: RefCell::new(Vec::new()),
        }))
    }

    pub fn enabled(&self) -> bool {
        self.0.recorder.enabled()
    }

    /// A draft's box to fill: an emptied one kept from an earlier request, or a new one.
    fn draft(&self) -> Option<Box<Open>> {
        self.0.spare.borrow_mut().pop()
    }

    /// Keeps `open` (its record encoded) for a later request: its texts keep their room, and
    /// `Draft::new` fills it anew.
    fn keep(&self, mut open: Box<Open>) {
        let mut spare = self.0.spare.borrow_mut();
        if spare.len() < SPARE_DRAFTS {
            open.release();
            spare.push(open);
        }
    }

    /// Takes a finished record (encoded into the batch at once). Must run inside the worker's
    /// runtime (it may schedule a flush).
    fn push(&self, r: &RequestRecord) {
        let full = {
            let mut batch = self.0.batch.borrow_mut();
            if batch.is_empty() {
                *batch = Batch::with_room(self.0.room.get());
            }
            batch.push(r);
            batch.len() >= MAX_BATCH
        };
        if full {
            self.0.flush();
        } else {
            let gather = self.0.recorder.gather;
            flush_later(&self.0, |g| &g.timer, gather, Gathering::flush);
        }
    }
}

impl Gathering {
    fn flush(&self) {
        self.timer.handed_over();
        let batch = std::mem::take(&mut *self.batch.borrow_mut());
        if !batch.is_empty() {
            self.room.set(batch.bytes_len());
            self.recorder.offer(batch);
        }
    }
}

impl Drop for Gathering {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A request's record while it is served. Boxed whole (one allocation, the record inside): a
/// draft travels from `admit` into the answer's body wrappers, which are moved several times.
pub struct Draft(Box<Open>);

struct Open {
    record: RequestRecord,
    started: Instant,
    request_bytes: u64,
    /// `None` only while the emptied box waits in its worker's spare list (which it must not
    /// keep alive).
    records: Option<Batcher>,
    /// The room of the record's optional texts (function, route, provider, provider kind,
    /// model) while they are `None`: set again, they reuse it.
    room: [String; 5],
    /// Where the request's tokens are counted (`/metrics`), once its series is known.
    tokens: Option<Arc<crate::metrics::Series>>,
    /// The usage limits the request reserved on, settled when it finishes (given back when it
    /// fails before an answer: the draft is dropped with it).
    ticket: Option<crate::limits::Ticket>,
    /// Prices the request for its cost metric (the worker's memoised price lookups), with
    /// `tokens`.
    pricer: Option<crate::limits::WorkerLimits>,
    /// The request's trace, when it is sampled: ended with the record.
    trace: Option<Box<crate::otel::Traced>>,
}

impl Draft {
    /// A record for an authenticated request that arrived at `at` (`started` on the monotonic
    /// clock).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        records: Batcher,
        id: Uuid,
        at: DateTime<Utc>,
        started: Instant,
        project: Uuid,
        key: Uuid,
        surface: &'static str,
        tags: BTreeMap<String, String>,
    ) -> Draft {
        let arrival = Arrival {
            id,
            at,
            started,
            project,
            key,
            surface,
            tags,
        };
        // A kept box is filled anew in place: only its texts' allocations carry over.
        match records.draft() {
            Some(mut open) => {
                let texts = open.texts();
                *open = Open::fresh(records, arrival, texts);
                Draft(open)
            }
            None => Draft(Box::new(Open::fresh(records, arrival, Texts::default()))),
        }
    }

    /// The request's trace (sampled), ended when the record is.
    pub fn trace(&mut self, trace: Box<crate::otel::Traced>) {
        self.0.trace = Some(trace);
    }

    /// Lends the trace out (to the attempt loop), to be given back with `trace`.
    pub fn take_trace(&mut self) -> Option<Box<crate::otel::Traced>> {
        self.0.trace.take()
    }

    /// Whether the request is traced (its meter then reads the finish reasons too).
    pub fn traced(&self) -> bool {
        self.0.trace.is_some()
    }

    /// The trace, to add to.
    pub fn traced_mut(&mut self) -> Option<&mut crate::otel::Traced> {
        self.0.trace.as_deref_mut()
    }

    /// The limits the request reserved on.
    pub fn ticket(&mut self, ticket: crate::limits::Ticket) {
        self.0.ticket = Some(ticket);
    }

    /// The request body's facts.
    pub fn body(&mut self, bytes: usize, model: Option<&str>, user: Option<String>, stream: bool) {
        self.0.request_bytes = bytes as u64;
        if let Some(m) = model {
            self.0.record.requested_model.clear();
            self.0.record.requested_model.push_str(m);
        }
        if self.0.record.user.is_none() {
            self.0.record.user = user;
        }
        self.0.record.stream = stream;
    }

    /// The end user named by `x-to11-user` (wins over the body's `user`).
    pub fn user(&mut self, user: Option<String>) {
        if user.is_some() {
            self.0.record.user = user;
        }
    }

    /// How the model resolved.
    pub fn resolved(&mut self, layer: &'static str, function: Option<&str>, route: Option<&str>) {
        let open = &mut *self.0;
        open.record.layer = layer.into();
        let [f, r, ..] = &mut open.room;
        set(&mut open.record.function, f, function);
        set(&mut open.record.route, r, route);
    }

    /// Who answered, after how many attempts, and which targets failed before.
    pub(crate) fn served(
        &mut self,
        served: &crate::proxy::answer::Served<'_>,
        failed: Vec<FailedAttempt>,
    ) {
        let open = &mut *self.0;
        let [_, _, p, k, m] = &mut open.room;
        set(&mut open.record.provider, p, Some(&served.provider.slug));
        set(
            &mut open.record.provider_kind,
            k,
            Some(&served.provider.kind),
        );
        set(&mut open.record.model, m, Some(served.model));
        self.0.record.attempts = served.attempts;
        self.0.record.failed = failed;
        if let Some(t) = self.0.trace.as_mut() {
            let provider = served.provider.trace_attrs();
            to11_shared::otel::genai::served(&mut t.trace, provider, served.model, served.attempts);
        }
    }

    /// Counts the request's tokens and cost (priced by `pricer`) into `series` when it
    /// finishes.
    pub fn metrics(
        &mut self,
        series: Option<Arc<crate::metrics::Series>>,
        pricer: &crate::limits::WorkerLimits,
    ) {
        if series.is_some() {
            self.0.pricer = Some(pricer.clone());
        }
        self.0.tokens = series;
    }

    /// Targets that failed, when no answer came.
    pub fn attempts(&mut self, failed: Vec<FailedAttempt>) {
        self.0.record.attempts = failed.len() as u32;
        self.0.record.failed = failed;
    }

    /// Time since the request arrived.
    pub fn elapsed(&self) -> Duration {
        self.0.started.elapsed()
    }

    /// The upstream's answer started `elapsed` after the request arrived.
    pub fn first_byte(&mut self, elapsed: Duration) {
        self.0.record.ttfb_us = Some(elapsed.as_micros() as u64);
    }

    /// The request ended with `status` (and to11's error code when it failed), without an
    /// answer to meter.
    pub fn fail(mut self, status: u16, error: &str) {
        if let Some(t) = self.0.ticket.take() {
            t.nothing_used();
        }
        self.0.record.status = status;
        self.0.record.error = Some(error.to_string());
        if let Some(t) = self.0.trace.take() {
            t.end(status, Some(error), status >= 500);
        }
        self.submit();
    }

    /// The answer ended: its usage as reported, or an estimate from what was seen.
    pub fn finish(mut self, status: u16, outcome: Outcome) {
        self.0.record.status = status;
        let (usage, source) = match outcome.reported {
            Some(u) => (u, UsageSource::Reported),
            None => (
                estimate(self.0.request_bytes, outcome.chunks, outcome.answer_bytes),
                UsageSource::Estimated,
            ),
        };
        if let Some(s) = &self.0.tokens {
            s.tokens(&usage);
            let r = &self.0.record;
            if let (Some(p), Some(kind), Some(model)) = (
                &self.0.pricer,
                r.provider_kind.as_deref(),
                r.model.as_deref(),
            ) {
                if let Some(cost) = p.cost(kind, model, &usage).filter(|c| *c > 0) {
                    s.cost(cost);
                }
            }
        }
        if let Some(t) = self.0.ticket.take() {
            let r = &self.0.record;
            let cost = t.cost(r.provider_kind.as_deref(), r.model.as_deref(), &usage);
            t.settle(&usage, cost);
        }
        self.0.record.usage = Some(usage);
        self.0.record.usage_source = Some(source);
        self.0.record.cancelled = outcome.cut;
        if outcome.cut && self.0.record.error.is_none() {
            self.0.record.error = Some("incomplete".into());
        }
        if let Some(mut t) = self.0.trace.take() {
            if let Some(u) = &self.0.record.usage {
                let estimated = source == UsageSource::Estimated;
                to11_shared::otel::genai::usage(&mut t.trace, u, estimated);
            }
            to11_shared::otel::genai::finish_reasons(&mut t.trace, &outcome.finish);
            t.end(status, self.0.record.error.as_deref(), outcome.cut);
        }
        self.submit();
    }

    fn submit(mut self) {
        let open = &mut *self.0;
        open.record.latency_us = open.started.elapsed().as_micros() as u64;
        if let Some(records) = open.records.take() {
            if records.enabled() {
                records.push(&open.record);
            }
            records.keep(self.0);
        }
    }
}

/// Sets `field` to `value` in the allocation it has, or else in `room`'s; emptied (`None`), its
/// allocation goes to `room` (which is empty then: it was taken when the field was set).
#[inline]
fn set(field: &mut Option<String>, room: &mut String, value: Option<&str>) {
    match (field, value) {
        (Some(s), Some(v)) => {
            s.clear();
            s.push_str(v);
        }
        (f @ None, Some(v)) => {
            let mut s = std::mem::take(room);
            s.clear();
            s.push_str(v);
            *f = Some(s);
        }
        (f @ Some(_), None) => {
            if let Some(s) = f.take() {
                *room = s;
            }
        }
        (None, None) => {}
    }
}

/// What `Draft::new` is told of a request.
struct Arrival {
    id: Uuid,
    at: DateTime<Utc>,
    started: Instant,
    project: Uuid,
    key: Uuid,
    surface: &'static str,
    tags: BTreeMap<String, String>,
}

/// A finished draft's text allocations, emptied, for the next draft in its box.
#[derive(Default)]
struct Texts {
    requested_model: String,
    room: [String; 5],
}

impl Open {
    /// The draft of a request that just arrived, every field as nothing has told it yet, its
    /// texts written into `texts`' allocations.
    fn fresh(records: Batcher, a: Arrival, texts: Texts) -> Open {
        Open {
            record: RequestRecord {
                id: a.id,
                time: a.at,
                project: a.project,
                key: a.key,
                surface: a.surface.into(),
                requested_model: texts.requested_model,
                layer: "".into(),
                function: None,
                route: None,
                provider: None,
                provider_kind: None,
                model: None,
                stream: false,
                status: 0,
                error: None,
                attempts: 0,
                failed: Vec::new(),
                latency_us: 0,
                ttfb_us: None,
                usage: None,
                usage_source: None,
                cancelled: false,
                cost: None,
                user: None,
                tags: a.tags,
            },
            started: a.started,
            request_bytes: 0,
            records: Some(records),
            room: texts.room,
            tokens: None,
            ticket: None,
            pricer: None,
            trace: None,
        }
    }

    /// Takes the texts' allocations out, emptied (the optional ones from `room`, where
    /// `release` put them).
    fn texts(&mut self) -> Texts {
        let mut requested_model = std::mem::take(&mut self.record.requested_model);
        requested_model.clear();
        Texts {
            requested_model,
            room: std::mem::take(&mut self.room),
        }
    }

    /// Readies a finished draft to wait in its worker's spare list: its optional texts'
    /// allocations go to `room`, and it lets go of what it shares with the request's worker and
    /// meters (the spare list must not keep the worker's batcher alive).
    fn release(&mut self) {
        let r = &mut self.record;
        let [f, ro, p, k, m] = &mut self.room;
        for (field, room) in [
            (&mut r.function, f),
            (&mut r.route, ro),
            (&mut r.provider, p),
            (&mut r.provider_kind, k),
            (&mut r.model, m),
        ] {
            set(field, room, None);
        }
        self.records = None;
        self.tokens = None;
        self.ticket = None;
        self.pricer = None;
        self.trace = None;
    }
}

/// What metering an answer found.
#[derive(Default)]
pub struct Outcome {
    /// The usage the provider reported.
    pub reported: Option<Usage>,
    /// Content chunks seen (for an estimate).
    pub chunks: u64,
    /// Bytes of the answer seen.
    pub answer_bytes: u64,
    /// The answer did not reach its end (the client went away, or the stream was ended by a
    /// stall or a break).
    pub cut: bool,
    /// Why the model stopped, as the answer said (read for traced requests only).
    pub finish: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RequestRecord {
        let d = Draft::new(
            Batcher::new(Arc::new(Recorder::off())),
            Uuid::nil(),
            Utc::now(),
            Instant::now(),
            Uuid::nil(),
            Uuid::nil(),
            "chat",
            BTreeMap::new(),
        );
        d.0.record
    }

    fn batch(n: usize) -> Batch {
        let mut b = Batch::default();
        for _ in 0..n {
            b.push(&record());
        }
        b
    }

    #[actix_rt::test]
    async fn a_finished_request_counts_its_cost_at_the_built_in_prices() {
        use to11_shared::usage::price::{cost, PriceTable};
        let metrics = crate::Metrics::default();
        let key = crate::metrics::Key {
            surface: "chat",
            provider: "openai",
            model: "gpt-4o",
            layer: "passthrough",
            project: "p",
        };
        let series = metrics.series(&Default::default(), &key);
        let store = Arc::new(to11_io::counters::LocalCounters::in_memory());
        let limiter = crate::limits::Limiter::new(store, crate::limits::WhenDown::Local, 100);
        let usage = Usage {
            input: 1_000,
            output: 500,
            cache_read: 2_000,
            ..Usage::default()
        };
        let mut d = Draft::new(
            Batcher::new(Arc::new(Recorder::off())),
            Uuid::nil(),
            Utc::now(),
            Instant::now(),
            Uuid::nil(),
            Uuid::nil(),
            "chat",
            BTreeMap::new(),
        );
        use crate::proxy::answer::Served;
        let compiled = Served::example_provider();
        let served = Served::example(&compiled);
        d.served(&served, vec![]);
        d.metrics(series, &limiter.worker());
        d.finish(
            200,
            Outcome {
                reported: Some(usage),
                ..Outcome::default()
            },
        );
        let row = PriceTable::builtin_ref()
            .find("openai", "gpt-4o")
            .expect("priced");
        let want = cost(&usage, &row.price);
        assert!(want > 0);
        let text = String::from_utf8(to11_io::metrics::render(&metrics.registry)).expect("utf-8");
        let line = format!(
            "to11_cost_micro_units_total{{currency=\"USD\",layer=\"passthrough\",model=\"gpt-4o\",provider=\"openai\",surface=\"chat\"}} {want}"
        );
        assert!(text.contains(&line), "{line}\n{text}");
    }

    #[test]
    fn a_full_queue_drops_whole_batches_and_counts_them() {
        let (recorder, mut rx) = Recorder::new(5, GATHER);
        recorder.offer(batch(3));
        recorder.offer(batch(3));
        recorder.offer(batch(2));
        let s = &recorder.stats;
        assert_eq!(s.queued.load(Ordering::Relaxed), 5);
        assert_eq!(s.dropped.load(Ordering::Relaxed), 3);
        let first = rx.try_recv().expect("first batch");
        recorder.taken(first.len());
        recorder.offer(batch(3));
        assert_eq!(s.queued.load(Ordering::Relaxed), 8, "room again once taken");
    }

    #[actix_rt::test]
    async fn a_worker_hands_over_a_batch_when_full_after_a_while_and_when_it_stops() {
        let gather = Duration::from_millis(50);
        let (recorder, mut rx) = Recorder::new(10_000, gather);
        let recorder = Arc::new(recorder);
        let batcher = Batcher::new(recorder.clone());
        for _ in 0..MAX_BATCH + 3 {
            batcher.push(&record());
        }
        assert_eq!(rx.try_recv().expect("full batch").len(), MAX_BATCH);
        assert!(rx.try_recv().is_err(), "the rest gathers");
        let rest = tokio::time::timeout(gather * 20, rx.recv())
            .await
            .expect("flushed after the gathering time")
            .expect("batch");
        assert_eq!(rest.len(), 3);
        batcher.push(&record());
        drop(batcher);
        assert_eq!(rx.try_recv().expect("flushed on drop").len(), 1);
        assert_eq!(
            recorder.stats.queued.load(Ordering::Relaxed),
            MAX_BATCH as u64 + 4
        );
    }
    #[actix_rt::test]
    async fn a_kept_draft_carries_nothing_of_its_last_request_into_the_next() {
        use crate::proxy::answer::Served;
        let (recorder, mut rx) = Recorder::new(10_000, Duration::from_millis(1));
        let batcher = Batcher::new(Arc::new(recorder));
        let new = |id: u128, tags: BTreeMap<String, String>| {
            Draft::new(
                batcher.clone(),
                Uuid::from_u128(id),
                Utc::now(),
                Instant::now(),
                Uuid::from_u128(id + 1),
                Uuid::from_u128(id + 2),
                "chat",
                tags,
            )
        };
        let compiled = Served::example_provider();
        let served = Served::example(&compiled);
        let mut first = new(1, BTreeMap::from([("team".to_string(), "a".to_string())]));
        first.body(
            100,
            Some("a-long-requested-model-name"),
            Some("u1".into()),
            true,
        );
        first.resolved("route", Some("fn"), Some("the-route"));
        first.served(&served, vec![]);
        first.first_byte(Duration::from_millis(3));
        first.finish(
            200,
            Outcome {
                reported: Some(Usage {
                    input: 7,
                    output: 9,
                    ..Usage::default()
                }),
                cut: true,
                ..Outcome::default()
            },
        );
        assert_eq!(batcher.0.spare.borrow().len(), 1, "the draft was kept");
        let mut second = new(10, BTreeMap::new());
        assert!(batcher.0.spare.borrow().is_empty(), "and taken again");
        second.body(5, Some("m"), None, false);
        second.fail(502, "no_upstream");
        batcher.0.flush();
        let records = {
            let mut b = rx.try_recv().expect("a batch");
            b.seal();
            b.records().expect("decodes")
        };
        let [a, b] = &records[..] else {
            panic!("two records: {records:?}")
        };
        assert_eq!(a.requested_model, "a-long-requested-model-name");
        assert_eq!(a.route.as_deref(), Some("the-route"));
        assert_eq!(a.provider.as_deref(), Some(compiled.slug.as_str()));
        assert!(a.usage.is_some() && a.cancelled && a.user.is_some() && !a.tags.is_empty());
        let ids = |n| {
            (
                Uuid::from_u128(n),
                Uuid::from_u128(n + 1),
                Uuid::from_u128(n + 2),
            )
        };
        assert_eq!((b.id, b.project, b.key), ids(10));
        // The second record is exactly what a new draft would have made.
        let fresh = {
            let mut d = Draft::new(
                Batcher::new(Arc::new(Recorder::off())),
                b.id,
                b.time,
                Instant::now(),
                b.project,
                b.key,
                "chat",
                BTreeMap::new(),
            );
            d.body(5, Some("m"), None, false);
            d.0.record.status = 502;
            d.0.record.error = Some("no_upstream".into());
            d.0.record.latency_us = b.latency_us;
            d.0.record.clone()
        };
        assert_eq!(b, &fresh);
    }
}
