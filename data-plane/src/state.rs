//! The replica's live state: one `ArcSwap` holding everything derived from the snapshots, prepared
//! off the hot path and swapped in one store. A request loads it once.
//!
//! Only the sync task writes it (single writer), so `apply`/`remove` are load–modify–store.
//! Maps are persistent (`imbl`), so a change costs O(log n) in the number of projects and keys and
//! work per change is proportional to the project that changed.

use std::collections::HashSet;
use std::sync::Arc;

use actix_web::http::header::{HeaderName, HeaderValue};
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use to11_shared::catalog::{self, AuthForm, Family};
use to11_shared::crypto::{KeyHash, Keyring};
use to11_shared::google::ServiceAccount;
use to11_shared::model::{ByokPolicy, CredentialSecret};
use to11_shared::resolve::{compile, Tables};
use to11_shared::sigv4::AwsCredentials;
use to11_shared::snapshot::{credential_owner, Snapshot};
use to11_shared::upstream::ProviderApi;
use to11_shared::FastMap;
use uuid::Uuid;

/// A credential ready to present upstream, in its provider's form.
pub enum UpstreamAuth {
    /// A credential with no key (self-hosted servers without one).
    None,
    /// One header: `authorization: Bearer …`, `x-api-key`, `x-goog-api-key` or `api-key`.
    Header(HeaderName, HeaderValue),
    /// AWS keys: every attempt is signed (SigV4, service `bedrock`).
    SigV4 {
        creds: AwsCredentials,
        region: String,
    },
    /// A Google service account: presented as a bearer access token, cached in its slot.
    Google(Arc<crate::tokens::GoogleSlot>),
}

impl UpstreamAuth {
    fn new(
        form: AuthForm,
        secret: &CredentialSecret,
        region: &str,
    ) -> Result<UpstreamAuth, &'static str> {
        Ok(match secret {
            CredentialSecret::ApiKey { api_key } if api_key.is_empty() => UpstreamAuth::None,
            CredentialSecret::ApiKey { api_key } => {
                let (name, value) = key_header(form, api_key)?;
                UpstreamAuth::Header(name, value)
            }
            CredentialSecret::Aws {
                access_key_id,
                secret_access_key,
                session_token,
            } => UpstreamAuth::SigV4 {
                creds: AwsCredentials {
                    access_key_id: access_key_id.clone(),
                    secret_access_key: secret_access_key.clone(),
                    session_token: session_token.clone(),
                },
                region: region.to_string(),
            },
            CredentialSecret::GoogleServiceAccount {
                service_account_json,
            } => UpstreamAuth::Google(Arc::new(crate::tokens::GoogleSlot::new(
                ServiceAccount::from_json(service_account_json).map_err(|_| "service account")?,
            ))),
        })
    }
}

/// A key as its provider takes it (`form.byok_header()`): `Bearer <key>` in `authorization`, the
/// bare key in the others. Marked sensitive.
pub fn key_header(form: AuthForm, key: &str) -> Result<(HeaderName, HeaderValue), &'static str> {
    let (name, value) = form.key_header(key);
    let mut v = HeaderValue::from_str(&value).map_err(|_| "not a valid header value")?;
    v.set_sensitive(true);
    Ok((HeaderName::from_static(name), v))
}

pub struct ProjectLive {
    pub id: Uuid,
    pub slug: String,
    pub version: u64,
    pub byok: ByokPolicy,
    /// Request hints a target cannot honour are refused instead of dropped (every request).
    pub strict_translation: bool,
    pub tables: Tables,
    /// Per provider index: credential id → prepared auth.
    pub credentials: Vec<FastMap<String, UpstreamAuth>>,
    /// Per provider index: where and how its API is called.
    pub apis: Vec<ProviderApi>,
    /// Per provider index: the form its credentials (and clients' own keys) take.
    pub auth_forms: Vec<AuthForm>,
    /// Health of route targets; carried over from the previous snapshot on apply.
    pub health: crate::health_book::HealthBook,
    /// The project's own limits, and the operator's plan for it.
    pub limits: Option<to11_shared::limits::Limits>,
    pub plan: Option<to11_shared::limits::Limits>,
    key_hashes: Vec<KeyHash>,
}

