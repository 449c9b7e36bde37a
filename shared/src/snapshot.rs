//! The versioned snapshot a control plane publishes for one project and replicas apply.
//!
//! Wire form: an envelope `{"schema_version","project_id","version","mac","snapshot":{…}}`. The MAC
//! (HMAC-SHA256 under a key derived from the master key) covers the snapshot's exact bytes, so a
//! replica refuses a snapshot nobody holding the master key wrote. Secrets inside are sealed.
//! Unknown fields are ignored on decode, so an older replica reads what a newer control plane wrote.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::crypto::{Keyring, SealedSecret};
use crate::limits::Limits;
use crate::model::{ByokPolicy, Function, Project, ProjectState, Route};

/// The newest snapshot schema this build understands.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u64,
    pub project: Project,
    #[serde(default)]
    pub providers: Vec<SnapshotProvider>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub functions: Vec<Function>,
    #[serde(default)]
    pub keys: Vec<SnapshotKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Limits>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotProvider {
    pub slug: String,
    pub kind: String,
    pub base_url: String,
    /// Account-specific parts (region, project, resource, api-version).
    #[serde(default)]
    pub account: serde_json::Map<String, serde_json::Value>,
    pub default_credential: String,
    #[serde(default)]
    pub credentials: Vec<SnapshotCredential>,
    #[serde(default)]
    pub exposed: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotCredential {
    pub id: String,
    pub sealed: SealedSecret,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotKey {
    pub id: Uuid,
    pub hash: String,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub byok: Option<ByokPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// The associated data a credential is sealed under: it opens only for this owner.
pub fn credential_owner(project: &Uuid, provider: &str, credential: &str) -> String {
    format!("{project}/{provider}/{credential}")
}

impl Snapshot {
    /// The part of a project's state replicas need: no management keys, no discovered lists.
    pub fn from_state(state: &ProjectState) -> Self {
        Snapshot {
            version: state.version,
            project: state.project.clone(),
            providers: state
                .providers
                .iter()
                .map(|p| SnapshotProvider {
                    slug: p.slug.clone(),
                    kind: p.kind.clone(),
                    base_url: p.base_url.clone(),
                    account: p.account.clone(),
                    default_credential: p.default_credential.clone(),
                    credentials: p
                        .credentials
                        .iter()
                        .map(|c| SnapshotCredential {
                            id: c.id.clone(),
                            sealed: c.sealed.clone(),
                        })
                        .collect(),
                    exposed: p.exposed.clone(),
                })
                .collect(),
            routes: state.routes.clone(),
            functions: state.functions.clone(),
            keys: state
                .keys
                .iter()
                .map(|k| SnapshotKey {
                    id: k.id,
                    hash: k.hash.clone(),
                    models: k.models.clone(),
                    expires_at: k.expires_at,
                    byok: k.byok,
                    limits: k.limits.clone(),
                })
                .collect(),
            limits: state.limits.clone(),
            plan: state.plan.clone(),
        }
    }

    /// Serializes into the MAC'd envelope. The envelope's own fields are a number, a UUID and
    /// base64url text, so it is written directly around the snapshot's exact bytes.
    pub fn seal(&self, keyring: &Keyring) -> Vec<u8> {
        // Serializing plain data structs cannot fail.
        let body = serde_json::to_vec(self).unwrap_or_default();
        let mac = keyring.snapshot_mac(&body);
        let mut out = format!(
            r#"{{"schema_version":{SCHEMA_VERSION},"project_id":"{}","version":{},"mac":"{mac}","snapshot":"#,
            self.project.id, self.version
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out.push(b'}');
        out
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    schema_version: u32,
    project_id: Uuid,
    version: u64,
    mac: String,
    #[serde(borrow)]
    snapshot: &'a RawValue,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("snapshot is not valid JSON: {0}")]
    Json(String),
    #[error("snapshot schema {0} is newer than this replica understands ({SCHEMA_VERSION})")]
    NewerSchema(u32),
    #[error("snapshot MAC does not verify (tampered, or a different master key)")]
    Mac,
    #[error("snapshot envelope says project {envelope} version {version}, body disagrees")]
    Mismatch { envelope: Uuid, version: u64 },
    #[error("snapshot is {0} bytes, over the {1} byte limit")]
    TooLarge(usize, usize),
}

/// Largest snapshot a replica accepts.
pub const MAX_SNAPSHOT_BYTES: usize = 64 * 1024 * 1024;

/// Verifies and decodes an envelope.
pub fn open(bytes: &[u8], keyring: &Keyring) -> Result<Snapshot, DecodeError> {
    if bytes.len() > MAX_SNAPSHOT_BYTES {
        return Err(DecodeError::TooLarge(bytes.len(), MAX_SNAPSHOT_BYTES));
    }
    let env: Envelope<'_> =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
    if env.schema_version > SCHEMA_VERSION {
        return Err(DecodeError::NewerSchema(env.schema_version));
    }
    if !keyring.verify_snapshot_mac(env.snapshot.get().as_bytes(), &env.mac) {
        return Err(DecodeError::Mac);
    }
    let snap: Snapshot =
        serde_json::from_str(env.snapshot.get()).map_err(|e| DecodeError::Json(e.to_string()))?;
    if snap.project.id != env.project_id || snap.version != env.version {
        return Err(DecodeError::Mismatch {
            envelope: env.project_id,
            version: env.version,
        });
    }
    Ok(snap)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(version: u64) -> Snapshot {
        Snapshot {
            version,
            project: Project {
                id: Uuid::nil(),
                slug: "acme".into(),
                name: "Acme".into(),
                byok: ByokPolicy::Allowed,
                strict_translation: false,
                created_at: DateTime::<Utc>::from_timestamp(0, 0).unwrap_or_default(),
            },
            providers: vec![],
            routes: vec![],
            functions: vec![],
            keys: vec![],
            limits: None,
            plan: None,
        }
    }

    #[test]
    fn roundtrip() {
        let k = Keyring::from_master(&[1; 32]);
        let bytes = sample(7).seal(&k);
        let s = open(&bytes, &k).map(|s| s.version);
        assert_eq!(s, Ok(7));
    }

    #[test]
    fn refuses_tampered_foreign_newer_and_garbage() {
        let k = Keyring::from_master(&[1; 32]);
        let bytes = sample(7).seal(&k);
        let text = String::from_utf8(bytes.clone()).unwrap_or_default();
        let tampered = text.replace("\"Acme\"", "\"Evil\"");
        assert_eq!(open(tampered.as_bytes(), &k).err(), Some(DecodeError::Mac));
        let other = Keyring::from_master(&[2; 32]);
        assert_eq!(open(&bytes, &other).err(), Some(DecodeError::Mac));
        let newer = text.replacen("\"schema_version\":1", "\"schema_version\":99", 1);
        assert_eq!(
            open(newer.as_bytes(), &k).err(),
            Some(DecodeError::NewerSchema(99))
        );
        assert!(matches!(open(b"{nope", &k), Err(DecodeError::Json(_))));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let k = Keyring::from_master(&[1; 32]);
        let mut v = serde_json::to_value(sample(3)).unwrap_or_default();
        v["future_field"] = serde_json::json!({"x": 1});
        let body = serde_json::to_string(&v).unwrap_or_default();
        let mac = k.snapshot_mac(body.as_bytes());
        let env = format!(
            r#"{{"schema_version":1,"project_id":"{}","version":3,"mac":"{mac}","snapshot":{body},"extra":true}}"#,
            Uuid::nil()
        );
        assert_eq!(open(env.as_bytes(), &k).map(|s| s.version), Ok(3));
    }
}
