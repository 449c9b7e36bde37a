//! Routes (a public model name → a strategy over targets) and functions (a named task → a route
//! or a model, with request defaults). Every write is validated by the compile step the replicas
//! run: a target on an unknown provider, an unexposed model or a missing credential, a function
//! pointing at a missing route or model, are refused with every problem listed. A route may share
//! its name with a provider's model; resolution is top-down, so the route wins.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use to11_shared::model::{Function, Route, Strategy, Target};
use to11_shared::policy::RoutePolicy;
use to11_shared::ErrorCode;

use super::auth::project;
use super::views::{remove_one, Written};
use super::Api;
use crate::actors::registry::UpdateProject;
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

fn conflict(kind: &str, name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        format!("a {kind} named '{name}' already exists; replace it with PUT"),
    )
}

pub async fn create_route(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    body: web::Json<RouteBody>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path).await?;
    let body = body.into_inner();
    let route = body
        .name
        .clone()
        .map(|n| body.into_route(n))
        .ok_or_else(|| ApiError::bad_request("'name' is required"))?;
    let c = api
        .registry
        .send(UpdateProject {
            project: s.project.id,
            change: Box::new(move |st, _| {
                if st.routes.iter().any(|r| r.name == route.name) {
                    return Err(conflict("route", &route.name));
                }
                st.routes.push(route.clone());
                Ok(route)
            }),
        })
        .await??;
    Ok(HttpResponse::Created().json(Written {
        value: c.value,
        version: c.version,
        warnings: c.warnings,
    }))
}

pub async fn replace_route(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
    body: web::Json<RouteBody>,
) -> Result<HttpResponse, ApiError> {
    let (p, name) = path.into_inner();
    let (_, s) = project(&req, &api, &p).await?;
    let body = body.into_inner();
    let route = body.into_route_checked(&name)?;
    let c = api
        .registry
        .send(UpdateProject {
            project: s.project.id,
            change: Box::new(move |st, _| {
                let slot = st
                    .routes
                    .iter_mut()
                    .find(|r| r.name == route.name)
                    .ok_or_else(|| ApiError::not_found("route"))?;
                *slot = route.clone();
                Ok(route)
            }),
        })
        .await??;
    Ok(HttpResponse::Ok().json(Written {
        value: c.value,
        version: c.version,
        warnings: c.warnings,
    }))
}

impl RouteBody {
    fn into_route_checked(self, path_name: &str) -> Result<Route, ApiError> {
        let name = name_of(Some(path_name), self.name.as_deref())?;
        Ok(self.into_route(name))
    }
}

pub async fn list_routes(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": s.routes })))
}

pub async fn get_route(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, name) = path.into_inner();
    let (_, s) = project(&req, &api, &p).await?;
    let r = s
        .routes
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| ApiError::not_found("route"))?;
    Ok(HttpResponse::Ok().json(r))
}

pub async fn delete_route(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, name) = path.into_inner();
    let (_, s) = project(&req, &api, &p).await?;
    let c = api
        .registry
        .send(UpdateProject {
            project: s.project.id,
            change: Box::new(move |st, _| {
                remove_one(&mut st.routes, |r| r.name == name, "route")?;
                Ok(name)
            }),
        })
        .await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "deleted": c.value, "version": c.version })))
}

pub async fn create_function(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    body: web::Json<FunctionBody>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path).await?;
    let body = body.into_inner();
    let name = name_of(None, body.name.as_deref())?;
    let function = body.into_function(name);
    let c = api
        .registry
        .send(UpdateProject {
            project: s.project.id,
            change: Box::new(move |st, _| {
                if st.functions.iter().any(|f| f.name == function.name) {
                    return Err(conflict("function", &function.name));
                }
                st.functions.push(function.clone());
                Ok(function)
            }),
        })
        .await??;
    Ok(HttpResponse::Created().json(Written {
        value: c.value,
        version: c.version,
        warnings: c.warnings,
    }))
}

pub async fn replace_function(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
    body: web::Json<FunctionBody>,
) -> Result<HttpResponse, ApiError> {
    let (p, name) = path.into_inner();
    let (_, s) = project(&req, &api, &p).await?;
    let body = body.into_inner();
    let name = name_of(Some(&name), body.name.as_deref())?;
    let function = body.into_function(name);
    let c = api
        .registry
        .send(UpdateProject {
            project: s.project.id,
            change: Box::new(move |st, _| {
                let slot = st
                    .functions
                    .iter_mut()
                    .find(|f| f.name == function.name)
                    .ok_or_else(|| ApiError::not_found("function"))?;
                *slot = function.clone();
                Ok(function)
            }),
        })
        .await??;
    Ok(HttpResponse::Ok().json(Written {
        value: c.value,
        version: c.version,
        warnings: c.warnings,
    }))
}

pub async fn list_functions(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": s.functions })))
}

pub async fn get_function(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, name) = path.into_inner();
    let (_, s) = project(&req, &api, &p).await?;
    let f = s
        .functions
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| ApiError::not_found("function"))?;
    Ok(HttpResponse::Ok().json(f))
}

pub async fn delete_function(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, name) = path.into_inner();
    let (_, s) = project(&req, &api, &p).await?;
    let c = api
        .registry
        .send(UpdateProject {
            project: s.project.id,
            change: Box::new(move |st, _| {
                remove_one(&mut st.functions, |f| f.name == name, "function")?;
                Ok(name)
            }),
        })
        .await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "deleted": c.value, "version": c.version })))
}
