//! `ProjectRegistry`: owns the in-memory model of every project, reloaded from the store at start.
//! Every configuration write goes through it, one at a time (`AtomicResponse`):
//! mutate a copy → compile its snapshot (refuse with every problem) → take a new version →
//! persist state + snapshot atomically → publish → swap the copy into the model → acknowledge.
//! A write that fails at the store marks the project stale; the next write reloads it first, so a
//! write whose outcome is unknown is never silently overwritten by an older copy.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use to11_shared::bus::Change;
use to11_shared::crypto::{KeyHash, Keyring};
use to11_shared::model::{CredentialSecret, ProjectState};
use to11_shared::resolve::{compile, Problem};
use to11_shared::snapshot::{credential_owner, Snapshot};
use to11_shared::ErrorCode;
use uuid::Uuid;

use crate::domain::{self, DomainError};
use crate::error::ApiError;
use crate::store::{Seed, Store, StoreError};

pub struct ProjectRegistry {
    store: Arc<Store>,
    keyring: Keyring,
    projects: HashMap<Uuid, ProjectState>,
    management_keys: HashMap<KeyHash, Uuid>,
    stale: HashSet<Uuid>,
    /// Fault injection for tests: when false, changes are stored but not announced.
    publish: Arc<AtomicBool>,
    /// How often the store's epoch is checked (a flushed or replaced store is re-seeded).
    epoch_check: std::time::Duration,
    epoch_check_running: bool,
}

/// What a successful write returns.
#[derive(Debug)]
pub struct Committed<T> {
    pub value: T,
    pub state: ProjectState,
    pub version: u64,
    pub warnings: Vec<Problem>,
}

type Mutation<T> = Box<dyn FnOnce(&mut ProjectState, &Keyring) -> Result<T, ApiError> + Send>;

impl ProjectRegistry {
    /// Loads every project from the store.
    pub async fn load(
        store: Arc<Store>,
        keyring: Keyring,
        publish: Arc<AtomicBool>,
        epoch_check: std::time::Duration,
    ) -> Result<Self, ApiError> {
        store.join_epoch().await?;
        let all = store.load_all().await?;
        let mut r = ProjectRegistry {
            store,
            keyring,
            projects: HashMap::new(),
            management_keys: HashMap::new(),
            stale: HashSet::new(),
            publish,
            epoch_check,
            epoch_check_running: false,
        };
        for s in all {
            r.check_credentials_open(&s)?;
            r.put(s);
        }
        tracing::info!(
            projects = r.projects.len(),
            "loaded configuration from the store"
        );
        Ok(r)
    }

