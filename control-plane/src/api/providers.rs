//! The catalog and the connect flow: discover (validate + list, saves nothing) → connect
//! (validate again, save with the chosen models exposed) → change the exposed set, refresh,
//! disconnect.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use to11_shared::catalog::{self, AuthForm, CatalogEntry};
use to11_shared::google::ServiceAccount;
use to11_shared::model::{valid_slug, CredentialSecret, ModelInfo};
use to11_shared::upstream_url::check_base_url;
use to11_shared::ErrorCode;

use super::auth::project;
use super::views::{ProviderView, Written};
use super::Api;
use crate::actors::prober::DiscoverModels;
use crate::actors::registry::{
    ApplyDiscovery, Committed, ConnectProvider, DisconnectProvider, SetExposedModels,
};
use crate::domain;
use crate::domain::credentials::ClearCredential;
use crate::domain::providers::NewProvider;
use crate::error::ApiError;
use crate::providers::Target;

pub async fn catalog() -> HttpResponse {
    // Each entry as the catalog defines it, plus whether discovery needs the model names to check
    // (entries without a full listing).
    let data: Vec<serde_json::Value> = catalog::entries()
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["named_models"] = e.listing.takes_named_models().into();
            v
        })
        .collect();
    HttpResponse::Ok().json(serde_json::json!({ "data": data }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectBody {
    kind: String,
    slug: Option<String>,
    base_url: Option<String>,
    #[serde(default)]
    account: serde_json::Map<String, serde_json::Value>,
    credential: Option<serde_json::Value>,
    /// Models to expose (connect only). Omitted: every discovered model.
    models: Option<Vec<String>>,
}

/// Parses a credential in the form the catalog entry takes it.
pub(super) fn parse_secret(
    entry: &CatalogEntry,
    value: Option<&serde_json::Value>,
) -> Result<CredentialSecret, ApiError> {
    let form = entry.auth.credential_form();
    let wrong = || {
        ApiError::bad_request(format!(
            "provider '{}' takes 'credential': {form}",
            entry.id
        ))
    };
    let mut value = value.cloned();
    // A service account key pasted as a string is accepted as the JSON it holds.
    if let Some(serde_json::Value::Object(m)) = value.as_mut() {
        if let Some(serde_json::Value::String(raw)) = m.get("service_account_json") {
            let parsed: serde_json::Value = serde_json::from_str(raw).map_err(|_| {
                ApiError::bad_request("'service_account_json' is not the JSON key file")
            })?;
            m.insert("service_account_json".into(), parsed);
        }
    }
    let secret = match value {
        Some(v) => serde_json::from_value::<CredentialSecret>(v).map_err(|_| wrong())?,
        None if entry.auth == AuthForm::OptionalBearer => CredentialSecret::ApiKey {
            api_key: String::new(),
        },
        None => return Err(wrong()),
    };
    let ok = match (&secret, entry.auth) {
        (CredentialSecret::ApiKey { .. }, AuthForm::OptionalBearer) => true,
        (
            CredentialSecret::ApiKey { api_key },
            AuthForm::Bearer
            | AuthForm::AnthropicKey
            | AuthForm::GoogApiKey
            | AuthForm::AzureApiKey
            | AuthForm::AwsSigV4,
        ) => !api_key.trim().is_empty(),
        (
            CredentialSecret::Aws {
                access_key_id,
                secret_access_key,
                ..
            },
            AuthForm::AwsSigV4,
        ) => !access_key_id.trim().is_empty() && !secret_access_key.is_empty(),
        (
            CredentialSecret::GoogleServiceAccount {
                service_account_json,
            },
            AuthForm::GoogleServiceAccount,
        ) => {
            ServiceAccount::from_json(service_account_json).map_err(|e| {
                ApiError::bad_request(format!("'service_account_json' refused: {e}"))
            })?;
            true
        }
        _ => false,
    };
    if ok {
        Ok(secret)
    } else {
        Err(wrong())
    }
}

/// Checks the account fields and the base URL of a connection (defaults filled in).
pub(super) fn locate(
    api: &Api,
    entry: &CatalogEntry,
    base_url: Option<&str>,
    account: &serde_json::Map<String, serde_json::Value>,
    secret: &CredentialSecret,
) -> Result<(String, serde_json::Map<String, serde_json::Value>), ApiError> {
    // A service account names its project; Vertex uses it unless told otherwise.
    let mut fallback = vec![];
    if let CredentialSecret::GoogleServiceAccount {
        service_account_json,
    } = secret
    {
        if let Some(p) = service_account_json
            .get("project_id")
            .and_then(|p| p.as_str())
        {
            fallback.push(("project", p.to_string()));
        }
    }
    let account = entry.account(account, &fallback).map_err(|problems| {
        ApiError::new(ErrorCode::Validation, problems.join("; "))
            .with_details(serde_json::json!({ "problems": problems }))
    })?;
    let raw_base = match base_url {
        Some(b) => b.to_string(),
        None => entry.default_base_url_for(&account).ok_or_else(|| {
            ApiError::bad_request(format!("provider '{}' needs a 'base_url'", entry.id))
        })?,
    };
    let base_url = check_base_url(&raw_base, api.allow_private_upstreams).map_err(|e| {
        ApiError::new(
            ErrorCode::UpstreamUrlRefused,
            format!("base_url refused: {e}"),
        )
    })?;
    Ok((base_url, account))
}

fn check(api: &Api, body: &ConnectBody) -> Result<Target, ApiError> {
    let entry = catalog::entry(&body.kind).ok_or_else(|| {
        let known: Vec<&str> = catalog::entries().iter().map(|e| e.id).collect();
        ApiError::bad_request(format!(
            "unknown provider kind '{}'; the catalog has: {}",
            body.kind,
            known.join(", ")
        ))
    })?;
    let secret = parse_secret(&entry, body.credential.as_ref())?;
    let (base_url, account) = locate(
        api,
        &entry,
        body.base_url.as_deref(),
        &body.account,
        &secret,
    )?;
    let named = match entry.listing.takes_named_models() {
        true => body.models.clone().unwrap_or_default(),
        false => vec![],
    };
    Ok(Target {
        entry,
        base_url,
        account,
        secret,
        named,
    })
}

pub(super) async fn probe(api: &Api, t: &Target) -> Result<Vec<ModelInfo>, ApiError> {
    api.prober
        .send(DiscoverModels(t.clone()))
        .await?
        .map_err(ApiError::from)
}

pub async fn discover(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    body: web::Json<ConnectBody>,
) -> Result<HttpResponse, ApiError> {
    project(&req, &api, &path)?;
    let c = check(&api, &body)?;
    let models = probe(&api, &c).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "kind": c.entry.id,
        "base_url": c.base_url,
        "count": models.len(),
        "models": models,
    })))
}

