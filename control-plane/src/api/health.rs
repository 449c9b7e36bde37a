//! `/healthz`, `/readyz` (the store answers), `/metrics`, the OpenAPI document and the index.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};
use to11_io::metrics::Pulled;
use to11_shared::crypto::secret_eq;
use to11_shared::ErrorCode;

use super::Api;
use crate::actors::registry::{PingStore, ReadModel};
use crate::error::ApiError;
use crate::usage::ingest::IngestStats;

/// Seconds: configuration writes (a Redis transaction and a publish) and the API's other writes.
const WRITE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The control plane's metrics, in a registry of its own (embedded mode runs a gateway beside
/// it). Labels are bounded: a route is its pattern (`/api/v1/projects/{project}`, never a raw
/// path; `unmatched` otherwise), a method one of the standard ones, a provider a catalog id.
pub struct ApiMetrics {
    pub registry: Registry,
    pub store_errors: IntCounter,
    /// Requests refused for their credentials (401), and refused during a back-off (429).
    pub auth_failures: IntCounter,
    pub auth_throttled: IntCounter,
    requests: IntCounterVec,
    writes: HistogramVec,
    /// Credential validations and model discoveries, by catalog id and outcome.
    pub probes: IntCounterVec,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

// Constructors fail only for an invalid name, label or bucket list: all are constants here, and
// every test of the control plane builds them.
#[allow(clippy::expect_used)]
impl ApiMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("constant, valid name");
            register(&registry, c.clone());
            c
        };
        let counters = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("constant, valid");
            register(&registry, c.clone());
            c
        };
        let writes = HistogramVec::new(
            HistogramOpts::new(
                "to11_cp_api_write_duration_seconds",
                "Time to answer API writes (POST, PUT, PATCH, DELETE), by route.",
            )
            .buckets(WRITE_BUCKETS.to_vec()),
            &["method", "route"],
        )
        .expect("constant, valid");
        register(&registry, writes.clone());
        ApiMetrics {
            store_errors: counter("to11_cp_store_errors_total", "Configuration store failures met by writes and readiness checks."),
            auth_failures: counter("to11_cp_auth_failures_total", "Requests refused for their credentials (401)."),
            auth_throttled: counter("to11_cp_auth_throttled_total", "Requests refused during an authentication back-off (429)."),
            requests: counters("to11_cp_api_requests_total", "API requests, by method, route pattern and status.", &["method", "route", "status"]),
            probes: counters("to11_cp_probes_total", "Provider probes (credential validation and model discovery), by catalog id and outcome.", &["provider", "outcome"]),
            writes,
            registry,
        }
    }

    /// Registers what is read at scrape time: the published model, the audit log's failures and
    /// ingestion's counters.
    pub fn pull(
        &self,
        model: &ReadModel,
        audit_failures: Arc<AtomicU64>,
        ingest: Option<&Arc<IngestStats>>,
    ) {
        let (m1, m2) = (model.clone(), model.clone());
        let mut all = vec![
            Pulled::gauge("to11_cp_projects", "Projects.", move || {
                m1.load().len() as f64
            }),
            Pulled::gauge(
                "to11_cp_config_version",
                "Highest configuration version committed.",
                move || m2.load().max_version() as f64,
            ),
            Pulled::counter(
                "to11_cp_audit_failures_total",
                "Audit entries that could not be stored (the change was made).",
                move || audit_failures.load(Ordering::Relaxed) as f64,
            ),
        ];
        if let Some(i) = ingest {
            let read = |f: fn(&IngestStats) -> &AtomicU64| {
                let i = i.clone();
                move || f(&i).load(Ordering::Relaxed) as f64
            };
            let lag = i.clone();
            all.extend([
                Pulled::counter(
                    "to11_cp_usage_entries_total",
                    "Usage stream entries ingested.",
                    read(|i| &i.entries),
                ),
                Pulled::counter(
                    "to11_cp_usage_records_total",
                    "Request records ingested (throughput: its rate).",
                    read(|i| &i.records),
                ),
                Pulled::counter(
                    "to11_cp_usage_duplicates_total",
                    "Records already stored (shipped or read twice).",
                    read(|i| &i.duplicates),
                ),
                Pulled::counter(
                    "to11_cp_usage_malformed_total",
                    "Entries that could not be read as records (skipped).",
                    read(|i| &i.malformed),
                ),
                Pulled::counter(
                    "to11_cp_usage_newer_format_total",
                    "Entries in a newer format, left for a newer control plane.",
                    read(|i| &i.newer),
                ),
                Pulled::counter(
                    "to11_cp_usage_store_failures_total",
                    "Failed writes to the usage store (retried).",
                    read(|i| &i.store_failures),
                ),
                Pulled::counter(
                    "to11_cp_usage_redis_failures_total",
                    "Failed reads of the usage stream (retried).",
                    read(|i| &i.redis_failures),
                ),
                Pulled::gauge(
                    "to11_cp_usage_lag_seconds",
                    "Between the newest stored record's arrival at a gateway and its storing.",
                    move || lag.lag_ms.load(Ordering::Relaxed) as f64 / 1000.0,
                ),
            ]);
        }
        for p in all {
            match p {
                Ok(p) => register(&self.registry, p),
                Err(e) => tracing::warn!(error = %e, "a metric could not be made"),
            }
        }
    }

    /// Counts an API request; `write`: how long a write took.
    fn request(&self, method: &str, route: &str, status: u16, write: Option<Duration>) {
        let status = status.to_string();
        if let Ok(c) = self
            .requests
            .get_metric_with_label_values(&[method, route, &status])
        {
            c.inc();
        }
        if let Some(d) = write {
            if let Ok(h) = self.writes.get_metric_with_label_values(&[method, route]) {
                h.observe(d.as_secs_f64());
            }
        }
    }
}