    /// A master key that does not open the stored credentials is refused at start, instead of
    /// silently serving without them.
    fn check_credentials_open(&self, s: &ProjectState) -> Result<(), ApiError> {
        for p in &s.providers {
            for c in &p.credentials {
                let owner = credential_owner(&s.project.id, &p.slug, &c.id);
                if self.keyring.open(&owner, &c.sealed).is_err() {
                    return Err(ApiError::new(
                        ErrorCode::Internal,
                        format!(
                            "TO11_MASTER_KEY does not open the stored credential {}/{}/{}: wrong master key",
                            s.project.slug, p.slug, c.id
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn put(&mut self, s: ProjectState) {
        self.management_keys.retain(|_, p| *p != s.project.id);
        for k in &s.management_keys {
            if let Some(h) = KeyHash::from_hex(&k.hash) {
                self.management_keys.insert(h, s.project.id);
            }
        }
        self.projects.insert(s.project.id, s);
    }

    fn remove(&mut self, id: Uuid) {
        self.management_keys.retain(|_, p| *p != id);
        self.projects.remove(&id);
    }

    fn find(&self, key: &str) -> Option<&ProjectState> {
        match key.parse::<Uuid>() {
            Ok(id) => self.projects.get(&id),
            Err(_) => self.projects.values().find(|p| p.project.slug == key),
        }
    }

    /// Compiles the snapshot a state would publish: problems refuse the write, warnings go back.
    fn check(state: &ProjectState) -> Result<Vec<Problem>, ApiError> {
        match compile(&Snapshot::from_state(state)) {
            Ok(t) => Ok(t.warnings),
            Err(problems) => Err(ApiError::new(
                ErrorCode::Validation,
                format!(
                    "the change leaves the configuration invalid ({} problem(s))",
                    problems.len()
                ),
            )
            .with_details(serde_json::json!({ "problems": problems }))),
        }
    }

    /// The write pipeline shared by every mutating message.
    fn write<T: 'static>(
        &mut self,
        project: Uuid,
        create: Option<ProjectState>,
        mutate: Mutation<T>,
    ) -> AtomicResponse<Self, Result<Committed<T>, ApiError>> {
        let store = self.store.clone();
        let needs_reload = self.stale.contains(&project);
        let fut = async move {
            if !needs_reload {
                return Ok(None);
            }
            // Never reload from a store that lost its epoch: an emptied store would read as
            // "project deleted". The watchdog re-seeds it first.
            if !store.epoch_intact().await? {
                return Err(StoreError::EpochLost);
            }
            store.load(project).await.map(Some)
        }
        .into_actor(self)
        .then(move |reloaded, act, _| {
            let prepared = (|| {
                match reloaded.map_err(ApiError::from)? {
                    Some(Some(s)) => {
                        act.stale.remove(&project);
                        act.put(s);
                    }
                    Some(None) => {
                        act.stale.remove(&project);
                        act.remove(project);
                    }
                    None => {}
                }
                let (mut next, before) = match (act.projects.get(&project), create) {
                    (Some(s), _) => (s.clone(), Self::check(s).unwrap_or_default()),
                    (None, Some(new)) => (new, vec![]),
                    (None, None) => return Err(ApiError::not_found("project")),
                };
                let value = mutate(&mut next, &act.keyring)?;
                // Only what this write introduced: an overlap is announced by the write that
                // creates it, not repeated by every later one (`resolve` shows it any time).
                let mut warnings = Self::check(&next)?;
                warnings.retain(|w| !before.contains(w));
                Ok((next, value, warnings))
            })();
            let store = act.store.clone();
            let keyring = act.keyring.clone();
            let publish = act.publish.load(Ordering::Relaxed);
            async move {
                let (mut next, value, warnings) = prepared?;
                next.version = store.next_version().await?;
                let sealed = Snapshot::from_state(&next).seal(&keyring);
                store.commit(&next, &sealed).await?;
                if publish {
                    store
                        .publish(Change {
                            project,
                            version: next.version,
                        })
                        .await;
                }
                Ok((next, value, warnings))
            }
            .into_actor(act)
        })
        .map(move |res: Result<_, ApiError>, act, ctx| match res {
            Ok((next, value, warnings)) => {
                let version = next.version;
                act.put(next.clone());
                tracing::info!(project = %project, version, "configuration committed");
                Ok(Committed {
                    value,
                    state: next,
                    version,
                    warnings,
                })
            }
            Err(e) => {
                if matches!(e.code, ErrorCode::StoreUnavailable | ErrorCode::Internal) {
                    act.stale.insert(project);
                }
                if e.code == ErrorCode::StoreReset {
                    act.reseed(ctx);
                }
                Err(e)
            }
        });
        AtomicResponse::new(Box::pin(fut))
    }

    /// Writes the whole in-memory model into a store that lost its epoch, then announces every
    /// project. Runs with the mailbox paused, so no write interleaves.
    fn reseed(&mut self, ctx: &mut Context<Self>) {
        let seeds: Vec<Seed> = self
            .projects
            .values()
            .map(|s| Seed {
                project: s.project.id,
                version: s.version,
                state: serde_json::to_vec(s).unwrap_or_default(),
                snapshot: Snapshot::from_state(s).seal(&self.keyring),
            })
            .collect();
        let max_version = self.projects.values().map(|p| p.version).max().unwrap_or(0);
        let store = self.store.clone();
        let publish = self.publish.load(Ordering::Relaxed);
        let fut = async move {
            store.reseed(&seeds, max_version).await?;
            if publish {
                for s in &seeds {
                    store
                        .publish(Change {
                            project: s.project,
                            version: s.version,
                        })
                        .await;
                }
            }
            Ok::<usize, StoreError>(seeds.len())
        }
        .into_actor(self)
        .map(|res, _, _| match res {
            Ok(n) => tracing::warn!(
                projects = n,
                "configuration store had lost its epoch; re-seeded it from memory"
            ),
            Err(e) => {
                tracing::error!(error = %e, "re-seeding the configuration store failed; will retry")
            }
        });
        ctx.wait(fut);
    }

    /// Checks the epoch without pausing the mailbox (a hung store must not stall the API); only
    /// the re-seed, once the store has answered that its epoch is gone, pauses it.
    fn check_epoch(&mut self, ctx: &mut Context<Self>) {
        if self.epoch_check_running {
            return;
        }
        self.epoch_check_running = true;
        let store = self.store.clone();
        let fut = async move { store.epoch_intact().await }
            .into_actor(self)
            .map(|intact, act, ctx| {
                act.epoch_check_running = false;
                if let Ok(false) = intact {
                    act.reseed(ctx);
                }
            });
        ctx.spawn(fut);
    }
}

impl Actor for ProjectRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.epoch_check, |act, ctx| act.check_epoch(ctx));
    }
}

/// Apply a change to one project (the generic verb every API write uses through a named command).
pub struct UpdateProject<T> {
    pub project: Uuid,
    pub change: Mutation<T>,
}

impl<T: 'static> Message for UpdateProject<T> {
    type Result = Result<Committed<T>, ApiError>;
}

impl<T: 'static> Handler<UpdateProject<T>> for ProjectRegistry {
    type Result = AtomicResponse<Self, Result<Committed<T>, ApiError>>;

    fn handle(&mut self, msg: UpdateProject<T>, _: &mut Context<Self>) -> Self::Result {
        self.write(msg.project, None, msg.change)
    }
}

/// Create a project; its slug must be unused.
#[derive(Message)]
#[rtype(result = "Result<Committed<()>, ApiError>")]
pub struct CreateProject {
    pub state: ProjectState,
}

impl Handler<CreateProject> for ProjectRegistry {
    type Result = AtomicResponse<Self, Result<Committed<()>, ApiError>>;