impl ProjectLive {
    /// Takes over `old`'s token slots of the same service accounts, with their tokens.
    fn carry_tokens(&mut self, old: &ProjectLive) {
        let old_slots: Vec<&Arc<crate::tokens::GoogleSlot>> = old
            .credentials
            .iter()
            .flat_map(|m| m.values())
            .filter_map(|a| match a {
                UpstreamAuth::Google(s) => Some(s),
                _ => None,
            })
            .collect();
        for auth in self.credentials.iter_mut().flat_map(|m| m.values_mut()) {
            if let UpstreamAuth::Google(slot) = auth {
                if let Some(o) = old_slots.iter().find(|o| o.same_account(slot)) {
                    *slot = Arc::clone(o);
                }
            }
        }
    }

    fn route_keys(&self) -> Vec<(String, Vec<crate::health_book::TargetKey>)> {
        self.tables
            .routes
            .iter()
            .map(|(name, r)| {
                let keys = r
                    .targets
                    .iter()
                    .map(|t| {
                        (
                            self.tables.providers[t.provider].slug.clone(),
                            t.model.clone(),
                            t.credential.clone(),
                        )
                    })
                    .collect();
                (name.clone(), keys)
            })
            .collect()
    }
}

pub struct KeyEntry {
    pub project: Uuid,
    pub key_id: Uuid,
    pub models: Option<HashSet<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub byok: Option<ByokPolicy>,
    pub limits: Option<to11_shared::limits::Limits>,
}

/// The live state's persistent maps (shared structure between versions), hashed like `FastMap`.
pub type SharedMap<K, V> =
    imbl::GenericHashMap<K, V, foldhash::fast::RandomState, imbl::shared_ptr::DefaultSharedPtr>;

#[derive(Clone, Default)]
pub struct State {
    /// True once the first full load from the source succeeded.
    pub loaded: bool,
    pub projects: SharedMap<Uuid, Arc<ProjectLive>>,
    pub keys: SharedMap<KeyHash, Arc<KeyEntry>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("snapshot does not compile: {0}")]
    Compile(String),
    #[error("credential {0} does not open with this replica's master key")]
    Credential(String),
    #[error("key {0} has a malformed hash")]
    KeyHash(Uuid),
}

