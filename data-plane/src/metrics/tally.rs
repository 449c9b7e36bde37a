//! `Tally`: one request's metrics while it is served. Started at arrival (in flight), labelled
//! once its provider is known (`label`), told the answer's head (`head`: time to first byte and
//! the gateway's own time), and ended exactly once: by `end` when the answer is complete at
//! once, by the answer's body when it ends (`end_stream`), or on drop when the client went away
//! first. Everything it does after `label` is atomics.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::IntGauge;

use super::Series;

pub struct Tally {
    in_flight: IntGauge,
    started: Instant,
    /// The called API (`catalog::Api::name`), once known.
    pub surface: &'static str,
    series: Option<Arc<Series>>,
    /// The status the client was (or will be) answered with.
    status: u16,
    /// Time the request spent outside the gateway: reading the client's body, waiting on
    /// upstreams and between retries.
    outside: Duration,
    headed: bool,
    ended: bool,
}

/// What the attempt loop tells the tally.
#[derive(Default)]
pub struct AttemptTally {
    pub attempts: Cell<u32>,
    pub retries: Cell<u32>,
    pub fallbacks: Cell<u32>,
    /// Waiting on upstream heads and error bodies, and between retries.
    pub upstream: Cell<Duration>,
}

impl AttemptTally {
    pub fn waited(&self, d: Duration) {
        self.upstream.set(self.upstream.get() + d);
    }
}

impl Tally {
    pub(super) fn new(in_flight: IntGauge, started: Instant) -> Self {
        in_flight.inc();
        Tally {
            in_flight,
            started,
            surface: super::labels::NONE,
            series: None,
            status: 0,
            outside: Duration::ZERO,
            headed: false,
            ended: false,
        }
    }

    pub fn labelled(&self) -> bool {
        self.series.is_some()
    }

    pub fn label(&mut self, series: Option<Arc<Series>>) {
        self.series = series;
    }

    /// The series, for the record's tokens.
    pub fn series(&self) -> Option<Arc<Series>> {
        self.series.clone()
    }

    /// Time spent outside the gateway (the client's body).
    pub fn outside(&mut self, d: Duration) {
        self.outside += d;
    }

    /// The attempts the request made.
    pub fn attempts(&mut self, a: &AttemptTally) {
        self.outside += a.upstream.get();
        let Some(s) = &self.series else { return };
        let add = |cell, vec, n: u32| {
            if n > 0 {
                s.counter(cell, vec, None).inc_by(u64::from(n));
            }
        };
        add(&s.attempts, &s.vecs.attempts, a.attempts.get());
        add(&s.retries, &s.vecs.retries, a.retries.get());
        add(&s.fallbacks, &s.vecs.fallbacks, a.fallbacks.get());
    }

    /// The answer's head is ready now, with `status`; `upstream`: it came from an upstream
    /// (time to first byte is observed only then). Only the first head counts.
    pub fn head(&mut self, status: u16, upstream: bool) {
        self.head_after(status, upstream, None);
    }

    /// `head`, `elapsed` after the request's arrival when the caller read the clock already.
    pub fn head_after(&mut self, status: u16, upstream: bool, elapsed: Option<Duration>) {
        if std::mem::replace(&mut self.headed, true) {
            return;
        }
        self.status = status;
        let Some(s) = &self.series else { return };
        let elapsed = elapsed.unwrap_or_else(|| self.started.elapsed());
        if upstream {
            s.histogram(&s.ttfb, &s.vecs.ttfb)
                .observe(elapsed.as_secs_f64());
        }
        s.histogram(&s.overhead, &s.vecs.overhead)
            .observe(elapsed.saturating_sub(self.outside).as_secs_f64());
    }

    /// The request ended with a complete answer of `status` (an error, or an answer read whole).
    pub fn end(mut self, status: u16) {
        self.status = status;
        self.close();
    }

    /// The streamed answer ended; `failed`: after its head, by an upstream failure or stall.
    pub fn end_stream(mut self, failed: bool) {
        if failed {
            if let Some(s) = &self.series {
                s.counter(&s.stream_failures, &s.vecs.stream_failures, None)
                    .inc();
            }
        }
        self.close();
    }

    fn close(&mut self) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        self.in_flight.dec();
        if let Some(s) = &self.series {
            s.requests(self.status).inc();
            s.histogram(&s.duration, &s.vecs.duration)
                .observe(self.started.elapsed().as_secs_f64());
        }
    }
}

impl Drop for Tally {
    /// Dropped before it ended: the client went away (the answer is counted with the status it
    /// had).
    fn drop(&mut self) {
        self.close();
    }
}
