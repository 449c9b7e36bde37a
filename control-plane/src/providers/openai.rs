//! The OpenAI-compatible family (and Azure OpenAI): each provider's listing shape (`data[]`,
//! Together's bare array, Ollama's `/api/tags`, OpenRouter's public list plus `/key`, Cohere's
//! `models[].name` pages, or named models and Azure deployments checked with a one-token call).

use serde::Deserialize;
use to11_shared::catalog::Listing;

use super::http::{bad_shape, checked, q, Call};
use super::{Item, Probe, ProbeError};

#[derive(Deserialize)]
struct DataList {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct ModelsList {
    models: Vec<Item>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// Most pages any listing is followed for (a provider looping on its cursor must not hold us).
pub const MAX_PAGES: usize = 50;

pub async fn discover(p: &Probe<'_>) -> Result<Vec<Item>, ProbeError> {
    let base = p.base_url;
    let get = |url: String| async move {
        let body = checked(
            p.client,
            Call {
                method: "GET",
                url: &url,
                body: None,
                auth: &p.auth,
                secret: p.secret,
            },
            p.timeouts,
        )
        .await?;
        Ok::<_, ProbeError>((url, body))
    };
    Ok(match p.entry.listing {
        Listing::OpenAiModels => {
            let (url, body) = get(format!("{base}/models")).await?;
            serde_json::from_slice::<DataList>(&body)
                .map_err(|_| bad_shape(&url, "an OpenAI model list"))?
                .data
        }
        Listing::BareArray => {
            let (url, body) = get(format!("{base}/models")).await?;
            // Tolerate the wrapped form too, in case the provider adopts it.
            serde_json::from_slice::<Vec<Item>>(&body)
                .or_else(|_| serde_json::from_slice::<DataList>(&body).map(|l| l.data))
                .map_err(|_| bad_shape(&url, "a model list"))?
        }
        Listing::OllamaTags => {
            let host = base.strip_suffix("/v1").unwrap_or(base);
            let (url, body) = get(format!("{host}/api/tags")).await?;
            serde_json::from_slice::<ModelsList>(&body)
                .map_err(|_| bad_shape(&url, "Ollama's model list"))?
                .models
        }
        Listing::PublicWithKeyCheck { key_path } => {
            get(format!("{base}{key_path}")).await?;
            let (url, body) = get(format!("{base}/models")).await?;
            serde_json::from_slice::<DataList>(&body)
                .map_err(|_| bad_shape(&url, "an OpenAI model list"))?
                .data
        }
        Listing::CohereModels => {
            // The listing lives on Cohere's own API, beside the compatibility surface.
            let host = base.strip_suffix("/compatibility/v1").unwrap_or(base);
            let mut all = Vec::new();
            let mut token: Option<String> = None;
            for _ in 0..MAX_PAGES {
                let mut url = format!("{host}/v1/models?page_size=1000");
                if let Some(t) = &token {
                    url.push_str(&format!("&page_token={}", q(t)));
                }
                let (url, body) = get(url).await?;
                let page: ModelsList = serde_json::from_slice(&body)
                    .map_err(|_| bad_shape(&url, "Cohere's model list"))?;
                all.extend(page.models.into_iter().filter(|m| {
                    // Keep what the OpenAI surface can call: chat and embedding models.
                    m.endpoints
                        .as_ref()
                        .is_none_or(|e| e.iter().any(|e| e == "chat" || e == "embed"))
                }));
                token = page.next_page_token.filter(|t| !t.is_empty());
                if token.is_none() {
                    break;
                }
            }
            all
        }
        Listing::AzureDeployments => {
            // The key is checked on the resource's model list; deployments are named.
            let v = p.account_value("api_version");
            get(format!("{base}/models?api-version={}", q(v))).await?;
            p.require_named()?;
            for d in p.named {
                let url = format!(
                    "{base}/deployments/{}/chat/completions?api-version={}",
                    q(d),
                    q(v)
                );
                let probe = serde_json::json!({"max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]});
                match checked(
                    p.client,
                    Call {
                        method: "POST",
                        url: &url,
                        body: Some(probe),
                        auth: &p.auth,
                        secret: p.secret,
                    },
                    p.timeouts,
                )
                .await
                {
                    // A 400 means the deployment exists but refuses this probe (e.g. an
                    // embeddings deployment asked to chat): it is there.
                    Ok(_) | Err(ProbeError::Unexpected(_)) => {}
                    Err(ProbeError::BadBaseUrl(_)) => {
                        return Err(ProbeError::UnknownModel(format!(
                            "the resource has no deployment '{d}'"
                        )))
                    }
                    Err(e) => return Err(e),
                }
            }
            p.named_items()
        }
        Listing::Named => {
            p.require_named()?;
            let url = format!("{base}/chat/completions");
            for m in p.named {
                let probe = serde_json::json!({"model": m, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]});
                match checked(
                    p.client,
                    Call {
                        method: "POST",
                        url: &url,
                        body: Some(probe),
                        auth: &p.auth,
                        secret: p.secret,
                    },
                    p.timeouts,
                )
                .await
                {
                    Ok(_) => {}
                    Err(ProbeError::BadBaseUrl(_)) | Err(ProbeError::Unexpected(_)) => {
                        return Err(ProbeError::UnknownModel(format!(
                            "the provider does not serve model '{m}'"
                        )))
                    }
                    Err(e) => return Err(e),
                }
            }
            p.named_items()
        }
        other => {
            return Err(ProbeError::Unexpected(format!(
                "listing {other:?} is not an OpenAI-family listing"
            )))
        }
    })
}
