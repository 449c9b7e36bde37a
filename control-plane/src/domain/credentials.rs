//! Stored credentials: several per provider connection (rotation, spreading load across
//! accounts), sealed for their owner (`project/provider/credential`). A credential that is its
//! provider's default, or that a route uses, is not removed.

use chrono::{DateTime, Utc};
use to11_shared::crypto::{Keyring, SealedSecret};
use to11_shared::model::{CredentialSecret, ProjectState, StoredCredential};
use to11_shared::snapshot::credential_owner;
use uuid::Uuid;

use super::DomainError;

/// A credential in clear, serialized once, on its way to being sealed. `Debug` shows the hint only.
/// Cloned only with its command (a write run again after a conflict).
#[derive(Clone)]
pub struct ClearCredential {
    plain: Vec<u8>,
    hint: String,
    keyless: bool,
}

impl std::fmt::Debug for ClearCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClearCredential({})", self.hint)
    }
}

impl ClearCredential {
    pub fn new(secret: &CredentialSecret) -> Result<Self, serde_json::Error> {
        Ok(ClearCredential {
            plain: serde_json::to_vec(secret)?,
            hint: secret.hint(),
            keyless: matches!(secret, CredentialSecret::ApiKey { api_key } if api_key.is_empty()),
        })
    }

    /// The empty key of a keyless self-hosted server: a connection without a stored credential.
    pub fn is_keyless(&self) -> bool {
        self.keyless
    }

    /// What answers show of it.
    pub fn hint(&self) -> &str {
        &self.hint
    }

    /// Sealed for its owner: it opens only as credential `id` of `provider` in `project`.
    fn seal(&self, keyring: &Keyring, project: &Uuid, provider: &str, id: &str) -> SealedSecret {
        keyring.seal(&credential_owner(project, provider, id), &self.plain)
    }

    /// The credential as stored.
    pub(super) fn store(
        &self,
        keyring: &Keyring,
        project: &Uuid,
        provider: &str,
        id: &str,
        name: String,
        now: DateTime<Utc>,
    ) -> StoredCredential {
        StoredCredential {
            id: id.to_string(),
            name,
            hint: self.hint.clone(),
            sealed: self.seal(keyring, project, provider, id),
            created_at: now,
        }
    }
}

/// Routes whose targets use credential `id` of `provider`, explicitly or (when it is the
/// provider's default, `is_default`) by naming none.
pub fn used_by(state: &ProjectState, provider: &str, id: &str, is_default: bool) -> Vec<String> {
    state
        .routes
        .iter()
        .filter(|r| {
            r.targets.iter().any(|t| {
                t.provider == provider && t.credential.as_deref().map_or(is_default, |c| c == id)
            })
        })
        .map(|r| r.name.clone())
        .collect()
}

/// A credential to add to a connected provider.
#[derive(Clone, Debug)]
pub struct NewCredential {
    pub provider: String,
    /// Identifier route targets use.
    pub id: String,
    /// Defaults to the id.
    pub name: Option<String>,
    pub secret: ClearCredential,
    /// Make it the provider's default (a provider without one gets it anyway).
    pub make_default: bool,
}

pub fn add(
    state: &mut ProjectState,
    new: NewCredential,
    keyring: &Keyring,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    let project = state.project.id;
    let p = state
        .provider_mut(&new.provider)
        .ok_or(DomainError::NotFound("provider"))?;
    if p.credentials.iter().any(|c| c.id == new.id) {
        return Err(DomainError::CredentialExists {
            provider: p.slug.clone(),
            id: new.id,
        });
    }
    let name = new.name.unwrap_or_else(|| new.id.clone());
    let stored = new
        .secret
        .store(keyring, &project, &new.provider, &new.id, name, now);
    p.credentials.push(stored);
    if new.make_default || p.default_credential.is_empty() {
        p.default_credential = new.id;
    }
    Ok(())
}

/// What an update changes; `None`/`false` leaves it as it is.
#[derive(Clone, Debug, Default)]
pub struct CredentialChange {
    /// A new secret (rotation).
    pub secret: Option<ClearCredential>,
    pub name: Option<String>,
    pub make_default: bool,
}

pub fn update(
    state: &mut ProjectState,
    provider: &str,
    id: &str,
    change: CredentialChange,
    keyring: &Keyring,
) -> Result<(), DomainError> {
    let project = state.project.id;
    let p = state
        .provider_mut(provider)
        .ok_or(DomainError::NotFound("provider"))?;
    let c = p
        .credentials
        .iter_mut()
        .find(|c| c.id == id)
        .ok_or(DomainError::NotFound("credential"))?;
    if let Some(secret) = change.secret {
        c.hint = secret.hint.clone();
        c.sealed = secret.seal(keyring, &project, provider, id);
    }
    if let Some(n) = change.name {
        c.name = n;
    }
    if change.make_default {
        p.default_credential = id.to_string();
    }
    Ok(())
}

/// Removes a credential that is neither its provider's default nor used by a route.
pub fn remove(state: &mut ProjectState, provider: &str, id: &str) -> Result<(), DomainError> {
    let p = state
        .provider(provider)
        .filter(|p| p.credentials.iter().any(|c| c.id == id))
        .ok_or(DomainError::NotFound("credential"))?;
    let is_default = p.default_credential == id;
    if is_default {
        return Err(DomainError::DefaultCredential {
            provider: provider.to_string(),
            id: id.to_string(),
        });
    }
    let routes = used_by(state, provider, id, is_default);
    if !routes.is_empty() {
        return Err(DomainError::CredentialInUse {
            id: id.to_string(),
            routes,
        });
    }
    let p = state
        .provider_mut(provider)
        .ok_or(DomainError::NotFound("provider"))?;
    super::remove_one(&mut p.credentials, |c| c.id == id, "credential")
}

/// The provider's default credential in clear (for rediscovery; it stays in the control plane).
/// A provider without one (a keyless server) gets the empty key.
pub fn open_default(
    state: &ProjectState,
    provider: &str,
    keyring: &Keyring,
) -> Result<CredentialSecret, DomainError> {
    let p = state
        .provider(provider)
        .ok_or(DomainError::NotFound("provider"))?;
    let Some(c) = p.credentials.iter().find(|c| c.id == p.default_credential) else {
        return Ok(CredentialSecret::ApiKey {
            api_key: String::new(),
        });
    };
    let owner = credential_owner(&state.project.id, &p.slug, &c.id);
    let unreadable = |e: &dyn std::fmt::Display| DomainError::UnreadableCredential(e.to_string());
    let clear = keyring
        .open(&owner, &c.sealed)
        .map_err(|e| unreadable(&e))?;
    serde_json::from_slice(&clear).map_err(|e| unreadable(&e))
}

#[cfg(test)]
mod tests;
