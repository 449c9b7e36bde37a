//! `/healthz`, `/readyz` (the store answers), `/metrics`, the OpenAPI document and the index.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{web, HttpRequest, HttpResponse};
use to11_shared::ErrorCode;

use super::Api;
use crate::actors::registry::PingStore;
use crate::error::ApiError;

#[derive(Default)]
pub struct ApiMetrics {
    pub store_errors: AtomicU64,
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

pub async fn metrics(api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    let model = api.model.load();
    let text = format!(
        "# TYPE to11_cp_projects gauge\nto11_cp_projects {}\n\
         # TYPE to11_cp_config_version gauge\nto11_cp_config_version {}\n\
         # TYPE to11_cp_store_errors_total counter\nto11_cp_store_errors_total {}\n",
        model.len(),
        model.max_version(),
        api.metrics.store_errors.load(Ordering::Relaxed)
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
