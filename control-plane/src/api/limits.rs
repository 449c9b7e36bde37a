//! Usage limits and budgets (`to11_shared::limits`): a project's own
//! (`/projects/{p}/limits`, its management key may set them), the operator's plan for it
//! (`/projects/{p}/plan`, only the operator may set it; the project may read it), and each key's
//! (`/projects/{p}/keys/{id}/limits`). Every GET shows each limit with what is used of it now and
//! when that resets (`?user=NAME`: that end user's `per_user` usage). `/projects/{p}/limits/events`
//! lists budget alerts.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::{json, Value};
use to11_shared::limits::{format_amount, resets_at, Check, Limits, Metric, Owner, Window};
use to11_shared::model::ProjectState;
use to11_shared::ErrorCode;
use uuid::Uuid;

use super::auth::{project, Principal};
use super::Api;
use crate::actors::registry::{SetAlertWebhook, SetLimits};
use crate::domain::usage_limits::{limits_of, LimitsOf};
use crate::error::ApiError;

/// Reads a `limits` object from a request body, every problem reported at once (422).
pub fn parse(v: &Value) -> Result<Limits, ApiError> {
    Limits::parse(v).map_err(|problems| {
        ApiError::new(ErrorCode::Validation, problems.join("; "))
            .with_details(json!({ "problems": problems }))
    })
}

fn of(state: &ProjectState, which: &str, key: Option<Uuid>) -> (LimitsOf, Owner, Uuid) {
    match (which, key) {
        (_, Some(id)) => (LimitsOf::Key(id), Owner::Key, id),
        ("plan", _) => (LimitsOf::Plan, Owner::Plan, state.project.id),
        _ => (LimitsOf::Project, Owner::Project, state.project.id),
    }
}

/// What is used of each limit now, as the API shows it.
async fn usage(api: &Api, rows: &[Check]) -> Vec<Value> {
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    let Some(store) = &api.counters else {
        return vec![];
    };
    let prefix = store.prefix().to_string();
    let (conc, windowed): (Vec<&Check>, Vec<&Check>) = rows
        .iter()
        .partition(|r| r.counter.metric == Metric::Concurrent);
    let keys: Vec<String> = windowed
        .iter()
        .map(|r| {
            format!(
                "{}:u",
                r.counter.key(&prefix, r.counter.window.index(now_ms))
            )
        })
        .collect();
    let held_keys: Vec<String> = conc.iter().map(|r| r.counter.key(&prefix, 0)).collect();
    // A store that does not answer shows no usage rather than failing the read.
    let used = store.read(&keys).await.unwrap_or_default();
    let held = store.held(&held_keys, now_ms).await.unwrap_or_default();
    let mut out = Vec::new();
    for (r, used) in windowed
        .iter()
        .zip(used.iter().map(|u| Some(*u)).chain(std::iter::repeat(None)))
    {
        let used = used.map(|u| u.max(0) as u64);
        let spend = r.counter.metric == Metric::Spend;
        let shown = |n: u64| {
            if spend {
                json!(format_amount(n))
            } else {
                json!(n)
            }
        };
        out.push(json!({
            "limit": r.counter.metric.field(),
            "window": window_name(r.counter.window),
            "max": shown(r.limit),
            "used": used.map(shown),
            "remaining": used.map(|u| shown(r.limit.saturating_sub(u))),
            "resets_at": resets_at(r.counter.window, now_ms),
        }));
    }
    for (r, held) in conc
        .iter()
        .zip(held.iter().map(|h| Some(*h)).chain(std::iter::repeat(None)))
    {
        out.push(json!({
            "limit": "concurrent",
            "max": r.limit,
            "used": held,
            "remaining": held.map(|h| r.limit.saturating_sub(h)),
        }));
    }
    out
}

fn window_name(w: Window) -> &'static str {
    match w {
        Window::Minute => "minute",
        Window::Day => "day",
        Window::Week => "week",
        Window::Month => "month",
        Window::Total => "total",
    }
}

async fn view(
    api: &Api,
    limits: Option<&Limits>,
    owner: Owner,
    id: Uuid,
    user: Option<&str>,
) -> Value {
    let Some(l) = limits else {
        return json!({ "limits": {}, "usage": [] });
    };
    let mut used = usage(api, &l.counters(owner, id, None)).await;
    let mut out = json!({ "limits": l });
    if let (Some(u), Some(per_user)) = (user, &l.per_user) {
        out["user"] = json!(u);
        out["user_usage"] = json!(usage(api, &per_user.counters(owner, id, Some(u))).await);
    }
    out["usage"] = Value::Array(std::mem::take(&mut used));
    out
}

fn user(q: &HashMap<String, String>) -> Option<String> {
    q.get("user")
        .and_then(|u| to11_shared::record::clean_user(u))
}

