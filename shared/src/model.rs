//! Domain types persisted by the control plane. Stored documents never reject unknown fields, so
//! an older binary can read what a newer one wrote.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::crypto::SealedSecret;

/// What a project (and a key) does with a client's own upstream key in `Authorization`/`x-api-key`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ByokPolicy {
    /// Use the client's key instead of the stored credential when one is given.
    #[default]
    Allowed,
    /// Never use a client's key; always the stored credential.
    Ignored,
    /// A client's key must be given; requests without one are refused.
    Required,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Project {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub byok: ByokPolicy,
    /// Strict translation for every request of the project (a route's policy can ask for it
    /// too): request hints a target has no equivalent for are refused instead of dropped.
    #[serde(default)]
    pub strict_translation: bool,
    pub created_at: DateTime<Utc>,
}

/// A model as discovered from a provider's listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
}

/// A stored upstream secret. The secret itself is sealed; only `hint` (last 4 chars) is readable.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredCredential {
    pub id: String,
    pub name: String,
    pub hint: String,
    pub sealed: SealedSecret,
    pub created_at: DateTime<Utc>,
}

/// The clear form of a credential, as the API receives it and the data plane uses it. Never
/// serialized into a response, a log line or a snapshot (only its sealed form is).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CredentialSecret {
    ApiKey {
        api_key: String,
    },
    Aws {
        access_key_id: String,
        secret_access_key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_token: Option<String>,
    },
    GoogleServiceAccount {
        service_account_json: serde_json::Value,
    },
}

impl std::fmt::Debug for CredentialSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialSecret(<redacted>)")
    }
}

impl CredentialSecret {
    /// Last four characters of the identifying secret, for display.
    pub fn hint(&self) -> String {
        let s = match self {
            CredentialSecret::ApiKey { api_key } => api_key.as_str(),
            CredentialSecret::Aws { access_key_id, .. } => access_key_id.as_str(),
            CredentialSecret::GoogleServiceAccount {
                service_account_json,
            } => service_account_json
                .get("client_email")
                .and_then(|v| v.as_str())
                .unwrap_or(""),
        };
        let chars: Vec<char> = s.chars().collect();
        let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
        format!("…{tail}")
    }

    /// The bearer-style key, where the credential is one.
    pub fn api_key(&self) -> Option<&str> {
        match self {
            CredentialSecret::ApiKey { api_key } => Some(api_key),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProviderConnection {
    pub slug: String,
    pub kind: String,
    pub base_url: String,
    #[serde(default)]
    pub account: serde_json::Map<String, serde_json::Value>,
    pub default_credential: String,
    #[serde(default)]
    pub credentials: Vec<StoredCredential>,
    #[serde(default)]
    pub discovered: Vec<ModelInfo>,
    #[serde(default)]
    pub exposed: Vec<String>,
    pub validated_at: Option<DateTime<Utc>>,
    pub discovered_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    #[default]
    Fallback,
    Loadbalance,
    LeastLatency,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub provider: String,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub name: String,
    #[serde(default)]
    pub strategy: Strategy,
    pub targets: Vec<Target>,
    /// Retries, fall-through and cool-down; defaults when omitted.
    #[serde(default)]
    pub policy: crate::policy::RoutePolicy,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Function {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A to11 key as stored: only its keyed hash (hex) is kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GatewayKey {
    pub id: Uuid,
    pub name: String,
    pub hash: String,
    pub hint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byok: Option<ByokPolicy>,
    /// What this key may use (`limits::Limits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<crate::limits::Limits>,
    pub created_at: DateTime<Utc>,
}

/// A project management key as stored: only its keyed hash (hex) is kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManagementKey {
    pub id: Uuid,
    pub name: String,
    pub hash: String,
    pub hint: String,
    pub created_at: DateTime<Utc>,
}

/// Everything the control plane persists about one project. Provider order is the order of
/// `providers`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProjectState {
    pub project: Project,
    pub version: u64,
    #[serde(default)]
    pub providers: Vec<ProviderConnection>,
    #[serde(default)]
    pub keys: Vec<GatewayKey>,
    #[serde(default)]
    pub management_keys: Vec<ManagementKey>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub functions: Vec<Function>,
    /// The project's own limits (its management key may change them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<crate::limits::Limits>,
    /// The operator's plan for the project: limits only the operator may change, enforced
    /// besides the project's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<crate::limits::Limits>,
    /// Where budget alerts of the project are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_webhook: Option<AlertWebhook>,
}

/// A URL budget alerts are posted to, signed with a secret shown once when it is set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AlertWebhook {
    pub url: String,
    pub secret: crate::crypto::SealedSecret,
    pub hint: String,
    pub created_at: DateTime<Utc>,
}

/// What a webhook's secret is sealed for.
pub fn alert_webhook_owner(project: &Uuid) -> String {
    format!("{project}/alert-webhook")
}

impl ProjectState {
    pub fn provider(&self, slug: &str) -> Option<&ProviderConnection> {
        self.providers.iter().find(|p| p.slug == slug)
    }

    pub fn provider_mut(&mut self, slug: &str) -> Option<&mut ProviderConnection> {
        self.providers.iter_mut().find(|p| p.slug == slug)
    }
}

/// Slugs of projects, providers, routes and keys: lowercase ASCII letters, digits and `-`,
/// starting with a letter or digit, 1..=64 chars. They become parts of store keys and URLs.
pub fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

/// Names of routes and functions: what clients send as `model`. 1..=128 characters of ASCII
/// letters, digits and `.`, `_`, `:`, `-`; no `/`, which belongs to `provider/model` passthrough.
pub fn valid_alias(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases() {
        for ok in ["smart", "gpt-4o", "claude-3.5:latest", "Summarize_v2"] {
            assert!(valid_alias(ok), "{ok}");
        }
        for bad in ["", "a/b", "a b", "a*", "é", &"x".repeat(129)] {
            assert!(!valid_alias(bad), "{bad:?}");
        }
    }

    #[test]
    fn slugs() {
        assert!(valid_slug("openai-eu"));
        assert!(valid_slug("a1"));
        for bad in ["", "-x", "A", "a b", "a:b", "a*", "a{b}", &"x".repeat(65)] {
            assert!(!valid_slug(bad), "{bad:?}");
        }
    }

    #[test]
    fn secret_debug_is_redacted_and_hint_is_last_four() {
        let s = CredentialSecret::ApiKey {
            api_key: "sk-verysecret1234".into(),
        };
        assert!(!format!("{s:?}").contains("verysecret"));
        assert_eq!(s.hint(), "…1234");
    }
}
