//! The replica's Prometheus metrics, served by `/metrics` (`health::metrics`).
//!
//! Cost on the request path is what shapes this module. A label lookup in a registry hashes
//! every label value and takes a lock; a request does none. Each request is labelled once, when
//! its provider is known, through its worker's `SeriesCache` (one hash of a short key). That
//! gives the `Series`: handles to the request's counters and histograms. From then on it only
//! increments atomics (`prometheus`' histograms are lock-free, atomic buckets). A handle is
//! created in the registry the first time a series needs it, never again. The values the code
//! keeps anyway (configuration sync, the usage pipeline) are read at scrape time (`pull`).
//!
//! Labels are bounded (`labels`): surface (the called API), provider (the catalog kind, never a
//! tenant's slug), model (the name the request resolved, at most `labels::MAX_MODELS` distinct),
//! layer, status class; a `project` label only when the operator turns it on.

pub mod labels;
mod pull;
mod tally;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use to11_shared::usage::Usage;

use labels::{ModelLabels, STATUS_CLASSES};
pub use tally::{AttemptTally, Tally};

/// Seconds. Time to first byte and whole requests: from a tenth of a millisecond (a cached or
/// mocked answer) to five minutes (a long generation).
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Seconds. The gateway's own time: from 10 µs.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 1.0,
];
/// Token kinds, in `Series::tokens`' order.
const TOKEN_KINDS: [&str; 5] = ["input", "output", "cache_read", "cache_write", "reasoning"];
/// A worker's cache is emptied when it holds this many series (a bound, not a working size).
const CACHE_MAX: usize = 10_000;

/// The labelled request metrics, one vector each.
struct Vecs {
    requests: IntCounterVec,
    duration: HistogramVec,
    ttfb: HistogramVec,
    overhead: HistogramVec,
    tokens: IntCounterVec,
    cost: IntCounterVec,
    attempts: IntCounterVec,
    retries: IntCounterVec,
    fallbacks: IntCounterVec,
    stream_failures: IntCounterVec,
}

/// The replica's metrics, shared by all workers.
pub struct Metrics {
    pub registry: Registry,
    /// Upstream 5xx answers and failures counted against a target.
    pub upstream_errors: IntCounter,
    /// Requests answered with the gateway's own error, by fault: client, upstream, gateway.
    errors: [IntCounter; 3],
    in_flight: IntGauge,
    cooldowns: IntCounterVec,
    /// Extra attempts the retry budget refused, by kind (retry, fallback) × budget (replica,
    /// target), in that order: made up front, so a refusal is one atomic increment.
    retries_refused: [IntCounter; 4],
    /// `None`: per-request metrics are off (`TO11_METRICS=false`).
    vecs: Option<Arc<Vecs>>,
    models: ModelLabels,
    project_label: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(true, false)
    }
}

