//! What `/metrics` reads at scrape time from the counters the sync task and the usage pipeline
//! keep anyway: the configuration (version, projects, snapshots applied and refused, the
//! subscription, the age of the last reconcile) and the usage pipeline (queued, shipped, dropped,
//! the queue's depth and the shipping lag).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use to11_io::metrics::Pulled;

use super::Metrics;
use crate::health_book::now_ms;
use crate::metering::Recorder;
use crate::state::Live;
use crate::sync::SyncStatus;

impl Metrics {
    /// Registers the scrape-time values of `live`, `sync` and `recorder`.
    pub fn pull(&self, live: &Live, sync: &Arc<SyncStatus>, recorder: &Arc<Recorder>) {
        let count = |a: fn(&SyncStatus) -> &AtomicU64| {
            let s = sync.clone();
            move || a(&s).load(Ordering::Relaxed) as f64
        };
        let flag = |a: fn(&SyncStatus) -> &AtomicBool| {
            let s = sync.clone();
            move || f64::from(u8::from(a(&s).load(Ordering::Relaxed)))
        };
        let usage = |a: fn(&crate::metering::MeterStats) -> &AtomicU64| {
            let s = recorder.stats.clone();
            move || a(&s).load(Ordering::Relaxed) as f64
        };
        let (l1, l2, s, r) = (live.clone(), live.clone(), sync.clone(), recorder.clone());
        let lag = recorder.stats.clone();
        let all = [
            Pulled::gauge("to11_config_version", "Highest configuration version applied.", move || l1.max_version() as f64),
            Pulled::gauge("to11_config_projects", "Projects in the live configuration.", move || l2.load().projects.len() as f64),
            Pulled::counter("to11_snapshots_applied_total", "Project snapshots applied.", count(|s| &s.applied)),
            Pulled::counter("to11_snapshots_refused_total", "Project snapshots refused (MAC, decoding, compilation or credentials); the last good one stays.", count(|s| &s.refused)),
            Pulled::counter("to11_reconciles_total", "Reconciles with the configuration store started.", count(|s| &s.reconciles)),
            Pulled::gauge("to11_config_subscribed", "1 while subscribed to configuration changes.", flag(|s| &s.subscribed)),
            Pulled::counter("to11_config_subscription_losses_total", "Configuration subscriptions found dead (ended, or not answering the check's PING in time).", count(|s| &s.subscription_losses)),
            Pulled::gauge("to11_config_degraded", "1 while serving a configuration the store no longer holds (flushed, or a new epoch without projects).", flag(|s| &s.degraded)),
            Pulled::gauge("to11_config_reconcile_age_seconds", "Seconds since the last reconcile that reached the store ended (+Inf: none yet).", move || age_seconds(s.reconciled_ms.load(Ordering::Relaxed))),
            Pulled::counter("to11_usage_records_queued_total", "Request records handed to the shipping queue.", usage(|u| &u.queued)),
            Pulled::counter("to11_usage_records_dropped_total", "Request records dropped because the shipping queue was full.", usage(|u| &u.dropped)),
            Pulled::counter("to11_usage_records_shipped_total", "Request records the sink took.", usage(|u| &u.shipped)),
            Pulled::counter("to11_usage_ship_failures_total", "Failed attempts to ship a batch (retried).", usage(|u| &u.ship_failures)),
            Pulled::gauge("to11_usage_queue_records", "Request records waiting to be shipped.", move || r.waiting() as f64),
            Pulled::gauge("to11_usage_ship_lag_seconds", "Age of the oldest record of the last batch shipped, when it was shipped.", move || lag.lag_ms.load(Ordering::Relaxed) as f64 / 1000.0),
        ];
        self.register_pulled(all);
    }
}

impl Metrics {
    /// Registers the trace exporter's counters (when tracing is on).
    pub fn pull_traces(&self, stats: &Arc<crate::otel::TraceStats>) {
        let c = |a: fn(&crate::otel::TraceStats) -> &AtomicU64| {
            let s = stats.clone();
            move || a(&s).load(Ordering::Relaxed) as f64
        };
        self.register_pulled([
            Pulled::counter("to11_trace_spans_exported_total", "Spans the OpenTelemetry collector accepted.", c(|s| &s.exported)),
            Pulled::counter("to11_trace_spans_dropped_total", "Spans dropped: the export queue was full, or their batch's export failed.", c(|s| &s.dropped)),
            Pulled::counter("to11_trace_export_failures_total", "Exports of a batch of spans that failed (no answer, or not 2xx); the batch is dropped.", c(|s| &s.export_failures)),
        ]);
    }
}

impl Metrics {
    /// Registers the limiter's counters (refusals by code, store failures, local admissions,
    /// dropped settlements, budget alerts).
    pub fn pull_limits(&self, stats: &Arc<crate::limits::LimitStats>) {
        let c = |a: fn(&crate::limits::LimitStats) -> &AtomicU64| {
            let s = stats.clone();
            move || a(&s).load(Ordering::Relaxed) as f64
        };
        let all = [
            Pulled::counter("to11_limit_refusals_rate_limited_total", "Requests refused by a request or token limit.", c(|s| &s.rate_limited)),
            Pulled::counter("to11_limit_refusals_budget_exceeded_total", "Requests refused by a budget.", c(|s| &s.budget_exceeded)),
            Pulled::counter("to11_limit_refusals_concurrency_limited_total", "Requests refused by a concurrency limit.", c(|s| &s.concurrency_limited)),
            Pulled::counter("to11_limit_store_failures_total", "Calls to the limits store that failed or timed out.", c(|s| &s.store_failures)),
            Pulled::counter("to11_limit_admitted_locally_total", "Limited requests admitted on a worker's own share while the limits store was unreachable.", c(|s| &s.admitted_locally)),
            Pulled::counter("to11_limit_settlements_dropped_total", "Settled amounts dropped because the limits store stayed unreachable.", c(|s| &s.dropped)),
            Pulled::counter("to11_budget_alerts_total", "Budget alert thresholds (and budgets) crossed.", c(|s| &s.alerts)),
        ];
        self.register_pulled(all);
    }

    fn register_pulled<const N: usize>(&self, all: [Result<Pulled, prometheus::Error>; N]) {
        for p in all {
            match p {
                Ok(p) => {
                    if let Err(e) = p.register(&self.registry) {
                        tracing::warn!(error = %e, "a metric could not be registered");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "a metric could not be made"),
            }
        }
    }
}

/// Seconds since `ms` (ms since the epoch); +Inf for 0 (never).
fn age_seconds(ms: u64) -> f64 {
    if ms == 0 {
        return f64::INFINITY;
    }
    now_ms().saturating_sub(ms) as f64 / 1000.0
}
