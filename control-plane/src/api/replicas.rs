//! `GET /api/v1/replicas` (the operator only): the gateway replicas that reported in within their
//! reports' TTL — what each serves (version, projects), its last refused snapshot, its staleness,
//! whether it is degraded (serving what the store lost) or draining. Read from Redis in a
//! deployment, from the in-process gateway in embedded mode.

use std::sync::{Arc, OnceLock};

use actix_web::{web, HttpRequest, HttpResponse};
use to11_io::replicas::ReplicaDirectory;
use to11_shared::ErrorCode;

use super::{Api, Principal};
use crate::error::ApiError;

/// Where the reports are read, set once after start.
pub type Replicas = Arc<OnceLock<Arc<dyn ReplicaDirectory>>>;

pub async fn list(req: HttpRequest, api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    Principal::from_request(&req, &api)?.require_operator()?;
    let mut replicas = match api.replicas.get() {
        Some(d) => d.replicas().await.map_err(|e| {
            ApiError::new(
                ErrorCode::StoreUnavailable,
                format!("cannot read the replicas' reports: {e}"),
            )
        })?,
        None => Vec::new(),
    };
    replicas.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "count": replicas.len(),
        "replicas": replicas,
    })))
}
