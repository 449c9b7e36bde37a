//! Metering: one `RequestRecord` per authenticated request, built as the request goes (`Draft`),
//! completed when its answer ends — read whole, streamed to its end, or cut short — and queued
//! for shipping (`ship`). The queue is bounded: while the sink is down records wait in it, and
//! what overflows is counted as dropped; a request never waits on metering.

pub mod redis;
pub mod ship;
mod stream;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use to11_shared::record::{FailedAttempt, RequestRecord};
use to11_shared::usage::{estimate, Usage, UsageSource};
use tokio::sync::mpsc;
use uuid::Uuid;

pub use stream::Metered;

/// The metering pipeline's counters.
#[derive(Default)]
pub struct MeterStats {
    pub queued: AtomicU64,
    pub dropped: AtomicU64,
    pub shipped: AtomicU64,
    pub ship_failures: AtomicU64,
}

/// Takes finished records into the bounded queue.
pub struct Recorder {
    tx: Option<mpsc::Sender<RequestRecord>>,
    pub stats: Arc<MeterStats>,
}

impl Recorder {
    /// Metering off: no records.
    pub fn off() -> Self {
        Recorder {
            tx: None,
            stats: Arc::default(),
        }
    }

    /// A recorder whose queue holds `capacity` records, and the queue's other end.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<RequestRecord>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Recorder {
                tx: Some(tx),
                stats: Arc::default(),
            },
            rx,
        )
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    fn submit(&self, r: RequestRecord) {
        let Some(tx) = &self.tx else {
            return;
        };
        match tx.try_send(r) {
            Ok(()) => self.stats.queued.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.stats.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// A request's record while it is served.
pub struct Draft {
    record: RequestRecord,
    started: Instant,
    request_bytes: u64,
    recorder: Arc<Recorder>,
}

impl Draft {
    /// A record for an authenticated request that arrived at `at` (`started` on the monotonic
    /// clock).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        recorder: Arc<Recorder>,
        id: &str,
        at: DateTime<Utc>,
        started: Instant,
        project: Uuid,
        key: Uuid,
        surface: &str,
        tags: BTreeMap<String, String>,
    ) -> Draft {
        Draft {
            record: RequestRecord {
                id: id.parse().unwrap_or_else(|_| Uuid::new_v4()),
                time: at,
                project,
                key,
                surface: surface.to_string(),
                requested_model: String::new(),
                layer: String::new(),
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
                tags,
            },
            started,
            request_bytes: 0,
            recorder,
        }
    }

    /// The request body's facts.
    pub fn body(&mut self, bytes: usize, model: Option<&str>, user: Option<String>, stream: bool) {
        self.request_bytes = bytes as u64;
        if let Some(m) = model {
            self.record.requested_model = m.to_string();
        }
        if self.record.user.is_none() {
            self.record.user = user;
        }
        self.record.stream = stream;
    }

    /// The end user named by `x-to11-user` (wins over the body's `user`).
    pub fn user(&mut self, user: Option<String>) {
        if user.is_some() {
            self.record.user = user;
        }
    }

    /// How the model resolved.
    pub fn resolved(&mut self, layer: &str, function: Option<&str>, route: Option<&str>) {
        self.record.layer = layer.to_string();
        self.record.function = function.map(str::to_string);
        self.record.route = route.map(str::to_string);
    }

    /// Who answered, after how many attempts, and which targets failed before.
    pub fn served(
        &mut self,
        provider: &str,
        kind: &str,
        model: &str,
        attempts: u32,
        failed: Vec<FailedAttempt>,
    ) {
        self.record.provider = Some(provider.to_string());
        self.record.provider_kind = Some(kind.to_string());
        self.record.model = Some(model.to_string());
        self.record.attempts = attempts;
        self.record.failed = failed;
    }

    /// Targets that failed, when no answer came.
    pub fn attempts(&mut self, failed: Vec<FailedAttempt>) {
        self.record.attempts = failed.len() as u32;
        self.record.failed = failed;
    }

    /// The upstream's answer started now.
    pub fn first_byte(&mut self) {
        self.record.ttfb_us = Some(self.started.elapsed().as_micros() as u64);
    }

    /// The request ended with `status` (and to11's error code when it failed), without an
    /// answer to meter.
    pub fn fail(mut self, status: u16, error: &str) {
        self.record.status = status;
        self.record.error = Some(error.to_string());
        self.submit();
    }

    /// The answer ended: its usage as reported, or an estimate from what was seen.
    pub fn finish(mut self, status: u16, outcome: Outcome) {
        self.record.status = status;
        let (usage, source) = match outcome.reported {
            Some(u) => (u, UsageSource::Reported),
            None => (
                estimate(self.request_bytes, outcome.chunks, outcome.answer_bytes),
                UsageSource::Estimated,
            ),
        };
        self.record.usage = Some(usage);
        self.record.usage_source = Some(source);
        self.record.cancelled = outcome.cut;
        if outcome.cut && self.record.error.is_none() {
            self.record.error = Some("incomplete".into());
        }
        self.submit();
    }

    fn submit(mut self) {
        self.record.latency_us = self.started.elapsed().as_micros() as u64;
        let recorder = self.recorder.clone();
        recorder.submit(self.record);
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
}
