//! Talking to providers' admin surfaces: validate a credential and list its models. One file per
//! provider family; each maps the provider's real failure shapes to one `ProbeError` each.

pub mod anthropic;
pub mod bedrock;
pub mod google;
pub mod http;
pub mod openai;

use std::time::Duration;

use serde::Deserialize;
use to11_shared::catalog::{CatalogEntry, Listing};
use to11_shared::model::{CredentialSecret, ModelInfo};
use to11_shared::ErrorCode;

use crate::error::ApiError;

/// Why validation or discovery failed, in terms a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    InvalidCredential(String),
    Permission(String),
    Unreachable(String),
    BadBaseUrl(String),
    RateLimited(String),
    Timeout(String),
    Unexpected(String),
    /// A model the user named is not served (providers without a listing).
    UnknownModel(String),
}

impl ProbeError {
    /// The same error with its message rewritten.
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> ProbeError {
        use ProbeError::*;
        match self {
            InvalidCredential(m) => InvalidCredential(f(m)),
            Permission(m) => Permission(f(m)),
            Unreachable(m) => Unreachable(f(m)),
            BadBaseUrl(m) => BadBaseUrl(f(m)),
            RateLimited(m) => RateLimited(f(m)),
            Timeout(m) => Timeout(f(m)),
            Unexpected(m) => Unexpected(f(m)),
            UnknownModel(m) => UnknownModel(f(m)),
        }
    }
}

impl From<ProbeError> for ApiError {
    fn from(e: ProbeError) -> Self {
        let (code, m) = match e {
            ProbeError::InvalidCredential(m) => (ErrorCode::ProviderInvalidCredential, m),
            ProbeError::Permission(m) => (ErrorCode::ProviderPermission, m),
            ProbeError::Unreachable(m) => (ErrorCode::ProviderUnreachable, m),
            ProbeError::BadBaseUrl(m) => (ErrorCode::ProviderBadBaseUrl, m),
            ProbeError::RateLimited(m) => (ErrorCode::ProviderRateLimited, m),
            ProbeError::Timeout(m) => (ErrorCode::ProviderTimeout, m),
            ProbeError::Unexpected(m) => (ErrorCode::ProviderUnexpected, m),
            ProbeError::UnknownModel(m) => (ErrorCode::Validation, m),
        };
        ApiError::new(code, m)
    }
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = match self {
            ProbeError::InvalidCredential(m)
            | ProbeError::Permission(m)
            | ProbeError::Unreachable(m)
            | ProbeError::BadBaseUrl(m)
            | ProbeError::RateLimited(m)
            | ProbeError::Timeout(m)
            | ProbeError::Unexpected(m)
            | ProbeError::UnknownModel(m) => m,
        };
        f.write_str(m)
    }
}

pub struct ProbeTimeouts {
    pub connect: Duration,
    pub total: Duration,
}

/// One model of a listing, in any provider's shape (`id` or `name`).
#[derive(Deserialize)]
pub struct Item {
    #[serde(alias = "name")]
    pub id: String,
    #[serde(default)]
    pub owned_by: Option<String>,
    #[serde(default)]
    pub created: Option<i64>,
    /// Cohere: the endpoints a model serves.
    #[serde(default)]
    pub endpoints: Option<Vec<String>>,
}

impl Item {
    pub fn named(id: &str) -> Item {
        Item {
            id: id.to_string(),
            owned_by: None,
            created: None,
            endpoints: None,
        }
    }
}

/// Everything one validation + discovery needs.
pub struct Probe<'a> {
    pub client: &'a awc::Client,
    pub entry: &'a CatalogEntry,
    pub base_url: &'a str,
    pub account: &'a serde_json::Map<String, serde_json::Value>,
    pub secret: &'a CredentialSecret,
    pub auth: http::Auth,
    /// Models the user named (checked one by one where the listing cannot show them).
    pub named: &'a [String],
    pub timeouts: &'a ProbeTimeouts,
    pub token_url: &'a str,
}

impl Probe<'_> {
    pub fn account_value(&self, k: &str) -> &str {
        self.account.get(k).and_then(|v| v.as_str()).unwrap_or("")
    }

    fn require_named(&self) -> Result<(), ProbeError> {
        if self.named.is_empty() {
            return Err(ProbeError::UnknownModel(format!(
                "'{}' has no model listing: name the models (or deployments) you want in 'models'",
                self.entry.id
            )));
        }
        Ok(())
    }

    fn named_items(&self) -> Vec<Item> {
        self.named.iter().map(|m| Item::named(m)).collect()
    }
}

/// What discovery needs besides the client: the entry, where, with what, and named models.
#[derive(Clone)]
pub struct Target {
    pub entry: CatalogEntry,
    pub base_url: String,
    pub account: serde_json::Map<String, serde_json::Value>,
    pub secret: CredentialSecret,
    pub named: Vec<String>,
}

/// Validates the credential and lists the models, with the catalog entry's listing method.
pub async fn discover(
    client: &awc::Client,
    t: &Target,
    timeouts: &ProbeTimeouts,
    token_url: &str,
) -> Result<Vec<ModelInfo>, ProbeError> {
    let region = t
        .account
        .get("region")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let p = Probe {
        client,
        entry: &t.entry,
        base_url: t.base_url.trim_end_matches('/'),
        account: &t.account,
        secret: &t.secret,
        auth: http::Auth::new(t.entry.auth, &t.secret, region),
        named: &t.named,
        timeouts,
        token_url,
    };
    let items = match t.entry.listing {
        Listing::AnthropicPages => anthropic::discover(&p).await?,
        Listing::GeminiPages => google::gemini(&p).await?,
        Listing::VertexPublisher => google::vertex(&p).await?,
        Listing::BedrockFoundationModels => bedrock::discover(&p).await?,
        _ => openai::discover(&p).await?,
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
