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

/// `GET /metrics`: the replica's registry in Prometheus' text format (see `metrics`).
pub async fn metrics(ctx: web::Data<Ctx>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(to11_io::metrics::CONTENT_TYPE)
        .body(to11_io::metrics::render(&ctx.metrics.registry))
}

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, GatewayError> {
    Err(GatewayError::new(
        ErrorCode::NotFound,
        format!("no such endpoint: {} {}", req.method(), req.path()),
    ))
}