impl Metrics {
    /// The metrics of a replica; `per_request` off keeps only what costs a request nothing.
    pub fn new(per_request: bool, project_label: bool) -> Self {
        let registry = Registry::new();
        let base: &[&'static str] = if project_label {
            &["surface", "provider", "model", "layer", "project"]
        } else {
            &["surface", "provider", "model", "layer"]
        };
        let with = |extra: &'static str| [base, &[extra]].concat();
        let r = &registry;
        let errors = counter_vec(
            r,
            "to11_request_errors_total",
            "Requests answered with the gateway's own error, by who was at fault.",
            &["fault"],
        );
        let vecs = per_request.then(|| {
            Arc::new(Vecs {
                requests: counter_vec(r, "to11_requests_total", "Requests, counted when they end.", &with("status")),
                duration: histogram_vec(r, "to11_request_duration_seconds", "From the request's arrival to the end of its answer.", base, LATENCY_BUCKETS),
                ttfb: histogram_vec(r, "to11_time_to_first_byte_seconds", "From the request's arrival to the upstream answer's head.", base, LATENCY_BUCKETS),
                overhead: histogram_vec(r, "to11_gateway_overhead_seconds", "The gateway's own time before the answer's head: total minus reading the client's body, waiting on upstreams and between retries.", base, OVERHEAD_BUCKETS),
                tokens: counter_vec(r, "to11_tokens_total", "Tokens of finished requests, by kind (output includes reasoning), as reported or estimated; counted when usage metering is on.", &with("kind")),
                cost: counter_vec(r, "to11_cost_micro_units_total", "Cost of finished requests at the built-in prices, in millionths of the currency; counted when usage metering is on, for priced models.", &with("currency")),
                attempts: counter_vec(r, "to11_upstream_attempts_total", "Upstream attempts made for requests, by the provider that served (or failed) last.", base),
                retries: counter_vec(r, "to11_retries_total", "Attempts that retried the same target.", base),
                fallbacks: counter_vec(r, "to11_fallbacks_total", "Moves to the next target of a route after a failure.", base),
                stream_failures: counter_vec(r, "to11_stream_failures_total", "Answers that failed after their head was sent (upstream reset, stall, or a stream without its end).", base),
            })
        });
        let refused = counter_vec(
            r,
            "to11_retries_refused_total",
            "Retries and fallbacks not made because the retry budget (of the replica, or of the target they would go to) was spent.",
            &["kind", "budget"],
        );
        Metrics {
            retries_refused: [
                ["retry", "replica"],
                ["retry", "target"],
                ["fallback", "replica"],
                ["fallback", "target"],
            ]
            .map(|l| labelled(&refused, &l)),
            upstream_errors: counter(
                r,
                "to11_upstream_5xx_total",
                "Upstream 5xx answers and failures counted against a target.",
            ),
            errors: ["client", "upstream", "gateway"].map(|f| labelled(&errors, &[f])),
            in_flight: gauge(
                r,
                "to11_requests_in_flight",
                "Requests being served (answers still streaming included).",
            ),
            cooldowns: counter_vec(
                r,
                "to11_cooldowns_entered_total",
                "Route targets that entered a cool-down, by provider kind.",
                &["provider"],
            ),
            vecs,
            models: ModelLabels::new(labels::MAX_MODELS),
            project_label,
            registry,
        }
    }

    /// Counts a request the gateway answered with its own error.
    pub fn error(&self, code: to11_shared::ErrorCode) {
        use to11_shared::error::Fault;
        let i = match code.fault() {
            Fault::Client => 0,
            Fault::Upstream => 1,
            Fault::Gateway => 2,
        };
        self.errors[i].inc();
    }

    /// A target of `provider` kind entered a cool-down (rare: a registry lookup is fine here).
    pub fn cooldown(&self, provider: &str) {
        if let Ok(c) = self.cooldowns.get_metric_with_label_values(&[provider]) {
            c.inc();
        }
    }

    /// The retry budget refused an extra attempt (`kind`: `retry` or `fallback`; `budget`:
    /// `replica` or `target`).
    pub fn retry_refused(&self, kind: &str, budget: &str) {
        let i = usize::from(kind == "fallback") * 2 + usize::from(budget == "target");
        self.retries_refused[i].inc();
    }

    /// A request's tally, started at its arrival; `None` when per-request metrics are off.
    pub fn start(&self, started: std::time::Instant) -> Option<Tally> {
        self.vecs
            .as_ref()
            .map(|_| Tally::new(self.in_flight.clone(), started))
    }

    /// The series of `key`, from the worker's cache (created on a miss).
    pub fn series(&self, cache: &RefCell<SeriesCache>, key: &Key<'_>) -> Option<Arc<Series>> {
        let vecs = self.vecs.as_ref()?;
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return Some(Arc::new(self.new_series(vecs, key)));
        };
        let c = &mut *cache;
        c.key.clear();
        for part in [key.surface, key.provider, key.layer, key.model] {
            c.key.push_str(part);
            c.key.push('\u{1f}');
        }
        if self.project_label {
            c.key.push_str(key.project);
        }
        if let Some(s) = c.map.get(c.key.as_str()) {
            return Some(s.clone());
        }
        if c.map.len() >= CACHE_MAX {
            c.map.clear();
        }
        let s = Arc::new(self.new_series(vecs, key));
        c.map.insert(c.key.as_str().into(), s.clone());
        Some(s)
    }

    fn new_series(&self, vecs: &Arc<Vecs>, key: &Key<'_>) -> Series {
        let mut labels = vec![
            key.surface.to_string(),
            key.provider.to_string(),
            self.models.label(key.model).to_string(),
            key.layer.to_string(),
        ];
        if self.project_label {
            labels.push(key.project.to_string());
        }
        Series {
            vecs: vecs.clone(),
            labels: labels.into(),
            requests: Default::default(),
            duration: OnceLock::new(),
            ttfb: OnceLock::new(),
            overhead: OnceLock::new(),
            tokens: Default::default(),
            cost: OnceLock::new(),
            attempts: OnceLock::new(),
            retries: OnceLock::new(),
            fallbacks: OnceLock::new(),
            stream_failures: OnceLock::new(),
        }
    }
}