pub async fn connect(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    body: web::Json<ConnectBody>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    let body = body.into_inner();
    let slug = body.slug.clone().unwrap_or_else(|| body.kind.clone());
    if !valid_slug(&slug) {
        return Err(ApiError::bad_request(format!(
            "invalid provider slug '{slug}': use lowercase letters, digits and '-'"
        )));
    }
    domain::providers::ensure_unconnected(&s, &slug)?;
    let c = check(&api, &body)?;
    let discovered = probe(&api, &c).await?;
    let exposed = domain::providers::choose_exposed(body.models, &discovered)?;
    let now = Utc::now();
    let credential = ClearCredential::new(&c.secret)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let new = NewProvider {
        slug: slug.clone(),
        kind: c.entry.id.to_string(),
        base_url: c.base_url,
        account: c.account,
        credential,
        discovered,
        exposed,
    };
    let committed = api
        .apply(
            &req,
            ConnectProvider {
                project: s.project.id,
                provider: new,
                at: now,
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(written_provider(committed, &slug)?))
}

/// The answer to a write that produced provider `slug`: its view, the version, the warnings.
fn written_provider(c: Committed<()>, slug: &str) -> Result<Written<ProviderView>, ApiError> {
    let p = c
        .state
        .provider(slug)
        .ok_or_else(|| ApiError::not_found("provider"))?;
    Ok(Written {
        value: ProviderView::from(p),
        version: c.version,
        warnings: c.warnings,
    })
}

pub async fn list(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, s) = project(&req, &api, &path)?;
    let data: Vec<ProviderView> = s.providers.iter().map(ProviderView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data })))
}

