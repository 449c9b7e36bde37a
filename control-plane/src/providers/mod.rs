//! Talking to providers' admin surfaces: validate a credential and list its models. One file per
//! provider family; each maps the provider's real failure shapes to one `ProbeError` each.

pub mod openai;

use std::time::Duration;

use to11_shared::catalog::CatalogEntry;
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

/// Validates the credential and lists the models, with the catalog entry's listing method.
/// `named` are the models the user named (used by entries without a listing).
pub async fn discover(
    client: &awc::Client,
    entry: &CatalogEntry,
    base_url: &str,
    secret: &CredentialSecret,
    named: &[String],
    timeouts: &ProbeTimeouts,
) -> Result<Vec<ModelInfo>, ProbeError> {
    openai::discover(client, entry.listing, base_url, secret, named, timeouts).await
}
