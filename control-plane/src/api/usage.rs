//! Usage and cost, tenant-scoped like the rest of the API: a project's usage over time
//! (`/projects/{p}/usage`), its request log (`/projects/{p}/requests`), the operator's view across
//! projects (`/usage`), and prices (`/prices` for the operator, `/projects/{p}/prices` for a
//! project's negotiated rates). `?format=csv` exports the usage series and the request log.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use to11_shared::record::RequestRecord;
use to11_shared::usage::PriceTable;
use to11_shared::ErrorCode;
use uuid::Uuid;

use super::auth::{project, Principal};
use super::Api;
use crate::error::ApiError;
use crate::usage::query::{self, csv_cell, money};
use crate::usage::{PriceScope, UsageError, UsageStore};

impl From<UsageError> for ApiError {
    fn from(e: UsageError) -> Self {
        ApiError::new(ErrorCode::UsageUnavailable, e.to_string())
    }
}

fn store(api: &Api) -> Result<&Arc<dyn UsageStore>, ApiError> {
    api.usage.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::UsageUnavailable,
            "no usage store is configured: set TO11_DATABASE_URL on the control plane",
        )
    })
}

fn invalid(problems: Vec<String>) -> ApiError {
    ApiError::new(ErrorCode::Validation, problems.join("; "))
        .with_details(serde_json::json!({ "problems": problems }))
}

fn csv(q: &HashMap<String, String>) -> bool {
    q.get("format").is_some_and(|f| f == "csv")
}

async fn report(
    api: &Api,
    q: &HashMap<String, String>,
    project: Option<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let params = query::parse_usage(q, Utc::now(), project.is_none()).map_err(invalid)?;
    let rows = store(api)?.rows(&params.rows(project)).await?;
    let report = query::report(&params, &rows);
    if csv(q) {
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header(("content-disposition", "attachment; filename=\"usage.csv\""))
            .body(query::report_csv(&report)));
    }
    Ok(HttpResponse::Ok().json(report))
}

/// `GET /projects/{p}/usage`.
pub async fn project_usage(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    report(&api, &q, Some(s.project.id)).await
}

/// `GET /usage`: every project (the operator only).
pub async fn all_usage(
    req: HttpRequest,
    api: web::Data<Api>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    Principal::from_request(&req, &api)?.require_operator()?;
    report(&api, &q, None).await
}

/// A record as the API shows it: the stored record, with its cost as a decimal.
fn record_view(r: &RequestRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["cost_micros"] = r.cost.into();
    v["cost"] = r.cost.map(|c| money(c as i64)).into();
    v["currency"] = "USD".into();
    v
}

const LOG_CSV_HEADER: &str = "time,id,status,error,surface,requested_model,layer,function,route,provider,model,stream,attempts,latency_ms,ttfb_ms,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,reasoning_tokens,usage_source,cost,user,key\n";

fn record_csv(r: &RequestRecord, out: &mut String) {
    let u = r.usage.unwrap_or_default();
    let opt = |v: &Option<String>| csv_cell(v.as_deref().unwrap_or(""));
    out.push_str(&format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
        r.time.to_rfc3339(),
        r.id,
        r.status,
        opt(&r.error),
        csv_cell(&r.surface),
        csv_cell(&r.requested_model),
        csv_cell(&r.layer),
        opt(&r.function),
        opt(&r.route),
        opt(&r.provider),
        opt(&r.model),
        r.stream,
        r.attempts,
        r.latency_us as f64 / 1000.0,
        r.ttfb_us
            .map(|t| (t as f64 / 1000.0).to_string())
            .unwrap_or_default(),
        u.input,
        u.output,
        u.cache_read,
        u.cache_write + u.cache_write_1h,
        u.reasoning,
        r.usage_source
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        r.cost.map(|c| money(c as i64)).unwrap_or_default(),
        opt(&r.user),
        r.key,
    ));
}

/// `GET /projects/{p}/requests`: the request log, newest first, in cursor pages.
pub async fn requests(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    let log = query::parse_log(&q, Some(s.project.id)).map_err(invalid)?;
    let records = store(&api)?.requests(&log).await?;
    if csv(&q) {
        let mut out = String::from(LOG_CSV_HEADER);
        for r in &records {
            record_csv(r, &mut out);
        }
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "content-disposition",
                "attachment; filename=\"requests.csv\"",
            ))
            .body(out));
    }
    let next = (records.len() as u32 == log.limit)
        .then(|| records.last().map(|r| query::cursor(r.time, r.id)))
        .flatten();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "data": records.iter().map(record_view).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

/// `GET /projects/{p}/requests/{id}`: one request's record.
pub async fn request(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, id) = path.into_inner();
    let (_, s) = project(&req, &api, &p)?;
    let id: Uuid = id.parse().map_err(|_| ApiError::not_found("request"))?;
    let found = store(&api)?.record(s.project.id, id).await?;
    match found {
        Some(r) => Ok(HttpResponse::Ok().json(record_view(&r))),
        None => Err(ApiError::not_found("request")),
    }
}

/// The price table kept in the repository, as the API shows it.
const BUILTIN_PRICES: &str = include_str!("../../../shared/src/usage/prices.json");

fn price_view(json: Option<String>) -> serde_json::Value {
    json.and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or(serde_json::json!({"currency": "USD", "rows": []}))
}

/// Replaces a price table, and records the change in the audit log.
async fn put_prices(
    req: &HttpRequest,
    api: &Api,
    scope: PriceScope,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let answer = replace_prices(api, scope, body).await;
    let project = match scope {
        PriceScope::Project(p) => Some(p),
        PriceScope::Operator => None,
    };
    let outcome = answer.as_ref().map(|_| 0);
    api.audit_change(req, "SetPrices", project, None, outcome)
        .await;
    answer
}

async fn replace_prices(
    api: &Api,
    scope: PriceScope,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the price table must be UTF-8 JSON"))?;
    let table =
        PriceTable::parse(text).map_err(|e| ApiError::new(ErrorCode::Validation, e.to_string()))?;
    store(api)?.set_prices(scope, Some(text)).await?;
    let rows = table.rows.len();
    api.pricer.set(scope, Some(table));
    Ok(HttpResponse::Ok().json(serde_json::json!({ "rows": rows })))
}

/// `GET /prices`: the operator's price overrides and the table kept in the repository.
pub async fn operator_prices(
    req: HttpRequest,
    api: web::Data<Api>,
) -> Result<HttpResponse, ApiError> {
    Principal::from_request(&req, &api)?.require_operator()?;
    let overrides = store(&api)?.prices(PriceScope::Operator).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "overrides": price_view(overrides),
        "builtin": serde_json::from_str::<serde_json::Value>(BUILTIN_PRICES).unwrap_or_default(),
    })))
}

/// `PUT /prices`: replaces the operator's overrides (the form of `prices.json`).
pub async fn set_operator_prices(
    req: HttpRequest,
    api: web::Data<Api>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    Principal::from_request(&req, &api)?.require_operator()?;
    put_prices(&req, &api, PriceScope::Operator, body).await
}

/// `GET /projects/{p}/prices`: the project's negotiated rates.
pub async fn project_prices(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    let json = store(&api)?
        .prices(PriceScope::Project(s.project.id))
        .await?;
    Ok(HttpResponse::Ok().json(price_view(json)))
}

/// `PUT /projects/{p}/prices`: replaces the project's negotiated rates.
pub async fn set_project_prices(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    put_prices(&req, &api, PriceScope::Project(s.project.id), body).await
}