pub async fn get(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, slug) = path.into_inner();
    let (_, s) = project(&req, &api, &p)?;
    let pr = s
        .provider(&slug)
        .ok_or_else(|| ApiError::not_found("provider"))?;
    Ok(HttpResponse::Ok().json(ProviderView::from(pr)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsBody {
    exposed: Vec<String>,
}

pub async fn set_models(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
    body: web::Json<ModelsBody>,
) -> Result<HttpResponse, ApiError> {
    let (p, slug) = path.into_inner();
    let (_, s) = project(&req, &api, &p)?;
    let c = api
        .apply(
            &req,
            SetExposedModels {
                project: s.project.id,
                provider: slug.clone(),
                exposed: body.into_inner().exposed,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(written_provider(c, &slug)?))
}

/// Rediscovers the provider's models with its stored credential and reports what changed. The
/// exposed set is left as the project chose it; models it names that the provider no longer
/// lists are reported in `exposed_missing`.
pub async fn refresh(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, slug) = path.into_inner();
    let (_, s) = project(&req, &api, &p)?;
    let project_id = s.project.id;
    let secret = domain::credentials::open_default(&s, &slug, &api.keyring)?;
    let stored = s
        .provider(&slug)
        .ok_or_else(|| ApiError::not_found("provider"))?;
    let entry = catalog::entry(&stored.kind).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Internal,
            format!("kind '{}' left the catalog", stored.kind),
        )
    })?;
    // The stored base URL was checked when saved; check again, the operator's allowance may differ now.
    let (base_url, account) = locate(
        &api,
        &entry,
        Some(&stored.base_url),
        &stored.account,
        &secret,
    )?;
    let named = stored.discovered.iter().map(|m| m.id.clone()).collect();
    let result = probe(
        &api,
        &Target {
            entry,
            base_url,
            account,
            secret,
            named,
        },
    )
    .await;
    let now = Utc::now();
    let outcome = result
        .as_ref()
        .map(|m| m.clone())
        .map_err(|e| e.message.clone());
    let c = api
        .apply(
            &req,
            ApplyDiscovery {
                project: project_id,
                provider: slug.clone(),
                outcome,
                at: now,
            },
        )
        .await?;
    // Discovery failed: the error is recorded on the provider (`last_error`) and returned.
    result?;
    let mut out = match c.value {
        Some(d) => {
            serde_json::json!({ "added": d.added, "removed": d.removed, "exposed_missing": d.exposed_missing })
        }
        None => serde_json::Value::Null,
    };
    if let Some(pr) = c.state.provider(&slug) {
        out["provider"] = serde_json::to_value(ProviderView::from(pr)).unwrap_or_default();
    }
    out["version"] = c.version.into();
    Ok(HttpResponse::Ok().json(out))
}

/// Disconnects a provider. Refused, with the problems listed, while a route or function uses it.
pub async fn disconnect(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, slug) = path.into_inner();
    let (_, s) = project(&req, &api, &p)?;
    let c = api
        .apply(
            &req,
            DisconnectProvider {
                project: s.project.id,
                provider: slug.clone(),
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "disconnected": slug, "version": c.version })))
}
