//! `/healthz`, `/readyz` (the store answers), `/metrics`, the OpenAPI document and the index.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{web, HttpRequest, HttpResponse};
use to11_shared::crypto::secret_eq;
use to11_shared::ErrorCode;

use super::Api;
use crate::actors::registry::PingStore;
use crate::error::ApiError;

#[derive(Default)]
pub struct ApiMetrics {
    pub store_errors: AtomicU64,
    /// Requests refused for their credentials (401), and refused during a back-off (429).
    pub auth_failures: AtomicU64,
    pub auth_throttled: AtomicU64,
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(api: web::Data<Api>) -> HttpResponse {
    match api.registry.send(PingStore).await {
        Ok(Ok(())) => HttpResponse::Ok().json(serde_json::json!({"ready": true})),
        Ok(Err(e)) => {
            api.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
            let e = ApiError::from(e);
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"ready": false, "error": e.message}))
        }
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"ready": false, "error": e.to_string()})),
    }
}

/// `GET /metrics`: counters and gauges kept up to date as things happen (the model's size and
/// highest version are O(log n) reads of the published model, no walk, no copy); behind
/// `TO11_METRICS_TOKEN` when it is set.
pub async fn metrics(req: HttpRequest, api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    check_metrics_token(&req, &api)?;
    let model = api.model.load();
    let m = &api.metrics;
    let text = format!(
        "# TYPE to11_cp_projects gauge\nto11_cp_projects {}\n\
         # TYPE to11_cp_config_version gauge\nto11_cp_config_version {}\n\
         # TYPE to11_cp_store_errors_total counter\nto11_cp_store_errors_total {}\n\
         # TYPE to11_cp_auth_failures_total counter\nto11_cp_auth_failures_total {}\n\
         # TYPE to11_cp_auth_throttled_total counter\nto11_cp_auth_throttled_total {}\n\
         # TYPE to11_cp_audit_failures_total counter\nto11_cp_audit_failures_total {}\n",
        model.len(),
        model.max_version(),
        m.store_errors.load(Ordering::Relaxed),
        m.auth_failures.load(Ordering::Relaxed),
        m.auth_throttled.load(Ordering::Relaxed),
        api.audit.failures(),
    );
    let text = match &api.ingest {
        Some(i) => {
            let g = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            format!(
                "{text}# TYPE to11_cp_usage_entries_total counter\nto11_cp_usage_entries_total {}\n\
                 # TYPE to11_cp_usage_records_total counter\nto11_cp_usage_records_total {}\n\
                 # TYPE to11_cp_usage_duplicates_total counter\nto11_cp_usage_duplicates_total {}\n\
                 # TYPE to11_cp_usage_malformed_total counter\nto11_cp_usage_malformed_total {}\n\
                 # TYPE to11_cp_usage_newer_format_total counter\nto11_cp_usage_newer_format_total {}\n\
                 # TYPE to11_cp_usage_store_failures_total counter\nto11_cp_usage_store_failures_total {}\n\
                 # TYPE to11_cp_usage_redis_failures_total counter\nto11_cp_usage_redis_failures_total {}\n\
                 # TYPE to11_cp_usage_lag_ms gauge\nto11_cp_usage_lag_ms {}\n",
                g(&i.entries),
                g(&i.records),
                g(&i.duplicates),
                g(&i.malformed),
                g(&i.newer),
                g(&i.store_failures),
                g(&i.redis_failures),
                g(&i.lag_ms),
            )
        }
        None => text,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text))
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
        api.metrics.auth_throttled.fetch_add(1, Ordering::Relaxed);
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
    api.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
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
