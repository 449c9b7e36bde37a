//! Stored credentials: several per provider connection (rotation, spreading load across
//! accounts). Added and rotated credentials are validated with the provider first. Write-only:
//! answers show the name and a hint. A credential that is a provider's default or that a route
//! uses is not deleted; the answer names what uses it.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use to11_shared::catalog;
use to11_shared::model::{valid_slug, ProjectState};
use to11_shared::ErrorCode;

use super::auth::project;
use super::providers::{locate, parse_secret, probe};
use super::views::Written;
use super::Api;
use crate::actors::registry::{AddCredential, RemoveCredential, UpdateCredential};
use crate::domain::credentials::{self, ClearCredential, CredentialChange, NewCredential};
use crate::error::ApiError;
use crate::providers::Target;

#[derive(Serialize)]
pub struct CredentialEntry {
    pub provider: String,
    pub id: String,
    pub name: String,
    pub hint: String,
    pub created_at: chrono::DateTime<Utc>,
    pub default: bool,
    /// Routes whose targets use this credential explicitly or as the provider's default.
    pub used_by: Vec<String>,
}

fn entries(s: &ProjectState) -> Vec<CredentialEntry> {
    let mut out = vec![];
    for p in &s.providers {
        for c in &p.credentials {
            let is_default = p.default_credential == c.id;
            let used_by = credentials::used_by(s, &p.slug, &c.id, is_default);
            out.push(CredentialEntry {
                provider: p.slug.clone(),
                id: c.id.clone(),
                name: c.name.clone(),
                hint: c.hint.clone(),
                created_at: c.created_at,
                default: is_default,
                used_by,
            });
        }
    }
    out
}

fn entry_of(s: &ProjectState, provider: &str, id: &str) -> Result<CredentialEntry, ApiError> {
    entries(s)
        .into_iter()
        .find(|e| e.provider == provider && e.id == id)
        .ok_or_else(|| ApiError::not_found("credential"))
}

pub async fn list(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": entries(&s) })))
}

/// Validates `value` as a credential of `provider` with a real call to the provider.
async fn validated(
    api: &Api,
    s: &ProjectState,
    provider: &str,
    value: &serde_json::Value,
) -> Result<ClearCredential, ApiError> {
    let p = s
        .provider(provider)
        .ok_or_else(|| ApiError::not_found("provider"))?;
    let entry = catalog::entry(&p.kind).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Internal,
            format!("kind '{}' left the catalog", p.kind),
        )
    })?;
    let secret = parse_secret(&entry, Some(value))?;
    let (base_url, account) = locate(api, &entry, Some(&p.base_url), &p.account, &secret)?;
    // Providers without a listing are validated with a call to a model the project uses.
    let named = p
        .exposed
        .first()
        .or(p.discovered.first().map(|m| &m.id))
        .cloned()
        .into_iter()
        .collect();
    let checked = Target {
        entry,
        base_url,
        account,
        secret,
        named,
    };
    probe(api, &checked).await?;
    ClearCredential::new(&checked.secret)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    provider: String,
    /// Identifier used by route targets (lowercase letters, digits, '-').
    id: String,
    name: Option<String>,
    credential: serde_json::Value,
    /// Make it the provider's default credential.
    #[serde(default)]
    default: bool,
}

pub async fn add(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    body: web::Json<AddBody>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    let body = body.into_inner();
    if !valid_slug(&body.id) {
        return Err(ApiError::bad_request(
            "'id' must be lowercase letters, digits and '-'",
        ));
    }
    let secret = validated(&api, &s, &body.provider, &body.credential).await?;
    let (provider, id) = (body.provider.clone(), body.id.clone());
    let new = NewCredential {
        provider: body.provider,
        id: body.id,
        name: body.name,
        secret,
        make_default: body.default,
    };
    let c = api
        .apply(
            &req,
            AddCredential {
                project: s.project.id,
                credential: new,
                at: Utc::now(),
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(Written {
        value: entry_of(&c.state, &provider, &id)?,
        version: c.version,
        warnings: c.warnings,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// A new secret (rotation); validated with the provider first.
    credential: Option<serde_json::Value>,
    name: Option<String>,
    /// `true` makes it the provider's default credential.
    default: Option<bool>,
}

pub async fn update(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String, String)>,
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse, ApiError> {
    let (p, provider, id) = path.into_inner();
    let (_, s) = project(&req, &api, &p)?;
    entry_of(&s, &provider, &id)?;
    let body = body.into_inner();
    if body.default == Some(false) {
        return Err(ApiError::bad_request(
            "a provider always has a default credential: make another one the default instead",
        ));
    }
    let secret = match &body.credential {
        Some(v) => Some(validated(&api, &s, &provider, v).await?),
        None => None,
    };
    let change = CredentialChange {
        secret,
        name: body.name,
        make_default: body.default == Some(true),
    };
    let c = api
        .apply(
            &req,
            UpdateCredential {
                project: s.project.id,
                provider: provider.clone(),
                id: id.clone(),
                change,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(Written {
        value: entry_of(&c.state, &provider, &id)?,
        version: c.version,
        warnings: c.warnings,
    }))
}

pub async fn delete(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, provider, id) = path.into_inner();
    let (_, s) = project(&req, &api, &p)?;
    let c = api
        .apply(
            &req,
            RemoveCredential {
                project: s.project.id,
                provider,
                id: id.clone(),
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "deleted": id, "version": c.version })))
}