    fn handle(&mut self, msg: CreateProject, _: &mut Context<Self>) -> Self::Result {
        let slug = msg.state.project.slug.clone();
        let id = msg.state.project.id;
        if self.projects.values().any(|p| p.project.slug == slug) {
            let taken = DomainError::SlugTaken(slug);
            return AtomicResponse::new(Box::pin(fut::ready(Err(taken.into()))));
        }
        self.write(id, Some(msg.state), Box::new(|_, _| Ok(())))
    }
}

/// Rename a project's slug: checked against the other projects here, where it cannot race.
#[derive(Message)]
#[rtype(result = "Result<Committed<()>, ApiError>")]
pub struct RenameProject {
    pub project: Uuid,
    pub slug: String,
}

impl Handler<RenameProject> for ProjectRegistry {
    type Result = AtomicResponse<Self, Result<Committed<()>, ApiError>>;

    fn handle(&mut self, msg: RenameProject, _: &mut Context<Self>) -> Self::Result {
        if self
            .projects
            .values()
            .any(|p| p.project.slug == msg.slug && p.project.id != msg.project)
        {
            let taken = DomainError::SlugTaken(msg.slug);
            return AtomicResponse::new(Box::pin(fut::ready(Err(taken.into()))));
        }
        let slug = msg.slug;
        self.write(
            msg.project,
            None,
            Box::new(move |s, _| {
                domain::project::rename(s, slug);
                Ok(())
            }),
        )
    }
}

/// Delete a project and everything in it; replicas drop it.
#[derive(Message)]
#[rtype(result = "Result<u64, ApiError>")]
pub struct DeleteProject {
    pub project: Uuid,
}

impl Handler<DeleteProject> for ProjectRegistry {
    type Result = AtomicResponse<Self, Result<u64, ApiError>>;

