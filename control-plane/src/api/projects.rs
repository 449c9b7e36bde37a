//! Projects, management keys and `resolve`.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use to11_shared::keys::new_management_key;
use to11_shared::model::{valid_slug, ByokPolicy, ManagementKey, ProjectState};
use to11_shared::resolve::compile;
use to11_shared::snapshot::Snapshot;
use to11_shared::ErrorCode;
use uuid::Uuid;

use super::auth::{project, Principal};
use super::views::{mint, KeyView, Minted, ProjectView, Written};
use super::Api;
use crate::actors::registry::{
    CreateProject, DeleteProject, EditProject, IssueManagementKey, RenameProject,
    RevokeManagementKey,
};
use crate::domain::project::{new_project, slug_from_name, ProjectEdit};
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: String,
    slug: Option<String>,
    #[serde(default)]
    byok: ByokPolicy,
}

fn check_slug(slug: &str) -> Result<(), ApiError> {
    if valid_slug(slug) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid slug '{slug}': use lowercase letters, digits and '-', at most 64 characters"
        )))
    }
}

pub async fn create(
    req: HttpRequest,
    api: web::Data<Api>,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    Principal::from_request(&req, &api)?.require_operator()?;
    let body = body.into_inner();
    if body.name.trim().is_empty() {
        return Err(ApiError::bad_request("'name' must not be empty"));
    }
    let slug = body.slug.unwrap_or_else(|| slug_from_name(&body.name));
    check_slug(&slug)?;
    let state = new_project(Uuid::new_v4(), slug, &body.name, body.byok, Utc::now());
    let (id, slug) = (state.project.id, state.project.slug.clone());
    let c = match api.registry.send(CreateProject { state }).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::from(e)),
    };
    let outcome = c.as_ref().map(|c| c.version);
    api.audit_change(&req, "CreateProject", Some(id), Some(slug), outcome)
        .await;
    let c = c?;
    // The view carries the version the write produced.
    Ok(HttpResponse::Created().json(ProjectView::from(&*c.state)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only projects whose slug or name contains this, in any case.
    q: Option<String>,
    /// At most this many (1–1000).
    limit: Option<usize>,
}

/// `GET /projects`: oldest first; `q` searches slugs and names, `limit` bounds the answer
/// (`total` counts every match), so a dashboard over 100,000 projects fetches a page, not all.
pub async fn list(
    req: HttpRequest,
    api: web::Data<Api>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let only = match Principal::from_request(&req, &api)? {
        Principal::Operator => None,
        Principal::Project(p) => Some(p),
    };
    let ListQuery { q, limit } = query.into_inner();
    if limit.is_some_and(|l| !(1..=1000).contains(&l)) {
        return Err(ApiError::bad_request("'limit' must be between 1 and 1000"));
    }
    let needle = q.map(|q| q.to_lowercase()).filter(|q| !q.is_empty());
    let model = api.model.load();
    let candidates: Vec<&Arc<ProjectState>> = match only {
        Some(id) => model.get(&id).into_iter().collect(),
        None => model.projects().collect(),
    };
    let mut matching: Vec<&Arc<ProjectState>> = candidates
        .into_iter()
        .filter(|p| {
            needle.as_deref().is_none_or(|n| {
                p.project.slug.contains(n) || p.project.name.to_lowercase().contains(n)
            })
        })
        .collect();
    let total = matching.len();
    // Only the page is sorted: the oldest `limit` are picked first (a page of 50 out of
    // 100,000 projects is not a sort of all of them).
    let n = limit.unwrap_or(total).min(total);
    if n < total {
        matching.select_nth_unstable_by_key(n, |p| p.project.created_at);
        matching.truncate(n);
    }
    matching.sort_by_key(|p| p.project.created_at);
    let data: Vec<ProjectView> = matching
        .into_iter()
        .map(|p| ProjectView::from(&**p))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data, "total": total })))
}

