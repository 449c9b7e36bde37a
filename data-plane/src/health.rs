//! `/healthz` (the process is up), `/readyz` (configuration loaded and not draining; reports the
//! applied version, the subscription, `degraded`, the last refusal) and Prometheus `/metrics`.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use to11_shared::ErrorCode;
use uuid::Uuid;

use crate::error::GatewayError;
use crate::Ctx;

/// Liveness: the process answers. `degraded` (serving a configuration the store lost) and
/// `draining` are shown, never a reason to restart it.
pub async fn healthz(ctx: web::Data<Ctx>) -> HttpResponse {
    let degraded = ctx.sync.degraded.load(Ordering::Relaxed);
    HttpResponse::Ok().json(serde_json::json!({
        "status": if degraded { "degraded" } else { "ok" },
        "degraded": degraded,
        "draining": ctx.drain.draining(),
    }))
}

#[derive(Deserialize)]
pub struct ReadyQuery {
    project: Option<Uuid>,
}

pub async fn readyz(ctx: web::Data<Ctx>, q: web::Query<ReadyQuery>) -> HttpResponse {
    let state = ctx.live.load();
    let draining = ctx.drain.draining();
    let body = serde_json::json!({
        "ready": state.loaded && !draining,
        "loaded": state.loaded,
        "version": ctx.live.max_version(),
        "projects": state.projects.len(),
        "project_version": q.project.map(|p| state.projects.get(&p).map(|p| p.version).unwrap_or(0)),
        "subscribed": ctx.sync.subscribed.load(Ordering::Relaxed),
        "subscription_losses": ctx.sync.subscription_losses.load(Ordering::Relaxed),
        "degraded": ctx.sync.degraded.load(Ordering::Relaxed),
        "draining": draining,
        "last_error": ctx.sync.last_error(),
        "last_refusal": ctx.sync.last_refusal(),
    });
    // A draining replica still serves, but asks load balancers to send it nothing new.
    if state.loaded && !draining {
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