    fn handle(&mut self, msg: DeleteProject, _: &mut Context<Self>) -> Self::Result {
        let id = msg.project;
        if !self.projects.contains_key(&id) {
            return AtomicResponse::new(Box::pin(fut::ready(Err(ApiError::not_found("project")))));
        }
        let store = self.store.clone();
        let publish = self.publish.load(Ordering::Relaxed);
        let fut = async move {
            let version = store.next_version().await?;
            store.delete(id, version).await?;
            if publish {
                store
                    .publish(Change {
                        project: id,
                        version,
                    })
                    .await;
            }
            Ok::<_, ApiError>(version)
        }
        .into_actor(self)
        .map(move |res, act, _| {
            match &res {
                Ok(_) => act.remove(id),
                Err(_) => {
                    act.stale.insert(id);
                }
            }
            res
        });
        AtomicResponse::new(Box::pin(fut))
    }
}

/// Read one project by id or slug.
#[derive(Message)]
#[rtype(result = "Option<ProjectState>")]
pub struct GetProject {
    pub key: String,
}

impl Handler<GetProject> for ProjectRegistry {
    type Result = Option<ProjectState>;

    fn handle(&mut self, msg: GetProject, _: &mut Context<Self>) -> Self::Result {
        self.find(&msg.key).cloned()
    }
}

/// Read all projects (or only one, for a management key).
#[derive(Message)]
#[rtype(result = "Vec<ProjectState>")]
pub struct ListProjects {
    pub only: Option<Uuid>,
}

impl Handler<ListProjects> for ProjectRegistry {
    type Result = Vec<ProjectState>;

    fn handle(&mut self, msg: ListProjects, _: &mut Context<Self>) -> Self::Result {
        let mut v: Vec<ProjectState> = self
            .projects
            .values()
            .filter(|p| msg.only.is_none_or(|o| o == p.project.id))
            .cloned()
            .collect();
        v.sort_by_key(|p| p.project.created_at);
        v
    }
}

/// Which project a management key belongs to.
#[derive(Message)]
#[rtype(result = "Option<Uuid>")]
pub struct AuthenticateManagementKey {
    pub hash: KeyHash,
}

impl Handler<AuthenticateManagementKey> for ProjectRegistry {
    type Result = Option<Uuid>;

    fn handle(&mut self, msg: AuthenticateManagementKey, _: &mut Context<Self>) -> Self::Result {
        self.management_keys.get(&msg.hash).copied()
    }
}

/// Open a provider's stored credential, for rediscovery. Stays inside the control plane.
#[derive(Message)]
#[rtype(result = "Result<(String, String, CredentialSecret), ApiError>")]
pub struct OpenProviderCredential {
    pub project: Uuid,
    pub provider: String,
}

impl Handler<OpenProviderCredential> for ProjectRegistry {
    type Result = Result<(String, String, CredentialSecret), ApiError>;

    fn handle(&mut self, msg: OpenProviderCredential, _: &mut Context<Self>) -> Self::Result {
        let state = self
            .projects
            .get(&msg.project)
            .ok_or_else(|| ApiError::not_found("project"))?;
        let p = state
            .provider(&msg.provider)
            .ok_or_else(|| ApiError::not_found("provider"))?;
        let secret = domain::credentials::open_default(state, &msg.provider, &self.keyring)?;
        Ok((p.kind.clone(), p.base_url.clone(), secret))
    }
}

/// Whether the store answers (for `/readyz`).
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct PingStore;

impl Handler<PingStore> for ProjectRegistry {
    type Result = ResponseFuture<Result<(), ApiError>>;

    fn handle(&mut self, _: PingStore, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move { store.ping().await.map_err(ApiError::from) })
    }
}
