//! What API responses show. Built from stored state; credentials appear as id, name and hint only,
//! keys as id, name and hint only.

use chrono::{DateTime, Utc};
use serde::Serialize;
use to11_shared::model::{
    ByokPolicy, GatewayKey, ManagementKey, ModelInfo, ProjectState, ProviderConnection,
};
use to11_shared::resolve::Problem;
use uuid::Uuid;

#[derive(Serialize)]
pub struct ProjectView {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub byok: ByokPolicy,
    pub strict_translation: bool,
    pub created_at: DateTime<Utc>,
    pub version: u64,
    pub provider_order: Vec<String>,
}

impl From<&ProjectState> for ProjectView {
    fn from(s: &ProjectState) -> Self {
        ProjectView {
            id: s.project.id,
            slug: s.project.slug.clone(),
            name: s.project.name.clone(),
            byok: s.project.byok,
            strict_translation: s.project.strict_translation,
            created_at: s.project.created_at,
            version: s.version,
            provider_order: s.providers.iter().map(|p| p.slug.clone()).collect(),
        }
    }
}

#[derive(Serialize)]
pub struct CredentialView {
    pub id: String,
    pub name: String,
    pub hint: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize)]
pub struct ProviderView {
    pub slug: String,
    pub kind: String,
    pub base_url: String,
    pub account: serde_json::Map<String, serde_json::Value>,
    pub default_credential: String,
    pub credentials: Vec<CredentialView>,
    pub discovered: Vec<ModelInfo>,
    pub discovered_count: usize,
    pub exposed: Vec<String>,
    pub validated_at: Option<DateTime<Utc>>,
    pub discovered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<&ProviderConnection> for ProviderView {
    fn from(p: &ProviderConnection) -> Self {
        ProviderView {
            slug: p.slug.clone(),
            kind: p.kind.clone(),
            base_url: p.base_url.clone(),
            account: p.account.clone(),
            default_credential: p.default_credential.clone(),
            credentials: p
                .credentials
                .iter()
                .map(|c| CredentialView {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    hint: c.hint.clone(),
                    created_at: c.created_at,
                })
                .collect(),
            discovered: p.discovered.clone(),
            discovered_count: p.discovered.len(),
            exposed: p.exposed.clone(),
            validated_at: p.validated_at,
            discovered_at: p.discovered_at,
            last_error: p.last_error.clone(),
            created_at: p.created_at,
        }
    }
}

#[derive(Serialize)]
pub struct KeyView {
    pub id: Uuid,
    pub name: String,
    pub hint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byok: Option<ByokPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<to11_shared::limits::Limits>,
    pub created_at: DateTime<Utc>,
}

impl From<&GatewayKey> for KeyView {
    fn from(k: &GatewayKey) -> Self {
        KeyView {
            id: k.id,
            name: k.name.clone(),
            hint: k.hint.clone(),
            models: k.models.clone(),
            expires_at: k.expires_at,
            byok: k.byok,
            limits: k.limits.clone(),
            created_at: k.created_at,
        }
    }
}

impl From<&ManagementKey> for KeyView {
    fn from(k: &ManagementKey) -> Self {
        KeyView {
            id: k.id,
            name: k.name.clone(),
            hint: k.hint.clone(),
            models: None,
            expires_at: None,
            byok: None,
            limits: None,
            created_at: k.created_at,
        }
    }
}

/// A freshly minted key: the secret (shown once), its keyed hash (stored) and its hint.
pub struct Minted {
    pub secret: String,
    pub hash: String,
    pub hint: String,
}

pub fn mint(keyring: &to11_shared::crypto::Keyring, new_key: fn() -> String) -> Minted {
    let secret = new_key();
    Minted {
        hash: keyring.key_hash(&secret).to_hex(),
        hint: to11_shared::keys::hint(&secret),
        secret,
    }
}

/// A write's answer: the object, the configuration version it produced, and any warnings.
#[derive(Serialize)]
pub struct Written<T: Serialize> {
    #[serde(flatten)]
    pub value: T,
    pub version: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Problem>,
}