fn register(r: &Registry, c: impl prometheus::core::Collector + 'static) {
    if let Err(e) = r.register(Box::new(c)) {
        tracing::warn!(error = %e, "a metric could not be registered; it is not exposed");
    }
}

/// Middleware of the `/api/v1` scope (outside `guard::admit`, so refusals count too): requests
/// by method, route pattern and status, and the time writes take.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let write = matches!(method, "POST" | "PUT" | "PATCH" | "DELETE");
    let api = req.app_data::<web::Data<Api>>().cloned();
    let started = Instant::now();
    let res = next.call(req).await;
    if let Some(api) = api {
        let status = match &res {
            Ok(r) => r.status(),
            Err(e) => e.as_response_error().status_code(),
        };
        let took = write.then(|| started.elapsed());
        api.metrics.request(method, &route, status.as_u16(), took);
    }
    res
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(api: web::Data<Api>) -> HttpResponse {
    match api.registry.send(PingStore).await {
        Ok(Ok(())) => HttpResponse::Ok().json(serde_json::json!({"ready": true})),
        Ok(Err(e)) => {
            api.metrics.store_errors.inc();
            let e = ApiError::from(e);
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"ready": false, "error": e.message}))
        }
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"ready": false, "error": e.to_string()})),
    }
}

/// `GET /metrics`: the control plane's registry in Prometheus' text format (counters kept as
/// things happen; the model's size and highest version are O(log n) reads of the published model,
/// no walk, no copy); behind `TO11_METRICS_TOKEN` when it is set.
pub async fn metrics(req: HttpRequest, api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    check_metrics_token(&req, &api)?;
    Ok(HttpResponse::Ok()
        .content_type(to11_io::metrics::CONTENT_TYPE)
        .body(to11_io::metrics::render(&api.metrics.registry)))
}

/// With `TO11_METRICS_TOKEN` set, `/metrics` needs it as a bearer token (failures back off like
/// any other failed token).
fn check_metrics_token(req: &HttpRequest, api: &Api) -> Result<(), ApiError> {
    let Some(want) = &api.metrics_token else {
        return Ok(());
    };
    let now = std::time::Instant::now();
    let keys = super::guard::throttle_keys(req, api);
    if let Some(wait) = api.throttle.blocked(&keys, now) {
        api.metrics.auth_throttled.inc();
        return Err(ApiError::too_many_failures(
            super::throttle::retry_after_secs(wait),
        ));
    }
    let sent = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(to11_shared::keys::strip_bearer)
        .unwrap_or("");
    if !sent.is_empty() && secret_eq(&api.keyring.key_hash(sent).0, &want.0) {
        return Ok(());
    }
    api.metrics.auth_failures.inc();
    if !sent.is_empty() {
        api.throttle.fail(&keys, now);
    }
    Err(ApiError::new(
        ErrorCode::Unauthorized,
        "/metrics needs 'Authorization: Bearer <TO11_METRICS_TOKEN>'",
    ))
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(include_str!("openapi.json"))
}

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorCode::NotFound,
        format!("no such endpoint: {} {}", req.method(), req.path()),
    ))
}
