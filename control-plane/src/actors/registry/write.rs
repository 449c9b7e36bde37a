//! The write pipeline every change goes through, with the mailbox paused:
//! reload the project if a failed write (or another control plane's) left it stale → apply the
//! command to a copy → compile its snapshot, refusing it with every problem (`prepare`) → take a
//! new version → commit state and sealed snapshot together if the store still holds the version
//! the copy was made from (compare-and-set) → publish (`persist`) → swap the copy into the model
//! and acknowledge (`settle`). A commit refused because another control plane changed the
//! project first (`StoreError::Conflict`) marks the project stale and runs the command again on
//! the reloaded project, at most `CONFLICT_ATTEMPTS` times in all, then answers
//! `RegistryError::Conflict`; nothing acknowledged is ever overwritten. A command refused on
//! the in-memory copy (404, 409, 422) runs once more on the project read from the store before
//! the refusal is answered: another control plane may have changed it and its notification may
//! not be here yet.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::prelude::*;
use to11_shared::bus::Change;
use to11_shared::crypto::Keyring;
use to11_shared::model::ProjectState;
use to11_shared::resolve::{compile, Problem};
use to11_shared::snapshot::Snapshot;
use uuid::Uuid;

use super::{Committed, ProjectCommand, ProjectRegistry, RegistryError};
use crate::domain::DomainError;
use crate::store::{Base, StoreError};

/// How many times a write runs when other control planes keep changing its project first.
pub(super) const CONFLICT_ATTEMPTS: u32 = 12;

/// A random pause before running a conflicting write again (up to 2^attempt ms, at most 64), so that two
/// control planes writing one project in lockstep drift apart instead of colliding again.
pub(super) fn conflict_pause(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis(rand::random::<u64>() % (1u64 << attempt.min(6)))
}

/// A change applied to a copy and compiled, on its way to the store.
pub(super) struct Prepared<V> {
    next: ProjectState,
    /// The stored version and slug the copy was made from.
    base: Base,
    value: V,
    warnings: Vec<Problem>,
}

/// The change of a project being created: nothing beyond the new state itself.
#[derive(Clone)]
pub(super) struct Created(pub Uuid);

impl ProjectCommand for Created {
    type Value = ();
    fn project(&self) -> Uuid {
        self.0
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        ("CreateProject", None)
    }
    fn apply(self, _: &mut ProjectState, _: &Keyring) -> Result<(), DomainError> {
        Ok(())
    }
}

impl ProjectRegistry {
    /// Writes `command`'s change to `project` (or creates it as `create`).
    pub(super) fn write<C: ProjectCommand>(
        &mut self,
        project: Uuid,
        create: Option<ProjectState>,
        command: C,
    ) -> AtomicResponse<Self, Result<Committed<C::Value>, RegistryError>> {
        AtomicResponse::new(self.attempt(project, create, command, 1))
    }

    /// One run of the pipeline; on a conflict, the next run, on the reloaded project.
    fn attempt<C: ProjectCommand>(
        &mut self,
        project: Uuid,
        create: Option<ProjectState>,
        command: C,
        attempt: u32,
    ) -> fut::LocalBoxActorFuture<Self, Result<Committed<C::Value>, RegistryError>> {
        let again = (command.clone(), create.clone());
        self.reload_if_stale(project)
            .into_actor(self)
            .then(move |reloaded, act, _| {
                // A refusal decided on the in-memory copy may come from a copy another control
                // plane's write made stale (its notification not yet here): verified below.
                let from_memory = matches!(reloaded, Ok(None));
                let prepared = reloaded
                    .map_err(RegistryError::from)
                    .and_then(|r| act.prepare(project, r, create, command));
                let refused = from_memory && prepared.is_err();
                act.persist(prepared)
                    .into_actor(act)
                    .map(move |res, _, _| (res, refused))
            })
            .then(move |(res, refused), act, ctx| {
                if refused && attempt < CONFLICT_ATTEMPTS {
                    // Refused on memory: read the project from the store and decide again there.
                    // Costs a store read per refused write; never answers a refusal (404, 409,
                    // 422) that the stored project would not give.
                    act.stale.insert(project);
                    let (command, create) = again;
                    return act.attempt(project, create, command, attempt + 1);
                }
                if let Err(RegistryError::Store(StoreError::Conflict)) = &res {
                    // Another control plane changed the project first: read it again.
                    act.stale.insert(project);
                    if attempt < CONFLICT_ATTEMPTS {
                        tracing::info!(project = %project, attempt, "write conflicted with another control plane's; running it again on the stored project");
                        let (command, create) = again;
                        return fut::wrap_future(actix_rt::time::sleep(conflict_pause(attempt)))
                            .then(move |(), act: &mut Self, _| {
                                act.attempt(project, create, command, attempt + 1)
                            })
                            .boxed_local();
                    }
                    let e = Err(RegistryError::Conflict { attempts: attempt });
                    return fut::ready(e).boxed_local();
                }
                fut::ready(act.settle(project, res, ctx)).boxed_local()
            })
            .boxed_local()
    }