/// Decodes, compiles and decrypts a snapshot into a ready project. Pure CPU work, off the hot path.
pub fn prepare(s: &Snapshot, keyring: &Keyring) -> Result<Prepared, PrepareError> {
    let tables = compile(s).map_err(|problems| {
        PrepareError::Compile(
            problems
                .iter()
                .map(|p| format!("{}: {}", p.at, p.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let mut credentials = Vec::with_capacity(s.providers.len());
    let mut apis = Vec::with_capacity(s.providers.len());
    let mut auth_forms = Vec::with_capacity(s.providers.len());
    for p in &s.providers {
        // A kind this replica does not know (a newer control plane) serves nothing, and says so;
        // the rest of the project keeps serving.
        let (api, form) = match catalog::entry(&p.kind) {
            Some(e) => (
                ProviderApi::new(&p.slug, &e, &p.base_url, &p.account),
                e.auth,
            ),
            None => (
                ProviderApi {
                    slug: p.slug.clone(),
                    family: Family::OpenAi,
                    base_url: p.base_url.clone(),
                    surfaces: &[],
                    vertex_prefix: String::new(),
                    api_version: String::new(),
                    max_tokens_field: "max_tokens",
                    stream_usage: catalog::StreamUsage::Sends,
                },
                AuthForm::Bearer,
            ),
        };
        let region = p
            .account
            .get("region")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let mut map = FastMap::default();
        for c in &p.credentials {
            let owner = credential_owner(&s.project.id, &p.slug, &c.id);
            let clear = keyring
                .open(&owner, &c.sealed)
                .map_err(|_| PrepareError::Credential(format!("{}/{}", p.slug, c.id)))?;
            let secret: CredentialSecret = serde_json::from_slice(&clear)
                .map_err(|_| PrepareError::Credential(format!("{}/{}", p.slug, c.id)))?;
            let auth = UpstreamAuth::new(form, &secret, region)
                .map_err(|_| PrepareError::Credential(format!("{}/{}", p.slug, c.id)))?;
            map.insert(c.id.clone(), auth);
        }
        credentials.push(map);
        apis.push(api);
        auth_forms.push(form);
    }
    let mut keys = Vec::with_capacity(s.keys.len());
    for k in &s.keys {
        let hash = KeyHash::from_hex(&k.hash).ok_or(PrepareError::KeyHash(k.id))?;
        keys.push((
            hash,
            KeyEntry {
                project: s.project.id,
                key_id: k.id,
                models: k.models.as_ref().map(|m| m.iter().cloned().collect()),
                expires_at: k.expires_at,
                byok: k.byok,
                limits: k.limits.clone(),
            },
        ));
    }
    Ok((
        ProjectLive {
            id: s.project.id,
            slug: s.project.slug.clone(),
            version: s.version,
            byok: s.project.byok,
            strict_translation: s.project.strict_translation,
            tables,
            credentials,
            apis,
            auth_forms,
            health: Default::default(),
            limits: s.limits.clone(),
            plan: s.plan.clone(),
            key_hashes: keys.iter().map(|(h, _)| *h).collect(),
        },
        keys,
    ))
}

/// Handle on the live state, cheap to clone.
#[derive(Clone, Default)]
pub struct Live(Arc<ArcSwap<State>>);

/// A project ready to be swapped in, with its keys (what `prepare` makes of a snapshot).
pub type Prepared = (ProjectLive, Vec<(KeyHash, KeyEntry)>);

impl Live {
    pub fn load(&self) -> arc_swap::Guard<Arc<State>> {
        self.0.load()
    }

    pub fn project_version(&self, project: &Uuid) -> Option<u64> {
        self.0.load().projects.get(project).map(|p| p.version)
    }

    /// Highest version among applied projects.
    pub fn max_version(&self) -> u64 {
        self.0
            .load()
            .projects
            .values()
            .map(|p| p.version)
            .max()
            .unwrap_or(0)
    }

    /// Swaps in a prepared project (replacing its previous keys, keeping its targets' health and
    /// its service accounts' access tokens).
    pub fn apply(&self, project: ProjectLive, keys: Vec<(KeyHash, KeyEntry)>) {
        self.apply_many(vec![(project, keys)]);
    }

    /// Swaps in several prepared projects with one swap (a cold start applies a page at a
    /// time: the new state's maps are changed in place rather than copied per project).
    pub fn apply_many(&self, projects: Vec<Prepared>) {
        if projects.is_empty() {
            return;
        }
        let mut next = State::clone(&self.0.load());
        for (mut project, keys) in projects {
            let old = next.projects.get(&project.id).cloned();
            project.health = crate::health_book::HealthBook::build(
                project.route_keys().into_iter(),
                old.as_ref().map(|o| &o.health),
            );
            if let Some(old) = old {
                project.carry_tokens(&old);
                for h in &old.key_hashes {
                    next.keys.remove(h);
                }
            }
            for (h, k) in keys {
                next.keys.insert(h, Arc::new(k));
            }
            next.projects.insert(project.id, Arc::new(project));
        }
        self.0.store(Arc::new(next));
    }

    pub fn remove(&self, project: &Uuid) {
        let mut next = State::clone(&self.0.load());
        if let Some(old) = next.projects.remove(project) {
            for h in &old.key_hashes {
                next.keys.remove(h);
            }
            self.0.store(Arc::new(next));
        }
    }

    pub fn mark_loaded(&self) {
        if !self.0.load().loaded {
            let mut next = State::clone(&self.0.load());
            next.loaded = true;
            self.0.store(Arc::new(next));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::DateTime;
    use to11_shared::model::Project;
    use to11_shared::snapshot::{SnapshotCredential, SnapshotKey, SnapshotProvider};

    pub(crate) fn keyring() -> Keyring {
        Keyring::from_master(&[9; 32])
    }

    /// A snapshot with one provider, one credential and the given keys.
    pub(crate) fn snapshot(version: u64, keys: &[&str], byok: ByokPolicy) -> Snapshot {
        let k = keyring();
        let id = Uuid::from_u128(1);
        let secret = serde_json::to_vec(&CredentialSecret::ApiKey {
            api_key: "sk-stored".into(),
        })
        .unwrap();
        Snapshot {
            version,
            project: Project {
                id,
                slug: "p".into(),
                name: "P".into(),
                byok,
                strict_translation: false,
                created_at: DateTime::from_timestamp(0, 0).unwrap(),
            },
            providers: vec![SnapshotProvider {
                slug: "openai".into(),
                kind: "openai".into(),
                base_url: "http://up/v1".into(),
                account: Default::default(),
                default_credential: "default".into(),
                credentials: vec![SnapshotCredential {
                    id: "default".into(),
                    sealed: k.seal(&credential_owner(&id, "openai", "default"), &secret),
                }],
                exposed: vec!["gpt-4o".into()],
            }],
            routes: vec![],
            functions: vec![],
            keys: keys
                .iter()
                .enumerate()
                .map(|(i, key)| SnapshotKey {
                    id: Uuid::from_u128(100 + i as u128),
                    hash: k.key_hash(key).to_hex(),
                    models: None,
                    expires_at: None,
                    byok: None,
                    limits: None,
                })
                .collect(),
            limits: None,
            plan: None,
        }
    }

    #[test]
    fn prepare_decrypts_credentials_into_bearer_headers() {
        let (p, keys) = prepare(
            &snapshot(1, &["to11_gk_a"], ByokPolicy::Allowed),
            &keyring(),
        )
        .unwrap();
        let UpstreamAuth::Header(_, auth) = &p.credentials[0]["default"] else {
            panic!("a bearer key")
        };
        assert_eq!(auth.to_str().unwrap(), "Bearer sk-stored");
        assert!(auth.is_sensitive());
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn google_token_slots_survive_a_new_snapshot_of_the_project() {
        let k = keyring();
        let mut s = snapshot(1, &[], ByokPolicy::Allowed);
        let id = s.project.id;
        let secret = serde_json::to_vec(&CredentialSecret::GoogleServiceAccount {
            service_account_json: serde_json::json!({
                "type": "service_account",
                "client_email": "gw@proj.iam.gserviceaccount.com",
                "private_key": include_str!("../../shared/testdata/service_account_test_key.pem"),
            }),
        })
        .unwrap();
        s.providers.push(SnapshotProvider {
            slug: "vertex".into(),
            kind: "vertex".into(),
            base_url: "https://us-central1-aiplatform.googleapis.com".into(),
            account: serde_json::json!({"project": "p", "region": "us-central1"})
                .as_object()
                .unwrap()
                .clone(),
            default_credential: "default".into(),
            credentials: vec![SnapshotCredential {
                id: "default".into(),
                sealed: k.seal(&credential_owner(&id, "vertex", "default"), &secret),
            }],
            exposed: vec!["gemini-x".into()],
        });
        let slot = |live: &Live| match &live.load().projects[&id].credentials[1]["default"] {
            UpstreamAuth::Google(slot) => slot.clone(),
            _ => panic!("a service account"),
        };
        let live = Live::default();
        let (p, keys) = prepare(&s, &k).unwrap();
        live.apply(p, keys);
        let first = slot(&live);
        s.version = 2;
        s.providers[0].exposed.push("gpt-4o-mini".into());
        let (p, keys) = prepare(&s, &k).unwrap();
        live.apply(p, keys);
        assert!(Arc::ptr_eq(&first, &slot(&live)), "same slot, same token");
    }

    #[test]
    fn prepare_refuses_a_foreign_master_key() {
        let other = Keyring::from_master(&[1; 32]);
        let err = prepare(&snapshot(1, &[], ByokPolicy::Allowed), &other)
            .err()
            .unwrap();
        assert!(matches!(err, PrepareError::Credential(_)));
    }

    #[test]
    fn apply_replaces_a_projects_keys_and_remove_drops_them() {
        let live = Live::default();
        let k = keyring();
        let (p, keys) = prepare(
            &snapshot(1, &["to11_gk_a", "to11_gk_b"], ByokPolicy::Allowed),
            &k,
        )
        .unwrap();
        live.apply(p, keys);
        assert_eq!(live.load().keys.len(), 2);
        // Key b revoked in version 2.
        let (p, keys) = prepare(&snapshot(2, &["to11_gk_a"], ByokPolicy::Allowed), &k).unwrap();
        live.apply(p, keys);
        let s = live.load();
        assert!(s.keys.contains_key(&k.key_hash("to11_gk_a")));
        assert!(!s.keys.contains_key(&k.key_hash("to11_gk_b")));
        assert_eq!(live.project_version(&Uuid::from_u128(1)), Some(2));
        drop(s);
        live.remove(&Uuid::from_u128(1));
        assert!(live.load().keys.is_empty() && live.load().projects.is_empty());
    }
}
