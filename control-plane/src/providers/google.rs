//! Google: Gemini (AI Studio) with `x-goog-api-key` and `nextPageToken` pages of `models/…` names
//! (a bad key answers **400** `API_KEY_INVALID`); Vertex AI with a service account exchanged for
//! an access token, the project and region checked, Google's publisher models listed, and named
//! models (Claude on Vertex has no listing) checked with a real call.

use serde::Deserialize;
use to11_io::outbound::{google_token, TokenError};
use to11_shared::google::ServiceAccount;
use to11_shared::model::CredentialSecret;
use to11_shared::upstream::{vertex_publisher, ProviderApi};

use super::http::{bad_shape, checked, q, Auth, Call};
use super::openai::MAX_PAGES;
use super::{Item, Probe, ProbeError};

#[derive(Deserialize)]
struct GeminiModel {
    name: String,
    #[serde(default, rename = "supportedGenerationMethods")]
    methods: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct GeminiPage {
    #[serde(default)]
    models: Vec<GeminiModel>,
    #[serde(default, rename = "nextPageToken")]
    next: Option<String>,
}

pub async fn gemini(p: &Probe<'_>) -> Result<Vec<Item>, ProbeError> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut url = format!("{}/models?pageSize=1000", p.base_url);
        if let Some(t) = &token {
            url.push_str(&format!("&pageToken={}", q(t)));
        }
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
        let page: GeminiPage =
            serde_json::from_slice(&body).map_err(|_| bad_shape(&url, "Gemini's model list"))?;
        all.extend(
            page.models
                .into_iter()
                // What the gateway can call: content generation and embeddings.
                .filter(|m| {
                    m.methods.as_ref().is_none_or(|ms| {
                        ms.iter()
                            .any(|x| matches!(x.as_str(), "generateContent" | "embedContent"))
                    })
                })
                .map(|m| Item::named(m.name.strip_prefix("models/").unwrap_or(&m.name))),
        );
        token = page.next.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    Ok(all)
}

#[derive(Deserialize)]
struct PublisherPage {
    #[serde(default, rename = "publisherModels")]
    models: Vec<GeminiModel>,
    #[serde(default, rename = "nextPageToken")]
    next: Option<String>,
}

/// Mints an access token for a service account; refusals are the credential's fault.
pub async fn token(p: &Probe<'_>) -> Result<String, ProbeError> {
    let CredentialSecret::GoogleServiceAccount {
        service_account_json,
    } = p.secret
    else {
        return Err(ProbeError::InvalidCredential(
            "Vertex takes a service account key".into(),
        ));
    };
    let sa = ServiceAccount::from_json(service_account_json)
        .map_err(|e| ProbeError::InvalidCredential(e.to_string()))?;
    google_token(p.client, p.token_url, &sa, p.timeouts.total)
        .await
        .map(|t| t.access_token)
        .map_err(|e| match e {
            TokenError::Refused(m) => ProbeError::InvalidCredential(m),
            TokenError::Failed(m) => ProbeError::Unreachable(m),
        })
}

pub async fn vertex(p: &Probe<'_>) -> Result<Vec<Item>, ProbeError> {
    let bearer = Auth::Header("authorization", format!("Bearer {}", token(p).await?));
    let base = p.base_url;
    // The same addresses the data plane serves from.
    let api = ProviderApi::new(p.entry.id, p.entry, base, p.account);
    let prefix = format!("{base}{}", api.vertex_prefix);
    let call = |method: &'static str, url: String, body: Option<serde_json::Value>| {
        let bearer = &bearer;
        async move {
            checked(
                p.client,
                Call {
                    method,
                    url: &url,
                    body,
                    auth: bearer,
                    secret: p.secret,
                },
                p.timeouts,
            )
            .await
            .map(|b| (url, b))
        }
    };
    // The project and region, the API's enablement and the account's role, in one free call.
    call("GET", format!("{prefix}/models?pageSize=1"), None).await.map_err(|e| match e {
        ProbeError::BadBaseUrl(m) => ProbeError::BadBaseUrl(format!("project or region not found: {m}")),
        ProbeError::Permission(m) => ProbeError::Permission(format!(
            "the service account may not use Vertex AI in project '{}' (enable the API and grant the Vertex AI User role): {m}",
            p.account_value("project")
        )),
        e => e,
    })?;
    let mut all = Vec::new();
    let mut page_token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut url = format!("{base}/v1beta1/publishers/google/models?pageSize=1000");
        if let Some(t) = &page_token {
            url.push_str(&format!("&pageToken={}", q(t)));
        }
        let (url, body) = call("GET", url, None).await?;
        let page: PublisherPage = serde_json::from_slice(&body)
            .map_err(|_| bad_shape(&url, "Vertex's publisher model list"))?;
        all.extend(page.models.into_iter().filter_map(|m| {
            let id = m.name.rsplit('/').next().unwrap_or(&m.name).to_string();
            // Generation and embedding models the Gemini surface can call.
            (id.starts_with("gemini") || id.contains("embedding")).then(|| Item::named(&id))
        }));
        page_token = page.next.filter(|t| !t.is_empty());
        if page_token.is_none() {
            break;
        }
    }
    // Named models the listing does not show (Claude, or models outside it): a real call each.
    let unlisted: Vec<&String> = p
        .named
        .iter()
        .filter(|m| !all.iter().any(|i| &i.id == *m))
        .collect();
    for m in unlisted {
        let (url, body) = match vertex_publisher(m) {
            "anthropic" => (
                api.vertex_claude_url(m, false),
                serde_json::json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]}),
            ),
            _ => (
                api.google_url(m, "countTokens"),
                serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "ping"}]}]}),
            ),
        };
        match call("POST", url, Some(body)).await {
            Ok(_) => all.push(Item::named(m)),
            Err(ProbeError::BadBaseUrl(_)) => {
                return Err(ProbeError::UnknownModel(format!(
                    "model '{m}' is not available in project '{}' region '{}' (is it enabled in Model Garden?)",
                    p.account_value("project"),
                    p.account_value("region")
                )))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(all)
}
