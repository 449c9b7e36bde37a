//! The registry's other messages: creating and deleting whole projects, and pinging the store.

use std::sync::atomic::Ordering;

use actix::prelude::*;
use to11_shared::bus::Change;
use to11_shared::model::ProjectState;
use uuid::Uuid;

use std::sync::Arc;

use super::write::{conflict_pause, Created, CONFLICT_ATTEMPTS};
use super::{Committed, ProjectRegistry, RegistryError};
use crate::domain::DomainError;
use crate::store::{Base, StoreError};

/// Create a project; its slug must be unused.
#[derive(Message)]
#[rtype(result = "Result<Committed<()>, RegistryError>")]
pub struct CreateProject {
    pub state: ProjectState,
}

impl Handler<CreateProject> for ProjectRegistry {
    type Result = AtomicResponse<Self, Result<Committed<()>, RegistryError>>;

    fn handle(&mut self, msg: CreateProject, _: &mut Context<Self>) -> Self::Result {
        let slug = msg.state.project.slug.clone();
        let id = msg.state.project.id;
        if self.model.slug_taken(&slug, id) {
            let taken = DomainError::SlugTaken(slug);
            return AtomicResponse::new(Box::pin(fut::ready(Err(taken.into()))));
        }
        self.write(id, Some(msg.state), Created(id))
    }
}

/// Delete a project and everything in it; replicas drop it.
#[derive(Message)]
#[rtype(result = "Result<u64, RegistryError>")]
pub struct DeleteProject {
    pub project: Uuid,
}

impl Handler<DeleteProject> for ProjectRegistry {
    type Result = AtomicResponse<Self, Result<u64, RegistryError>>;

    fn handle(&mut self, msg: DeleteProject, _: &mut Context<Self>) -> Self::Result {
        AtomicResponse::new(self.delete(msg.project, 1))
    }
}

impl ProjectRegistry {
    /// Deletes a project if the store still holds the version this model has; when another
    /// control plane changed it first, reloads it and tries again (it may be gone: not found).
    fn delete(
        &mut self,
        id: Uuid,
        attempt: u32,
    ) -> fut::LocalBoxActorFuture<Self, Result<u64, RegistryError>> {
        let reload = self.reload_if_stale(id);
        let store = self.store.clone();
        let publish = self.publish.load(Ordering::Relaxed);
        reload
            .into_actor(self)
            .then(move |reloaded, act, _| {
                let from_memory = matches!(reloaded, Ok(None));
                let base = match reloaded {
                    Err(e) => Err(RegistryError::from(e)),
                    Ok(r) => {
                        act.take_in(id, r);
                        act.model
                            .get(&id)
                            .map(|s| Base::of(s))
                            .ok_or(RegistryError::NotFound)
                    }
                };
                // Not in memory: perhaps created on another control plane whose notification
                // is not here yet. Read the store before answering 404.
                if from_memory && base.is_err() && attempt < CONFLICT_ATTEMPTS {
                    act.stale.insert(id);
                    return act.delete(id, attempt + 1);
                }
                async move {
                    let base = base?;
                    let version = store.next_version().await?;
                    store.delete(id, &base).await?;
                    if publish {
                        store
                            .publish(Change {
                                project: id,
                                version,
                            })
                            .await;
                    }
                    Ok::<_, RegistryError>(version)
                }
                .into_actor(act)
                .boxed_local()
            })
            .then(move |res, act, _| {
                match &res {
                    Ok(_) => act.remove(id),
                    Err(RegistryError::Store(StoreError::Conflict)) => {
                        act.stale.insert(id);
                        if attempt < CONFLICT_ATTEMPTS {
                            return fut::wrap_future(actix_rt::time::sleep(conflict_pause(
                                attempt,
                            )))
                            .then(move |(), act: &mut Self, _| act.delete(id, attempt + 1))
                            .boxed_local();
                        }
                        return fut::ready(Err(RegistryError::Conflict { attempts: attempt }))
                            .boxed_local();
                    }
                    Err(RegistryError::Store(_)) => {
                        act.stale.insert(id);
                    }
                    Err(_) => {}
                }
                fut::ready(res).boxed_local()
            })
            .boxed_local()
    }
}

/// Reload projects another control plane changed (a change notification, or the watchdog's
/// reconcile): (id, the version the store announced, or `None` to check whether it is still
/// there). A project the model already holds at that version or later is not read again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Refresh {
    pub projects: Vec<(Uuid, Option<u64>)>,
}

impl Handler<Refresh> for ProjectRegistry {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Refresh, _: &mut Context<Self>) -> Self::Result {
        let wanted: Vec<Uuid> = msg
            .projects
            .into_iter()
            .filter(|(id, v)| match (self.model.get(id), v) {
                (Some(s), Some(v)) => s.version < *v,
                _ => true,
            })
            .map(|(id, _)| id)
            .collect();
        if wanted.is_empty() {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        let store = self.store.clone();
        let fut = async move {
            let mut loaded = Vec::with_capacity(wanted.len());
            for id in wanted {
                match store.load_in_epoch(id).await {
                    Ok(s) => loaded.push((id, s)),
                    // Emptied, replaced or down: the watchdog deals with the store first.
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot reload a changed project");
                        break;
                    }
                }
            }
            loaded
        }
        .into_actor(self)
        .map(|loaded, act, _| {
            let mut changed = false;
            for (id, s) in loaded {
                match s {
                    Some(s) if act.model.get(&id).is_none_or(|m| m.version < s.version) => {
                        act.stale.remove(&id);
                        act.model.put(Arc::new(s));
                        changed = true;
                    }
                    Some(_) => {}
                    None if act.model.get(&id).is_some() => {
                        act.stale.remove(&id);
                        act.model.remove(id);
                        changed = true;
                    }
                    None => {}
                }
            }
            if changed {
                act.published.publish(&act.model);
            }
        });
        AtomicResponse::new(Box::pin(fut))
    }
}

/// Whether the store answers (for `/readyz`).
#[derive(Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct PingStore;

impl Handler<PingStore> for ProjectRegistry {
    type Result = ResponseFuture<Result<(), RegistryError>>;

    fn handle(&mut self, _: PingStore, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move { store.ping().await.map_err(RegistryError::from) })
    }
}
