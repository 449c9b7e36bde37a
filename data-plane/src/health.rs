//! `/healthz` (the process is up), `/readyz` (configuration loaded; reports the applied version)
//! and Prometheus `/metrics`.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use to11_shared::ErrorCode;
use uuid::Uuid;

use crate::error::GatewayError;
use crate::Ctx;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

#[derive(Deserialize)]
pub struct ReadyQuery {
    project: Option<Uuid>,
}

pub async fn readyz(ctx: web::Data<Ctx>, q: web::Query<ReadyQuery>) -> HttpResponse {
    let state = ctx.live.load();
    let body = serde_json::json!({
        "ready": state.loaded,
        "version": ctx.live.max_version(),
        "projects": state.projects.len(),
        "project_version": q.project.map(|p| state.projects.get(&p).map(|p| p.version).unwrap_or(0)),
        "subscribed": ctx.sync.subscribed.load(Ordering::Relaxed),
        "last_error": ctx.sync.last_error(),
    });
    if state.loaded {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(ctx: web::Data<Ctx>) -> HttpResponse {
    let s = &ctx.sync;
    let m = &ctx.metrics;
    let u = &ctx.recorder.stats;
    let text = format!(
        "# TYPE to11_requests_total counter\nto11_requests_total {}\n\
         # TYPE to11_request_errors_total counter\n\
         to11_request_errors_total{{fault=\"client\"}} {}\n\
         to11_request_errors_total{{fault=\"upstream\"}} {}\n\
         to11_request_errors_total{{fault=\"gateway\"}} {}\n\
         # TYPE to11_upstream_5xx_total counter\nto11_upstream_5xx_total {}\n\
         # TYPE to11_config_version gauge\nto11_config_version {}\n\
         # TYPE to11_config_projects gauge\nto11_config_projects {}\n\
         # TYPE to11_snapshots_applied_total counter\nto11_snapshots_applied_total {}\n\
         # TYPE to11_snapshots_refused_total counter\nto11_snapshots_refused_total {}\n\
         # TYPE to11_reconciles_total counter\nto11_reconciles_total {}\n\
         # TYPE to11_config_subscribed gauge\nto11_config_subscribed {}\n\
         # TYPE to11_usage_records_queued_total counter\nto11_usage_records_queued_total {}\n\
         # TYPE to11_usage_records_dropped_total counter\nto11_usage_records_dropped_total {}\n\
         # TYPE to11_usage_records_shipped_total counter\nto11_usage_records_shipped_total {}\n\
         # TYPE to11_usage_ship_failures_total counter\nto11_usage_ship_failures_total {}\n",
        m.requests.get(),
        m.errors[0].get(),
        m.errors[1].get(),
        m.errors[2].get(),
        m.upstream_errors.get(),
        ctx.live.max_version(),
        ctx.live.load().projects.len(),
        s.applied.load(Ordering::Relaxed),
        s.refused.load(Ordering::Relaxed),
        s.reconciles.load(Ordering::Relaxed),
        u8::from(s.subscribed.load(Ordering::Relaxed)),
        u.queued.load(Ordering::Relaxed),
        u.dropped.load(Ordering::Relaxed),
        u.shipped.load(Ordering::Relaxed),
        u.ship_failures.load(Ordering::Relaxed),
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, GatewayError> {
    Err(GatewayError::new(
        ErrorCode::NotFound,
        format!("no such endpoint: {} {}", req.method(), req.path()),
    ))
}
