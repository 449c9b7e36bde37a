//! `GET /api/v1/projects/{p}/audit` (the project's entries; a management key sees only its own
//! project) and `GET /api/v1/audit` (every entry; the operator only): newest first, `limit`
//! (1–1000, default 100) entries older than `before` (an entry's `id`); `next` is the `before`
//! of the following page, or null on the last.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use to11_shared::ErrorCode;

use super::auth::{project, Principal};
use super::Api;
use crate::audit::{parse_id, Page, Scope};
use crate::error::ApiError;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    limit: Option<usize>,
    before: Option<String>,
}

/// The page a query asks for, or why it is malformed.
fn page(q: Query) -> Result<Page, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "'limit' must be between 1 and {MAX_LIMIT}"
        )));
    }
    if let Some(b) = &q.before {
        if parse_id(b).is_none() {
            return Err(ApiError::bad_request(
                "'before' must be an audit entry's id (e.g. 1700000000000-0)",
            ));
        }
    }
    Ok(Page {
        before: q.before,
        limit,
    })
}

async fn answer(api: &Api, scope: Scope, page: Page) -> Result<HttpResponse, ApiError> {
    let data = api.audit.read(scope, &page).await.map_err(|e| {
        ApiError::new(
            ErrorCode::StoreUnavailable,
            format!("the audit log cannot be read now ({e})"),
        )
    })?;
    let next = (data.len() == page.limit)
        .then(|| data.last().map(|e| e.id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data, "next": next })))
}

pub async fn project_audit(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    query: web::Query<Query>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    answer(
        &api,
        Scope::Project(s.project.id),
        page(query.into_inner())?,
    )
    .await
}

pub async fn all_audit(
    req: HttpRequest,
    api: web::Data<Api>,
    query: web::Query<Query>,
) -> Result<HttpResponse, ApiError> {
    Principal::from_request(&req, &api)?.require_operator()?;
    answer(&api, Scope::Operator, page(query.into_inner())?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_checked() {
        let q = |limit, before: Option<&str>| Query {
            limit,
            before: before.map(str::to_string),
        };
        assert_eq!(page(q(None, None)).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(
            page(q(Some(5), Some("12-3"))).unwrap().before.as_deref(),
            Some("12-3")
        );
        for bad in [
            q(Some(0), None),
            q(Some(1001), None),
            q(None, Some("x")),
            q(None, Some("1-")),
        ] {
            assert_eq!(page(bad).unwrap_err().code, ErrorCode::BadRequest);
        }
    }
}