/// `GET /projects/{p}/limits` and `GET /projects/{p}/plan`.
pub async fn get_project(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    let which = if req.path().ends_with("/plan") {
        "plan"
    } else {
        "limits"
    };
    let (of, owner, id) = of(&s, which, None);
    let limits = limits_of(&s, of).map_err(|e| ApiError::not_found(&e.to_string()))?;
    let mut v = view(&api, limits, owner, id, user(&q).as_deref()).await;
    if which == "limits" {
        // The plan binds too: show it beside the project's own.
        v["plan"] = match &s.plan {
            Some(p) => view(&api, Some(p), Owner::Plan, s.project.id, None).await,
            None => Value::Null,
        };
    }
    Ok(HttpResponse::Ok().json(v))
}

/// `PUT /projects/{p}/limits` (the project or the operator) and `PUT /projects/{p}/plan` (the
/// operator only).
pub async fn set_project(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (who, s) = project(&req, &api, &path)?;
    let plan = req.path().ends_with("/plan");
    if plan && who != Principal::Operator {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "only the operator may set a project's plan",
        ));
    }
    let limits = parse(&body)?;
    let of = if plan {
        LimitsOf::Plan
    } else {
        LimitsOf::Project
    };
    let c = api
        .apply(
            &req,
            SetLimits {
                project: s.project.id,
                of,
                limits,
            },
        )
        .await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "limits": c.value.unwrap_or_default(), "version": c.version })))
}

/// `GET /projects/{p}/keys/{id}/limits`.
pub async fn get_key(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, Uuid)>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (p, id) = path.into_inner();
    let (_, s) = project(&req, &api, &p)?;
    let (of, owner, id) = of(&s, "key", Some(id));
    let limits = limits_of(&s, of).map_err(|_| ApiError::not_found("key"))?;
    Ok(HttpResponse::Ok().json(view(&api, limits, owner, id, user(&q).as_deref()).await))
}

/// `PUT /projects/{p}/keys/{id}/limits`.
pub async fn set_key(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, Uuid)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (p, id) = path.into_inner();
    let (_, s) = project(&req, &api, &p)?;
    let limits = parse(&body)?;
    let c = api
        .apply(
            &req,
            SetLimits {
                project: s.project.id,
                of: LimitsOf::Key(id),
                limits,
            },
        )
        .await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "limits": c.value.unwrap_or_default(), "version": c.version })))
}

/// `PUT /projects/{p}/limits/webhook` `{"url"}`: budget alerts go there, signed with a secret
/// answered once (`secret`). The URL is checked like a provider's base URL.
pub async fn set_webhook(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    let Some(raw) = body.get("url").and_then(Value::as_str) else {
        return Err(ApiError::bad_request(
            "'url' is required: where budget alerts are posted",
        ));
    };
    let url = to11_shared::upstream_url::check_base_url(raw, api.allow_private_upstreams)
        .map_err(|e| ApiError::new(ErrorCode::Validation, format!("url: {e}")))?;
    let secret = {
        use base64::Engine;
        let bytes: [u8; 24] = rand::random();
        format!(
            "whsec_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )
    };
    let hook = to11_shared::model::AlertWebhook {
        url: url.clone(),
        secret: api.keyring.seal(
            &to11_shared::model::alert_webhook_owner(&s.project.id),
            secret.as_bytes(),
        ),
        hint: format!("…{}", &secret[secret.len() - 4..]),
        created_at: Utc::now(),
    };
    let c = api
        .apply(
            &req,
            SetAlertWebhook {
                project: s.project.id,
                webhook: Some(hook),
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "url": url,
        "secret": secret,
        "signature": "x-to11-signature: t=<unix seconds>,v1=<hex HMAC-SHA-256 of \"<t>.<body>\" under the secret>",
        "version": c.version,
    })))
}

/// `GET /projects/{p}/limits/webhook`.
pub async fn get_webhook(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    Ok(HttpResponse::Ok().json(match &s.alert_webhook {
        Some(w) => json!({ "url": w.url, "secret_hint": w.hint, "created_at": w.created_at }),
        None => json!({ "url": null }),
    }))
}

/// `DELETE /projects/{p}/limits/webhook`.
pub async fn delete_webhook(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    let c = api
        .apply(
            &req,
            SetAlertWebhook {
                project: s.project.id,
                webhook: None,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "url": null, "version": c.version })))
}

/// `GET /projects/{p}/limits/events`: the project's budget alerts, newest first.
pub async fn events(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    let Some(store) = &api.counters else {
        return Ok(HttpResponse::Ok().json(json!({ "data": [] })));
    };
    let raw = store
        .events(to11_io::counters::MAX_EVENTS)
        .await
        .map_err(|e| ApiError::new(ErrorCode::StoreUnavailable, e.to_string()))?;
    let id = s.project.id.to_string();
    let data: Vec<Value> = raw
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter(|e| e["project"].as_str() == Some(id.as_str()))
        .take(1000)
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "data": data })))
}
