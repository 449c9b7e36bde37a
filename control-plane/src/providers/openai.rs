//! OpenAI and OpenAI-compatible servers: `GET {base}/models` with a bearer key, answering
//! `{"object":"list","data":[{"id":…}]}`. Listing is free, so it doubles as validation.

use awc::error::SendRequestError;
use awc::http::StatusCode;
use serde::Deserialize;
use to11_shared::model::{CredentialSecret, ModelInfo};

use super::{ProbeError, ProbeTimeouts};

#[derive(Deserialize)]
struct List {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    id: String,
    #[serde(default)]
    owned_by: Option<String>,
    #[serde(default)]
    created: Option<i64>,
}

/// The provider's own error message, if its body has the OpenAI error shape (never echoes the key:
/// OpenAI masks it, and we cut the message short).
fn upstream_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let m = v.get("error")?.get("message")?.as_str()?;
    Some(m.chars().take(300).collect())
}

pub async fn list_models(
    client: &awc::Client,
    base_url: &str,
    secret: &CredentialSecret,
    t: &ProbeTimeouts,
) -> Result<Vec<ModelInfo>, ProbeError> {
    let url = format!("{}/models", base_url.trim_end_matches('/'));
    let mut req = client
        .get(&url)
        .timeout(t.total)
        .insert_header(("accept", "application/json"));
    if let Some(k) = secret.api_key().filter(|k| !k.is_empty()) {
        req = req.bearer_auth(k);
    }
    let mut resp = req.send().await.map_err(|e| match e {
        SendRequestError::Timeout => {
            ProbeError::Timeout(format!("{base_url} did not answer within {:?}", t.total))
        }
        SendRequestError::Connect(c) => {
            ProbeError::Unreachable(format!("cannot reach {base_url}: {c}"))
        }
        other => ProbeError::Unreachable(format!("request to {base_url} failed: {other}")),
    })?;
    let status = resp.status();
    let body = resp.body().limit(16 * 1024 * 1024).await.map_err(|e| {
        ProbeError::Unexpected(format!("reading the model list from {base_url}: {e}"))
    })?;
    // A provider that echoes the key in its message must not make us echo it: redact it.
    let detail = upstream_message(&body)
        .map(|m| match secret.api_key().filter(|k| k.len() >= 4) {
            Some(k) => m.replace(k, "***"),
            None => m,
        })
        .map(|m| format!(" (provider says: {m})"))
        .unwrap_or_default();
    match status {
        s if s.is_success() => {}
        StatusCode::UNAUTHORIZED => {
            return Err(ProbeError::InvalidCredential(format!("the provider rejected the API key{detail}")))
        }
        StatusCode::FORBIDDEN => {
            return Err(ProbeError::Permission(format!("the API key is not allowed to list models{detail}")))
        }
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
            return Err(ProbeError::BadBaseUrl(format!(
                "{url} answered {status}: is the base URL right? OpenAI-style base URLs usually end in /v1"
            )))
        }
        StatusCode::TOO_MANY_REQUESTS => {
            return Err(ProbeError::RateLimited(format!("the provider is rate limiting this key; try again shortly{detail}")))
        }
        s if s.is_redirection() => {
            return Err(ProbeError::BadBaseUrl(format!(
                "{url} answered with a redirect ({s}); redirects are not followed, give the final base URL"
            )))
        }
        s => return Err(ProbeError::Unexpected(format!("{url} answered {s}{detail}"))),
    }
    let list: List = serde_json::from_slice(&body).map_err(|_| {
        ProbeError::BadBaseUrl(format!(
            "{url} did not answer with an OpenAI model list; is the base URL right (it usually ends in /v1)?"
        ))
    })?;
    let mut models: Vec<ModelInfo> = list
        .data
        .into_iter()
        .map(|i| ModelInfo {
            id: i.id,
            owned_by: i.owned_by,
            created: i.created,
        })
        .collect();
    models.sort_by(|a, b| a.id.cmp(&b.id));
    models.dedup_by(|a, b| a.id == b.id);
    Ok(models)
}