    /// The project as stored when a failed write left the in-memory copy in doubt: `None` when
    /// it is not stale, `Some(None)` when the store no longer has it.
    pub(super) fn reload_if_stale(
        &self,
        project: Uuid,
    ) -> impl Future<Output = Result<Option<Option<ProjectState>>, StoreError>> + 'static {
        let store = self.store.clone();
        let needs_reload = self.stale.contains(&project);
        async move {
            if !needs_reload {
                return Ok(None);
            }
            // Never reload from a store that lost its epoch: an emptied store would read as
            // "project deleted". The watchdog re-seeds it (or reloads a new epoch) first.
            store.load_in_epoch(project).await.map(Some)
        }
    }

    /// Takes in what `reload_if_stale` read (nothing when it did not read): the project is no
    /// longer stale, and the model holds what the store holds. Publishes the model only when
    /// that changed it.
    pub(super) fn take_in(&mut self, project: Uuid, reloaded: Option<Option<ProjectState>>) {
        let Some(stored) = reloaded else {
            return;
        };
        self.stale.remove(&project);
        let held = self.model.get(&project).map(|m| m.version);
        match stored {
            // The same version as the model's is the same project.
            Some(s) if held != Some(s.version) => self.put(Arc::new(s)),
            None if held.is_some() => self.remove(project),
            _ => {}
        }
    }

    /// Takes in a reloaded project, then applies the command to a copy of it (or to the project
    /// being created) and compiles the result.
    fn prepare<C: ProjectCommand>(
        &mut self,
        project: Uuid,
        reloaded: Option<Option<ProjectState>>,
        create: Option<ProjectState>,
        command: C,
    ) -> Result<Prepared<C::Value>, RegistryError> {
        self.take_in(project, reloaded);
        let (mut next, before, base) = match (self.model.get(&project), create) {
            (Some(s), _) => (
                ProjectState::clone(s),
                check(s).unwrap_or_default(),
                Base::of(s),
            ),
            (None, Some(new)) => (new, vec![], Base::default()),
            (None, None) => return Err(RegistryError::NotFound),
        };
        let value = command.apply(&mut next, &self.keyring)?;
        self.limits
            .check(self.model.get(&project).map(|s| &**s), &next)?;
        // Only what this write introduced: an overlap is announced by the write that creates it,
        // not repeated by every later one (`resolve` shows it any time).
        let mut warnings = check(&next)?;
        warnings.retain(|w| !before.contains(w));
        Ok(Prepared {
            next,
            base,
            value,
            warnings,
        })
    }

    /// Takes a new version, commits state and sealed snapshot together, then announces it.
    fn persist<V: 'static>(
        &self,
        prepared: Result<Prepared<V>, RegistryError>,
    ) -> impl Future<Output = Result<Prepared<V>, RegistryError>> + 'static {
        let store = self.store.clone();
        let keyring = self.keyring.clone();
        let publish = self.publish.load(Ordering::Relaxed);
        async move {
            let mut p = prepared?;
            p.next.version = store.next_version().await?;
            let sealed = Snapshot::from_state(&p.next).seal(&keyring);
            store
                .commit(&p.next, &sealed, &p.base)
                .await
                .map_err(|e| match e {
                    // Another project (perhaps created on another control plane) has the slug.
                    StoreError::SlugTaken => {
                        DomainError::SlugTaken(p.next.project.slug.clone()).into()
                    }
                    e => RegistryError::from(e),
                })?;
            if publish {
                let change = Change {
                    project: p.next.project.id,
                    version: p.next.version,
                };
                store.publish(change).await;
            }
            Ok(p)
        }
    }

    /// After the store answered: the committed copy replaces the model's. A store failure leaves
    /// the project stale (the write's outcome is unknown); a lost epoch re-seeds the store.
    fn settle<V>(
        &mut self,
        project: Uuid,
        res: Result<Prepared<V>, RegistryError>,
        ctx: &mut Context<Self>,
    ) -> Result<Committed<V>, RegistryError> {
        match res {
            Ok(p) => {
                let version = p.next.version;
                let state = Arc::new(p.next);
                self.put(state.clone());
                tracing::info!(project = %project, version, "configuration committed");
                Ok(Committed {
                    value: p.value,
                    state,
                    version,
                    warnings: p.warnings,
                })
            }
            Err(e) => {
                match &e {
                    // The store was emptied or replaced: the watchdog's check decides between
                    // re-seeding it from memory and reloading a new epoch.
                    RegistryError::Store(StoreError::EpochLost) => self.watch(ctx),
                    // Another project took the slug in the store: nothing was written.
                    RegistryError::Store(StoreError::SlugTaken | StoreError::NotEmpty) => {}
                    // Unavailable, timed out or corrupt: the store may or may not have the write.
                    RegistryError::Store(_) => {
                        self.stale.insert(project);
                    }
                    // Refused before reaching the store: nothing is in doubt.
                    RegistryError::Domain(_)
                    | RegistryError::Invalid(_)
                    | RegistryError::NotFound
                    | RegistryError::Conflict { .. }
                    | RegistryError::WrongMasterKey { .. } => {}
                }
                Err(e)
            }
        }
    }
}

/// Compiles the snapshot a state would publish: problems refuse the write, warnings go back.
fn check(state: &ProjectState) -> Result<Vec<Problem>, RegistryError> {
    compile(&Snapshot::from_state(state))
        .map(|t| t.warnings)
        .map_err(RegistryError::Invalid)
}
