//! Gateway keys ("to11 keys"): created and shown once, stored only as a keyed hash, revoked by id.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use to11_shared::keys::new_gateway_key;
use to11_shared::model::{ByokPolicy, GatewayKey};
use uuid::Uuid;

use super::auth::project;
use super::views::{mint, KeyView, Minted, Written};
use super::Api;
use crate::actors::registry::{IssueGatewayKey, RevokeGatewayKey};
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: String,
    /// Limit the key to these model names (as clients call them).
    models: Option<Vec<String>>,
    expires_at: Option<DateTime<Utc>>,
    byok: Option<ByokPolicy>,
    /// What the key may use (`to11_shared::limits::Limits`).
    limits: Option<serde_json::Value>,
}

pub async fn create(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    let body = body.into_inner();
    if body.name.trim().is_empty() {
        return Err(ApiError::bad_request("'name' must not be empty"));
    }
    if body.expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(ApiError::bad_request("'expires_at' is in the past"));
    }
    if body.models.as_ref().is_some_and(|m| m.is_empty()) {
        return Err(ApiError::bad_request(
            "'models' must name at least one model, or be omitted for all",
        ));
    }
    let limits = match &body.limits {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(super::limits::parse(v)?).filter(|l| !l.is_empty()),
    };
    let Minted { secret, hash, hint } = mint(&api.keyring, new_gateway_key);
    let key = GatewayKey {
        id: Uuid::new_v4(),
        name: body.name.trim().to_string(),
        hash,
        hint,
        models: body.models,
        expires_at: body.expires_at,
        byok: body.byok,
        limits,
        created_at: Utc::now(),
    };
    let c = api
        .apply(
            &req,
            IssueGatewayKey {
                project: s.project.id,
                key,
            },
        )
        .await?;
    let mut value = serde_json::to_value(KeyView::from(&c.value)).unwrap_or_default();
    value["key"] = secret.into();
    Ok(HttpResponse::Created().json(Written {
        value,
        version: c.version,
        warnings: vec![],
    }))
}

pub async fn list(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    let data: Vec<KeyView> = s.keys.iter().map(KeyView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data })))
}

pub async fn revoke(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (p, id) = path.into_inner();
    let (_, s) = project(&req, &api, &p)?;
    let c = api
        .apply(
            &req,
            RevokeGatewayKey {
                project: s.project.id,
                id,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "revoked": id, "version": c.version })))
}
