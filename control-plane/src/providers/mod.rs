//! Talking to providers' admin surfaces: validate a credential and list its models. One file per
//! provider family; each maps the provider's real failure shapes to one `ProbeError` each.

pub mod openai;

use std::time::Duration;

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
            | ProbeError::Unexpected(m) => m,
        };
        f.write_str(m)
    }
}

pub struct ProbeTimeouts {
    pub connect: Duration,
    pub total: Duration,
}

/// Validates the credential and lists the models, with the catalog entry's listing method.
pub async fn discover(
    client: &awc::Client,
    entry: &CatalogEntry,
    base_url: &str,
    secret: &CredentialSecret,
    timeouts: &ProbeTimeouts,
) -> Result<Vec<ModelInfo>, ProbeError> {
    match entry.listing {
        Listing::OpenAiModels => openai::list_models(client, base_url, secret, timeouts).await,
    }
}
