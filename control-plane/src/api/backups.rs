//! `POST /api/v1/backups` (the operator only): writes a backup of the whole configuration into
//! `TO11_BACKUP_DIR` now (credentials stay sealed by the master key, keys are keyed hashes) and
//! answers where it is and what it holds. Restoring is `to11-control-plane --restore-from FILE`.

use actix_web::{web, HttpRequest, HttpResponse};
use to11_shared::ErrorCode;

use super::auth::Principal;
use super::Api;
use crate::error::ApiError;
use crate::recovery::backup;

pub async fn create(req: HttpRequest, api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    Principal::from_request(&req, &api)?.require_operator()?;
    let Some((dir, keep)) = &api.backups else {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "backups are off: set TO11_BACKUP_DIR on the control plane",
        ));
    };
    let taken = backup::take(dir.clone(), *keep, api.model.load(), &api.store)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e));
    let target = taken.as_ref().ok().map(|s| s.file.display().to_string());
    let outcome = taken.as_ref().map(|_| 0);
    api.audit_change(&req, "TakeBackup", None, target, outcome)
        .await;
    let s = taken?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "file": s.file,
        "taken_at": s.taken_at,
        "epoch": s.epoch,
        "projects": s.projects,
        "max_version": s.max_version,
    })))
}
