//! Provider connections: connected with the models chosen from a discovery, their exposed set
//! changed, rediscovered (the result applied, its difference reported), disconnected.

use chrono::{DateTime, Utc};
use serde::Serialize;
use to11_shared::crypto::Keyring;
use to11_shared::model::{ModelInfo, ProjectState, ProviderConnection};

use super::credentials::ClearCredential;
use super::DomainError;

/// The id of the credential a connection is made with.
pub const FIRST_CREDENTIAL: &str = "default";

/// A provider to connect, validated and discovered by the caller.
#[derive(Clone, Debug)]
pub struct NewProvider {
    pub slug: String,
    /// The catalog entry's id.
    pub kind: String,
    pub base_url: String,
    pub account: serde_json::Map<String, serde_json::Value>,
    pub credential: ClearCredential,
    pub discovered: Vec<ModelInfo>,
    /// Chosen with `choose_exposed`.
    pub exposed: Vec<String>,
}

/// Refuses a slug the project already uses for a provider.
pub fn ensure_unconnected(state: &ProjectState, slug: &str) -> Result<(), DomainError> {
    match state.provider(slug) {
        Some(_) => Err(DomainError::ProviderConnected(slug.to_string())),
        None => Ok(()),
    }
}

/// Connects a provider, validated and discovered at `now`. Its credential is stored as
/// `FIRST_CREDENTIAL` and made the default, unless it is the empty key of a keyless server.
pub fn connect(
    state: &mut ProjectState,
    new: NewProvider,
    keyring: &Keyring,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    ensure_unconnected(state, &new.slug)?;
    let (credentials, default_credential) = match new.credential.is_keyless() {
        true => (vec![], String::new()),
        false => (
            vec![new.credential.store(
                keyring,
                &state.project.id,
                &new.slug,
                FIRST_CREDENTIAL,
                FIRST_CREDENTIAL.into(),
                now,
            )],
            FIRST_CREDENTIAL.into(),
        ),
    };
    state.providers.push(ProviderConnection {
        slug: new.slug,
        kind: new.kind,
        base_url: new.base_url,
        account: new.account,
        default_credential,
        credentials,
        discovered: new.discovered,
        exposed: new.exposed,
        validated_at: Some(now),
        discovered_at: Some(now),
        last_error: None,
        created_at: now,
    });
    Ok(())
}

/// The models of `wanted` that `discovered` does not list.
pub fn unknown_models(wanted: &[String], discovered: &[ModelInfo]) -> Vec<String> {
    wanted
        .iter()
        .filter(|m| !discovered.iter().any(|d| d.id == **m))
        .cloned()
        .collect()
}

fn refuse_unknown(wanted: &[String], discovered: &[ModelInfo]) -> Result<(), DomainError> {
    let unknown = unknown_models(wanted, discovered);
    match unknown.is_empty() {
        true => Ok(()),
        false => Err(DomainError::UnknownModels(unknown)),
    }
}

/// The models a new connection exposes: those asked for (each one discovered; repeats in a row
/// dropped), or every discovered model when none are named.
pub fn choose_exposed(
    wanted: Option<Vec<String>>,
    discovered: &[ModelInfo],
) -> Result<Vec<String>, DomainError> {
    match wanted {
        Some(mut m) => {
            refuse_unknown(&m, discovered)?;
            m.dedup();
            Ok(m)
        }
        None => Ok(discovered.iter().map(|d| d.id.clone()).collect()),
    }
}

/// Replaces the exposed set of a provider; every model must be one it lists.
pub fn set_exposed(
    state: &mut ProjectState,
    slug: &str,
    mut exposed: Vec<String>,
) -> Result<(), DomainError> {
    exposed.dedup();
    let p = state
        .provider_mut(slug)
        .ok_or(DomainError::NotFound("provider"))?;
    refuse_unknown(&exposed, &p.discovered)?;
    p.exposed = exposed;
    Ok(())
}

/// What a rediscovery changed. The exposed set is left as the project chose it; the models it
/// names that the provider no longer lists are `exposed_missing`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiscoveryDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub exposed_missing: Vec<String>,
}

/// Replaces a provider's discovered models with a successful discovery made at `now`.
pub fn apply_discovery(
    state: &mut ProjectState,
    slug: &str,
    models: Vec<ModelInfo>,
    now: DateTime<Utc>,
) -> Result<DiscoveryDiff, DomainError> {
    let p = state
        .provider_mut(slug)
        .ok_or(DomainError::NotFound("provider"))?;
    let added = models
        .iter()
        .filter(|m| !p.discovered.iter().any(|d| d.id == m.id))
        .map(|m| m.id.clone())
        .collect();
    let removed = p
        .discovered
        .iter()
        .filter(|d| !models.iter().any(|m| m.id == d.id))
        .map(|d| d.id.clone())
        .collect();
    let exposed_missing = unknown_models(&p.exposed, &models);
    p.discovered = models;
    p.discovered_at = Some(now);
    p.validated_at = Some(now);
    p.last_error = None;
    Ok(DiscoveryDiff {
        added,
        removed,
        exposed_missing,
    })
}

/// Records why a rediscovery failed; what was discovered before stays.
pub fn record_discovery_failure(
    state: &mut ProjectState,
    slug: &str,
    message: String,
) -> Result<(), DomainError> {
    let p = state
        .provider_mut(slug)
        .ok_or(DomainError::NotFound("provider"))?;
    p.last_error = Some(message);
    Ok(())
}

/// Removes a provider connection with its credentials. Whether a route or function still uses
/// it is the compile step's question (the registry refuses the write with every problem).
pub fn disconnect(state: &mut ProjectState, slug: &str) -> Result<(), DomainError> {
    super::remove_one(&mut state.providers, |p| p.slug == slug, "provider")
}

#[cfg(test)]
mod tests;
