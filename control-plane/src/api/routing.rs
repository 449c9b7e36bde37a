//! Routes (a public model name → a strategy over targets) and functions (a named task → a route
//! or a model, with request defaults). Every write is validated by the compile step the replicas
//! run: a target on an unknown provider, an unexposed model or a missing credential, a function
//! pointing at a missing route or model, are refused with every problem listed. A route may share
//! its name with a provider's model; resolution is top-down, so the route wins.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use to11_shared::model::{Function, Route, Strategy, Target};
use to11_shared::policy::RoutePolicy;

use super::auth::project;
use super::views::Written;
use super::Api;
use crate::actors::registry::{Create, Delete, Replace};
use crate::domain::routing::{self, Named};
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteBody {
    name: Option<String>,
    #[serde(default)]
    strategy: Strategy,
    targets: Vec<TargetBody>,
    #[serde(default)]
    policy: RoutePolicy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetBody {
    provider: String,
    model: String,
    credential: Option<String>,
    weight: Option<u32>,
}

impl RouteBody {
    fn into_route(self, name: String) -> Route {
        Route {
            name,
            strategy: self.strategy,
            targets: self
                .targets
                .into_iter()
                .map(|t| Target {
                    provider: t.provider,
                    model: t.model,
                    credential: t.credential,
                    weight: t.weight,
                })
                .collect(),
            policy: self.policy,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionBody {
    name: Option<String>,
    route: Option<String>,
    model: Option<String>,
    defaults: Option<serde_json::Map<String, serde_json::Value>>,
}

impl FunctionBody {
    fn into_function(self, name: String) -> Function {
        Function {
            name,
            route: self.route,
            model: self.model,
            defaults: self.defaults,
        }
    }
}

/// The name from the path (replace) or the body (create); they must agree when both are given.
fn name_of(path: Option<&str>, body: Option<&str>) -> Result<String, ApiError> {
    match (path, body) {
        (Some(p), Some(b)) if p != b => Err(ApiError::bad_request(format!(
            "the body names '{b}' but the path names '{p}'; renaming is delete + create"
        ))),
        (Some(p), _) => Ok(p.to_string()),
        (None, Some(b)) => Ok(b.to_string()),
        (None, None) => Err(ApiError::bad_request("'name' is required")),
    }
}

async fn create<T: Named>(
    req: &HttpRequest,
    api: &Api,
    project: uuid::Uuid,
    item: T,
) -> Result<HttpResponse, ApiError> {
    let c = api
        .apply(
            req,
            Create {
                project,
                item: item.clone(),
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(Written {
        value: item,
        version: c.version,
        warnings: c.warnings,
    }))
}

async fn replace<T: Named>(
    req: &HttpRequest,
    api: &Api,
    project: uuid::Uuid,
    item: T,
) -> Result<HttpResponse, ApiError> {
    let c = api
        .apply(
            req,
            Replace {
                project,
                item: item.clone(),
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(Written {
        value: item,
        version: c.version,
        warnings: c.warnings,
    }))
}

fn list<T: Named>(req: &HttpRequest, api: &Api, p: &str) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(req, api, p)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": T::all(&s) })))
}

fn get<T: Named>(
    req: &HttpRequest,
    api: &Api,
    p: &str,
    name: &str,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(req, api, p)?;
    let item = routing::find::<T>(&s, name).ok_or_else(|| ApiError::not_found(T::KIND))?;
    Ok(HttpResponse::Ok().json(item))
}

async fn delete<T: Named>(
    req: &HttpRequest,
    api: &Api,
    p: &str,
    name: String,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(req, api, p)?;
    let c = api
        .apply(req, Delete::<T>::new(s.project.id, name.clone()))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "deleted": name, "version": c.version })))
}

pub async fn create_route(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    body: web::Json<RouteBody>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    let body = body.into_inner();
    let name = name_of(None, body.name.as_deref())?;
    create(&req, &api, s.project.id, body.into_route(name)).await
}

pub async fn replace_route(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
    body: web::Json<RouteBody>,
) -> Result<HttpResponse, ApiError> {
    let (p, name) = path.into_inner();
    let (_, s) = project(&req, &api, &p)?;
    let body = body.into_inner();
    let name = name_of(Some(&name), body.name.as_deref())?;
    replace(&req, &api, s.project.id, body.into_route(name)).await
}

pub async fn list_routes(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    list::<Route>(&req, &api, &path)
}

pub async fn get_route(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, name) = path.into_inner();
    get::<Route>(&req, &api, &p, &name)
}

pub async fn delete_route(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, name) = path.into_inner();
    delete::<Route>(&req, &api, &p, name).await
}

pub async fn create_function(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    body: web::Json<FunctionBody>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    let body = body.into_inner();
    let name = name_of(None, body.name.as_deref())?;
    create(&req, &api, s.project.id, body.into_function(name)).await
}

pub async fn replace_function(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
    body: web::Json<FunctionBody>,
) -> Result<HttpResponse, ApiError> {
    let (p, name) = path.into_inner();
    let (_, s) = project(&req, &api, &p)?;
    let body = body.into_inner();
    let name = name_of(Some(&name), body.name.as_deref())?;
    replace(&req, &api, s.project.id, body.into_function(name)).await
}

pub async fn list_functions(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    list::<Function>(&req, &api, &path)
}

pub async fn get_function(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, name) = path.into_inner();
    get::<Function>(&req, &api, &p, &name)
}

pub async fn delete_function(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, name) = path.into_inner();
    delete::<Function>(&req, &api, &p, name).await
}
