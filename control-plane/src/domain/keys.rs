//! Gateway keys (what applications call the gateway with) and management keys (what a project's
//! own tooling calls the API with): issued already minted — only the keyed hash and a hint are
//! stored, the secret is shown once by the caller — and revoked by id.

use to11_shared::model::{GatewayKey, ManagementKey, ProjectState};
use uuid::Uuid;

use super::{remove_one, DomainError};

/// Adds a minted gateway key; answers what was stored.
pub fn issue_gateway_key(state: &mut ProjectState, key: GatewayKey) -> GatewayKey {
    state.keys.push(key.clone());
    key
}

pub fn revoke_gateway_key(state: &mut ProjectState, id: Uuid) -> Result<(), DomainError> {
    remove_one(&mut state.keys, |k| k.id == id, "key")
}

/// Adds a minted management key; answers what was stored.
pub fn issue_management_key(state: &mut ProjectState, key: ManagementKey) -> ManagementKey {
    state.management_keys.push(key.clone());
    key
}

pub fn revoke_management_key(state: &mut ProjectState, id: Uuid) -> Result<(), DomainError> {
    remove_one(&mut state.management_keys, |k| k.id == id, "management key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::{at, project_with_providers};

    fn gateway_key(n: u128) -> GatewayKey {
        GatewayKey {
            id: Uuid::from_u128(n),
            name: format!("k{n}"),
            hash: format!("{n:064x}"),
            hint: "…abcd".into(),
            models: None,
            expires_at: None,
            byok: None,
            limits: None,
            created_at: at(0),
        }
    }

    fn management_key(n: u128) -> ManagementKey {
        ManagementKey {
            id: Uuid::from_u128(n),
            name: format!("m{n}"),
            hash: format!("{n:064x}"),
            hint: "…abcd".into(),
            created_at: at(0),
        }
    }

    #[test]
    fn gateway_keys() {
        let mut s = project_with_providers(&[]);
        let k = issue_gateway_key(&mut s, gateway_key(1));
        assert_eq!(k.id, Uuid::from_u128(1));
        issue_gateway_key(&mut s, gateway_key(2));
        for (id, want, left) in [
            (3, Err(DomainError::NotFound("key")), 2),
            (1, Ok(()), 1),
            (1, Err(DomainError::NotFound("key")), 1),
            (2, Ok(()), 0),
        ] {
            assert_eq!(
                revoke_gateway_key(&mut s, Uuid::from_u128(id)),
                want,
                "{id}"
            );
            assert_eq!(s.keys.len(), left, "{id}");
        }
    }

    #[test]
    fn management_keys() {
        let mut s = project_with_providers(&[]);
        let k = issue_management_key(&mut s, management_key(1));
        assert_eq!(k.name, "m1");
        issue_management_key(&mut s, management_key(2));
        // A management key and a gateway key with the same id are different keys.
        issue_gateway_key(&mut s, gateway_key(2));
        for (id, want, left) in [
            (3, Err(DomainError::NotFound("management key")), 2),
            (2, Ok(()), 1),
            (2, Err(DomainError::NotFound("management key")), 1),
        ] {
            assert_eq!(
                revoke_management_key(&mut s, Uuid::from_u128(id)),
                want,
                "{id}"
            );
            assert_eq!(s.management_keys.len(), left, "{id}");
        }
        assert_eq!(s.keys.len(), 1);
    }
}