/// What labels a request. `provider` is a catalog kind; `model` the name the request resolved
/// (`labels::NONE` for what a request never got to).
pub struct Key<'a> {
    pub surface: &'static str,
    pub provider: &'a str,
    pub model: &'a str,
    pub layer: &'static str,
    /// The project's slug (a label only with `TO11_METRICS_PROJECT_LABEL`).
    pub project: &'a str,
}

/// One worker's series by key.
#[derive(Default)]
pub struct SeriesCache {
    key: String,
    map: HashMap<Box<str>, Arc<Series>, foldhash::fast::RandomState>,
}

/// The metrics of one label set: each handle made in the registry on first use, then shared.
pub struct Series {
    vecs: Arc<Vecs>,
    labels: Box<[String]>,
    requests: [OnceLock<IntCounter>; STATUS_CLASSES],
    duration: OnceLock<Histogram>,
    ttfb: OnceLock<Histogram>,
    overhead: OnceLock<Histogram>,
    tokens: [OnceLock<IntCounter>; TOKEN_KINDS.len()],
    /// In the built-in price table's currency (the only prices the gateway knows).
    cost: OnceLock<IntCounter>,
    attempts: OnceLock<IntCounter>,
    retries: OnceLock<IntCounter>,
    fallbacks: OnceLock<IntCounter>,
    stream_failures: OnceLock<IntCounter>,
}

impl Series {
    fn values<'s>(&'s self, extra: Option<&'s str>) -> Vec<&'s str> {
        self.labels
            .iter()
            .map(String::as_str)
            .chain(extra)
            .collect()
    }

    fn counter<'s>(
        &'s self,
        cell: &'s OnceLock<IntCounter>,
        vec: &IntCounterVec,
        extra: Option<&str>,
    ) -> &'s IntCounter {
        cell.get_or_init(|| labelled(vec, &self.values(extra)))
    }

    fn histogram<'s>(&'s self, cell: &'s OnceLock<Histogram>, vec: &HistogramVec) -> &'s Histogram {
        cell.get_or_init(|| {
            vec.get_metric_with_label_values(&self.values(None))
                .unwrap_or_else(|_| detached_histogram())
        })
    }

    fn requests(&self, status: u16) -> &IntCounter {
        let (i, class) = labels::status_class(status);
        self.counter(&self.requests[i], &self.vecs.requests, Some(class))
    }

    /// Counts a finished request's tokens.
    pub fn tokens(&self, u: &Usage) {
        let counts = [
            u.input,
            u.output,
            u.cache_read,
            u.cache_write + u.cache_write_1h,
            u.reasoning,
        ];
        for (i, n) in counts.into_iter().enumerate() {
            if n > 0 {
                self.counter(&self.tokens[i], &self.vecs.tokens, Some(TOKEN_KINDS[i]))
                    .inc_by(n);
            }
        }
    }
}

impl Series {
    /// Counts a finished request's cost, in micro-units of the built-in prices' currency.
    pub fn cost(&self, micro_units: u64) {
        let currency = to11_shared::usage::price::PriceTable::builtin_ref()
            .currency
            .as_str();
        self.counter(&self.cost, &self.vecs.cost, Some(currency))
            .inc_by(micro_units);
    }
}

// Constructors fail only for an invalid name, label name or bucket list: every one here is a
// constant, and `tests::every_metric_registers` builds them all.
#[allow(clippy::expect_used)]
fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::with_opts(Opts::new(name, help)).expect("constant, valid name");
    register(r, c.clone());
    c
}

#[allow(clippy::expect_used)]
fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::with_opts(Opts::new(name, help)).expect("constant, valid name");
    register(r, g.clone());
    g
}

#[allow(clippy::expect_used)]
fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let v = IntCounterVec::new(Opts::new(name, help), labels).expect("constant, valid names");
    register(r, v.clone());
    v
}

#[allow(clippy::expect_used)]
fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let v = HistogramVec::new(opts, labels).expect("constant, valid names and buckets");
    register(r, v.clone());
    v
}

