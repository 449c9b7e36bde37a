//! The OpenAI-compatible family: validation and model listing for every catalog entry that speaks
//! the OpenAI API, with each provider's listing shape (`data[]`, Together's bare array, Ollama's
//! `/api/tags`, OpenRouter's public list plus `/key`, or named models checked with a one-token
//! call) and the failure shapes they really return (OpenAI's `error.message`, a bare `error`
//! string from vLLM/Ollama, Cerebras' top-level `message`, Mistral's `detail`, xAI's 400 for a
//! bad key).

use awc::error::SendRequestError;
use awc::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use to11_shared::catalog::Listing;
use to11_shared::model::{CredentialSecret, ModelInfo};

use super::{ProbeError, ProbeTimeouts};

#[derive(Deserialize)]
struct Item {
    #[serde(alias = "name")]
    id: String,
    #[serde(default)]
    owned_by: Option<String>,
    #[serde(default)]
    created: Option<i64>,
}

#[derive(Deserialize)]
struct DataList {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct OllamaTags {
    models: Vec<Item>,
}

/// The provider's own error message, from whichever shape it uses; cut short, secret redacted.
fn upstream_message(body: &[u8], secret: &CredentialSecret) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let m = v
        .get("error")
        .and_then(|e| e.get("message").and_then(|m| m.as_str()).or(e.as_str()))
        .or_else(|| v.get("message").and_then(|m| m.as_str()))
        .or_else(|| v.get("detail").and_then(|m| m.as_str()))?;
    let m: String = m.chars().take(300).collect();
    // A provider that echoes the key in its message must not make us echo it.
    Some(match secret.api_key().filter(|k| k.len() >= 4) {
        Some(k) => m.replace(k, "***"),
        None => m,
    })
}

/// Sends a request and maps every failure to the one `ProbeError` a user can act on.
async fn checked(
    req: awc::ClientRequest,
    body: Option<serde_json::Value>,
    url: &str,
    secret: &CredentialSecret,
    t: &ProbeTimeouts,
) -> Result<Bytes, ProbeError> {
    let mut req = req
        .timeout(t.total)
        .insert_header(("accept", "application/json"));
    if let Some(k) = secret.api_key().filter(|k| !k.is_empty()) {
        req = req.bearer_auth(k);
    }
    let sent = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    };
    let mut resp = sent.map_err(|e| match e {
        SendRequestError::Timeout => {
            ProbeError::Timeout(format!("{url} did not answer within {:?}", t.total))
        }
        SendRequestError::Connect(c) => ProbeError::Unreachable(format!("cannot reach {url}: {c}")),
        other => ProbeError::Unreachable(format!("request to {url} failed: {other}")),
    })?;
    let status = resp.status();
    let body = resp
        .body()
        .limit(16 * 1024 * 1024)
        .await
        .map_err(|e| ProbeError::Unexpected(format!("reading the answer of {url}: {e}")))?;
    let message = upstream_message(&body, secret);
    let detail = message
        .as_deref()
        .map(|m| format!(" (provider says: {m})"))
        .unwrap_or_default();
    let mentions_key = message.as_deref().is_some_and(|m| {
        m.to_ascii_lowercase().contains("api key") || m.to_ascii_lowercase().contains("api_key")
    });
    match status {
        s if s.is_success() => Ok(body),
        StatusCode::UNAUTHORIZED => Err(ProbeError::InvalidCredential(format!("the provider rejected the API key{detail}"))),
        // xAI answers a bad key with 400 "Incorrect API key provided".
        StatusCode::BAD_REQUEST if mentions_key => {
            Err(ProbeError::InvalidCredential(format!("the provider rejected the API key{detail}")))
        }
        StatusCode::FORBIDDEN | StatusCode::PAYMENT_REQUIRED => {
            Err(ProbeError::Permission(format!("the API key is not allowed to do this (permission, region or credits){detail}")))
        }
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Err(ProbeError::BadBaseUrl(format!(
            "{url} answered {status}: is the base URL right? It should have the same form as the catalog's default{detail}"
        ))),
        StatusCode::TOO_MANY_REQUESTS => Err(ProbeError::RateLimited(format!(
            "the provider is rate limiting this key; try again shortly{detail}"
        ))),
        s if s.is_redirection() => Err(ProbeError::BadBaseUrl(format!(
            "{url} answered with a redirect ({s}); redirects are not followed, give the final base URL"
        ))),
        s => Err(ProbeError::Unexpected(format!("{url} answered {s}{detail}"))),
    }
}

fn bad_shape(url: &str, what: &str) -> ProbeError {
    ProbeError::BadBaseUrl(format!(
        "{url} did not answer with {what}; is the base URL right?"
    ))
}

/// Validates the credential and returns the models, in the entry's listing form. `named` are the
/// models the user named (for providers without a listing).
pub async fn discover(
    client: &awc::Client,
    listing: Listing,
    base_url: &str,
    secret: &CredentialSecret,
    named: &[String],
    t: &ProbeTimeouts,
) -> Result<Vec<ModelInfo>, ProbeError> {
    let base = base_url.trim_end_matches('/');
    let items: Vec<Item> = match listing {
        Listing::OpenAiModels => {
            let url = format!("{base}/models");
            let body = checked(client.get(&url), None, &url, secret, t).await?;
            serde_json::from_slice::<DataList>(&body)
                .map_err(|_| bad_shape(&url, "an OpenAI model list"))?
                .data
        }
        Listing::BareArray => {
            let url = format!("{base}/models");
            let body = checked(client.get(&url), None, &url, secret, t).await?;
            // Tolerate the wrapped form too, in case the provider adopts it.
            serde_json::from_slice::<Vec<Item>>(&body)
                .or_else(|_| serde_json::from_slice::<DataList>(&body).map(|l| l.data))
                .map_err(|_| bad_shape(&url, "a model list"))?
        }
        Listing::OllamaTags => {
            let host = base.strip_suffix("/v1").unwrap_or(base);
            let url = format!("{host}/api/tags");
            let body = checked(client.get(&url), None, &url, secret, t).await?;
            serde_json::from_slice::<OllamaTags>(&body)
                .map_err(|_| bad_shape(&url, "Ollama's model list"))?
                .models
        }
        Listing::PublicWithKeyCheck { key_path } => {
            let key_url = format!("{base}{key_path}");
            checked(client.get(&key_url), None, &key_url, secret, t).await?;
            let url = format!("{base}/models");
            let body = checked(client.get(&url), None, &url, secret, t).await?;
            serde_json::from_slice::<DataList>(&body)
                .map_err(|_| bad_shape(&url, "an OpenAI model list"))?
                .data
        }
        Listing::Named => {
            if named.is_empty() {
                return Err(ProbeError::UnknownModel(
                    "this provider has no model listing: name the models you want in 'models'"
                        .into(),
                ));
            }
            let url = format!("{base}/chat/completions");
            for m in named {
                let probe = serde_json::json!({"model": m, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]});
                match checked(client.post(&url), Some(probe), &url, secret, t).await {
                    Ok(_) => {}
                    Err(ProbeError::BadBaseUrl(_)) | Err(ProbeError::Unexpected(_)) => {
                        return Err(ProbeError::UnknownModel(format!(
                            "the provider does not serve model '{m}'"
                        )))
                    }
                    Err(e) => return Err(e),
                }
            }
            named
                .iter()
                .map(|m| Item {
                    id: m.clone(),
                    owned_by: None,
                    created: None,
                })
                .collect()
        }
    };
    let mut models: Vec<ModelInfo> = items
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