pub async fn get(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    Ok(HttpResponse::Ok().json(ProjectView::from(&*s)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    name: Option<String>,
    slug: Option<String>,
    byok: Option<ByokPolicy>,
    strict_translation: Option<bool>,
    /// A permutation of the connected providers' slugs: decides which provider serves a bare
    /// model name several expose.
    provider_order: Option<Vec<String>>,
}

pub async fn update(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse, ApiError> {
    let (who, s) = project(&req, &api, &path)?;
    let body = body.into_inner();
    let id = s.project.id;
    if let Some(slug) = &body.slug {
        who.require_operator()?;
        check_slug(slug)?;
        if *slug != s.project.slug {
            api.apply(
                &req,
                RenameProject {
                    project: id,
                    slug: slug.clone(),
                },
            )
            .await?;
        }
    }
    if let Some(name) = &body.name {
        if name.trim().is_empty() {
            return Err(ApiError::bad_request("'name' must not be empty"));
        }
    }
    let edit = ProjectEdit {
        name: body.name,
        byok: body.byok,
        strict_translation: body.strict_translation,
        provider_order: body.provider_order,
    };
    let c = api.apply(&req, EditProject { project: id, edit }).await?;
    // The view carries the version the write produced; warnings (e.g. a reordering that changes
    // which provider serves a shared model name) are added beside it.
    let mut out = serde_json::to_value(ProjectView::from(&*c.state)).unwrap_or_default();
    if !c.warnings.is_empty() {
        out["warnings"] = serde_json::to_value(&c.warnings).unwrap_or_default();
    }
    Ok(HttpResponse::Ok().json(out))
}

pub async fn delete(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (who, s) = project(&req, &api, &path)?;
    who.require_operator()?;
    let version = match api
        .registry
        .send(DeleteProject {
            project: s.project.id,
        })
        .await
    {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::from(e)),
    };
    let target = Some(s.project.slug.clone());
    let outcome = version.as_ref().copied();
    api.audit_change(&req, "DeleteProject", Some(s.project.id), target, outcome)
        .await;
    let version = version?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "deleted": s.project.id, "version": version })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    name: String,
}

pub async fn create_management_key(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    body: web::Json<KeyBody>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    let name = body.into_inner().name;
    if name.trim().is_empty() {
        return Err(ApiError::bad_request("'name' must not be empty"));
    }
    let Minted { secret, hash, hint } = mint(&api.keyring, new_management_key);
    let key = ManagementKey {
        id: Uuid::new_v4(),
        name: name.trim().to_string(),
        hash,
        hint,
        created_at: Utc::now(),
    };
    let c = api
        .apply(
            &req,
            IssueManagementKey {
                project: s.project.id,
                key,
            },
        )
        .await?;
    let view = KeyView::from(&c.value);
    Ok(HttpResponse::Created().json(Written {
        value: serde_json::json!({ "key": secret, "id": view.id, "name": view.name, "hint": view.hint, "created_at": view.created_at }),
        version: c.version,
        warnings: vec![],
    }))
}

pub async fn list_management_keys(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    let data: Vec<KeyView> = s.management_keys.iter().map(KeyView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data })))
}

pub async fn delete_management_key(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (p, id) = path.into_inner();
    let (_, s) = project(&req, &api, &p)?;
    let c = api
        .apply(
            &req,
            RevokeManagementKey {
                project: s.project.id,
                id,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "deleted": id, "version": c.version })))
}

#[derive(Deserialize)]
pub struct ResolveQuery {
    model: String,
}

/// Explains what a model name resolves to, through which layer, and which targets a request would
/// try in what order — computed by the same compile/resolve code the replicas run.
pub async fn resolve(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    q: web::Query<ResolveQuery>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    let tables = compile(&Snapshot::from_state(&s)).map_err(|problems| {
        ApiError::new(
            ErrorCode::Internal,
            "the stored configuration does not compile",
        )
        .with_details(serde_json::json!({ "problems": problems }))
    })?;
    let Some(r) = tables.resolve(&q.model) else {
        return Err(ApiError::new(
            ErrorCode::ModelNotFound,
            format!("model '{}' is not known to this project: no function, route or connected provider serves it", q.model),
        ));
    };
    let targets: Vec<serde_json::Value> = r
        .targets
        .iter()
        .map(|t| {
            serde_json::json!({
                "provider": tables.providers[t.provider].slug,
                "model": t.model,
                "credential": t.credential,
                "weight": t.weight,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "model": q.model,
        "layer": r.layer,
        "function": r.function,
        "route": r.route,
        "strategy": r.strategy,
        "policy": r.policy,
        "targets": targets,
        "version": s.version,
        "warnings": tables.warnings,
    })))
}