/// A counter outside any registry: what a series counts into if its vector refused the labels
/// (their number is fixed by construction, so this does not happen; a metric never fails a
/// request either way).
#[allow(clippy::expect_used)]
fn detached_counter() -> IntCounter {
    IntCounter::new("to11_detached_total", "-").expect("constant, valid name")
}

#[allow(clippy::expect_used)]
fn detached_histogram() -> Histogram {
    Histogram::with_opts(HistogramOpts::new("to11_detached", "-")).expect("constant, valid name")
}

fn register(r: &Registry, c: impl prometheus::core::Collector + 'static) {
    if let Err(e) = r.register(Box::new(c)) {
        tracing::warn!(error = %e, "a metric could not be registered; it is not exposed");
    }
}

/// The handle of `labels` in `vec`, or one outside the registry when that fails (a metric must
/// never fail a request).
fn labelled(vec: &IntCounterVec, labels: &[&str]) -> IntCounter {
    vec.get_metric_with_label_values(labels)
        .unwrap_or_else(|_| detached_counter())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(model: &'a str, provider: &'a str) -> Key<'a> {
        Key {
            surface: "chat",
            provider,
            model,
            layer: "passthrough",
            project: "acme",
        }
    }

    fn text(m: &Metrics) -> String {
        String::from_utf8(to11_io::metrics::render(&m.registry)).expect("utf-8")
    }

    #[test]
    fn every_metric_registers() {
        for (on, project) in [(true, false), (true, true), (false, false)] {
            let m = Metrics::new(on, project);
            let s = m.series(&RefCell::default(), &key("gpt-4o", "openai"));
            assert_eq!(s.is_some(), on);
            if let Some(s) = s {
                s.requests(200).inc();
                s.histogram(&s.duration, &s.vecs.duration).observe(0.5);
                s.tokens(&Usage {
                    input: 3,
                    output: 5,
                    reasoning: 2,
                    ..Usage::default()
                });
                s.cost(1_250);
                s.cost(750);
            }
            m.error(to11_shared::ErrorCode::NotFound);
            let t = text(&m);
            assert!(
                t.contains("to11_request_errors_total{fault=\"client\"} 1"),
                "{t}"
            );
            if on {
                let project = if project { ",project=\"acme\"" } else { "" };
                let labels =
                    format!("layer=\"passthrough\",model=\"gpt-4o\"{project},provider=\"openai\"");
                assert!(
                    t.contains(&format!(
                        "to11_requests_total{{{labels},status=\"2xx\",surface=\"chat\"}} 1"
                    )),
                    "{t}"
                );
                assert!(
                    t.contains(&format!(
                        "to11_tokens_total{{kind=\"reasoning\",{labels},surface=\"chat\"}} 2"
                    )),
                    "{t}"
                );
                assert!(
                    t.contains(&format!(
                        "to11_cost_micro_units_total{{currency=\"USD\",{labels},surface=\"chat\"}} 2000"
                    )),
                    "{t}"
                );
                assert!(
                    !t.contains("kind=\"cache_read\""),
                    "kinds never seen are not exposed: {t}"
                );
            }
        }
    }

    #[test]
    fn a_worker_resolves_a_series_once_and_shares_it() {
        let m = Metrics::default();
        let cache = RefCell::default();
        let a = m.series(&cache, &key("gpt-4o", "openai")).expect("on");
        let b = m.series(&cache, &key("gpt-4o", "openai")).expect("on");
        let c = m.series(&cache, &key("gpt-4o", "azure")).expect("on");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(cache.borrow().map.len(), 2);
    }

    #[test]
    fn models_past_the_cap_are_labelled_other() {
        let m = Metrics::default();
        let cache = RefCell::default();
        for i in 0..labels::MAX_MODELS + 5 {
            let s = m
                .series(&cache, &key(&format!("m{i}"), "openai"))
                .expect("on");
            s.requests(200).inc();
        }
        let t = text(&m);
        let series = t
            .lines()
            .filter(|l| l.starts_with("to11_requests_total{"))
            .count();
        assert_eq!(
            series,
            labels::MAX_MODELS + 1,
            "a thousand names and `other`"
        );
        assert!(t.contains("model=\"other\""));
        assert!(t.contains("model=\"m999\""));
        assert!(!t.contains("model=\"m1000\""));
    }
}
