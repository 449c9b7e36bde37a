//! Small projects for the domain's tests.

use chrono::{DateTime, TimeZone, Utc};
use to11_shared::crypto::Keyring;
use to11_shared::model::{
    ByokPolicy, CredentialSecret, ModelInfo, ProjectState, ProviderConnection, Route, Strategy,
    Target,
};
use uuid::Uuid;

use super::credentials::ClearCredential;
use super::project::new_project;

pub fn keyring() -> Keyring {
    Keyring::from_master(&[7; 32])
}

pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0)
        .single()
        .unwrap_or_default()
}

pub fn models(ids: &[&str]) -> Vec<ModelInfo> {
    ids.iter()
        .map(|id| ModelInfo {
            id: id.to_string(),
            owned_by: None,
            created: None,
        })
        .collect()
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A provider connected with models `m1`, `m2` discovered and `m1` exposed, no credential.
pub fn provider(slug: &str) -> ProviderConnection {
    ProviderConnection {
        slug: slug.into(),
        kind: "openai".into(),
        base_url: "https://api.openai.com/v1".into(),
        account: Default::default(),
        default_credential: String::new(),
        credentials: vec![],
        discovered: models(&["m1", "m2"]),
        exposed: strings(&["m1"]),
        validated_at: Some(at(0)),
        discovered_at: Some(at(0)),
        last_error: None,
        created_at: at(0),
    }
}

pub fn project_with_providers(slugs: &[&str]) -> ProjectState {
    let mut s = new_project(
        Uuid::from_u128(42),
        "acme".into(),
        "Acme",
        ByokPolicy::Allowed,
        at(0),
    );
    s.providers = slugs.iter().map(|p| provider(p)).collect();
    s
}

pub fn slugs(s: &ProjectState) -> Vec<&str> {
    s.providers.iter().map(|p| p.slug.as_str()).collect()
}

pub fn api_key(key: &str) -> ClearCredential {
    ClearCredential::new(&CredentialSecret::ApiKey {
        api_key: key.into(),
    })
    .unwrap_or_else(|e| panic!("serialize: {e}"))
}

pub fn route(name: &str, targets: &[(&str, &str, Option<&str>)]) -> Route {
    Route {
        name: name.into(),
        strategy: Strategy::default(),
        targets: targets
            .iter()
            .map(|(provider, model, credential)| Target {
                provider: provider.to_string(),
                model: model.to_string(),
                credential: credential.map(str::to_string),
                weight: None,
            })
            .collect(),
        policy: Default::default(),
    }
}
